"""Tables of datanets: their rules, their rows (with review state), used nonces, snapshots.

The public trail is the record log (``DatanetCreatedRecord``, ``ContributionRecord``,
``RowDecisionRecord``, ``SnapshotRecord``); these tables are the node's working state,
written in the same transaction as the records that justify them.
"""

from __future__ import annotations

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

#: The unique index on (datanet_id, row_hash) over rows not rejected, and its condition.
LIVE_ROW_INDEX = "ux_datanet_rows_live"
LIVE = text("status != 'rejected'")


class RowStatus:
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class DatanetRow(SQLModel, table=True):
    """One datanet: the on-chain id and owner, and the rules contributions must follow."""

    __tablename__ = "datanets"

    id: int = Field(primary_key=True)  # the DatanetRegistry id
    owner: str = Field(index=True)
    name: str
    row_schema: str  # "text" | "instruction" | "chat"
    licenses: str  # JSON list of SPDX ids
    policy: str  # "auto" | "review"
    near_duplicate_pct: int
    metadata_uri: str = ""
    created_at: int
    latest_version: int = 0


class DatanetEntryRow(SQLModel, table=True):
    """A contributed row: its content, who owns it and whether it is in."""

    __tablename__ = "datanet_rows"
    # One live (pending or accepted) row per hash, by a partial unique index: a contribution's
    # insert itself refuses a row that another batch took meanwhile (no read first), and a
    # rejected row's content may be contributed again. It is also the index of every lookup by
    # hash, which asks for live rows in the same words (LIVE, literally: SQLite uses a partial
    # index only for a query that repeats its condition). One index over the random hashes, not
    # two: at a million rows each costs a page read per inserted row.
    __table_args__ = (
        Index(LIVE_ROW_INDEX, "datanet_id", "row_hash", unique=True, sqlite_where=LIVE, postgresql_where=LIVE),
    )

    id: int | None = Field(default=None, primary_key=True)
    # No index of its own (the live-row index leads with it): one misled PostgreSQL, whose plan
    # cached while the table was small scanned every row of the datanet for each live-row check
    # (``datanet_id = $1`` looked as selective as the hashes), 10 ms a batch at 20,000 rows.
    datanet_id: int = Field(foreign_key="datanets.id")
    row_hash: str
    contributor: str = Field(index=True)
    content: str  # the row as contributed (JSON)
    status: str = Field(index=True)
    contribution_seq: int  # seq of the ContributionRecord in the log
    reason: str | None = None
    created_at: int
    decided_at: int | None = None


class UsedNonceRow(SQLModel, table=True):
    """A (contributor, nonce) pair already spent on a contribution: replays are refused."""

    __tablename__ = "contribution_nonces"

    contributor: str = Field(primary_key=True)
    nonce: int = Field(primary_key=True)
    datanet_id: int


class SnapshotRow(SQLModel, table=True):
    """Version ``version`` of a datanet, frozen under ``root``."""

    __tablename__ = "datanet_snapshots"

    datanet_id: int = Field(primary_key=True, foreign_key="datanets.id")
    version: int = Field(primary_key=True)
    root: str
    row_count: int
    parent_version: int | None = None
    manifest: str  # JSON
    tree: str  # OZ StandardMerkleTree dump (JSON)
    created_at: int
    tx_hash: str | None = None
