"""Attribution indexes the node built: which file is the current index of each adapter.

The public trail is the ``attribution_index`` record (appended in the same transaction as the
row); this table is the node's working state, to find an adapter's index without scanning the log.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


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
