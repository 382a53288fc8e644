"""Background jobs of the node (training, benchmarks): a queue in the ledger database and a
worker thread that runs one job at a time.

A *kind* of job is a name, a ``validate`` function that normalises the parameters a client
sends (or raises :class:`~loraledger.errors.InputError`) and a handler
``run(params, ctx) -> result``. Code that provides a kind registers it on the node's queue
(``node.jobs.register(JobKind(...))``); clients submit jobs over the API or the CLI.

Life of a job::

    queued ──claim──▶ running ──▶ done | failed | cancelled
       └──────cancel──────────────────────▲

* ``submit`` stores a ``queued`` row (parameters validated, stored as canonical JSON) and
  wakes the worker, so a job starts at once when the worker is idle.
* ``claim_next`` moves the oldest queued job *of a kind this queue knows* to ``running``
  with a conditional ``UPDATE ... WHERE status = 'queued'``: two workers, in one process or
  two, never run the same job.
* The handler reports progress (``ctx.report``, throttled) and checks for cancellation
  (``ctx.check_cancelled()``, cheap). What it returns is stored as the result; what it
  raises decides the final state (see :meth:`JobQueue.run_one`). A job is never left
  ``running`` by a handler that fails.
* ``cancel`` of a queued job cancels it at once; of a running job it sets
  ``cancel_requested`` (and wakes the handler's in-process flag): the handler stops at its
  next check.
* A node that dies (crash, kill) leaves its running job ``running`` in the database;
  ``recover`` (called by the daemon at start-up) closes such jobs. A worker that is
  stopped (:meth:`JobWorker.stop`, e.g. the daemon on SIGTERM) interrupts its running job
  the same way: the handler's next check raises :class:`JobInterrupted`. Either way a kind
  that knows how to resume (``JobKind.resume``: training continues from its checkpoint) is
  put back in the queue with the parameters that resume it, so the next start carries on
  (at most :data:`MAX_RESTARTS` times); any other job ends ``failed`` ("node stopped while
  the job was running"): a half-done run may have side effects only its kind knows how to
  resume; submit it again.

One node process per ledger database is assumed (as for epochs): ``recover`` fails every
job another process left running, whether or not that process is still alive.

Every database write is one short transaction (:func:`~loraledger.db.session_scope`),
never held while a handler runs, so a long training job never blocks the ledger.
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy import select as core_select  # Core reads on read_scope's Connection
from sqlmodel import select

from ..db import read_scope, session_scope
from ..errors import InputError, LoraLedgerError, NotFoundError
from ..health import NodeHealth
from ..loops import Retry
from .tables import JobRow, JobStatus

__all__ = [
    "INTERRUPTED",
    "JOB_STATUSES",
    "JobCancelled",
    "JobContext",
    "JobHandler",
    "JobInterrupted",
    "JobKind",
    "JobQueue",
    "JobWorker",
    "job_to_dict",
]

log = logging.getLogger("loraledger.jobs")

JOB_STATUSES: tuple[str, ...] = JobStatus.ALL
#: A handler's progress is written at most this often, and the database's cancel flag
#: read at most this often (seconds): a tight training loop may call both every step.
THROTTLE_S = 0.5
#: Most jobs one ``list`` returns.
MAX_LIST_LIMIT = 1000
#: The error of a job whose node stopped (or died) under it.
INTERRUPTED = "node stopped while the job was running"
#: How many times an interrupted job of a resumable kind is queued again before it ends failed.
MAX_RESTARTS = 3
#: Longest error text stored (a handler may raise with a huge message).
MAX_ERROR_CHARS = 4000
#: Attempts at storing a job's final state before giving up (then ``recover`` fixes it).
FINISH_ATTEMPTS = 4


class JobCancelled(Exception):
    """Raised inside a handler by :meth:`JobContext.check_cancelled`: the job was cancelled.

    Control flow, not an error: the job ends ``cancelled``. A handler may catch it to clean
    up, and should re-raise it.
    """


class JobInterrupted(JobCancelled):
    """Raised by :meth:`JobContext.check_cancelled` when the node is stopping: the job ends
    ``failed`` with :data:`INTERRUPTED` (it did not finish, and nobody asked it to stop)."""


def _dumps(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, ASCII only (so a NUL or any other
    character is escaped: PostgreSQL text cannot hold a raw NUL), no NaN/Infinity (not JSON).
    Raises ``TypeError``/``ValueError`` for a value that is not JSON."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _exc_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _job_row(mapping: Any) -> JobRow:
    return JobRow(**dict(mapping))


# ------------------------------------------------------------------------------ kinds


class JobContext:
    """What a running handler gets besides its parameters: progress reports and cancellation.

    Made by the queue; one per run. Not shared between threads except for the cancel and
    stop flags, which are ``threading.Event``s.
    """

    def __init__(self, queue: JobQueue, job_id: int, params: dict[str, Any], *,
                 stop: threading.Event | None = None) -> None:
        self.job_id = job_id
        self.params = params
        self._queue = queue
        self._cancel = threading.Event()  # set by queue.cancel() in this process
        self._stop = stop or threading.Event()  # set when the worker is stopping
        self._next_db_check = 0.0  # monotonic; 0: the first check reads the database
        self._last_write = float("-inf")
        self._pending: str | None = None  # reported progress not yet written
        #: Why the handler was told to stop ("cancel" or "stop"), once ``cancelled`` said so.
        self.observed: str | None = None

    # ---- progress -----------------------------------------------------------------------
    def report(self, progress: dict[str, Any], *, final: bool = False) -> None:
        """Store ``progress`` (a JSON object) as the job's progress.

        Written at most every :data:`THROTTLE_S` seconds (``final`` forces the write); the
        latest report is always written with the job's final state, so nothing reported is
        lost to the throttle. A write that fails is logged, not raised: progress is advisory
        and must not kill a long job. Progress that is not JSON raises ``TypeError`` here, at
        the handler's call, where the bug is.
        """
        if not isinstance(progress, dict):
            raise TypeError(f"job progress must be a dict, got {type(progress).__name__}")
        try:
            # Serialised now, not at write time: the handler may mutate its dict afterwards.
            self._pending = _dumps(progress)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"job progress is not JSON-serialisable: {exc}") from None
        now = time.monotonic()
        if final or now - self._last_write >= THROTTLE_S:
            self._last_write = now
            self._flush()

    def _flush(self) -> None:
        text = self._pending
        if text is None:
            return
        try:
            with session_scope(self._queue.engine, what=f"cannot store the progress of job {self.job_id}") as session:
                session.exec(update(JobRow).where(JobRow.id == self.job_id, JobRow.status == JobStatus.RUNNING)
                             .values(progress=text).execution_options(synchronize_session=False))
        except LoraLedgerError as exc:
            log.warning("job %s: %s (kept; written with the job's final state)", self.job_id, exc)
            return
        if self._pending == text:
            self._pending = None

    def pending_progress(self) -> str | None:
        """Progress reported but not written yet (the queue writes it with the final state)."""
        return self._pending

    # ---- cancellation -------------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        """Whether the handler should stop: the job was cancelled, or the node is stopping.

        Cheap enough for every training step: two ``Event`` reads, plus one database read
        at most every :data:`THROTTLE_S` seconds (a cancel from another process, e.g. the
        CLI, only shows up there).
        """
        if not (self._cancel.is_set() or self._stop.is_set()):
            now = time.monotonic()
            if now >= self._next_db_check:
                self._next_db_check = now + THROTTLE_S
                if self._queue._should_stop(self.job_id):
                    self._cancel.set()
        if self._cancel.is_set():
            self.observed = self.observed or "cancel"
            return True
        if self._stop.is_set():
            self.observed = self.observed or "stop"
            return True
        return False

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled (:class:`JobInterrupted` if
        the node is stopping); return at once otherwise."""
        if self.cancelled:
            if self.observed == "stop":
                raise JobInterrupted(INTERRUPTED)
            raise JobCancelled(f"job {self.job_id} cancelled")


#: ``run(params, ctx) -> result``: params as normalised by the kind's ``validate``; the
#: result must be JSON-serialisable (usually a dict).
JobHandler = Callable[[dict[str, Any], JobContext], Any]


@dataclass(frozen=True)
class JobKind:
    """A kind of job the node can run."""

    name: str
    #: Runs one job; see :meth:`JobQueue.run_one` for what its outcome becomes.
    run: JobHandler
    #: Normalises a client's params (defaults filled in, types checked) or raises
    #: ``InputError``; runs at submit time, so a bad job is refused before it is queued.
    validate: Callable[[dict[str, Any]], dict[str, Any]]
    #: The params that continue a run the node stopped in the middle of (None: the kind cannot
    #: resume, and such a job ends failed).
    resume: Callable[[dict[str, Any]], dict[str, Any]] | None = None


# ------------------------------------------------------------------------------ queue


class JobQueue:
    """Jobs of one node, stored in its ledger database."""

    def __init__(self, engine: Engine, kinds: Iterable[JobKind] = (), *,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._kinds: dict[str, JobKind] = {}
        self._lock = threading.Lock()
        self._running: dict[int, JobContext] = {}  # jobs running in this process
        self._wake = threading.Event()  # set by submit/register: a worker may have work
        for kind in kinds:
            self.register(kind)

    # ---- kinds --------------------------------------------------------------------------
    def register(self, kind: JobKind) -> None:
        """Make ``kind`` runnable and submittable. A name is registered once."""
        if not isinstance(kind.name, str) or not kind.name.strip():
            raise InputError(f"a job kind needs a non-empty name, got {kind.name!r}")
        with self._lock:
            if kind.name in self._kinds:
                raise InputError(f"job kind {kind.name!r} is already registered")
            self._kinds[kind.name] = kind
        self.wake()  # jobs of this kind may already be queued (submitted before a restart)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Names of the registered kinds, sorted."""
        return tuple(sorted(self._kinds))

    def _kind(self, name: str) -> JobKind:
        found = self._kinds.get(name)
        if found is None:
            known = ", ".join(self.kinds) or "none are registered on this node"
            raise InputError(f"unknown job kind {name!r}; known kinds: {known}", kind=name, known=list(self.kinds))
        return found

    # ---- submit, read, cancel -----------------------------------------------------------
    def submit(self, kind: str, params: dict[str, Any] | None = None) -> JobRow:
        """Queue a job of ``kind``; ``params`` are checked and normalised by its ``validate``."""
        job_kind = self._kind(kind)
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InputError(f"params must be a JSON object, got {type(params).__name__}")
        try:
            normalised = job_kind.validate(dict(params))  # a copy: validate may normalise in place
        except LoraLedgerError:
            raise
        except (ValueError, TypeError, LookupError) as exc:
            # e.g. a pydantic ValidationError, int("x"), params["missing"]: the client's input
            raise InputError(f"invalid params for a {kind} job: {_exc_text(exc)}", kind=kind) from None
        if not isinstance(normalised, dict):
            raise TypeError(f"validate of job kind {kind!r} returned {type(normalised).__name__}, not a dict")
        try:
            text = _dumps(normalised)
        except (TypeError, ValueError) as exc:
            raise InputError(f"params of a {kind} job must be JSON: {exc}", kind=kind) from None
        row = JobRow(kind=kind, status=JobStatus.QUEUED, params=text, created_at=self.clock())
        with session_scope(self.engine, what=f"cannot queue a {kind} job") as session:
            session.add(row)
            session.flush()  # assigns the id
        log.info("job %s (%s) queued", row.id, kind)
        self.wake()
        return row

    def get(self, job_id: int) -> JobRow:
        """Job ``job_id``; ``NotFoundError`` if there is none."""
        with read_scope(self.engine, what=f"cannot read job {job_id}") as conn:
            found = conn.execute(core_select(JobRow.__table__).where(JobRow.__table__.c.id == job_id)).first()
        if found is None:
            raise NotFoundError(f"job {job_id} not found", job_id=job_id)
        return _job_row(found._mapping)

    def list(self, *, status: str | None = None, kind: str | None = None, limit: int = 100) -> builtins.list[JobRow]:
        """Jobs, newest first, optionally only those with ``status`` and/or ``kind``."""
        if status is not None and status not in JOB_STATUSES:
            raise InputError(f"unknown job status {status!r}; use one of {', '.join(JOB_STATUSES)}", field="status")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InputError(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {limit!r}", field="limit")
        table = JobRow.__table__
        query = core_select(table).order_by(table.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(table.c.status == status)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        with read_scope(self.engine, what="cannot list jobs") as conn:
            return [_job_row(found._mapping) for found in conn.execute(query)]

    def cancel(self, job_id: int) -> JobRow:
        """Cancel job ``job_id``: a queued job at once, a running one at its handler's next
        check (``cancel_requested``; it ends ``cancelled`` then). Cancelling a running job
        twice is harmless; a finished job raises ``InputError``."""
        with session_scope(self.engine, what=f"cannot cancel job {job_id}") as session:
            # FOR UPDATE: on PostgreSQL a concurrent claim waits for this decision (and
            # then finds the job no longer queued); SQLite's BEGIN IMMEDIATE already serialises.
            row = session.exec(select(JobRow).where(JobRow.id == job_id).with_for_update()).first()
            if row is None:
                raise NotFoundError(f"job {job_id} not found", job_id=job_id)
            if row.status in JobStatus.FINISHED:
                raise InputError(f"job {job_id} already {row.status}", job_id=job_id, status=row.status)
            if row.status == JobStatus.QUEUED:
                row.status = JobStatus.CANCELLED
                row.finished_at = self.clock()
            else:
                row.cancel_requested = True
            session.add(row)
        if row.status == JobStatus.RUNNING:
            with self._lock:
                ctx = self._running.get(job_id)
            if ctx is not None:
                ctx._cancel.set()  # the handler sees it at its next check, no database read needed
            log.info("job %s: cancel requested", job_id)
        else:
            log.info("job %s cancelled before it started", job_id)
        return row

    def recover(self) -> builtins.list[int]:
        """Mark failed every job left ``running`` by a process that is gone (call at node
        start, before a worker runs); returns their ids. Jobs running in *this* process are
        left alone."""
        with self._lock:
            mine = set(self._running)
        with session_scope(self.engine, what="cannot recover interrupted jobs") as session:
            running = session.exec(select(JobRow).where(JobRow.status == JobStatus.RUNNING).with_for_update()).all()
            stale = sorted((row for row in running if row.id is not None and row.id not in mine), key=lambda r: r.id)
            for row in stale:
                self._interrupted(session, row)
        return [row.id for row in stale if row.status == JobStatus.FAILED]  # type: ignore[misc]

    def _interrupted(self, session: Any, row: JobRow) -> None:
        """Queue ``row`` (running, interrupted) again to resume, or fail it (inside ``session``)."""
        kind = self._kinds.get(row.kind)
        params = json.loads(row.params)
        restarts = int(params.get("restarts", 0))
        if kind is not None and kind.resume is not None and restarts < MAX_RESTARTS:
            resumed = {**kind.resume(params), "restarts": restarts + 1}
            row.status, row.params, row.started_at, row.cancel_requested = JobStatus.QUEUED, _dumps(resumed), None, False
            log.warning("job %s (%s): %s; queued again to resume (restart %s of %s)", row.id, row.kind, INTERRUPTED,
                        restarts + 1, MAX_RESTARTS)
        else:
            row.status, row.error, row.finished_at = JobStatus.FAILED, INTERRUPTED, self.clock()
            if restarts >= MAX_RESTARTS:
                row.error = f"{INTERRUPTED} ({restarts} times)"
            log.warning("job %s: %s; marked failed", row.id, row.error)
        session.add(row)

    # ---- running ------------------------------------------------------------------------
    def claim_next(self) -> JobRow | None:
        """Move the oldest queued job of a registered kind to ``running`` and return it;
        ``None`` when there is none. Safe with several workers and processes: the move is a
        conditional ``UPDATE ... WHERE status = 'queued'``, and a worker whose update
        matched no row lost the race and looks again."""
        names = self.kinds
        if not names:
            return None
        while True:
            with session_scope(self.engine, what="cannot claim a job") as session:
                job_id = session.exec(
                    select(JobRow.id)
                    .where(JobRow.status == JobStatus.QUEUED, JobRow.kind.in_(names))  # type: ignore[attr-defined]
                    .order_by(JobRow.id)
                    .limit(1)
                ).first()
                if job_id is None:
                    return None
                claimed = session.exec(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.status == JobStatus.QUEUED)
                    .values(status=JobStatus.RUNNING, started_at=self.clock())
                    .execution_options(synchronize_session=False)
                )
                if claimed.rowcount == 1:
                    row = session.exec(select(JobRow).where(JobRow.id == job_id)).one()
                    log.info("job %s (%s) started", row.id, row.kind)
                    return row
            # Another worker took it between our SELECT and UPDATE (PostgreSQL, READ COMMITTED).

    def run_one(self, *, stop: threading.Event | None = None) -> JobRow | None:
        """Claim the next job and run it to the end; its final row, or ``None`` if none was queued.

        Outcome of the handler → stored state:

        * returns a JSON-serialisable value → ``done`` with it as ``result`` (``cancelled``
          if the handler had been told to stop by ``ctx.cancelled`` and returned anyway:
          the result is kept);
        * raises :class:`JobCancelled` → ``cancelled``;
        * raises :class:`JobInterrupted` (``stop`` was set) → ``failed``, :data:`INTERRUPTED`;
        * raises a :class:`~loraledger.errors.LoraLedgerError` → ``failed`` with its message;
        * raises anything else → ``failed`` with ``"<TypeName>: <message>"``, traceback logged;
        * returns something that is not JSON → ``failed``, saying so;
        * ``KeyboardInterrupt``/``SystemExit`` → ``failed``, then re-raised.

        ``stop`` (the worker's stop flag) makes ``ctx.cancelled`` true, so a handler stops
        at its next check when the node shuts down.
        """
        row = self.claim_next()
        if row is None:
            return None
        return self._run(row, stop)

    def _run(self, row: JobRow, stop: threading.Event | None) -> JobRow:
        assert row.id is not None
        job_id = row.id
        ctx = JobContext(self, job_id, json.loads(row.params), stop=stop)
        with self._lock:
            self._running[job_id] = ctx
        try:
            status, result, error = JobStatus.DONE, None, None
            try:
                value = self._kind(row.kind).run(ctx.params, ctx)
            except JobInterrupted:
                status, error = JobStatus.FAILED, INTERRUPTED
            except JobCancelled:
                status = JobStatus.CANCELLED
            except LoraLedgerError as exc:
                status, error = JobStatus.FAILED, str(exc)
                log.error("job %s (%s) failed: %s", job_id, row.kind, exc)
            except Exception as exc:
                status, error = JobStatus.FAILED, _exc_text(exc)
                log.exception("job %s (%s) failed with an unexpected error", job_id, row.kind)
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: record, then let it go on
                try:
                    self._finish(job_id, JobStatus.FAILED, None, f"{INTERRUPTED} ({type(exc).__name__})", ctx,
                                 attempts=1)
                except LoraLedgerError:
                    pass  # logged by _finish; the interrupt matters more, and recover() closes the job
                raise
            else:
                try:
                    result = _dumps(value)
                except (TypeError, ValueError) as exc:
                    status, error = JobStatus.FAILED, f"the job's result is not JSON-serialisable: {exc}"
                    log.error("job %s (%s): %s", job_id, row.kind, error)
                else:
                    if ctx.observed == "cancel":
                        status = JobStatus.CANCELLED
                    elif ctx.observed == "stop":
                        status, error = JobStatus.FAILED, INTERRUPTED
            if error == INTERRUPTED and self._resumable(row.kind):
                return self._requeue(job_id, ctx)
            return self._finish(job_id, status, result, error, ctx)
        finally:
            with self._lock:
                self._running.pop(job_id, None)

    def _finish(self, job_id: int, status: str, result: str | None, error: str | None, ctx: JobContext, *,
                attempts: int = FINISH_ATTEMPTS) -> JobRow:
        """Store a job's final state (and its last unwritten progress), retrying a failing
        database a few times: a job must not stay ``running``. If every attempt fails the
        error is raised, and ``recover`` at the next start marks the job failed."""
        values: dict[str, Any] = {"status": status, "finished_at": self.clock(), "result": result,
                                  "error": _clip(error) if error is not None else None}
        progress = ctx.pending_progress()
        if progress is not None:
            values["progress"] = progress
        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                with session_scope(self.engine, what=f"cannot store the outcome of job {job_id}") as session:
                    updated = session.exec(
                        update(JobRow).where(JobRow.id == job_id, JobRow.status == JobStatus.RUNNING)
                        .values(**values).execution_options(synchronize_session=False)
                    )
                    row = session.exec(select(JobRow).where(JobRow.id == job_id)).one()
                break
            except LoraLedgerError as exc:
                if attempt == attempts:
                    log.error("job %s: %s; giving up (it is marked failed at the next node start)", job_id, exc)
                    raise
                log.warning("job %s: %s (retrying in %.1f s)", job_id, exc, delay)
                time.sleep(delay)
                delay *= 2
        if updated.rowcount != 1:
            # Someone else (recover() in another process) already closed it; keep their verdict.
            log.warning("job %s was already %s when it ended as %s", job_id, row.status, status)
        else:
            log.info("job %s ended %s%s", job_id, status, f": {values['error']}" if error else "")
        return row

    def _resumable(self, kind: str) -> bool:
        known = self._kinds.get(kind)
        return known is not None and known.resume is not None

    def _requeue(self, job_id: int, ctx: JobContext) -> JobRow:
        """A resumable job the node is stopping: back to the queue (or failed past its restarts)."""
        with session_scope(self.engine, what=f"cannot queue job {job_id} again") as session:
            row = session.exec(select(JobRow).where(JobRow.id == job_id).with_for_update()).one()
            if row.status == JobStatus.RUNNING:
                progress = ctx.pending_progress()
                if progress is not None:
                    row.progress = progress
                self._interrupted(session, row)
            session.flush()
            session.refresh(row)
            return row

    def _should_stop(self, job_id: int) -> bool:
        """Whether the database says running job ``job_id`` must stop: cancel requested, or
        no longer running at all (closed by another process). A read error is logged and
        counts as "no": a flaky database must not kill a long job."""
        table = JobRow.__table__
        try:
            with read_scope(self.engine, what=f"cannot read the cancel flag of job {job_id}") as conn:
                found = conn.execute(core_select(table.c.cancel_requested, table.c.status)
                                     .where(table.c.id == job_id)).first()
        except LoraLedgerError as exc:
            log.warning("job %s: %s", job_id, exc)
            return False
        return found is None or bool(found.cancel_requested) or found.status != JobStatus.RUNNING

    # ---- worker wake-up -----------------------------------------------------------------
    def wake(self) -> None:
        """Tell idle workers there may be work (called by submit and register)."""
        self._wake.set()

    def wait_for_work(self, timeout: float) -> None:
        """Block until :meth:`wake` or ``timeout`` seconds, whichever is first."""
        self._wake.wait(timeout)
        # Cleared after waking: a submit that lands between the wait and the clear is not
        # lost, because the worker looks for queued jobs right after this returns.
        self._wake.clear()


# ------------------------------------------------------------------------------ worker


class JobWorker(threading.Thread):
    """Daemon thread running the queue's jobs one at a time (a training job takes the whole
    machine). Idle, it waits for a submit (starts the job at once) or ``tick`` seconds (jobs
    queued by another process). A failure (a locked or unreachable database) is logged once,
    retried with backoff and reported to ``health`` until the worker works again."""

    def __init__(self, queue: JobQueue, *, tick: float = 1.0, name: str = "job-worker",
                 health: NodeHealth | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self.queue = queue
        self.tick = tick
        self.stopping = threading.Event()
        self.retry = Retry("job worker", health=health, logger=log, base=tick)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    job = self.queue.run_one(stop=self.stopping)
                except Exception as exc:  # noqa: BLE001 - the worker outlives any failure: logged, backed off
                    self.stopping.wait(self.retry.failed(exc))
                    continue
                self.retry.succeeded()
                if job is None and not self.stopping.is_set():
                    self.queue.wait_for_work(self.tick)
        except BaseException as exc:  # a handler's SystemExit: the job is already marked failed
            log.critical("job worker stopped by %s; no more jobs run until the node restarts", type(exc).__name__)
            raise

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after the current job: its handler's next ``check_cancelled`` raises
        :class:`JobInterrupted`. Waits up to ``timeout`` seconds; a handler that never checks
        is abandoned (daemon thread) and its job is marked failed by the next ``recover``."""
        self.stopping.set()
        self.queue.wake()
        if self.is_alive():
            self.join(timeout)
        if self.is_alive():
            log.warning("job worker: the running job did not stop within %s s; it is marked failed at the next start",
                        timeout)


# ------------------------------------------------------------------------------ JSON shape


def job_to_dict(row: JobRow) -> dict[str, Any]:
    """A job as the API and the CLI show it (camelCase keys, JSON columns decoded)."""
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "params": json.loads(row.params),
        "createdAt": row.created_at,
        "startedAt": row.started_at,
        "finishedAt": row.finished_at,
        "progress": json.loads(row.progress) if row.progress is not None else None,
        "result": json.loads(row.result) if row.result is not None else None,
        "error": row.error,
        "cancelRequested": bool(row.cancel_requested),
    }
