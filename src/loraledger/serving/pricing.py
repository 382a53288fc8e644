"""What an answer costs: per served model, wei of OPEN per 1,000 input and 1,000 output tokens.

A price is set by the adapter's developer (an EIP-191 ``personal_sign`` of
:func:`price_message`, so MetaMask or ``cast wallet sign`` can sign it) or by the node's
admin, and each change is a ``price`` record in the log, so every fee can be recomputed from
the records alone. The message names the price it replaces (``after``: the seq of the price
record in force, ``none`` for none), so a signature cannot be replayed to undo a later change.
Models without a price record use the node's default (settings).

:func:`fee_for` is the one fee formula: ``ceil((prompt × input + completion × output) / 1000)``
wei, in integers (rounded up, so a short answer at a non-zero price is never free).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_defunct
from sqlalchemy import Engine

from ..db import read_session
from ..errors import InputError, Unauthorized
from ..records.fields import parse_address, parse_wei
from ..records.kinds import PriceRecord, Record
from ..records.ledger import RecordLedger
from .tables import PriceRow

__all__ = ["Price", "Prices", "fee_for", "price_message", "price_to_dict"]


@dataclass(frozen=True)
class Price:
    """A price in force: wei per 1,000 tokens in and out; ``seq`` of its record (None: default)."""

    input_per_1k: int
    output_per_1k: int
    seq: int | None = None


def price_to_dict(model: str, price: Price) -> dict[str, object]:
    """A price as the API and the CLI show it (wei as decimal strings)."""
    return {"model": model, "inputPer1k": str(price.input_per_1k), "outputPer1k": str(price.output_per_1k),
            "priceSeq": price.seq, "default": price.seq is None}


def fee_for(price: Price, prompt_tokens: int, completion_tokens: int) -> int:
    """The fee of an answer, in wei (see the module docstring)."""
    if prompt_tokens < 0 or completion_tokens < 0:
        raise InputError("token counts cannot be negative")
    numerator = prompt_tokens * price.input_per_1k + completion_tokens * price.output_per_1k
    return -(-numerator // 1000)


def price_message(model: str, adapter_hash: str | None, input_per_1k: int, output_per_1k: int,
                  after: int | None) -> str:
    """The exact text an adapter's developer signs to set its price."""
    return (f"loraledger price\nmodel: {model}\nadapterHash: {adapter_hash or 'none'}\n"
            f"inputPer1k: {input_per_1k}\noutputPer1k: {output_per_1k}\nafter: {'none' if after is None else after}")


class Prices:
    """The prices of one node's models (``prices`` table + ``price`` records)."""

    def __init__(self, engine: Engine, records: RecordLedger, *, default: Price,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.records = records
        self.default = default
        self.clock = clock
    def current(self, model: str) -> Price:
        """The price in force for ``model`` (its latest price record, else the default). Read from
        the database each time (one primary-key read), so a price set by another process of the
        node (the CLI) applies to the next request."""
        with read_session(self.engine, what="reading a price") as session:
            row = session.get(PriceRow, model)
        return self.default if row is None else Price(int(row.input_per_1k), int(row.output_per_1k), row.seq)

    def set(self, model: str, *, adapter_hash: str | None, developer: str | None, input_per_1k: object,
            output_per_1k: object, admin: str | None = None, signature: str | None = None) -> PriceRecord:
        """Set ``model``'s price. ``admin`` (the operator's address) for an admin change;
        otherwise ``signature`` must be the adapter ``developer``'s over :func:`price_message`."""
        price_in, price_out = parse_wei(input_per_1k), parse_wei(output_per_1k)
        after = self.current(model).seq
        if admin is not None:
            set_by, signed = parse_address(admin), None
        else:
            if developer is None:
                raise Unauthorized(f"only the node's admin sets the price of {model}")
            if not signature:
                raise Unauthorized(f"setting {model}'s price needs its developer's signature (or the admin token)")
            message = price_message(model, adapter_hash, price_in, price_out, after)
            try:
                signer = Account.recover_message(encode_defunct(text=message), signature=signature)
            except Exception:  # noqa: BLE001 - eth-account raises several types for a malformed signature
                raise InputError("signature is not a valid EIP-191 signature (65 bytes, hex)") from None
            if signer != parse_address(developer):
                raise Unauthorized(f"the price of {model} is signed by {signer}, not its developer {developer}; "
                                   f"sign exactly: {message!r}")
            set_by, signed = signer, signature
        record = PriceRecord(timestamp=int(self.clock()), model=model, adapter_hash=adapter_hash,
                             input_per_1k=price_in, output_per_1k=price_out, set_by=set_by, signature=signed)

        def store(session, stamped: list[Record]) -> None:
            row = session.get(PriceRow, model)
            if (row.seq if row else None) != after:  # another change landed first: its signature named the old one
                raise InputError(f"the price of {model} changed while this change was being made; sign again")
            seq = stamped[0].seq
            session.merge(PriceRow(model=model, adapter_hash=adapter_hash, input_per_1k=str(price_in),
                                   output_per_1k=str(price_out), seq=seq, set_by=set_by))

        return self.records.append_many([record], in_transaction=store)[0]  # type: ignore[return-value]
