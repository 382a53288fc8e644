"""Reward lists to tokens: seal an epoch from a list, post it, serve proofs, verify.

This wires the pure core (reward lists, records, log, reward tree, epoch files) to the
edges (epoch files on disk, the chain). Each step is safe to repeat: a reward list that is
already sealed is not sealed again, and a sealed epoch that is already on chain is not
posted again.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from .chain.contracts import LedgerContracts
from .epochs import build_epoch_file, data_hash, verify_epoch_files
from .errors import InputError, LedgerError, NotFoundError
from .ledger.epochfiles import EpochFileStore
from .merkle import StandardMerkleTree
from .recordlog import MerkleLog
from .records import RewardGrantRecord, log_leaf, record_from_dict
from .rewardlist import parse_address, parse_reward_list


@dataclass(frozen=True)
class PostResult:
    """What ``post_reward_list`` did."""

    epoch: int
    sealed_now: bool
    posted_now: bool
    tx_hash: str | None
    gas_used: int | None
    total: int
    accounts: int
    root: str


def _log_from_files(files: list[dict[str, Any]]) -> MerkleLog:
    log = MerkleLog()
    for epoch_file in files:
        for raw in epoch_file["records"]:
            log.append(log_leaf(record_from_dict(raw)))
    return log


def _sources(epoch_file: dict[str, Any]) -> set[str]:
    return {r.get("source") for r in epoch_file["records"] if r.get("kind") == "reward_grant"}


def _post_sealed(contracts: LedgerContracts, store: EpochFileStore, operator: LocalAccount, epoch: int) -> dict[str, Any]:
    """Post sealed epoch ``epoch`` unless the chain has it already; record the result."""
    epoch_file = store.read(epoch)
    digest = data_hash(epoch_file)
    on_chain = contracts.current_epoch()
    if on_chain >= epoch:
        posted = contracts.epoch(epoch)
        if posted.data_hash != digest or posted.rewards_root != epoch_file["rewards"]["root"]:
            raise LedgerError(
                f"epoch {epoch} on chain has data hash {posted.data_hash}, but the local file hashes to {digest}; "
                "the local epoch files do not match what was posted"
            )
        info = store.posted(epoch) or {"epoch": epoch, "txHash": None, "gasUsed": None, "recoveredFromChain": True}
        store.mark_posted(epoch, info)
        return info
    if on_chain != epoch - 1:
        raise LedgerError(f"chain is at epoch {on_chain}, cannot post local epoch {epoch}")
    receipt = contracts.post_epoch(operator, epoch_file, data_uri=f"epochs/{epoch}.json", data_hash=digest)
    info = {
        "epoch": epoch,
        "txHash": "0x" + bytes(receipt["transactionHash"]).hex(),
        "block": int(receipt["blockNumber"]),
        "gasUsed": int(receipt["gasUsed"]),
    }
    store.mark_posted(epoch, info)
    return info


def post_reward_list(
    contracts: LedgerContracts,
    store: EpochFileStore,
    operator: LocalAccount,
    reward_list: Path,
    *,
    now: int | None = None,
) -> PostResult:
    """Seal the reward list at ``reward_list`` as the next epoch and post it, funding it from ``operator``."""
    try:
        raw = reward_list.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"reward list {reward_list} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read reward list {reward_list}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"reward list {reward_list} is not UTF-8 text") from None
    fmt = {".json": "json", ".csv": "csv"}.get(reward_list.suffix.lower())
    rows = parse_reward_list(text, fmt=fmt)
    source = "sha256:" + hashlib.sha256(raw).hexdigest()

    files = store.read_all()
    # Finish any sealed epoch that a crash left unposted before sealing a new one.
    for epoch_file in files:
        if store.posted(epoch_file["epoch"]) is None:
            _post_sealed(contracts, store, operator, epoch_file["epoch"])
    on_chain = contracts.current_epoch()
    if on_chain != len(files):
        hint = (
            f"the chain was reset or redeployed: move {store.directory} aside to start over"
            if on_chain < len(files)
            else f"epoch files are missing: restore {store.directory} from a backup or the published epoch files"
        )
        raise LedgerError(f"chain is at epoch {on_chain} but {store.directory} holds {len(files)} epoch files; {hint}")
    for epoch_file in files:
        if source in _sources(epoch_file):
            info = store.posted(epoch_file["epoch"]) or {}
            rewards = epoch_file["rewards"]
            return PostResult(epoch_file["epoch"], False, False, info.get("txHash"), info.get("gasUsed"),
                              int(rewards["total"]), rewards["accounts"], rewards["root"])

    log = _log_from_files(files)
    timestamp = int(time.time()) if now is None else now
    records = [
        RewardGrantRecord(seq=log.size + i, timestamp=timestamp, account=row.account, amount=row.amount,
                          source=source, memo=reward_list.name)
        for i, row in enumerate(rows)
    ]
    epoch = len(files) + 1
    epoch_file = build_epoch_file(
        epoch=epoch,
        chain_id=contracts.client.chain_id,
        ledger=contracts.ledger.address,
        distributor=contracts.distributor.address,
        records=records,
        log=log,
        previous=files[-1] if files else None,
        fee_split_bps=contracts.fee_split(),
    )
    store.write(epoch, epoch_file)
    info = _post_sealed(contracts, store, operator, epoch)
    rewards = epoch_file["rewards"]
    return PostResult(epoch, True, True, info.get("txHash"), info.get("gasUsed"), int(rewards["total"]),
                      rewards["accounts"], rewards["root"])


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
    """The proof for ``account`` against the root that is on chain now."""
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


@dataclass
class VerifyReport:
    """Per-epoch findings of ``verify``; ``ok`` when nothing is wrong anywhere."""

    epochs: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_with_chain(files: list[dict[str, Any]], contracts: LedgerContracts) -> VerifyReport:
    """Recompute every epoch from ``files`` and compare with the chain, field by field."""
    problems: list[str] = []
    checks = verify_epoch_files(files)
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
    total_funded = contracts.total_funded()
    if total_funded != funded:
        problems.append(f"chain: totalFunded is {total_funded}, the sum of posted epoch totals is {funded}")
    return VerifyReport(len(checks), problems)

