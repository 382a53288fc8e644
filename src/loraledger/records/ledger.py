"""The record ledger: records in the database, their RFC 9162 log in memory.

:class:`RecordLedger` is the repository every other part of the node appends records
through. The database (:mod:`loraledger.records.tables`) is the source of truth:

* ``records`` holds each record's canonical JSON (``body``) and its keccak256
  (``hash``, the log leaf's data) under its ``seq`` (its index in the log);
* ``log_state`` holds the log's ``size``, ``root`` and ``frontier`` as of the last
  committed append, written in the same transaction as the rows.

Each process keeps the whole log in memory (a :class:`~loraledger.crypto.translog.MerkleLog`,
about 64 bytes per record) to answer roots and proofs without touching the database.

Opening
-------
``RecordLedger(engine)`` reads ``seq, hash`` of every row (one snapshot), checks that
the seqs are exactly ``0..n-1``, rebuilds the tree and compares it with ``log_state``:
a different size, root or frontier is a :class:`~loraledger.errors.LedgerError` naming
both roots (the state row or the ``hash`` column was altered, or rows were added or
removed behind the ledger's back). A missing ``log_state`` with records present is
rebuilt from the records (the records table is the truth).

Tampering
---------
What is checked, and when:

* ``hash`` column or ``log_state`` altered: on open (root mismatch), and on every
  append/sync (the database root must match the in-memory root before extending it).
* ``body`` altered: on every read (:meth:`get`, :meth:`get_by_hash`, :meth:`range`
  recompute ``keccak256(body)`` and compare it with the leaf in the verified
  in-memory log, so a record served always is the one in the tree) and by
  :meth:`verify`, a full audit (every body rehashed, parsed, re-canonicalised and
  compared with its row). Opening does not rehash bodies: that means reading every
  body and running keccak over it, several times slower than the ``seq, hash`` scan
  (pass ``verify=True`` to audit at open anyway).

A consistent rewrite of rows *and* ``log_state`` cannot be detected locally; that is
what publishing roots (epochs, on chain) and consistency proofs are for.

Appending
---------
:meth:`append_many` runs one transaction: take the write lock (SQLite: the
``BEGIN IMMEDIATE`` of :func:`~loraledger.db.session_scope`; PostgreSQL:
``SELECT ... FROM log_state WHERE id = 1 FOR UPDATE``; before the very first append,
when there is no row to lock yet, a transaction-level advisory lock), re-read the size
from the database (another process may have appended: its rows are loaded and checked
against ``log_state``'s root first), stamp the records with ``seq = size + i``
(``record.with_seq``'s result, without re-validating the other fields), compute the new
root and frontier from a *copy* of the frontier (:func:`fold_leaves`), insert the rows,
update ``log_state``, commit. On PostgreSQL an append whose callback only writes (or that
has none) is one pipeline, and it first assumes the log is as this process last saw it: then
nothing is read first, the state's update goes first (it takes the row lock, and fails the
whole transaction unless the state is still that), with the inserts and COMMIT, one round
trip. When another process has appended since, that attempt writes nothing and the append
runs again the way above (BEGIN and the locking read together, then the writes and COMMIT),
and so do the next ones until one finds that nobody else wrote. Only after the commit is the
in-memory log extended, so a failed transaction (duplicate hash, lost connection, an exception in
``in_transaction``) leaves both the database and memory as they were. Threads of one
process also queue on a process-local lock. Seqs are therefore gap-free and unique
across threads and processes.

Other modules that must change their tables atomically with an append (balances,
say) pass ``in_transaction=fn``: ``fn(session, stamped_records)`` runs in the append's
transaction, after the rows are inserted and before the commit.

The in-memory log (not thread-safe itself) is only touched under a lock.
:meth:`size`, :meth:`root`, :meth:`state` answer from memory (as of this process's
last append or :meth:`sync`); reads and proofs asked about seqs beyond it sync first.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, func, insert, inspect, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlmodel import Session

from ..crypto.canonical import MAX_SAFE_INT
from ..crypto.merkle.hashing import keccak256
from ..crypto.translog import EMPTY_ROOT, HASH_SIZE, ConsistencyProof, InclusionProof, MerkleLog, node_hash
from ..db import database_error, display_url, fetch_rows, is_postgres, pipelined, read_scope, send, session_scope
from ..errors import InputError, LedgerError, NotFoundError
from .kinds import Record, canonical_json, parse_record
from .tables import LOG_STATE_ID, LogStateRow, RecordRow

__all__ = ["RecordLedger", "fold_leaves", "frontier_root"]

_records = RecordRow.__table__
_state = LogStateRow.__table__
_sha256 = hashlib.sha256
_LEAF = b"\x00"
#: PostgreSQL advisory lock key taken by writers while log_state has no row yet.
_BOOTSTRAP_LOCK = int.from_bytes(b"lrledger", "big")
#: Rows per query when streaming the whole table (verify).
_PAGE = 10_000

# The append's statements, built once: an append runs them for every batch, and a statement object
# built per call is a cache key computed per call.
_STATE = select(_state.c.size, _state.c.root, _state.c.frontier).where(_state.c.id == LOG_STATE_ID)
_STATE_FOR_UPDATE = _STATE.with_for_update()
_INSERT_RECORDS = insert(_records)
_UPDATE_STATE = update(_state).where(_state.c.id == LOG_STATE_ID).values(
    size=bindparam("new_size"), root=bindparam("new_root"), frontier=bindparam("new_frontier"))

# An append that assumes the log is as this process last saw it (PostgreSQL) updates the state
# first, only if it is still that; no row updated fails the whole transaction (a division by zero,
# which nothing else in an append can raise), so nothing of it is written.
_UPDATE_STATE_IF_UNMOVED = text(
    f"WITH updated AS (UPDATE {_state.name} SET size = :new_size, root = :new_root, frontier = :new_frontier "
    "WHERE id = :id AND size = :old_size AND root = :old_root RETURNING id) SELECT 1 / count(*) FROM updated")
_MOVED_SQLSTATE = "22012"  # division_by_zero


class _LogMoved(Exception):
    """Another process appended since this one last looked (an append that assumed otherwise failed,
    nothing written)."""


#: Called inside the append transaction with the session and the stamped records.
InTransaction = Callable[[Session, list[Record]], None]
#: Given a refusal by the database (a unique key...), the error to raise instead, or None.
Refused = Callable[[IntegrityError], Exception | None]


# ------------------------------------------------------------------------ pure helpers


def _first(rows: Iterable[Any]) -> Any:
    """The first of ``rows`` or None, every row read (a result left half-read keeps its cursor)."""
    rows = list(rows)
    return rows[0] if rows else None


def fold_leaves(frontier: Iterable[tuple[int, bytes]], leaf_hashes: Iterable[bytes]) -> list[tuple[int, bytes]]:
    """The compact range after appending ``leaf_hashes`` to the log whose compact range
    is ``frontier`` (``[(level, hash)]``, largest subtree first, as
    :meth:`MerkleLog.frontier`). Pure: ``frontier`` is not modified."""
    stack = list(frontier)
    for node in leaf_hashes:
        level = 0
        while stack and stack[-1][0] == level:
            node = node_hash(stack.pop()[1], node)
            level += 1
        stack.append((level, node))
    return stack


def frontier_root(frontier: Sequence[tuple[int, bytes]]) -> bytes:
    """The RFC 9162 root of the log with this compact range (``EMPTY_ROOT`` when empty)."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1][1]
    for _, node in reversed(frontier[:-1]):
        root = node_hash(node, root)
    return root


def _stamp(record: Record, seq: int) -> Record:
    """``record.with_seq(seq)`` without re-validating the other fields (same result,
    ``model_fields_set`` included, for a record that was validated when built). What
    ``model_construct`` does for a record's plain fields (no extras, no private attributes),
    at a fifth of its cost: it runs for every record appended."""
    cls = type(record)
    stamped = cls.__new__(cls)
    object.__setattr__(stamped, "__dict__", {**record.__dict__, "seq": seq})
    object.__setattr__(stamped, "__pydantic_fields_set__", set(cls.model_fields))
    object.__setattr__(stamped, "__pydantic_extra__", None)
    object.__setattr__(stamped, "__pydantic_private__", None)
    return stamped


def _stamp_all(records: Sequence[Record], base: int, frontier: Sequence[tuple[int, bytes]]
               ) -> tuple[list[Record], list[dict[str, Any]], list[bytes], dict[str, Any]]:
    """``records`` stamped with seqs from ``base``: (stamped records, their rows, their leaf
    hashes, the new state's values ``new_size``/``new_root``/``new_frontier``)."""
    if base + len(records) - 1 > MAX_SAFE_INT:
        raise LedgerError(f"the log is full: seq {base + len(records) - 1} is beyond 2**53 - 1")
    stamped: list[Record] = []
    rows: list[dict[str, Any]] = []
    leaves: list[bytes] = []
    for i, record in enumerate(records):
        seq = base + i
        # Equal to record.with_seq(seq) for a validated (frozen) record, ~40x cheaper: with_seq
        # re-validates every field (EIP-55 checksums: a keccak per address), and only seq changes,
        # checked above.
        record = _stamp(record, seq)
        body = canonical_json(record)
        digest = keccak256(body)
        leaves.append(_sha256(_LEAF + digest).digest())
        stamped.append(record)
        rows.append({"seq": seq, "kind": record.kind, "timestamp": record.timestamp, "hash": _hex(digest),
                     "body": body.decode("utf-8"), "epoch": None})
    new_frontier = fold_leaves(frontier, leaves)
    values = {"new_size": base + len(records), "new_root": _hex(frontier_root(new_frontier)),
              "new_frontier": _frontier_json(new_frontier)}
    return stamped, rows, leaves, values


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _frontier_json(frontier: Sequence[tuple[int, bytes]]) -> str:
    return json.dumps([[level, _hex(node)] for level, node in frontier], separators=(",", ":"))


def _parse_frontier(raw: str) -> list[tuple[int, bytes]]:
    try:
        items = json.loads(raw)
        out = []
        for level, node in items:
            if not isinstance(level, int) or not isinstance(node, str) or len(node) != 2 + 2 * HASH_SIZE:
                raise ValueError
            out.append((level, bytes.fromhex(node[2:])))
        return out
    except (ValueError, TypeError):
        raise LedgerError("the ledger's log_state row has a malformed frontier") from None


def _leaf_from_hex(seq: int, value: object) -> bytes:
    """``SHA-256(0x00 || record_hash)`` from a stored ``0x`` hash (``LedgerError`` if malformed)."""
    if isinstance(value, str) and len(value) == 2 + 2 * HASH_SIZE and value.startswith("0x"):
        try:
            return _sha256(_LEAF + bytes.fromhex(value[2:])).digest()
        except ValueError:
            pass
    raise LedgerError(f"record {seq} has a malformed hash in the database: {value!r:.80}", seq=seq)


def _require_seq(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"{what} must be an integer, got {type(value).__name__}")
    if value < 0:
        raise InputError(f"{what} must not be negative, got {value}")
    return value


@dataclass(frozen=True)
class _DbState:
    """``log_state`` as read (``exists`` False: no row yet; size/root then describe the records)."""

    exists: bool
    size: int
    root: bytes | None
    frontier: list[tuple[int, bytes]] | None


# ------------------------------------------------------------------------ the ledger


def _checked_body(seq: int, stored_hash: str, body_text: str, logged: bytes) -> bytes:
    """A record row's body as bytes, once it hashes to its stored hash and that hash is the log's leaf
    ``logged``; ``LedgerError`` (the database was altered) otherwise."""
    body = body_text.encode("utf-8")
    digest = keccak256(body)
    if _hex(digest) != stored_hash:
        raise LedgerError(
            f"record {seq} is corrupt: its body does not hash to its stored hash {stored_hash!r:.80}; "
            "the ledger database was altered",
            seq=seq,
        )
    if _sha256(_LEAF + digest).digest() != logged:
        raise LedgerError(
            f"record {seq} is corrupt: its hash {stored_hash} is not the one in the log; "
            "the ledger database was altered",
            seq=seq,
        )
    return body


class RecordLedger:
    """Records in the database plus their Merkle log in memory (see the module docstring).

    ``RecordLedger(engine)`` loads and checks the log (``LedgerError`` if the database
    is inconsistent); ``verify=True`` also audits every record body (:meth:`verify`).
    The tables must exist (:func:`loraledger.db.create_all`).
    """

    def __init__(self, engine: Engine, *, verify: bool = False) -> None:
        self.engine = engine
        self._postgres = is_postgres(engine)
        # Whether an append may assume the database's log is as this process last saw it (see
        # _append_once): false after another process's append is found, true again once not.
        self._assume_unmoved = True
        self._write_lock = threading.Lock()  # one append at a time in this process
        self._mem_lock = threading.Lock()  # guards self._log
        self._log = MerkleLog()
        self._open()
        if verify:
            self.verify()

    def __repr__(self) -> str:
        return f"RecordLedger({display_url(self.engine.url)}, size={self.size()})"

    # ---------------------------------------------------------------- open / sync

    def _open(self) -> None:
        try:
            tables = set(inspect(self.engine).get_table_names())
        except SQLAlchemyError as exc:
            raise database_error(exc, f"cannot open the record ledger at {display_url(self.engine.url)}") from None
        missing = {_records.name, _state.name} - tables
        if missing:
            raise LedgerError(
                f"the ledger database at {display_url(self.engine.url)} has no {', '.join(sorted(missing))} "
                "table; create the tables first (loraledger.db.create_all)"
            )
        with read_scope(self.engine, what="cannot load the record log") as conn:
            state = self._read_state(conn)
            count, first, last = conn.execute(
                select(func.count(), func.min(_records.c.seq), func.max(_records.c.seq))
            ).one()
            if count and (first != 0 or last != count - 1):
                raise LedgerError(
                    f"the records table is not gap-free: {count} rows with seqs {first}..{last} "
                    "(expected 0..n-1); the ledger database was altered",
                    rows=count,
                )
            leaves = self._load_leaves(conn, 0, count)
        log = MerkleLog.from_leaf_hashes(leaves)
        if state.exists:
            self._check_against_state(log, count, state, "records table")
        with self._mem_lock:
            self._log = log
        if not state.exists and count:
            self._rebuild_state()

    def _check_against_state(self, log: MerkleLog, count: int, state: _DbState, source: str) -> None:
        if count != state.size:
            raise LedgerError(
                f"the ledger database is inconsistent: log_state says {state.size} records (root "
                f"{_hex(state.root or b'')}) but the {source} holds {count} (root {_hex(log.root())}); "
                "rows were added or removed outside the ledger",
                state_size=state.size,
                records=count,
            )
        actual = log.root()
        if actual != state.root:
            raise LedgerError(
                f"the ledger database is inconsistent: log_state root {_hex(state.root or b'')} at size "
                f"{state.size} != root {_hex(actual)} rebuilt from the {source}; the records' hashes or the "
                "log state were altered",
                state_root=_hex(state.root or b""),
                rebuilt_root=_hex(actual),
                size=state.size,
            )
        if state.frontier != log.frontier():
            raise LedgerError(
                f"the ledger database is inconsistent: log_state frontier at size {state.size} does not "
                f"match the {source} (root {_hex(actual)})"
            )

    def _rebuild_state(self) -> None:
        """Write ``log_state`` from the records (it was missing). Runs as an (empty) append."""
        self._append([], None)

    def sync(self) -> int:
        """Load records other processes appended since this one last looked; the new size.

        The loaded rows are checked against ``log_state``'s root before memory is
        extended (``LedgerError`` on a mismatch).
        """
        with read_scope(self.engine, what="cannot sync the record log") as conn:
            state = self._read_state(conn)
            if state.exists:
                self._catch_up(conn, state)
        return self.size()

    def _read_state(self, conn: Connection, *, for_update: bool = False) -> _DbState:
        stmt = _STATE_FOR_UPDATE if for_update and self._postgres else _STATE
        row = _first(fetch_rows(conn, stmt))
        if row is None and for_update and self._postgres:
            # No row to lock yet (first append, or a state rebuild): writers in this
            # situation queue on a transaction-level advisory lock instead, then look
            # again (READ COMMITTED: a row another bootstrapper committed meanwhile is
            # seen and locked). Not LOCK TABLE: the FOR UPDATE above already holds ROW
            # SHARE on the table, and two such upgrades to EXCLUSIVE deadlock.
            list(fetch_rows(conn, select(func.pg_advisory_xact_lock(_BOOTSTRAP_LOCK))))
            row = _first(fetch_rows(conn, stmt))
        if row is None:
            return _DbState(exists=False, size=0, root=None, frontier=None)
        size, root, frontier = row
        if not isinstance(root, str) or len(root) != 2 + 2 * HASH_SIZE or not root.startswith("0x"):
            raise LedgerError(f"the ledger's log_state row has a malformed root: {root!r:.80}")
        try:
            root_bytes = bytes.fromhex(root[2:])
        except ValueError:
            raise LedgerError(f"the ledger's log_state row has a malformed root: {root!r:.80}") from None
        return _DbState(exists=True, size=int(size), root=root_bytes, frontier=_parse_frontier(frontier))

    def _load_leaves(self, conn: Connection, start: int, end: int) -> list[bytes]:
        """Leaf hashes of the rows ``[start, end)``, checking they are all there, in order."""
        if end <= start:
            return []
        rows = fetch_rows(
            conn,
            select(_records.c.seq, _records.c.hash)
            .where(_records.c.seq >= start, _records.c.seq < end)
            .order_by(_records.c.seq)
        )
        leaves = []
        expected = start
        sha, prefix = _sha256, _LEAF
        for seq, value in rows:
            if seq != expected:
                raise LedgerError(
                    f"the records table has a gap: expected seq {expected}, found {seq}", seq=expected
                )
            try:
                leaves.append(sha(prefix + bytes.fromhex(value[2:])).digest())
                if len(value) != 2 + 2 * HASH_SIZE or value[:2] != "0x":
                    raise ValueError
            except (ValueError, TypeError):
                _leaf_from_hex(seq, value)  # raises with the details
            expected += 1
        if expected != end:
            raise LedgerError(
                f"the records table has a gap: expected seq {expected}, found none (log size {end})",
                seq=expected,
            )
        return leaves

    def _catch_up(self, conn: Connection, state: _DbState) -> None:
        """Extend memory to the database's ``state`` (checked against its root first)."""
        with self._mem_lock:
            have = self._log.size
            frontier = self._log.frontier()
        if state.size < have:
            raise LedgerError(
                f"the ledger database went backwards: it holds {state.size} records but this process "
                f"has already seen {have}; was the database replaced or restored from a backup?",
                db_size=state.size,
                seen=have,
            )
        leaves = self._load_leaves(conn, have, state.size)
        new_frontier = fold_leaves(frontier, leaves)
        root = frontier_root(new_frontier)
        if root != state.root or new_frontier != state.frontier:
            raise LedgerError(
                f"the ledger database is inconsistent: log_state root {_hex(state.root or b'')} at size "
                f"{state.size} != root {_hex(root)} of the records; the records' hashes or the log state "
                "were altered",
                state_root=_hex(state.root or b""),
                rebuilt_root=_hex(root),
                size=state.size,
            )
        self._extend_memory(have, leaves)

    def _extend_memory(self, start: int, leaves: Sequence[bytes]) -> None:
        """Append ``leaves`` (the leaves ``[start, start + len)``) to memory, skipping any a
        concurrent sync already added."""
        with self._mem_lock:
            have = self._log.size
            if have < start:  # cannot happen: every extension starts at a size once seen
                raise LedgerError(f"internal error: in-memory log at {have} cannot take leaves from {start}")
            for leaf in leaves[have - start :]:
                self._log.append_leaf_hash(leaf)

    # ---------------------------------------------------------------- appending

    def append(self, record: Record, *, in_transaction: InTransaction | None = None) -> Record:
        """Append one record; return it with its ``seq`` (see :meth:`append_many`)."""
        return self.append_many([record], in_transaction=in_transaction)[0]

    def append_many(
        self, records: Sequence[Record], *, in_transaction: InTransaction | None = None, writes_only: bool = False,
        refused: Refused | None = None,
    ) -> list[Record]:
        """Append ``records`` atomically with consecutive seqs; return them with ``seq`` set.

        Each record keeps its own fields (``timestamp`` included) and gets
        ``seq = log size + i``. A record that already has a seq, or is not a
        :class:`Record`, is an ``InputError``; a database refusal (e.g. a duplicate
        hash) is a ``LedgerError``. Either way nothing is written and the in-memory log
        is unchanged.

        ``in_transaction(session, stamped_records)``, if given, runs inside the same
        transaction after the rows are inserted (e.g. to update balances atomically
        with the records); if it raises, everything rolls back. It may run twice, the first
        attempt rolled back (PostgreSQL, another process appended meanwhile): it should only
        write through ``session``. ``writes_only``: it only
        writes, through Core statements on ``session.connection()`` whose results it does not
        read, so on PostgreSQL they go out with the ledger's own writes and the COMMIT, one round
        trip (``session_scope(pipelined=True)`` of :mod:`loraledger.db`). Its refusals come out at
        the end, so ``refused(integrity_error)``, if given, says what a refusal means: the
        error it returns (an ``InputError`` naming the duplicate) is raised instead of the
        ``LedgerError``, after the rollback.
        """
        if isinstance(records, Record):
            raise InputError("append_many takes a sequence of records; use append for one")
        records = list(records)
        for i, record in enumerate(records):
            if not isinstance(record, Record):
                raise InputError(f"item {i} is not a record ({type(record).__name__})", index=i)
            if record.seq is not None:
                raise InputError(
                    f"{record.kind} record {i} already has seq {record.seq}; the ledger assigns seqs when "
                    "appending (append records without one)",
                    index=i,
                    seq=record.seq,
                )
        if not records:
            return []
        return self._append(records, in_transaction, writes_only, refused)

    def _append(self, records: list[Record], in_transaction: InTransaction | None,
                writes_only: bool = False, refused: Refused | None = None) -> list[Record]:
        # Writes only (no callback, or one that only writes): the transaction is one pipeline on
        # PostgreSQL. A callback that reads or uses the ORM gets a plain transaction.
        one_pipeline = in_transaction is None or writes_only
        with self._write_lock:
            if one_pipeline and self._postgres and self._assume_unmoved:
                with self._mem_lock:
                    seen = (self._log.size, self._log.root())
                try:
                    return self._append_once(records, in_transaction, writes_only, refused, seen)
                except _LogMoved:
                    # Another process appended since this one last looked: read and lock the
                    # state first from now on, until an append finds that nobody else wrote.
                    self._assume_unmoved = False
            return self._append_once(records, in_transaction, writes_only, refused, None)

    def _append_once(self, records: list[Record], in_transaction: InTransaction | None, writes_only: bool,
                     refused: Refused | None, seen: tuple[int, bytes] | None) -> list[Record]:
        """One append transaction. ``seen``: the log's size and root as this process last saw
        them, assumed to be the database's (PostgreSQL): then nothing is read first, and the state's
        update, sent first with the rest, takes the row lock and fails the whole transaction
        (:class:`_LogMoved`) unless the state is still that. Without it, the state is read and
        locked first (``SELECT ... FOR UPDATE``; SQLite: ``BEGIN IMMEDIATE``) and caught up with."""

        def refusal(exc: DBAPIError) -> Exception | None:
            if seen is not None and getattr(exc.orig, "sqlstate", None) == _MOVED_SQLSTATE:
                return _LogMoved()
            return refused(exc) if refused is not None and isinstance(exc, IntegrityError) else None

        with session_scope(
            self.engine, what=f"cannot append {len(records)} record(s) (nothing was written)",
            pipelined=in_transaction is None or writes_only, refused=refusal,
        ) as session:
            conn = session.connection()
            if seen is not None:
                base, state_exists = seen[0], True
            else:
                base, state_exists = self._lock_and_catch_up(conn)
            with self._mem_lock:
                frontier = self._log.frontier(base)
            stamped, rows, leaves, values = _stamp_all(records, base, frontier)
            # Core on the session's transaction (no ORM work per statement), sent without waiting.
            with pipelined(conn):  # the records and the new state: one round trip
                if seen is not None:  # first: it is the lock
                    send(conn, _UPDATE_STATE_IF_UNMOVED, {"id": LOG_STATE_ID, "old_size": seen[0],
                                                          "old_root": _hex(seen[1]), **values})
                if rows:
                    send(conn, _INSERT_RECORDS, rows)
                if seen is None:
                    if state_exists:
                        send(conn, _UPDATE_STATE, values)
                    else:
                        send(conn, insert(_state), {"id": LOG_STATE_ID, **{k[4:]: v for k, v in values.items()}})
                if in_transaction is not None and writes_only:
                    in_transaction(session, stamped)
            if in_transaction is not None and not writes_only:
                in_transaction(session, stamped)
        # Committed: now memory may follow.
        self._extend_memory(base, leaves)
        return stamped

    def _lock_and_catch_up(self, conn: Connection) -> tuple[int, bool]:
        """Lock the log's state, load what other processes appended; (size, whether a state row
        exists)."""
        state = self._read_state(conn, for_update=True)  # the write lock
        if state.exists:
            with self._mem_lock:
                unmoved = self._log.size == state.size
            self._catch_up(conn, state)
            self._assume_unmoved = unmoved
            return state.size, True
        # No log_state yet: the records table is the truth.
        count, last = _first(fetch_rows(conn, select(func.count(), func.max(_records.c.seq))))
        if count and last != count - 1:
            raise LedgerError(f"the records table is not gap-free: {count} rows, last seq {last}")
        with self._mem_lock:
            have = self._log.size
        if count < have:
            raise LedgerError(
                f"the ledger database went backwards: it holds {count} records but this process "
                f"has already seen {have}"
            )
        self._extend_memory(have, self._load_leaves(conn, have, count))
        return count, False

    # ---------------------------------------------------------------- log (memory)

    def size(self) -> int:
        """Records in the log, as of this process's last append or :meth:`sync`."""
        with self._mem_lock:
            return self._log.size

    def __len__(self) -> int:
        return self.size()

    def _ensure(self, size: int) -> None:
        """Sync when asked about a size beyond what memory holds."""
        if size > self.size():
            self.sync()

    def root(self, size: int | None = None) -> bytes:
        """The RFC 9162 root of the log at ``size`` (default: current); ``NotFoundError`` beyond it."""
        if size is not None:
            self._ensure(_require_seq(size, "tree size"))
        with self._mem_lock:
            return self._log.root(size)

    def state(self) -> dict[str, Any]:
        """``{"size": n, "root": "0x.."}`` of the in-memory log."""
        with self._mem_lock:
            return {"size": self._log.size, "root": _hex(self._log.root())}

    def leaf_hash(self, seq: int) -> bytes:
        """The RFC 9162 leaf hash of record ``seq`` (``SHA-256(0x00 || record hash)``)."""
        self._ensure(_require_seq(seq, "seq") + 1)
        with self._mem_lock:
            return self._log.leaf_hash(seq)

    def inclusion_proof(self, seq: int, size: int | None = None) -> InclusionProof:
        """Proof that record ``seq`` is in the log of ``size`` (default: current); ``NotFoundError``
        if ``seq`` or ``size`` is beyond the log."""
        seq = _require_seq(seq, "seq")
        self._ensure(seq + 1 if size is None else _require_seq(size, "tree size"))
        with self._mem_lock:
            return self._log.inclusion_proof(seq, size)

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        """Proof that the log of size ``second`` (default: current) extends the log of size
        ``first``; ``NotFoundError`` beyond the log, ``InputError`` if ``first > second``."""
        first = _require_seq(first, "old size")
        self._ensure(first if second is None else _require_seq(second, "new size"))
        with self._mem_lock:
            if first > self._log.size and second is None:
                raise NotFoundError(f"old size {first} is beyond the log (size {self._log.size})")
            return self._log.consistency_proof(first, second)

    # ---------------------------------------------------------------- records (database)

    _columns = (_records.c.seq, _records.c.kind, _records.c.timestamp, _records.c.hash, _records.c.body)

    def _record_from_row(self, row: Any, *, full: bool = False) -> Record:
        """Parse a row, checking its body hashes to the leaf in the (verified) log.

        ``full`` also checks the canonical form and the kind/timestamp columns (verify).
        """
        seq, kind, timestamp, stored_hash, body_text = row
        with self._mem_lock:
            logged = self._log.leaf_hash(seq)
        body = _checked_body(seq, stored_hash, body_text, logged)
        try:
            record = parse_record(body)
        except InputError as exc:
            raise LedgerError(f"record {seq} is corrupt: its body does not parse: {exc}", seq=seq) from None
        if record.seq != seq:
            raise LedgerError(f"record {seq} is corrupt: its body says seq {record.seq}", seq=seq)
        if full:
            if canonical_json(record) != body:
                raise LedgerError(f"record {seq} is corrupt: its body is not in canonical form", seq=seq)
            if record.kind != kind or record.timestamp != timestamp:
                raise LedgerError(
                    f"record {seq} is corrupt: its kind/timestamp columns ({kind!r}, {timestamp}) do not "
                    f"match its body ({record.kind!r}, {record.timestamp})",
                    seq=seq,
                )
        return record

    def get(self, seq: int) -> Record:
        """The record at ``seq``; ``NotFoundError`` if there is none."""
        seq = _require_seq(seq, "seq")
        self._ensure(seq + 1)
        if seq >= self.size():
            raise NotFoundError(f"no record {seq}: the ledger holds {self.size()} records", seq=seq)
        with read_scope(self.engine, what=f"cannot read record {seq}") as conn:
            row = conn.execute(select(*self._columns).where(_records.c.seq == seq)).one_or_none()
        if row is None:
            raise LedgerError(f"record {seq} is in the log but missing from the records table", seq=seq)
        return self._record_from_row(row)

    def get_by_hash(self, hash_hex: str) -> Record:
        """The record whose hash is ``hash_hex`` (0x + 64 hex digits); ``NotFoundError`` if none."""
        if not isinstance(hash_hex, str) or len(hash_hex) != 66 or hash_hex[:2] not in ("0x", "0X"):
            raise InputError(f"a record hash is 0x followed by 64 hex digits, got {hash_hex!r:.80}")
        try:
            bytes.fromhex(hash_hex[2:])
        except ValueError:
            raise InputError(f"a record hash is 0x followed by 64 hex digits, got {hash_hex!r:.80}") from None
        wanted = "0x" + hash_hex[2:].lower()
        with read_scope(self.engine, what="cannot look up a record by hash") as conn:
            row = conn.execute(select(*self._columns).where(_records.c.hash == wanted)).one_or_none()
        if row is None:
            raise NotFoundError(f"no record with hash {wanted}", hash=wanted)
        self._ensure(row[0] + 1)
        return self._record_from_row(row)

    def range(self, start: int, end: int | None = None) -> list[Record]:
        """Records with ``start <= seq < end`` in seq order (``end`` defaults to, and is
        clamped at, the log size; like a slice, an empty list past the end)."""
        start = _require_seq(start, "start")
        if end is None:
            self.sync()
            end = self.size()
        else:
            end = _require_seq(end, "end")
            self._ensure(end)
            end = min(end, self.size())
        if start >= end:
            return []
        with read_scope(self.engine, what="cannot read records") as conn:
            rows = conn.execute(
                select(*self._columns)
                .where(_records.c.seq >= start, _records.c.seq < end)
                .order_by(_records.c.seq)
            ).all()
        if len(rows) != end - start:
            raise LedgerError(f"records {start}..{end - 1} are in the log but {end - start - len(rows)} are missing")
        return [self._record_from_row(row) for row in rows]

    def bodies(self, start: int, end: int, *, chunk: int = 20_000) -> Iterator[tuple[int, str, bytes]]:
        """``(seq, kind, canonical body)`` of the records ``start <= seq < end``, in order, read
        ``chunk`` rows at a time (a sealing epoch of a million records never holds them all), each
        checked against the log as :meth:`get` checks it (its body hashes to its leaf). Bodies are
        the records' RFC 8785 bytes; parsing them is left to the caller."""
        start, end = _require_seq(start, "start"), _require_seq(end, "end")
        self._ensure(end)
        for low in range(start, end, chunk):
            high = min(low + chunk, end)
            with read_scope(self.engine, what="cannot read records") as conn:
                rows = conn.execute(select(_records.c.seq, _records.c.kind, _records.c.hash, _records.c.body)
                                    .where(_records.c.seq >= low, _records.c.seq < high)
                                    .order_by(_records.c.seq)).all()
            if len(rows) != high - low:
                raise LedgerError(f"records {low}..{high - 1} are in the log but {high - low - len(rows)} are missing")
            with self._mem_lock:
                leaves = [self._log.leaf_hash(seq) for seq in range(low, high)]
            for (seq, kind, stored_hash, body_text), logged in zip(rows, leaves, strict=True):
                yield seq, kind, _checked_body(seq, stored_hash, body_text, logged)

    def body_length(self, start: int, end: int) -> int:
        """Characters of canonical JSON in the records ``start <= seq < end`` (bytes, for the ASCII
        most records are): how large an epoch file of them would be, without reading them."""
        start, end = _require_seq(start, "start"), _require_seq(end, "end")
        with read_scope(self.engine, what="cannot measure records") as conn:
            total = conn.execute(select(func.sum(func.length(_records.c.body)))
                                 .where(_records.c.seq >= start, _records.c.seq < end)).scalar()
        return int(total or 0)

    def kind_counts(self, start: int = 0, end: int | None = None) -> dict[str, int]:
        """How many records of each kind the log holds (as of a :meth:`sync` now), or its records
        ``start <= seq < end``; kinds sorted."""
        size = self.sync()
        end = size if end is None else min(_require_seq(end, "end"), size)
        with read_scope(self.engine, what="cannot count records") as conn:
            rows = conn.execute(
                select(_records.c.kind, func.count()).where(_records.c.seq >= _require_seq(start, "start"),
                                                             _records.c.seq < end).group_by(_records.c.kind)
            ).all()
        return {kind: int(count) for kind, count in sorted(rows)}

    def of_kind(self, kind: str, *, limit: int | None = None, offset: int = 0,
                newest_first: bool = False) -> list[Record]:
        """Records of ``kind`` in seq order (``newest_first``: the reverse), ``limit`` of them from the
        ``offset``-th; each checked against the log as :meth:`get` checks it."""
        offset = _require_seq(offset, "offset")
        size = self.sync()
        order = _records.c.seq.desc() if newest_first else _records.c.seq
        stmt = (select(*self._columns).where(_records.c.kind == kind, _records.c.seq < size)
                .order_by(order).offset(offset))
        if limit is not None:
            stmt = stmt.limit(_require_seq(limit, "limit"))
        with read_scope(self.engine, what=f"cannot read {kind} records") as conn:
            rows = conn.execute(stmt).all()
        return [self._record_from_row(row) for row in rows]

    def verify(self) -> int:
        """Audit every record: its body hashes to its stored hash and to the leaf in the
        log, parses, carries its seq, is in canonical form and matches its kind and
        timestamp columns. Returns the number of records checked; ``LedgerError`` names
        the first bad one. O(n): reads every body."""
        size = self.sync()
        checked = 0
        for start in range(0, size, _PAGE):
            end = min(start + _PAGE, size)
            with read_scope(self.engine, what="cannot read records") as conn:
                rows = conn.execute(
                    select(*self._columns)
                    .where(_records.c.seq >= start, _records.c.seq < end)
                    .order_by(_records.c.seq)
                ).all()
            for row in rows:
                if row[0] != checked:
                    raise LedgerError(f"record {checked} is missing from the records table", seq=checked)
                self._record_from_row(row, full=True)
                checked += 1
        if checked != size:
            raise LedgerError(f"record {checked} is missing from the records table", seq=checked)
        return checked
