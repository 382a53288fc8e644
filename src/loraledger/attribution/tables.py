"""Attribution's rows in the ledger database.

* ``AttributionIndexRow``: which file is the current index of each adapter. The public trail is
  the ``attribution_index`` record (appended in the same transaction as the row); the row is the
  node's working state, to find an adapter's index without scanning the log.
* ``InferenceTextRow``: the texts of each answer (the recorder writes them with the inference
  record; attribution reads them; dropped after the retention period).
* ``AttributionTaskRow``: the queue of answers waiting for their attribution, and their fee: an
  answer of an indexed adapter gets its ``attribution`` and ``fee`` records from the worker, in one
  transaction with the row's move to ``done`` (or ``fallback``).
"""

from __future__ import annotations

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel

__all__ = ["AttributionIndexRow", "AttributionTaskRow", "InferenceTextRow"]


class AttributionIndexRow(SQLModel, table=True):
    """The index of one adapter version (its hash), as last built."""

    __tablename__ = "attribution_indexes"

    adapter_hash: str = Field(primary_key=True)
    adapter_name: str = Field(index=True)
    index_hash: str
    path: str  # the index file
    method: str
    projection_k: int
    projection_seed: int
    damping: float
    row_count: int
    record_seq: int
    created_at: int


class InferenceTextRow(SQLModel, table=True):
    """The texts of one answered request (attribution reads them), kept ``inference_text_days``."""

    __tablename__ = "inference_texts"

    seq: int = Field(primary_key=True)  # the inference record's seq
    prompt: str
    output: str
    created_at: int = Field(index=True)


class AttributionTaskRow(SQLModel, table=True):
    """One answer waiting for (or done with) its attribution, and what its fee record needs."""

    __tablename__ = "attribution_tasks"

    inference_seq: int = Field(primary_key=True)
    inference_hash: str
    request_id: str
    adapter_hash: str = Field(index=True)
    payer: str
    fee: str  # wei, decimal
    developer: str | None = None
    #: The adapter's training rows per contributor (JSON): the fee's weights if attribution fails.
    fallback_weights: str
    status: str = Field(default="pending", index=True)  # pending | done | fallback
    attempts: int = 0
    last_error: str | None = None
    #: The quantized query vector (little-endian int16) and its exponent, once attributed.
    query_vector: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    query_exponent: int | None = None
    created_at: int
    updated_at: int
