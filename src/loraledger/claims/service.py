"""Reward lists to tokens, proofs and verification, on top of the ledger and epochs.

``post_reward_list`` appends a reward list's rows to the ledger as ``RewardGrantRecord``s
(once: a list already appended is recognised by its sha256) and closes an epoch, which
seals, posts and confirms it. ``reward_proof`` answers from the epoch file whose root the
distributor holds. ``verify_with_chain`` needs only epoch files and the chain.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from sqlmodel import Session, select

from ..chain.contracts import LedgerContracts
from ..crypto.merkle import StandardMerkleTree
from ..epochs.file import ChunkReader, verify_epoch_files
from ..epochs.machine import EpochManager
from ..epochs.store import EpochFileStore
from ..epochs.tables import EpochRow
from ..errors import InputError, LedgerError, NotFoundError
from ..records.kinds import RewardGrantRecord
from ..records.ledger import RecordLedger
from ..records.tables import RecordRow
from ..rewards.lists import parse_address, parse_reward_list
from ..rewards.split import REWARD_LEAF_ENCODING


@dataclass(frozen=True)
class PostResult:
    """What ``post_reward_list`` did."""

    appended: int
    epoch: EpochRow | None


def read_reward_list(path: Path) -> tuple[str, str]:
    """(text, ``sha256:…`` of the bytes) of a reward list file, with clear errors."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"reward list {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read reward list {path}: {exc.strerror}") from None
    try:
        return raw.decode("utf-8"), "sha256:" + hashlib.sha256(raw).hexdigest()
    except UnicodeDecodeError:
        raise InputError(f"reward list {path} is not UTF-8 text") from None


class _AlreadyAppended(Exception):
    """Raised inside the append transaction to roll it back: the list is in the ledger."""


def post_reward_list(manager: EpochManager, records: RecordLedger, path: Path, *, now: int | None = None) -> PostResult:
    """Append the reward list at ``path`` (unless already appended) and close an epoch.

    The "already appended?" check runs inside the append's own transaction, under the
    ledger's write lock, so two runs with the same file cannot both append it.
    """
    text, source = read_reward_list(path)
    rows = parse_reward_list(text, fmt={".json": "json", ".csv": "csv"}.get(path.suffix.lower()))
    timestamp = int(time.time()) if now is None else now
    grants = [
        RewardGrantRecord(timestamp=timestamp, account=row.account, amount=row.amount, source=source, memo=path.name)
        for row in rows
    ]

    def refuse_if_already_appended(session: Session, stamped: list) -> None:
        earlier = session.exec(
            select(RecordRow.seq).where(
                RecordRow.kind == "reward_grant",
                RecordRow.body.like(f'%"source":"{source}"%'),  # type: ignore[attr-defined]
                RecordRow.seq < stamped[0].seq,
            )
        ).first()
        if earlier is not None:
            raise _AlreadyAppended

    try:
        appended = len(records.append_many(grants, in_transaction=refuse_if_already_appended))
    except _AlreadyAppended:
        appended = 0
    return PostResult(appended, manager.close())


@dataclass(frozen=True)
class RewardProof:
    """Everything a wallet needs to call ``claim(account, cumulativeAmount, proof)``."""

    account: str
    cumulative_amount: int
    proof: list[str]
    root: str
    epoch: int
    chain_id: int
    distributor: str
    claimed: int

    @property
    def claimable(self) -> int:
        return max(self.cumulative_amount - self.claimed, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "cumulativeAmount": str(self.cumulative_amount),
            "claimed": str(self.claimed),
            "claimable": str(self.claimable),
            "proof": self.proof,
            "root": self.root,
            "epoch": self.epoch,
            "chainId": self.chain_id,
            "distributor": self.distributor,
        }

    def cast_command(self, rpc_url: str) -> str:
        return (
            f'cast send {self.distributor} "claim(address,uint256,bytes32[])" {self.account} '
            f'{self.cumulative_amount} "[{",".join(self.proof)}]" --rpc-url {rpc_url} --private-key <KEY>'
        )


def reward_proof(contracts: LedgerContracts, store: EpochFileStore, account: str) -> RewardProof:
    """The proof for ``account`` against the root the distributor holds now."""
    account = parse_address(account, where="account")
    epoch = contracts.current_epoch()
    if epoch == 0:
        raise NotFoundError("no epoch has been posted on this deployment yet")
    epoch_file = store.read(epoch)
    tree = StandardMerkleTree.load(epoch_file["rewards"]["tree"])
    root = contracts.merkle_root()
    if tree.root != root:
        raise LedgerError(f"local epoch {epoch} has root {tree.root}, but the distributor holds {root}")
    for index, (holder, amount) in tree.entries():
        if to_checksum_address(holder) == account:
            return RewardProof(account, int(amount), tree.get_proof(index), root, epoch,
                               contracts.client.chain_id, contracts.distributor.address, contracts.claimed(account))
    raise NotFoundError(f"{account} has no rewards as of epoch {epoch}")


def proof_from_node(node_url: str, account: str, contracts: LedgerContracts) -> RewardProof:
    """Fetch ``account``'s proof from a node's API and check it against the chain before use.

    The node is not trusted: the proof must verify against the root the distributor holds.
    """
    import httpx

    account = parse_address(account, where="account")
    url = f"{node_url.rstrip('/')}/v1/rewards/{account}"
    try:
        response = httpx.get(url, timeout=30)
    except httpx.HTTPError as exc:
        raise NotFoundError(f"cannot reach the node at {node_url} ({type(exc).__name__})") from None
    if response.status_code == 404:
        raise NotFoundError(response.json().get("message", f"{account} has no rewards at {node_url}"))
    if response.status_code != 200:
        raise LedgerError(f"node {node_url} answered {response.status_code} for {url}")
    try:
        body = response.json()
        amount, proof, epoch = int(body["cumulativeAmount"]), list(body["proof"]), int(body["epoch"])
    except (ValueError, KeyError, TypeError):
        raise LedgerError(f"node {node_url} sent a malformed proof for {account}") from None
    root = contracts.merkle_root()
    if not StandardMerkleTree.verify(root, REWARD_LEAF_ENCODING, [account, amount], proof):
        raise LedgerError(f"the proof from {node_url} does not verify against the on-chain root {root}; not using it")
    return RewardProof(account, amount, proof, root, epoch, contracts.client.chain_id,
                       contracts.distributor.address, contracts.claimed(account))


@dataclass
class VerifyReport:
    """Per-epoch findings of ``verify``; ``ok`` when nothing is wrong anywhere."""

    epochs: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_with_chain(files: Iterable[dict[str, Any]], contracts: LedgerContracts,
                      read_chunk: ChunkReader | None = None) -> VerifyReport:
    """Recompute every epoch from ``files`` (and the chunks ``read_chunk`` reads, for chunked
    epochs) and compare with the chain, field by field."""
    problems: list[str] = []
    checks = verify_epoch_files(files, read_chunk)
    for check in checks:
        problems.extend(f"epoch {check.epoch}: {p}" for p in check.problems)
    on_chain_epoch = contracts.current_epoch()
    if on_chain_epoch != len(checks):
        problems.append(f"chain: ledger is at epoch {on_chain_epoch}, the files hold {len(checks)} epochs")
    funded = 0
    for check in checks[:on_chain_epoch]:
        posted = contracts.epoch(check.epoch)
        funded += posted.epoch_total
        for field_name, recomputed, stored in (
            ("logSize", check.log_size, posted.log_size),
            ("logRoot", check.log_root, posted.log_root),
            ("rewardsRoot", check.rewards_root, posted.rewards_root),
            ("epochTotal", check.epoch_total, posted.epoch_total),
            ("recordCount", check.record_count, posted.record_count),
            ("dataHash", check.data_hash, posted.data_hash),
        ):
            if recomputed != stored:
                problems.append(f"epoch {check.epoch}: {field_name} on chain is {stored}, recomputed {recomputed}")
    if checks and on_chain_epoch >= len(checks):
        if contracts.merkle_root() != checks[-1].rewards_root:
            problems.append(f"distributor: merkleRoot {contracts.merkle_root()} is not epoch {len(checks)}'s root")
        if contracts.distributor_epoch() != on_chain_epoch:
            problems.append(f"distributor: epoch {contracts.distributor_epoch()} differs from the ledger's {on_chain_epoch}")
    blocks = contracts.epoch_post_blocks()
    for check in checks[:on_chain_epoch]:
        block = blocks.get(check.epoch)
        if block is None:
            problems.append(f"epoch {check.epoch}: no EpochPosted event on chain")
            continue
        in_force = dict(zip(("contributorsBps", "developerBps", "operatorBps"), contracts.fee_split(block)))
        if check.fee_split != in_force:
            problems.append(f"epoch {check.epoch}: feeSplit {check.fee_split} is not the split on chain {in_force}")
    total_funded = contracts.total_funded()
    if total_funded != funded:
        problems.append(f"chain: totalFunded is {total_funded}, the sum of posted epoch totals is {funded}")
    return VerifyReport(len(checks), problems)

