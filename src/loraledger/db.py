"""The ledger database: engines, sessions and error translation.

Two backends:

* **SQLite** (``sqlite:///path/to/ledger.db``), for a single node. Every connection is
  set up with

  - ``journal_mode=WAL``: readers never block the writer and the writer never blocks
    readers; a crash mid-transaction never corrupts the database.
  - ``synchronous=FULL``: every commit fsyncs the WAL before returning. With WAL,
    ``NORMAL`` is also corruption-free, but a power loss can roll back the last
    transactions that had already returned "committed". The ledger records payments,
    and a record that vanished after we reported it (and maybe after a client saw its
    seq or an inclusion proof) is worse than the ~fsync per commit it costs, so commits
    are durable. Batch with ``append_many`` when throughput matters.
  - ``foreign_keys=ON``, ``busy_timeout=30000`` (a writer waits up to 30 s for the
    lock instead of failing at once).
  - ``wal_autocheckpoint=32768`` pages (128 MiB of WAL, not SQLite's 4 MiB): a batch of
    hundreds of rows writes ~1,000 pages of random index leaves, so at the default nearly
    every such commit also checkpointed (copied pages back and fsynced the database file).
    Every 128 MiB, a page rewritten by many commits is copied back once: at a million rows a
    500-row batch commits in about half the time (``scripts/bench_datanets.py``). The WAL file
    grows to about that size. (A checkpointing thread of its own, tried too, gained nothing
    more on two cores: it took the I/O from the commits' inserts.)
  - The page cache stays at SQLite's 2 MiB per connection: 64 MiB made inserts into large random
    indexes ~3 ms faster per 500-row batch, but every connection that reads the log (opening the
    ledger, sealing an epoch) then holds 64 MiB more, which a million-record seal could not spare.
  - Transactions begin with ``BEGIN IMMEDIATE``: the write lock is taken at BEGIN, so
    concurrent writers (threads or processes) queue on the busy timeout instead of
    failing with ``SQLITE_BUSY`` when a read-then-write transaction tries to upgrade
    its lock (which no busy timeout can resolve under WAL). :func:`read_scope` opens a
    plain deferred ``BEGIN`` instead, for reads that must not queue behind writers.
  - ``check_same_thread=False``: connections come from a pool and may be used by any
    thread (one at a time).

  ``sqlite://`` (in memory) is accepted for quick experiments: one shared connection,
  no WAL, no concurrency.

* **PostgreSQL** (``postgresql+psycopg://user@host:port/db``; a bare ``postgresql://``
  is taken to mean the psycopg 3 driver): a pooled connection idle for more than
  :data:`PING_AFTER_IDLE_S` is pinged before it is handed out (one dropped by a server restart
  is replaced, not handed out), a 10 s connect timeout, prepared statements
  planned for each run's parameters (``plan_cache_mode = force_custom_plan``; see
  ``_postgres_events``). Writers
  serialise on a row lock (``SELECT ... FOR UPDATE`` on ``log_state``, see
  :mod:`loraledger.records.ledger`); :func:`read_scope` runs at ``REPEATABLE READ``,
  read-only, so a multi-statement read sees one snapshot.

Errors: a malformed URL, a missing driver, an unreachable database or any database
failure inside :func:`session_scope` / :func:`read_scope` is raised as a
:class:`~loraledger.errors.LedgerError` with one clear line (passwords hidden), never a
bare SQLAlchemy traceback.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Dialect, Engine, Executable, create_engine, event, inspect
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    NoSuchModuleError,
    SQLAlchemyError,
)
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateIndex
from sqlmodel import Session, SQLModel

from .errors import LedgerError, LoraLedgerError

__all__ = [
    "BUSY_TIMEOUT_S",
    "READ_ONLY_OPTION",
    "create_all",
    "database_error",
    "display_url",
    "fetch_rows",
    "check_writable",
    "is_postgres",
    "is_sqlite",
    "make_engine",
    "pipelined",
    "send",
    "read_scope",
    "read_session",
    "session_scope",
]

#: How long a SQLite writer waits for the write lock before giving up.
BUSY_TIMEOUT_S = 30
#: Execution option marking a connection's transactions as read-only (deferred BEGIN
#: on SQLite; REPEATABLE READ READ ONLY on PostgreSQL).
READ_ONLY_OPTION = "loraledger_read_only"

_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")


def display_url(url: str | URL) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return _PASSWORD_IN_URL.sub(r"\1***@", str(url))


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # a DBAPI error wrapped by SQLAlchemy
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def database_error(exc: BaseException, what: str) -> LedgerError:
    """A :class:`LedgerError` ``"<what>: <first line of the driver's message>"``."""
    return LedgerError(f"{what}: {_first_line(exc)}", cause=type(exc).__name__)


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def check_writable(engine: Engine) -> None:
    """LedgerError unless a write transaction can start now: SQLite takes its write lock (BEGIN
    IMMEDIATE, then rolls back), PostgreSQL must not be a read-only server or transaction."""
    try:
        with engine.connect() as conn:
            if is_postgres(conn):
                if conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on":
                    raise LedgerError("the database only accepts reads (transaction_read_only is on)")
            else:
                with conn.begin():  # BEGIN IMMEDIATE: the write lock, or the driver's error
                    pass
    except LedgerError:
        raise
    except Exception as exc:  # noqa: BLE001 - any driver failure is the answer
        raise database_error(exc, "the database is not writable") from None


# ---------------------------------------------------------------------------- engines


#: SQLite checkpoints its WAL back into the database file after this many pages (module docstring).
WAL_CHECKPOINT_PAGES = 32_768


#: A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0
_USED_AT = "loraledger_used_at"  # key in a pooled connection's info: when it was last returned


def _postgres_events(engine: Engine) -> None:
    # A connection is pinged when it is handed out after more than PING_AFTER_IDLE_S idle, not at
    # every checkout (pool_pre_ping): a ping is a round trip, 7 % of a contribution of 10 rows
    # (scripts/bench_datanets.py), and one used a moment ago is alive but for a failure in that
    # moment, which its next statement reports (the pool is then renewed, as on any lost
    # connection). HikariCP skips its alive test the same way (aliveBypassWindowMs, 500 ms).
    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_USED_AT, 0.0) <= PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - whatever the driver says, this connection is gone
            # The pool replaces it and tries again (SQLAlchemy's pessimistic disconnect handling).
            raise DisconnectionError(f"a pooled connection was lost while idle: {_first_line(exc)}") from exc

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_USED_AT] = time.monotonic()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        record.info[_USED_AT] = time.monotonic()  # just opened: alive
        # psycopg prepares a query after 5 runs (its parse saved: +15% on a contribution of 10
        # rows). A prepared query may then switch to a generic plan, chosen while a table was
        # small, and keep it as the table grows: a datanet's live-row check scanned the whole
        # datanet that way, 10 ms a batch at 20,000 rows. Custom plans only: each run is planned
        # for its own parameters on the table as it is.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_connection.commit()


def _sqlite_events(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN (pysqlite's implicit BEGIN is
        # deferred and comes too late, at the first DML statement).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str | URL, *, check: bool = True, **kwargs: Any) -> Engine:
    """An engine for the ledger database at ``url`` (settings in the module docstring).

    With ``check`` (the default) a connection is opened at once, so an unreachable
    database or an unwritable SQLite path fails here with a clear ``LedgerError``
    rather than at the first query. Extra ``kwargs`` go to ``create_engine``.
    """
    shown = display_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError) as exc:
        raise LedgerError(
            f"cannot open the ledger database at {shown}: malformed database URL ({_first_line(exc)}); "
            "expected sqlite:///path/to/ledger.db or postgresql+psycopg://user@host:port/dbname"
        ) from None
    shown = display_url(parsed)
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            database = parsed.database or ""
            in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
            connect_args = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_S, **kwargs.pop("connect_args", {})}
            if in_memory:
                kwargs.setdefault("poolclass", StaticPool)
            engine = create_engine(parsed, connect_args=connect_args, **kwargs)
            _sqlite_events(engine, wal=not in_memory)
        elif backend == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            connect_args = {"connect_timeout": 10, **kwargs.pop("connect_args", {})}
            engine = create_engine(parsed, connect_args=connect_args, **kwargs)
            _postgres_events(engine)
        else:
            raise LedgerError(
                f"cannot open the ledger database at {shown}: unsupported database {backend!r} "
                "(use sqlite:///path or postgresql+psycopg://...)"
            )
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        hint = " (pip install 'psycopg[binary]')" if backend == "postgresql" else ""
        raise LedgerError(
            f"cannot open the ledger database at {shown}: database driver not available: {_first_line(exc)}{hint}"
        ) from None
    except ArgumentError as exc:
        raise LedgerError(f"cannot open the ledger database at {shown}: {_first_line(exc)}") from None
    if check:
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            engine.dispose()
            raise database_error(exc, f"cannot open the ledger database at {shown}") from None
    return engine


def create_all(engine: Engine) -> None:
    """Create every table registered on the ``SQLModel`` metadata that does not exist yet, and
    every index of theirs that does not (``create_all`` alone adds none to a table that exists:
    an index added in a later version reaches an older database this way).

    A table is registered when its concern's ``tables`` module is imported; the node creates
    all of them at once with :func:`loraledger.node.context.create_tables`."""
    try:
        SQLModel.metadata.create_all(engine)
        with engine.connect() as conn:  # one catalog query for every table (PostgreSQL)
            existing = {table: {ix["name"] for ix in indexes}
                        for (_, table), indexes in inspect(conn).get_multi_indexes().items()}
        missing = [index for table in SQLModel.metadata.tables.values() for index in table.indexes
                   if index.name not in existing.get(table.name, ())]
        if missing:
            with engine.begin() as conn:  # IF NOT EXISTS: two processes starting at once both succeed
                for index in missing:
                    conn.execute(CreateIndex(index, if_not_exists=True))
    except SQLAlchemyError as exc:
        raise database_error(exc, f"cannot create the ledger tables in {display_url(engine.url)}") from exc


# --------------------------------------------------------------------------- sessions


def _in_pipeline(driver: Any) -> bool:
    from psycopg import pq

    return driver.pgconn.pipeline_status != pq.PipelineStatus.OFF


def _translate_psycopg(conn: Connection, exc: Exception) -> DBAPIError:
    """A psycopg error raised outside SQLAlchemy (a pipeline's answers), wrapped as SQLAlchemy
    would have wrapped it (``IntegrityError``...); a lost connection is invalidated, as SQLAlchemy
    does, so it is not handed out again (and the rollback that follows does not touch it)."""
    import psycopg

    lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
    if lost:
        conn.invalidate(exc)
    return DBAPIError.instance(None, None, exc, psycopg.Error, connection_invalidated=lost, dialect=conn.dialect)


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """Writes on ``conn`` sent without waiting for each answer, all answered when the block ends:
    one round trip instead of one per statement (PostgreSQL: psycopg's pipeline mode; elsewhere
    nothing changes). For writes only: a statement inside must not need its result or row count.
    A refusal (a unique key, ...) comes out at the block's end as the exception ``conn.execute``
    would have raised (``IntegrityError``...), the statements after it not run. Inside a pipeline
    already (a ``session_scope(pipelined=True)``, an outer block) it adds nothing: the outer one
    answers, and a refusal comes out there."""
    if conn.dialect.name != "postgresql":
        yield
        return
    import psycopg

    driver = conn.connection.driver_connection
    if _in_pipeline(driver):
        yield
        return
    try:
        with driver.pipeline():  # type: ignore[union-attr]
            yield
    except psycopg.Error as exc:  # raised by the sync, outside SQLAlchemy: wrapped as it would wrap it
        raise _translate_psycopg(conn, exc) from exc


def _pipeline_cursor(conn: Connection) -> Any:
    """A psycopg cursor on ``conn`` when it is in a pipeline (PostgreSQL), else None."""
    if conn.dialect.name != "postgresql" or not _in_pipeline(conn.connection.driver_connection):
        return None
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


_COMPILED: dict[tuple[int, int, tuple[str, ...] | None], tuple[Executable, Any]] = {}


def _compiled(statement: Executable, dialect: Dialect, keys: tuple[str, ...] | None = None) -> Any:
    """``statement`` compiled for ``dialect`` (an INSERT for the columns ``keys``), kept for the next
    call with the same object (a statement built once at import runs per append). Keyed by
    identity: a statement's ``==`` builds SQL, it does not compare."""
    key = (id(statement), id(dialect), keys)
    held = _COMPILED.get(key)
    if held is None or held[0] is not statement:
        if len(_COMPILED) >= 256:  # statements built per call come and go: keep the map small
            _COMPILED.clear()
        # render_postcompile: an IN list's values become parameters of this statement's own string
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None,
                                     compile_kwargs={"render_postcompile": True})
        held = _COMPILED[key] = (statement, compiled)
    return held[1]


def send(conn: Connection, statement: Executable, params: dict[str, Any] | list[dict[str, Any]]) -> None:
    """Run the write ``statement`` (``params``: one row's, or a list for many) without reading its
    result. Inside a pipeline (PostgreSQL) it goes straight to psycopg's cursor, queued: a
    SQLAlchemy ``execute`` there costs about 110 us a statement, this about 25 (its values pass as
    they are: ints, strings, None, lists of them; no SQLAlchemy type processing). Elsewhere it is
    ``conn.execute``. A refusal comes out here or at the pipeline's end, as an ``IntegrityError``."""
    # Not closed here: its answer is still to come (psycopg's own Connection.execute does the same).
    cursor = _pipeline_cursor(conn)
    if cursor is None:
        conn.execute(statement, params)
        return
    import psycopg

    many = isinstance(params, list)
    rows = params if many else [params]
    if not rows:
        return
    compiled = _compiled(statement, conn.dialect, tuple(rows[0]))
    try:
        if many:
            cursor.executemany(compiled.string, [compiled.construct_params(row) for row in rows])
        else:
            cursor.execute(compiled.string, compiled.construct_params(params))
    except psycopg.Error as exc:  # an earlier statement's refusal, read while sending this one
        raise _translate_psycopg(conn, exc) from exc


def fetch_rows(conn: Connection, statement: Executable) -> Iterable[Sequence[Any]]:
    """The rows of the query ``statement`` on ``conn``, also inside a pipeline (PostgreSQL), where
    ``conn.execute`` cannot see a result: there the query goes out with everything queued before
    it (the ``BEGIN`` of a pipelined :func:`session_scope`) and is answered at once, one round trip,
    through psycopg's own cursor (the rows come back as the database's values: ints, strings;
    no SQLAlchemy type processing). Outside a pipeline: ``conn.execute(statement)``, its rows
    streamed as they come."""
    cursor = _pipeline_cursor(conn)
    if cursor is None:
        return conn.execute(statement)
    import psycopg

    compiled = _compiled(statement, conn.dialect)
    params = compiled.construct_params()  # each call's own values (a statement built per call has its own)
    try:
        cursor.execute(compiled.string, params)
        return cursor.fetchall()  # a flush request: answered now, with what was queued before it
    except psycopg.Error as exc:
        raise _translate_psycopg(conn, exc) from exc
    finally:
        cursor.close()


def _autocommit_engine(engine: Engine) -> Engine:
    """``engine`` with psycopg's autocommit on (same pool): a pipelined transaction sends its own
    BEGIN and COMMIT, which psycopg would otherwise each answer before going on."""
    cached = engine.__dict__.get("_loraledger_autocommit")
    if cached is None:
        cached = engine.execution_options(isolation_level="AUTOCOMMIT")
        engine.__dict__["_loraledger_autocommit"] = cached
    return cached


@contextmanager
def _one_pipeline(session: Session) -> Iterator[None]:
    """The session's transaction as one psycopg pipeline: BEGIN queued (it goes out with the first
    query), the writes queued, COMMIT queued after them, and one sync at the end that answers them
    all. The connection is in autocommit, so psycopg sends no BEGIN of its own (in a pipeline it
    would wait for its answer); the BEGIN here opens a real transaction all the same."""
    conn = session.connection()
    driver = conn.connection.driver_connection
    with pipelined(conn):  # the pipeline, its answers' errors wrapped as SQLAlchemy wraps them
        driver.execute(b"BEGIN")  # type: ignore[union-attr]
        yield
        driver.execute(b"COMMIT")  # type: ignore[union-attr]


@contextmanager
def session_scope(engine: Engine, *, what: str = "ledger database error", pipelined: bool = False,
                  refused: Callable[[DBAPIError], Exception | None] | None = None) -> Iterator[Session]:
    """A write transaction: commit on success, roll back on any exception.

    On SQLite it holds the write lock from its first statement (``BEGIN IMMEDIATE``).
    Database failures come out as ``LedgerError("<what>: ...")``; loraledger's own
    errors and other exceptions pass through unchanged (after the rollback). An error the
    database answered (``IntegrityError``: a unique key, a foreign key; any ``DBAPIError``) is
    first offered to ``refused``, after the rollback: the error it returns is raised instead (one
    naming what was refused).

    ``pipelined`` (PostgreSQL; elsewhere it changes nothing): the whole transaction is one psycopg
    pipeline, two round trips for a read-then-write transaction instead of one per statement and
    one each for BEGIN and COMMIT: BEGIN travels with the first query, and the writes, sent without
    waiting for their answers, travel with the COMMIT. Inside, read only through
    :func:`fetch_rows` (``session.execute`` cannot see a result in a pipeline) and write through
    :func:`send` (or Core statements whose results are not read); a refusal comes out at the end,
    the statements after it not run.
    """
    one_pipeline = pipelined and is_postgres(engine)
    session = Session(_autocommit_engine(engine) if one_pipeline else engine, expire_on_commit=False)
    try:
        if one_pipeline:
            with _one_pipeline(session):
                yield session
        else:
            yield session
        session.commit()
    except LoraLedgerError:
        session.rollback()
        raise
    except SQLAlchemyError as exc:
        session.rollback()
        if refused is not None and isinstance(exc, DBAPIError):
            instead = refused(exc)
            if instead is not None:
                raise instead from None
        raise database_error(exc, what) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _read_options(engine: Engine) -> dict[str, Any]:
    options: dict[str, Any] = {READ_ONLY_OPTION: True}
    if is_postgres(engine):
        options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return options


@contextmanager
def read_session(engine: Engine, *, what: str = "ledger database error") -> Iterator[Session]:
    """An ORM ``Session`` on a read-only transaction (see :func:`read_scope`): for reads that
    must not take SQLite's write lock; objects stay usable (detached) after the block.
    Database failures become ``LedgerError``."""
    try:
        with engine.connect() as conn:
            conn.execution_options(**_read_options(engine))
            with conn.begin(), Session(bind=conn, expire_on_commit=False) as session:
                yield session
    except SQLAlchemyError as exc:
        raise database_error(exc, what) from exc


@contextmanager
def read_scope(engine: Engine, *, what: str = "ledger database error") -> Iterator[Connection]:
    """A read-only transaction on one snapshot (a Core ``Connection``), rolled back at the end.

    SQLite: deferred ``BEGIN`` (does not queue behind writers under WAL).
    PostgreSQL: ``REPEATABLE READ``, read-only. Database failures become ``LedgerError``.
    """
    try:
        with engine.connect() as conn:
            conn.execution_options(**_read_options(engine))
            with conn.begin():
                yield conn
    except SQLAlchemyError as exc:
        raise database_error(exc, what) from exc
