"""Open a node's parts from settings: ledger database, epoch files, chain, epoch manager,
datanets."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import Engine

from ..chain.client import ChainClient
from ..chain.contracts import DatanetRegistryContract, LedgerContracts, all_packaged_abis
from ..chain.deploy import load_deployment
from ..config import Settings
from ..datanets.service import DatanetService
from ..epochmachine import EpochManager, EpochPolicy
from ..ledger.db import create_all, make_engine
from ..ledger.epochfiles import EpochFileStore
from ..ledger.records import RecordLedger


def chain_client(settings: Settings) -> ChainClient:
    return ChainClient(
        settings.rpc_url,
        expected_chain_id=settings.chain_id,
        confirmations=settings.confirmations,
        tx_timeout=settings.tx_timeout,
        error_abis=all_packaged_abis(),
    )


def ledger_contracts(settings: Settings) -> LedgerContracts:
    client = chain_client(settings)
    return LedgerContracts(client, load_deployment(settings.deployment_file(client.chain_id)))


def open_records(settings: Settings) -> tuple[Engine, RecordLedger]:
    """The ledger database and its record log (no chain needed)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.ledger_url)
    create_all(engine)
    return engine, RecordLedger(engine)


@dataclass
class NodeContext:
    """Everything one node works with."""

    settings: Settings
    engine: Engine
    records: RecordLedger
    store: EpochFileStore
    contracts: LedgerContracts
    manager: EpochManager
    datanets: DatanetService
    #: The key that sends the node's transactions; ``None`` on a read-only node.
    operator: LocalAccount | None = None

    @property
    def policy(self) -> EpochPolicy:
        return EpochPolicy(seconds=self.settings.epoch_seconds, records=self.settings.epoch_records)


def open_node(settings: Settings, *, operator: LocalAccount | None = None) -> NodeContext:
    contracts = ledger_contracts(settings)
    engine, records = open_records(settings)
    store = EpochFileStore(settings.epochs_dir)
    manager = EpochManager(
        engine, records, store, contracts,
        operator=operator,
        lock_path=settings.data_dir / "epochs.lock",
        confirmations=settings.confirmations,
        timeout=settings.tx_timeout,
        public_url=settings.public_url,
    )
    registry = DatanetRegistryContract(contracts.client, contracts.deployment.address("DatanetRegistry"))
    datanets = DatanetService(engine, records, registry)
    return NodeContext(settings, engine, records, store, contracts, manager, datanets=datanets, operator=operator)
