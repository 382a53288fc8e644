"""Serving's rows in the ledger database: the payers' API keys (hashes only) and prices. The answers'
texts (``InferenceTextRow``) live with attribution, which reads them."""

from __future__ import annotations

from sqlmodel import Field, SQLModel

from ..attribution.tables import InferenceTextRow

__all__ = ["InferenceTextRow", "PayerKeyRow", "PriceRow"]


class PayerKeyRow(SQLModel, table=True):
    """One API key of a payer. The key itself is shown once at creation and never stored:
    ``key_hash`` is its sha256 (a random 256-bit key needs no slow hash), ``prefix`` its first
    characters, so a person can tell keys apart in ``keys list``."""

    __tablename__ = "payer_keys"

    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(unique=True, index=True)
    prefix: str
    payer: str = Field(index=True)
    label: str | None = None
    created_at: int
    revoked_at: int | None = None


class PriceRow(SQLModel, table=True):
    """The price in force for one served model (its latest ``price`` record, ``seq``)."""

    __tablename__ = "prices"

    model: str = Field(primary_key=True)
    adapter_hash: str | None = None
    input_per_1k: str  # wei, decimal
    output_per_1k: str
    seq: int
    set_by: str
