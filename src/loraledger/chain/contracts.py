"""Typed access to the deployed loraledger contracts: post epochs, claim, read state.

ABIs ship with the package (``chain/abi/*.json``, checked against the compiled sources by
the tests), so claiming and verifying need no compiler, only a deployments file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from ..errors import ChainError, InputError, NotFoundError
from .client import ChainClient
from .deploy import CONTRACT_NAMES, Deployment


@cache
def packaged_abi(name: str) -> list[dict[str, Any]]:
    """The ABI of contract ``name`` shipped in ``loraledger/chain/abi``."""
    try:
        return json.loads(resources.files("loraledger.chain").joinpath("abi", f"{name}.json").read_text())
    except FileNotFoundError:
        raise NotFoundError(f"no packaged ABI for {name}; run scripts/export_abis.py") from None


def all_packaged_abis() -> list[dict[str, Any]]:
    return [entry for name in CONTRACT_NAMES for entry in packaged_abi(name)]


@dataclass(frozen=True)
class OnChainEpoch:
    """An epoch as stored by AttributionLedger."""

    epoch: int
    log_size: int
    record_count: int
    posted_at: int
    log_root: str
    rewards_root: str
    epoch_total: int
    data_hash: str
    data_uri: str


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


class LedgerContracts:
    """The contracts of one deployment, bound to a ``ChainClient``."""

    def __init__(self, client: ChainClient, deployment: Deployment):
        if deployment.chain_id != client.chain_id:
            raise ChainError(
                f"deployment is for chain {deployment.chain_id}, but the RPC serves chain {client.chain_id}"
            )
        self.client = client
        self.deployment = deployment
        self.token = client.contract(deployment.address("OpenToken"), packaged_abi("OpenToken"))
        self.ledger = client.contract(deployment.address("AttributionLedger"), packaged_abi("AttributionLedger"))
        self.distributor = client.contract(deployment.address("RewardDistributor"), packaged_abi("RewardDistributor"))
        for name in CONTRACT_NAMES:
            if not client.has_code(deployment.address(name)):
                raise ChainError(
                    f"{name} at {deployment.address(name)} has no code on chain {client.chain_id}: "
                    "the chain was reset or the deployments file is stale; run `loraledger contracts deploy`"
                )

    # ---- reads -----------------------------------------------------------------------
    def current_epoch(self) -> int:
        return int(self.ledger.functions.currentEpoch().call())

    def epoch(self, number: int) -> OnChainEpoch:
        info = self.client.call_view(self.ledger.functions.getEpoch(number), what=f"read epoch {number}")
        log_size, record_count, posted_at, log_root, rewards_root, epoch_total, data_hash, data_uri = info
        return OnChainEpoch(
            number, log_size, record_count, posted_at, _hex(log_root), _hex(rewards_root), epoch_total, _hex(data_hash), data_uri
        )

    def fee_split(self) -> tuple[int, int, int]:
        return tuple(self.ledger.functions.feeSplit().call())  # type: ignore[return-value]

    def total_funded(self) -> int:
        return int(self.ledger.functions.totalFunded().call())

    def merkle_root(self) -> str:
        return _hex(self.distributor.functions.merkleRoot().call())

    def distributor_epoch(self) -> int:
        return int(self.distributor.functions.epoch().call())

    def claimed(self, account: str) -> int:
        return int(self.distributor.functions.claimed(to_checksum_address(account)).call())

    def balance_of(self, account: str) -> int:
        return int(self.token.functions.balanceOf(to_checksum_address(account)).call())

    # ---- writes ----------------------------------------------------------------------
    def post_epoch(self, operator: LocalAccount, epoch_file: dict[str, Any], data_uri: str, data_hash: str) -> dict[str, Any]:
        """Fund and post one epoch; returns the receipt.

        Pulls ``rewards.total`` OPEN from the operator (approving the ledger first when
        the allowance is short) and sets the distributor's root in the same transaction.
        """
        epoch = int(epoch_file["epoch"])
        total = int(epoch_file["rewards"]["total"])
        spender = self.ledger.address
        balance = self.balance_of(operator.address)
        if balance < total:
            raise ChainError(
                f"operator {operator.address} holds {balance} OPEN wei but epoch {epoch} needs {total}; fund the operator first"
            )
        allowance = int(self.token.functions.allowance(operator.address, spender).call())
        if allowance < total:
            self.client.transact(operator, self.token.functions.approve(spender, total), what=f"approve {total} for epoch {epoch}")
        return self.client.transact(
            operator,
            self.ledger.functions.postEpoch(
                epoch,
                int(epoch_file["log"]["size"]),
                bytes.fromhex(epoch_file["log"]["root"][2:]),
                bytes.fromhex(epoch_file["rewards"]["root"][2:]),
                total,
                len(epoch_file["records"]),
                data_uri,
                bytes.fromhex(data_hash[2:]),
            ),
            what=f"post epoch {epoch}",
        )

    def claim(self, sender: LocalAccount, account: str, cumulative_amount: int, proof: list[str]) -> dict[str, Any]:
        """Claim for ``account`` (tokens go to ``account``, whoever sends). Returns the receipt."""
        account = to_checksum_address(account)
        already = self.claimed(account)
        if cumulative_amount <= already:
            raise InputError(
                f"nothing to claim for {account}: {already} of its cumulative {cumulative_amount} OPEN wei is already claimed"
            )
        try:
            proof_bytes = [bytes.fromhex(p.removeprefix("0x")) for p in proof]
        except ValueError:
            raise InputError("proof must be a list of 0x-prefixed 32-byte hex strings") from None
        return self.client.transact(
            sender,
            self.distributor.functions.claim(account, cumulative_amount, proof_bytes),
            what=f"claim for {account}",
        )
