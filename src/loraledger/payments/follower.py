"""Following the ``PaymentVault``: each ``Deposited`` event becomes a ``deposit`` record and a credit
to its payer, once, after the node's confirmations.

:meth:`DepositFollower.poll` reads the events of the blocks that already have ``confirmations``
blocks on top (the same depth the node waits for its own transactions), in chunks, and commits
each chunk in one transaction: the ``deposit`` records, the credits and the cursor (the last block
read and its hash). So a crash at any line credits a chunk wholly or not at all, and the next poll
starts where the last commit ended; an event is credited once (``vault_deposits`` is unique on
transaction and log index).

A reorganisation shallower than the confirmations never reaches what was read. A deeper one (the
cursor's block is no longer canonical) is reported, not guessed at: the follower rereads from the
newest credited block that is still canonical, and a deposit whose transaction left the chain is
named in the error (its credit stays: the operator decides; with enough confirmations this does
not happen on a real chain).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine
from sqlmodel import select

from ..chain.contracts import PaymentVaultContract, VaultDeposit
from ..db import read_session, session_scope
from ..errors import ChainError
from ..records.kinds import DepositRecord, Record
from ..records.ledger import RecordLedger
from .balances import PayerBalances
from .tables import VaultCursorRow, VaultDepositRow

__all__ = ["DepositFollower"]

log = logging.getLogger("loraledger.payments")


class DepositFollower:
    """Credits the vault's deposits (see the module docstring)."""

    def __init__(self, engine: Engine, records: RecordLedger, vault: PaymentVaultContract, balances: PayerBalances,
                 *, start_block: int, confirmations: int = 1, chunk_blocks: int = 2_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.records = records
        self.vault = vault
        self.balances = balances
        self.start_block = start_block
        self.confirmations = max(1, confirmations)
        self.chunk_blocks = chunk_blocks
        self.clock = clock

    def cursor(self) -> VaultCursorRow | None:
        with read_session(self.engine, what="reading the vault cursor") as session:
            return session.get(VaultCursorRow, 1)

    def poll(self) -> list[DepositRecord]:
        """Credit every confirmed deposit not yet credited; returns the new deposit records."""
        client = self.vault.client
        safe = client.block_number() - (self.confirmations - 1)
        cursor = self.cursor()
        if cursor is not None and cursor.vault != self.vault.address:
            raise ChainError(f"this ledger follows the PaymentVault at {cursor.vault}, not {self.vault.address}; "
                             "use another data directory or database for another deployment")
        start = self.start_block if cursor is None else cursor.block_number + 1
        if cursor is not None and cursor.block_hash is not None and client.block_hash(cursor.block_number) != cursor.block_hash:
            start = self._rewind(cursor)
        credited: list[DepositRecord] = []
        while start <= safe:
            end = min(safe, start + self.chunk_blocks - 1)
            events = self.vault.deposits_between(start, end)
            credited.extend(self._credit(events, end, client.block_hash(end)))
            start = end + 1
        return credited

    def _credit(self, events: list[VaultDeposit], last_block: int, last_hash: str | None) -> list[DepositRecord]:
        with read_session(self.engine, what="reading credited deposits") as session:
            seen = {(row.tx_hash, row.log_index) for row in session.exec(
                select(VaultDepositRow).where(VaultDepositRow.tx_hash.in_([e.tx_hash for e in events])))} if events else set()  # type: ignore[attr-defined]
            seen_tx = {tx for tx, _ in seen}
        fresh = [e for e in events if (e.tx_hash, e.log_index) not in seen and e.tx_hash not in seen_tx]
        now = int(self.clock())
        records: list[Record] = [DepositRecord(
            timestamp=now, payer=e.payer, sender=e.sender, amount=e.amount, chain_id=self.vault.client.chain_id,
            vault=self.vault.address, tx_hash=e.tx_hash, log_index=e.log_index, block_number=e.block_number,
            block_hash=e.block_hash) for e in fresh]

        def store(session, stamped: list[Record]) -> None:
            for event, record in zip(fresh, stamped, strict=True):
                session.add(VaultDepositRow(tx_hash=event.tx_hash, log_index=event.log_index, payer=event.payer,
                                            sender=event.sender, amount=str(event.amount),
                                            block_number=event.block_number, block_hash=event.block_hash,
                                            record_seq=record.seq))
                self.balances.credit(session, payer=event.payer, amount=event.amount)
            session.merge(VaultCursorRow(id=1, vault=self.vault.address, block_number=last_block,
                                         block_hash=last_hash))

        if records:
            stamped = self.records.append_many(records, in_transaction=store)
        else:
            with session_scope(self.engine, what="moving the vault cursor") as session:
                store(session, [])
            stamped = []
        for record in stamped:
            assert isinstance(record, DepositRecord)
            log.info("deposit of %s OPEN wei credited to %s (tx %s)", record.amount, record.payer, record.tx_hash)
        return stamped  # type: ignore[return-value]

    def _rewind(self, cursor: VaultCursorRow) -> int:
        """The block to read again from after a reorg deeper than the confirmations (see the module
        docstring); raises when a credited deposit's transaction left the chain."""
        client = self.vault.client
        with read_session(self.engine, what="reading credited deposits") as session:
            credited = list(session.exec(select(VaultDepositRow).order_by(VaultDepositRow.block_number.desc())))  # type: ignore[attr-defined]
        lost = [row for row in credited if client.block_hash(row.block_number) != row.block_hash
                and client.receipt(row.tx_hash) is None]
        if lost:
            raise ChainError(
                f"the chain reorganised deeper than {self.confirmations} confirmations and "
                f"{len(lost)} credited deposit(s) left it ({', '.join(row.tx_hash for row in lost[:3])}); "
                "raise `confirmations` and check these payers' balances", lost=[row.tx_hash for row in lost])
        still = next((row.block_number for row in credited if client.block_hash(row.block_number) == row.block_hash),
                     self.start_block - 1)
        log.warning("the chain reorganised below block %s (deeper than %s confirmations): reading the vault's "
                    "events again from block %s", cursor.block_number, self.confirmations, still + 1)
        return still + 1
