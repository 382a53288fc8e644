"""The epoch state machine: open → sealed → submitted → confirmed.

* **seal** fixes the epoch's records (everything appended since the previous epoch), the
  log size and root, the cumulative reward tree and ``epochs/<n>.json``, in one database
  transaction under the write lock; the file is written before the commit and replaced if
  a crash left it without a database row. Records stream from the database, so memory is
  bounded by the accounts; an epoch too large for one file is written as content-addressed
  chunks and a manifest listing them (``epochs.file``).
* **submit** signs the ``postEpoch`` transaction, *stores* it, then broadcasts it. After a
  crash the stored transaction is re-broadcast (same nonce, same hash) unless the chain
  already has the epoch, or its nonce was taken by another transaction (then a new one is
  signed). It never posts an epoch twice: the contract only accepts epoch ``n`` after
  ``n − 1``, and the node checks the chain before signing.
* **release** (before submit, when payers pay from the ``PaymentVault``): the vault releases the
  epoch's takings (what its answers debited from deposits, fixed at seal) to the operator, who
  then funds ``postEpoch`` with them. The vault releases an epoch once; the node reads
  ``releasedFor`` first, and a release that lost a race reverts and is taken as done.
* **confirm** waits for the receipt and N confirmations, checks the block is still
  canonical (a reorg sends the epoch back to submit) and that the chain holds exactly the
  epoch's roots and data hash.

Every step is idempotent: ``advance()`` finishes whatever a crash left half done, in
order, before anything new is sealed. Named failpoints (``loraledger.failpoints``) let
tests SIGKILL the process between any two steps.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from Crypto.Hash import keccak
from eth_account.signers.local import LocalAccount
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ..chain.contracts import LedgerContracts, PaymentVaultContract
from ..db import read_session, session_scope
from ..errors import ChainError, ConfigError, LedgerError, TransactionReverted
from ..failpoints import failpoint
from ..payments.balances import takings_between
from ..payments.tables import EpochTakingsRow
from ..records.ledger import RecordLedger
from ..records.tables import RecordRow
from ..rewards.split import FeeSplit
from .file import EpochLink, NothingToPay, StreamedEpoch
from .store import EpochFileStore
from .tables import BalanceRow, ChainTxRow, ChainTxStatus, EpochRow, EpochStatus, NodeBindingRow

log = logging.getLogger("loraledger.epochs")


@dataclass(frozen=True)
class EpochPolicy:
    """When the node closes an epoch by itself: every ``seconds`` or ``records``, whichever first."""

    seconds: float = 3600.0
    records: int = 10_000

    def due(self, pending_records: int, seconds_since_last: float) -> bool:
        if pending_records == 0:
            return False
        return pending_records >= self.records or seconds_since_last >= self.seconds


def _lock_for_update(session: Session) -> NodeBindingRow | None:
    """Take the ledger's write lock (PostgreSQL row lock; SQLite's BEGIN IMMEDIATE does it anyway)."""
    return session.exec(select(NodeBindingRow).where(NodeBindingRow.id == 1).with_for_update()).first()


class EpochManager:
    """Seals, posts and confirms epochs for one ledger database and one deployment."""

    def __init__(
        self,
        engine: Engine,
        records: RecordLedger,
        store: EpochFileStore,
        contracts: LedgerContracts,
        *,
        operator: LocalAccount | None,
        lock_path: Path,
        confirmations: int = 1,
        timeout: float = 120.0,
        public_url: str | None = None,
        vault: PaymentVaultContract | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.engine = engine
        self.records = records
        self.store = store
        self.contracts = contracts
        self.operator = operator
        self.lock_path = lock_path
        self.confirmations = confirmations
        self.timeout = timeout
        self.public_url = public_url.rstrip("/") if public_url else None
        #: The vault that pays each epoch's takings (None: the operator funds epochs alone).
        self.vault = vault
        self.clock = clock
        self._bind()

    # ---- binding and locking ---------------------------------------------------------
    def _bind(self) -> None:
        """Tie this database to the deployment on first use; refuse any other later."""
        chain_id = self.contracts.client.chain_id
        ledger = self.contracts.ledger.address
        with session_scope(self.engine) as session:
            binding = session.get(NodeBindingRow, 1)
            if binding is None:
                session.add(NodeBindingRow(id=1, chain_id=chain_id, ledger_address=ledger,
                                           distributor_address=self.contracts.distributor.address))
                return
        if (binding.chain_id, binding.ledger_address) != (chain_id, ledger):
            raise ConfigError(
                f"this ledger database posts to AttributionLedger {binding.ledger_address} on chain "
                f"{binding.chain_id}, not {ledger} on chain {chain_id}; use another data directory or database"
            )

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One process at a time drives epochs (the node's loop or a CLI `epoch close`)."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as handle:
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LedgerError(
                            f"another loraledger process holds {self.lock_path} (closing an epoch); try again later"
                        ) from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ---- reads -----------------------------------------------------------------------
    def epochs(self) -> list[EpochRow]:
        with read_session(self.engine) as session:
            return list(session.exec(select(EpochRow).order_by(EpochRow.number)))

    def latest(self) -> EpochRow | None:
        with read_session(self.engine) as session:
            return session.exec(select(EpochRow).order_by(EpochRow.number.desc())).first()  # type: ignore[union-attr]

    def sealed_size(self) -> int:
        latest = self.latest()
        return latest.end_seq if latest else 0

    def pending_records(self) -> int:
        self.records.sync()
        return self.records.size() - self.sealed_size()

    def balances(self) -> dict[str, int]:
        with read_session(self.engine) as session:
            return {row.account: int(row.cumulative) for row in session.exec(select(BalanceRow))}

    def balance(self, account: str) -> int:
        with read_session(self.engine) as session:
            row = session.get(BalanceRow, account)
            return int(row.cumulative) if row else 0

    # ---- the whole cycle -------------------------------------------------------------
    def close(self) -> EpochRow | None:
        """Finish pending epochs, seal the open one (if it has records), post and confirm it.

        Returns the newly sealed epoch, or None when there was nothing to seal.
        """
        with self.exclusive():
            self._advance_all()
            sealed = self.seal()
            self._advance_all()
            return self._get(sealed.number) if sealed else None

    def advance(self) -> list[EpochRow]:
        """Bring every sealed epoch to confirmed, in order (used at start and after crashes)."""
        with self.exclusive():
            return self._advance_all()

    def _advance_all(self) -> list[EpochRow]:
        done = []
        for row in self._reconcile(self.epochs()):
            if row.status != EpochStatus.CONFIRMED:
                done.append(self._advance(row))
        return done

    def _reconcile(self, rows: list[EpochRow]) -> list[EpochRow]:
        """Send back to ``sealed`` every confirmed epoch the chain no longer has.

        A chain can lose a confirmed post: a devnet restarted from state saved before it, or
        on a real chain a reorg deeper than the confirmations. The epoch's file and roots are
        unchanged, so posting it again (in order, once: afterwards the chain has it) restores
        the chain's copy; without this, every later epoch would wait forever for it."""
        confirmed = [row for row in rows if row.status == EpochStatus.CONFIRMED]
        if not confirmed:
            return rows
        on_chain = self.contracts.current_epoch()
        lost = [row.number for row in confirmed if row.number > on_chain]
        if not lost:
            return rows
        log.warning("the chain is at epoch %s but epochs %s were confirmed here (chain rolled back or a deep "
                    "reorg): posting them again", on_chain, lost)
        for number in lost:
            self._set_status(number, EpochStatus.SEALED, block_number=None, block_hash=None, gas_used=None,
                             confirmed_at=None)
        return self.epochs()

    def _advance(self, row: EpochRow) -> EpochRow:
        deadline = time.monotonic() + self.timeout
        while True:
            row = self._get(row.number)
            if row.status == EpochStatus.CONFIRMED:
                return row
            if row.status == EpochStatus.SEALED:
                self.submit(row)
                continue
            if self.confirm(row):
                continue
            if time.monotonic() > deadline:
                raise ChainError(f"epoch {row.number} not confirmed after {self.timeout:.0f}s; run `loraledger epoch close` again")
            time.sleep(0.2)

    def _get(self, number: int) -> EpochRow:
        with read_session(self.engine) as session:
            row = session.get(EpochRow, number)
            if row is None:
                raise LedgerError(f"epoch {number} is not in the ledger")
            return row

    # ---- seal ------------------------------------------------------------------------
    def seal(self) -> EpochRow | None:
        """Seal every record appended since the previous epoch into the next epoch."""
        split = FeeSplit.from_tuple(self.contracts.fee_split())  # chain I/O before taking the write lock
        with session_scope(self.engine) as session:
            _lock_for_update(session)
            latest = session.exec(select(EpochRow).order_by(EpochRow.number.desc())).first()  # type: ignore[union-attr]
            number = latest.number + 1 if latest else 1
            start = latest.end_seq if latest else 0
            self.records.sync()
            end = self.records.size()
            if end == start:
                return None
            failpoint("seal.before_file")
            previous = EpochLink(latest.number, latest.data_hash, int(latest.cumulative_total)) if latest else None
            previous_balances = {r.account: int(r.cumulative) for r in session.exec(select(BalanceRow))}
            # Streamed: records are read, written and folded a chunk at a time, so memory is bounded by
            # the accounts, not the records; the data hash is taken over the RFC 8785 form on the way.
            stream = StreamedEpoch(
                epoch=number,
                chain_id=self.contracts.client.chain_id,
                ledger=self.contracts.ledger.address,
                distributor=self.contracts.distributor.address,
                log_size=end,
                record_count=end - start,
                log_root=self.records.root(end),
                consistency_proof=self.records.consistency_proof(start, end).path,
                previous=previous,
                fee_split=split,
                previous_balances=previous_balances,
            )
            hasher = keccak.new(digest_bits=256)
            bodies = ((kind, body) for _, kind, body in self.records.bodies(start, end))

            def file_pieces() -> Iterator[bytes]:
                for piece, canonical in stream.pieces(bodies):
                    hasher.update(canonical)
                    yield piece

            try:
                # No database row exists for this epoch: a file left by a crashed seal is not authoritative.
                if self.store.splits(self.records.body_length(start, end)):
                    # Too large to publish whole: content-addressed chunks, then the manifest naming them.
                    for chunk in stream.chunks(bodies, self.store.chunk_bytes):
                        self.store.write_chunk(chunk)
                    manifest, canonical = stream.manifest_bytes()
                    hasher.update(canonical)
                    self.store.write_stream(number, (manifest,))
                else:
                    self.store.write_stream(number, file_pieces())
            except NothingToPay:
                # Nothing has earned anything yet (only datanet, price or deposit records, say): an
                # epoch needs a reward tree, so these records wait for the first epoch that pays.
                log.info("%s records wait: no account has earned anything yet, so there is no epoch to post",
                         end - start)
                return None
            balances = stream.balances
            assert balances is not None
            epoch_file = stream.file
            failpoint("seal.after_file")
            row = EpochRow(
                number=number,
                status=EpochStatus.SEALED,
                start_seq=start,
                end_seq=end,
                record_count=end - start,
                log_root=epoch_file["log"]["root"],
                rewards_root=epoch_file["rewards"]["root"],
                total=epoch_file["rewards"]["total"],
                cumulative_total=epoch_file["rewards"]["cumulativeTotal"],
                accounts=epoch_file["rewards"]["accounts"],
                data_hash="0x" + hasher.hexdigest(),
                data_uri=f"{self.public_url}/v1/epochs/{number}" if self.public_url else f"epochs/{number}.json",
                sealed_at=int(self.clock()),
            )
            session.add(row)
            session.add(EpochTakingsRow(epoch=number, amount=str(takings_between(session, start, end))))
            session.exec(update(RecordRow).where(RecordRow.seq >= start, RecordRow.seq < end).values(epoch=number))  # type: ignore[call-overload]
            for account, amount in balances.items():
                if previous_balances.get(account) != amount:
                    session.merge(BalanceRow(account=account, cumulative=str(amount), epoch=number))
        failpoint("seal.after_commit")
        return row

    # ---- submit ----------------------------------------------------------------------
    def _require_operator(self) -> LocalAccount:
        if self.operator is None:
            raise ConfigError("posting epochs needs the operator key: set LORALEDGER_OPERATOR_KEY or a keystore")
        return self.operator

    def _post_tx(self, row: EpochRow) -> ChainTxRow | None:
        if row.post_tx_id is None:
            return None
        with read_session(self.engine) as session:
            return session.get(ChainTxRow, row.post_tx_id)

    def _on_chain(self, row: EpochRow) -> bool:
        """Whether the chain already has epoch ``row.number``, checked to be exactly ours."""
        if self.contracts.current_epoch() < row.number:
            return False
        posted = self.contracts.epoch(row.number)
        mismatches = [
            name for name, ours, theirs in (
                ("dataHash", row.data_hash, posted.data_hash),
                ("rewardsRoot", row.rewards_root, posted.rewards_root),
                ("logRoot", row.log_root, posted.log_root),
                ("logSize", row.end_seq, posted.log_size),
                ("epochTotal", int(row.total), posted.epoch_total),
            ) if ours != theirs
        ]
        if mismatches:
            raise LedgerError(
                f"epoch {row.number} on chain differs from the sealed epoch in {', '.join(mismatches)}: "
                "another node posted to this deployment; stop and investigate"
            )
        return True

    def submit(self, row: EpochRow) -> None:
        """Sign, store and broadcast the post of a sealed epoch (or re-broadcast the stored one)."""
        if self._on_chain(row):
            self._set_status(row.number, EpochStatus.SUBMITTED)
            return
        current = self.contracts.current_epoch()
        if current != row.number - 1:
            raise LedgerError(f"chain is at epoch {current}; cannot post epoch {row.number} before {row.number - 1}")
        operator = self._require_operator()
        stored = self._post_tx(row)
        if stored is not None and stored.status in (ChainTxStatus.SIGNED, ChainTxStatus.BROADCAST):
            client = self.contracts.client
            if client.is_pending(stored.tx_hash):  # the node has it (pool or block): just wait for it
                self._mark_broadcast(row.number, stored.id)
                return
            if stored.nonce >= client.nonce(stored.sender):  # never sent, dropped, or undone by a reorg
                client.broadcast(stored.raw, what=f"re-broadcast epoch {row.number}")
                self._mark_broadcast(row.number, stored.id)
                return
            self._set_tx_status(stored.id, ChainTxStatus.REPLACED)  # its nonce went to another transaction
        self._release(row, operator)
        total = int(row.total)
        self.contracts.ensure_allowance(operator, total, what=f"epoch {row.number}")
        failpoint("submit.after_approve")
        call = self.contracts.post_epoch_call(
            row.number, row.end_seq, row.log_root, row.rewards_root, total, row.record_count, row.data_uri, row.data_hash
        )
        signed = self.contracts.client.sign(operator, call, what=f"post epoch {row.number}")
        with session_scope(self.engine) as session:
            tx = ChainTxRow(epoch=row.number, purpose="post", sender=operator.address, nonce=signed.nonce,
                            tx_hash=signed.tx_hash, raw=signed.raw, status=ChainTxStatus.SIGNED, created_at=int(self.clock()))
            session.add(tx)
            session.flush()
            epoch_row = session.get(EpochRow, row.number)
            epoch_row.post_tx_id = tx.id
            session.add(epoch_row)
            tx_id = tx.id
        failpoint("submit.after_sign")
        self.contracts.client.broadcast(signed.raw, what=f"post epoch {row.number}")
        failpoint("submit.after_broadcast")
        self._mark_broadcast(row.number, tx_id)

    def takings(self, number: int) -> int:
        """What epoch ``number``'s answers debited from deposits (0 for an epoch sealed without payers)."""
        with read_session(self.engine) as session:
            row = session.get(EpochTakingsRow, number)
        return int(row.amount) if row else 0

    def _release(self, row: EpochRow, operator: LocalAccount) -> None:
        """Have the vault release the epoch's takings to the operator, once (see the module docstring)."""
        takings = self.takings(row.number)
        if takings == 0 or self.vault is None:
            return
        released = self.vault.released_for(row.number)
        if released == 0:
            try:
                receipt = self.vault.release(operator, row.number, operator.address, takings)
            except TransactionReverted:
                released = self.vault.released_for(row.number)  # released meanwhile (another attempt won)
                if released == 0:
                    raise
            else:
                released = takings
                with session_scope(self.engine) as session:
                    takings_row = session.get(EpochTakingsRow, row.number)
                    takings_row.release_tx = "0x" + bytes(receipt["transactionHash"]).hex()
                    session.add(takings_row)
                log.info("epoch %s: the vault released %s OPEN wei of takings", row.number, takings)
            failpoint("submit.after_release")
        if released != takings:
            raise LedgerError(f"the vault released {released} OPEN wei for epoch {row.number}, but its answers took "
                              f"{takings}: another node releases from this vault; stop and investigate")

    def _mark_broadcast(self, number: int, tx_id: int | None) -> None:
        with session_scope(self.engine) as session:
            if tx_id is not None:
                tx = session.get(ChainTxRow, tx_id)
                if tx.status == ChainTxStatus.SIGNED:
                    tx.status = ChainTxStatus.BROADCAST
                    session.add(tx)
            epoch_row = session.get(EpochRow, number)
            epoch_row.status = EpochStatus.SUBMITTED
            session.add(epoch_row)

    def _set_status(self, number: int, status: str, **fields: Any) -> None:
        with session_scope(self.engine) as session:
            epoch_row = session.get(EpochRow, number)
            epoch_row.status = status
            for key, value in fields.items():
                setattr(epoch_row, key, value)
            session.add(epoch_row)

    def _set_tx_status(self, tx_id: int | None, status: str, **fields: Any) -> None:
        with session_scope(self.engine) as session:
            tx = session.get(ChainTxRow, tx_id)
            tx.status = status
            for key, value in fields.items():
                setattr(tx, key, value)
            session.add(tx)

    # ---- confirm ---------------------------------------------------------------------
    def confirm(self, row: EpochRow) -> bool:
        """One confirmation check; True when the epoch moved on (confirmed, or back to sealed)."""
        client = self.contracts.client
        tx = self._post_tx(row)
        receipt = client.receipt(tx.tx_hash) if tx else None
        if receipt is None:
            if tx is not None and client.is_pending(tx.tx_hash):
                return False  # still in the pool
            if self._on_chain(row):
                # Posted, but not by a transaction we can see (found on chain at submit): the
                # chain's copy was checked field by field, so take it.
                failpoint("confirm.before_mark")
                self._set_status(row.number, EpochStatus.CONFIRMED, confirmed_at=int(self.clock()))
                return True
            # Dropped, or removed by a reorg: back to sealed, and submit sends it again.
            self._set_status(row.number, EpochStatus.SEALED)
            return True
        if receipt["status"] != 1:
            # Back to sealed, so that the next run signs a new post once the cause is fixed
            # (e.g. the operator's allowance or balance was changed between signing and mining).
            self._set_tx_status(tx.id, ChainTxStatus.REVERTED, block_number=receipt["blockNumber"])
            self._set_status(row.number, EpochStatus.SEALED)
            raise TransactionReverted(
                f"post of epoch {row.number} reverted on chain (tx {tx.tx_hash}); fix the cause and run "
                "`loraledger epoch close` again",
                tx_hash=tx.tx_hash,
            )
        depth = client.confirmations_of(receipt)
        if depth == 0:
            self._set_status(row.number, EpochStatus.SEALED)  # its block left the canonical chain
            return True
        if depth < self.confirmations:
            return False
        if not self._on_chain(row):
            return False  # the node answered from a stale view: look again
        failpoint("confirm.before_mark")
        self._set_tx_status(tx.id, ChainTxStatus.CONFIRMED, block_number=receipt["blockNumber"])
        self._set_status(
            row.number, EpochStatus.CONFIRMED, block_number=int(receipt["blockNumber"]),
            block_hash="0x" + bytes(receipt["blockHash"]).hex(), gas_used=int(receipt["gasUsed"]),
            confirmed_at=int(self.clock()),
        )
        return True


def lock_path_for(data_dir: Path) -> Path:
    return data_dir / "epochs.lock"


def describe(row: EpochRow) -> dict[str, Any]:
    """An epoch row as JSON for the CLI and API."""
    return {
        "epoch": row.number,
        "status": row.status,
        "records": row.record_count,
        "logSize": row.end_seq,
        "logRoot": row.log_root,
        "rewardsRoot": row.rewards_root,
        "total": row.total,
        "cumulativeTotal": row.cumulative_total,
        "accounts": row.accounts,
        "dataHash": row.data_hash,
        "dataURI": row.data_uri,
        "sealedAt": row.sealed_at,
        "block": row.block_number,
        "gasUsed": row.gas_used,
    }

