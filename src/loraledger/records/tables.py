"""Tables of the record log: the records themselves and the log's state.

Both live on the shared ``SQLModel.metadata`` (other ledger modules add their tables
to the same metadata; :func:`loraledger.db.create_all` creates them all).

* :class:`RecordRow` (``records``): one row per record. ``seq`` is the primary key and
  the record's 0-based index in the RFC 9162 log; ``body`` is the record's canonical
  JSON (RFC 8785), exactly the bytes ``hash`` is the keccak256 of; ``kind`` and
  ``timestamp`` repeat fields of the body for indexed queries; ``epoch`` is set when an
  epoch seals the record (``NULL`` until then).
* :class:`LogStateRow` (``log_state``): a single row (``id = 1``) holding the log's size,
  root and frontier (compact range) as of the last committed append. Appends update it
  in the same transaction as the rows they insert, so it always matches the records
  table; the ledger checks that on open.

Integers that may exceed 2**31 (``seq``, ``timestamp``, ``size``) are ``BIGINT``
(``INTEGER`` on SQLite, where ``seq`` then aliases the rowid).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, Text
from sqlmodel import Field, SQLModel

__all__ = ["LOG_STATE_ID", "LogStateRow", "RecordRow"]

#: ``id`` of the single :class:`LogStateRow`.
LOG_STATE_ID = 1

# BIGINT on PostgreSQL; plain INTEGER on SQLite (64-bit there anyway) so that an
# INTEGER PRIMARY KEY is the rowid and needs no separate index.
_BigInt = BigInteger().with_variant(Integer(), "sqlite")


class RecordRow(SQLModel, table=True):
    """One appended record."""

    __tablename__ = "records"

    #: 0-based sequence number: the record's index in the Merkle log (assigned, not generated).
    seq: int = Field(primary_key=True, sa_type=_BigInt, sa_column_kwargs={"autoincrement": False})
    #: The record's kind (``fee``, ``reward_grant``, ...).
    kind: str = Field(index=True, max_length=64)
    #: The record's timestamp, unix seconds UTC.
    timestamp: int = Field(sa_type=BigInteger)
    #: ``keccak256(body)`` as 0x + 64 lowercase hex digits: the log leaf's data.
    hash: str = Field(unique=True, index=True, max_length=66)
    #: Canonical JSON of the record (RFC 8785), exactly the bytes hashed.
    body: str = Field(sa_type=Text)
    #: The epoch that sealed this record; ``None`` while unsealed.
    epoch: int | None = Field(default=None, index=True, sa_type=BigInteger)


class LogStateRow(SQLModel, table=True):
    """The log's size, root and frontier after the last committed append (single row, ``id = 1``)."""

    __tablename__ = "log_state"

    id: int = Field(default=LOG_STATE_ID, primary_key=True, sa_column_kwargs={"autoincrement": False})
    #: Number of records in the log.
    size: int = Field(sa_type=BigInteger)
    #: The RFC 9162 root of the log at ``size``, 0x + 64 hex digits.
    root: str = Field(max_length=66)
    #: JSON list of ``[level, "0x<hash>"]`` pairs: the compact range ``[0, size)``,
    #: largest subtree first (``recordlog.MerkleLog.frontier``).
    frontier: str = Field(sa_type=Text)
