"""Open a node's parts from settings: ledger database, epoch files, chain, epoch manager,
datanets, the model factory, background jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import Engine

from ..attribution import tables as attribution_tables
from ..chain.client import ChainClient
from ..chain.contracts import (
    AdapterRegistryContract,
    DatanetRegistryContract,
    LedgerContracts,
    PaymentVaultContract,
    all_packaged_abis,
)
from ..chain.deploy import load_deployment
from ..config import Settings
from ..datanets import tables as datanet_tables
from ..datanets.service import DatanetService
from ..db import create_all, make_engine
from ..epochs import tables as epoch_tables
from ..epochs.machine import EpochManager, EpochPolicy
from ..epochs.store import EpochFileStore
from ..errors import ConfigError, InputError
from ..health import NodeHealth
from ..jobs import tables as job_tables
from ..jobs.queue import JobQueue
from ..payments import tables as payment_tables
from ..payments.balances import PayerBalances
from ..payments.follower import DepositFollower
from ..records import tables as record_tables
from ..records.ledger import RecordLedger
from ..serving import tables as serving_tables
from ..serving.payers import PayerKeys
from ..serving.pricing import Price, Prices
from ..training import tables as adapter_tables
from ..training.factory import ModelFactory
from .job_kinds import factory_job_kinds

if TYPE_CHECKING:  # imports torch: only the daemon opens it, and only with --base
    from ..attribution.worker import AttributionWorker
    from ..serving.service import ServingService

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


#: Every module that defines tables of the ledger database.
TABLE_MODULES = (record_tables, epoch_tables, datanet_tables, adapter_tables, job_tables, serving_tables,
                 attribution_tables, payment_tables)


def create_tables(engine: Engine) -> None:
    """Create the tables of every concern (those of :data:`TABLE_MODULES`) that do not exist yet."""
    assert TABLE_MODULES  # importing them registered their tables on the metadata
    create_all(engine)


def open_records(settings: Settings) -> tuple[Engine, RecordLedger]:
    """The ledger database and its record log (no chain needed)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.ledger_url)
    create_tables(engine)
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
    #: Background jobs on the same ledger database; kinds are registered by the code that
    #: provides them (``node.jobs.register(...)``), and run by the daemon's ``JobWorker``.
    jobs: JobQueue = None  # type: ignore[assignment]  # made on ``engine`` by __post_init__ when not given

    #: Trains, imports, registers and benchmarks adapters (made by ``open_node``).
    factory: ModelFactory | None = None
    #: What is failing right now (the epoch loop and the job worker report here; ``/v1/health`` reads it).
    health: NodeHealth = field(default_factory=NodeHealth)
    #: The model this node serves (``node run --base DIR``; opened by the daemon), else None.
    serving: ServingService | None = None
    #: Attributes served answers of indexed adapters and writes their fees (with ``serving``).
    attribution: AttributionWorker | None = None
    #: The payers' API keys (hashes only).
    payers: PayerKeys = None  # type: ignore[assignment]  # made on ``engine`` by __post_init__ when not given
    #: The prices of the served models (price records; the settings' default otherwise).
    prices: Prices = None  # type: ignore[assignment]  # made by __post_init__ when not given
    #: Payers' balances (deposits credited, answers debited); ``required`` when payers pay from the vault.
    balances: PayerBalances = None  # type: ignore[assignment]  # made by __post_init__ when not given
    #: The PaymentVault of the deployment (None: a deployment made before it; ``contracts deploy`` adds it).
    vault: PaymentVaultContract | None = None

    def __post_init__(self) -> None:
        if self.jobs is None:
            self.jobs = JobQueue(self.engine)
        if self.payers is None:
            self.payers = PayerKeys(self.engine)
        if self.prices is None:
            default = Price(self.settings.price_input_per_1k, self.settings.price_output_per_1k)
            self.prices = Prices(self.engine, self.records, default=default)
        if self.balances is None:
            self.balances = PayerBalances(self.engine, required=self.settings.payer_deposits and self.vault is not None)

    def deposit_follower(self) -> DepositFollower:
        """Credits the vault's deposits (the daemon polls it); needs the deployment's vault."""
        if self.vault is None:
            raise ConfigError("this deployment has no PaymentVault: run `loraledger contracts deploy` to add it")
        block = self.contracts.deployment.contracts["PaymentVault"].block
        return DepositFollower(self.engine, self.records, self.vault, self.balances, start_block=block,
                               confirmations=self.settings.confirmations)

    @property
    def policy(self) -> EpochPolicy:
        return EpochPolicy(seconds=self.settings.epoch_seconds, records=self.settings.epoch_records)


def open_node(settings: Settings, *, operator: LocalAccount | None = None) -> NodeContext:
    contracts = ledger_contracts(settings)
    engine, records = open_records(settings)
    store = EpochFileStore(settings.epochs_dir, max_file_bytes=settings.epoch_file_max_bytes,
                           chunk_bytes=settings.epoch_chunk_bytes)
    vault = None
    if "PaymentVault" in contracts.deployment.contracts:
        vault = PaymentVaultContract(contracts.client, contracts.deployment.address("PaymentVault"), contracts.token)
    manager = EpochManager(
        engine, records, store, contracts,
        operator=operator,
        lock_path=settings.data_dir / "epochs.lock",
        confirmations=settings.confirmations,
        timeout=settings.tx_timeout,
        public_url=settings.public_url,
        vault=vault if settings.payer_deposits else None,
    )
    registry = DatanetRegistryContract(contracts.client, contracts.deployment.address("DatanetRegistry"))
    datanets = DatanetService(engine, records, registry)
    adapters = AdapterRegistryContract(contracts.client, contracts.deployment.address("AdapterRegistry"))
    factory = ModelFactory(engine, records, datanets, data_dir=settings.data_dir, registry=adapters, operator=operator,
                           public_url=settings.public_url)
    node = NodeContext(settings, engine, records, store, contracts, manager, datanets=datanets, operator=operator,
                       factory=factory, vault=vault)
    for kind in factory_job_kinds(factory, settings):
        node.jobs.register(kind)
    return node


def open_factory(settings: Settings, *, operator: LocalAccount | None = None) -> ModelFactory:
    """The model factory of the node on ``settings`` (what a job's child process works with)."""
    factory = open_node(settings, operator=operator).factory
    assert factory is not None  # open_node always makes one
    return factory


def open_serving(node: NodeContext) -> ServingService:
    """The model ``node.settings.serve_base`` names, loaded with its engine (the daemon calls
    this when the node is started with ``--base``; it imports torch)."""
    from ..records.fields import parse_address
    from ..serving.recorder import InferenceRecorder
    from ..serving.service import ServingService

    settings = node.settings
    assert settings.serve_base is not None and node.factory is not None
    if node.operator is None:
        raise ConfigError("serving needs the operator key: every answer's fee names the operator who served it")
    if settings.payer_deposits and node.vault is None:
        raise ConfigError("payers pay from deposits (payer_deposits = true) but this deployment has no PaymentVault: "
                          "run `loraledger contracts deploy` to add it, or set payer_deposits = false")
    recorder = InferenceRecorder(node.records, operator=node.operator.address,
                                 retention_days=settings.inference_text_days,
                                 balances=node.balances if node.balances.required else None)
    open_payer = parse_address(settings.open_payer) if settings.open_payer else None
    if settings.upstream_url:
        key = settings.upstream_api_key.get_secret_value() if settings.upstream_api_key else None
        upstream = ServingService.open_upstream(settings.serve_base, settings.upstream_url, factory=node.factory,
                                                prices=node.prices, recorder=recorder, api_key=key,
                                                upstream_model=settings.upstream_model, open_payer=open_payer,
                                                metrics_models=settings.metrics_models)
        attach_attribution(node, upstream)
        return upstream
    service = ServingService.open(settings.serve_base, factory=node.factory, prices=node.prices, recorder=recorder,
                                  max_loras=settings.max_loras, max_cpu_loras=settings.max_cpu_loras,
                                  max_rank=settings.max_lora_rank, metrics_models=settings.metrics_models,
                                  open_payer=open_payer)
    attach_attribution(node, service)
    return service


def attach_attribution(node: NodeContext, service: ServingService) -> AttributionWorker:
    """The attribution worker of a serving node: answers of adapters with an index are queued for
    it (their fees wait for their attribution), and it loads its own copy of the base model."""
    from ..attribution.service import AttributionIndexer
    from ..attribution.worker import AdapterModels, AttributionWorker

    assert node.factory is not None and node.operator is not None and node.settings.serve_base is not None
    factory = node.factory
    indexer = AttributionIndexer(factory, node.records)

    def adapter_path(adapter_hash: str) -> str:
        row = factory.by_hash(adapter_hash)
        if row is None:
            raise InputError(f"no adapter {adapter_hash} on this node")
        return row.path

    indexed: set[str] = set()  # an index, once built, stays (a rebuild replaces it): positives are cached

    def attributed(adapter_hash: str) -> bool:
        if adapter_hash not in indexed and indexer.current(adapter_hash) is not None:
            indexed.add(adapter_hash)
        return adapter_hash in indexed

    service.attributed = attributed
    node.attribution = AttributionWorker(node.records, operator=node.operator.address,
                                         index_for=indexer.load_by_hash,
                                         model_for=AdapterModels(node.settings.serve_base, adapter_path).get)
    service.metrics.live.attribution = node.attribution
    return node.attribution
