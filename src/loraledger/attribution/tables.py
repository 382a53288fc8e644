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

from typing import Any

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, Session, SQLModel, select

__all__ = ["AttributionIndexRow", "AttributionTaskRow", "InferenceTextRow", "attribution_status", "attribution_statuses",
           "inference_texts"]


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
    #: The seq of the ``attribution`` record, once written (its fee record follows it).
    attribution_seq: int | None = None
    created_at: int
    updated_at: int


def attribution_status(engine: Any, inference_seq: int) -> dict[str, Any] | None:
    """``{"status", "attempts", "attributionSeq", "queryVector"}`` of an answer queued for attribution
    (``queryVector``: hex of the little-endian int16 values and the exponent), or None."""
    with Session(engine) as session:
        task = session.get(AttributionTaskRow, inference_seq)
    if task is None:
        return None
    vector = None if task.query_vector is None else {"int16le": task.query_vector.hex(),
                                                     "exponent": task.query_exponent}
    return {"status": task.status, "attempts": task.attempts, "lastError": task.last_error,
            "attributionSeq": task.attribution_seq, "queryVector": vector}


def attribution_statuses(engine: Any, inference_seqs: list[int]) -> dict[int, str]:
    """``{inference seq: status}`` (``pending``, ``done``, ``fallback``) of those answers that were queued
    for attribution; an answer not queued (the base model, an adapter without an index) is absent."""
    if not inference_seqs:
        return {}
    with Session(engine) as session:
        rows = session.exec(select(AttributionTaskRow.inference_seq, AttributionTaskRow.status)
                            .where(AttributionTaskRow.inference_seq.in_(inference_seqs)))  # type: ignore[attr-defined]
        return {int(seq): status for seq, status in rows}


def inference_texts(engine: Any, inference_seq: int) -> InferenceTextRow | None:
    """The prompt and output of an answer, or None once the retention period dropped them."""
    with Session(engine) as session:
        return session.get(InferenceTextRow, inference_seq)
