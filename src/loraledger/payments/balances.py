"""Payer balances: what each payer deposited, what their answers spent, and what requests in flight
have set aside.

A payer's balance is ``deposited - spent`` (the ``payer_accounts`` row). Deposits are credited by
:class:`~loraledger.payments.follower.DepositFollower` in the transaction of their ``deposit``
record; each answer's fee is debited in the transaction of its ``inference`` record
(:meth:`PayerBalances.debit`, called by the serving recorder), so the balance and the log never
disagree, whatever line a crash stops at.

A request may cost at most its prompt and ``max_tokens`` at the model's price. :meth:`reserve`
sets that aside before the request is queued (refusing it with
:class:`~loraledger.errors.PaymentRequired`, answered 402, when the available balance is short)
and the reservation is released once the answer's fee is debited, so concurrent requests of one
payer can never spend more than was deposited. Reservations live in memory: only the serving
process reserves, and a restart has no request in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from ..db import read_session
from ..errors import PaymentRequired
from .tables import PayerAccountRow, PayerDebitRow

__all__ = ["PayerAccount", "PayerBalances", "Reservation", "sum_wei"]


def _open(wei: int) -> str:
    """Wei as OPEN, exactly (``1500000000000000000`` → ``1.5 OPEN``)."""
    if wei < 0:
        return "-" + _open(-wei)
    whole, fraction = divmod(wei, 10**18)
    return f"{whole}.{fraction:018d}".rstrip("0").rstrip(".") + " OPEN"


def sum_wei(amounts: Iterable[str]) -> int:
    """The sum of wei amounts stored as decimal strings (SQL cannot add them: they exceed 64 bits)."""
    return sum(int(amount) for amount in amounts)


@dataclass(frozen=True)
class PayerAccount:
    """A payer's totals in wei: deposited, spent, set aside by requests in flight."""

    payer: str
    deposited: int
    spent: int
    reserved: int
    deposits: int
    answers: int

    @property
    def balance(self) -> int:
        return self.deposited - self.spent

    @property
    def available(self) -> int:
        return self.balance - self.reserved

    def to_json(self) -> dict[str, Any]:
        return {"payer": self.payer, "deposited": str(self.deposited), "spent": str(self.spent),
                "balance": str(self.balance), "reserved": str(self.reserved), "available": str(self.available),
                "deposits": self.deposits, "answers": self.answers}


class Reservation:
    """Wei set aside for one request until its fee is debited (:meth:`release`, idempotent)."""

    def __init__(self, owner: PayerBalances | None, payer: str, amount: int) -> None:
        self._owner = owner
        self.payer = payer
        self.amount = amount

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._unreserve(self.payer, self.amount)


class PayerBalances:
    """Payer accounts of one node (see the module docstring). ``required``: answers are paid from
    deposits (checked, debited); otherwise nothing is checked or debited and the operator funds the
    epochs, as a node without payers does."""

    def __init__(self, engine: Engine, *, required: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.required = required
        self.clock = clock
        self._reserved: dict[str, int] = {}
        self._lock = threading.Lock()

    # ---- reads -----------------------------------------------------------------------
    def account(self, payer: str) -> PayerAccount:
        with read_session(self.engine, what="reading a payer's balance") as session:
            row = session.get(PayerAccountRow, payer)
        with self._lock:
            reserved = self._reserved.get(payer, 0)
        if row is None:
            return PayerAccount(payer, 0, 0, reserved, 0, 0)
        return PayerAccount(payer, int(row.deposited), int(row.spent), reserved, row.deposits, row.answers)

    def usage(self, payer: str) -> list[dict[str, Any]]:
        """Per model (and adapter hash): answers, tokens and wei spent by ``payer``. One read, summed
        here: wei are decimal strings, which SQL cannot add."""
        with read_session(self.engine, what="reading a payer's usage") as session:
            rows = session.exec(select(PayerDebitRow.model, PayerDebitRow.adapter_hash, PayerDebitRow.amount,
                                       PayerDebitRow.prompt_tokens, PayerDebitRow.completion_tokens)
                                .where(PayerDebitRow.payer == payer)).all()
        totals: dict[tuple[str, str | None], list[int]] = {}
        for model, adapter_hash, amount, prompt_tokens, completion_tokens in rows:
            total = totals.setdefault((model, adapter_hash), [0, 0, 0, 0])
            total[0] += 1
            total[1] += prompt_tokens
            total[2] += completion_tokens
            total[3] += int(amount)
        return [{"model": model, "adapterHash": adapter_hash, "answers": answers, "promptTokens": prompt_tokens,
                 "completionTokens": completion_tokens, "spent": str(spent)}
                for (model, adapter_hash), (answers, prompt_tokens, completion_tokens, spent)
                in sorted(totals.items(), key=lambda item: (item[0][0], item[0][1] or ""))]

    # ---- requests in flight ----------------------------------------------------------
    def reserve(self, payer: str, amount: int, *, price: dict[str, Any] | None = None) -> Reservation:
        """Set ``amount`` aside for a request of ``payer``; ``PaymentRequired`` when the available
        balance is short. A node that does not require deposits reserves nothing."""
        if not self.required or amount <= 0:
            return Reservation(None, payer, 0)
        account = self.account(payer)
        with self._lock:
            reserved = self._reserved.get(payer, 0)
            available = account.balance - reserved
            if available < amount:
                raise PaymentRequired(
                    f"{payer} has {_open(available)} available ({_open(account.balance)} deposited and unspent, "
                    f"{_open(reserved)} set aside by requests in flight) and this request may cost up to "
                    f"{_open(amount)} (its prompt and max_tokens at the model's price); deposit more with "
                    "`loraledger payer deposit AMOUNT`",
                    payer=payer, balance=str(account.balance), available=str(available), reserved=str(reserved),
                    needed=str(amount), price=price or {})
            self._reserved[payer] = reserved + amount
        return Reservation(self, payer, amount)

    def _unreserve(self, payer: str, amount: int) -> None:
        with self._lock:
            left = self._reserved.get(payer, 0) - amount
            if left > 0:
                self._reserved[payer] = left
            else:
                self._reserved.pop(payer, None)

    # ---- writes, inside the transaction of the record that moves the balance -----------
    def debit(self, session: Session, *, payer: str, inference_seq: int, model: str, adapter_hash: str | None,
              amount: int, prompt_tokens: int, completion_tokens: int) -> None:
        """Debit an answer's fee (in its inference record's transaction). No-op unless required."""
        if not self.required:
            return
        now = int(self.clock())
        row = session.get(PayerAccountRow, payer) or PayerAccountRow(payer=payer)
        row.spent = str(int(row.spent) + amount)
        row.answers += 1
        row.updated_at = now
        session.add(row)
        session.add(PayerDebitRow(inference_seq=inference_seq, payer=payer, model=model, adapter_hash=adapter_hash,
                                  amount=str(amount), prompt_tokens=prompt_tokens,
                                  completion_tokens=completion_tokens, created_at=now))

    def credit(self, session: Session, *, payer: str, amount: int) -> None:
        """Credit a deposit (in its deposit record's transaction)."""
        row = session.get(PayerAccountRow, payer) or PayerAccountRow(payer=payer)
        row.deposited = str(int(row.deposited) + amount)
        row.deposits += 1
        row.updated_at = int(self.clock())
        session.add(row)


def takings_between(session: Session, start_seq: int, end_seq: int) -> int:
    """What the answers recorded at seqs ``[start_seq, end_seq)`` debited from deposits."""
    amounts = session.exec(select(PayerDebitRow.amount).where(PayerDebitRow.inference_seq >= start_seq,
                                                              PayerDebitRow.inference_seq < end_seq))
    return sum_wei(amounts)
