"""Table of the node's background jobs (training, benchmarks): what was asked, where it stands.

Jobs are the node's private working state, not part of the public record log. JSON columns
hold canonical JSON text (sorted keys, no spaces), so the same parameters are stored as the
same bytes on SQLite and PostgreSQL. Times are unix seconds as floats.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class JobStatus:
    """A job's states. ``queued`` → ``running`` → one of the three finished states; a queued
    job may also go straight to ``cancelled``."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    ALL = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
    FINISHED = (DONE, FAILED, CANCELLED)


class JobRow(SQLModel, table=True):
    """One submitted job."""

    __tablename__ = "jobs"
    # AUTOINCREMENT on SQLite: an id is never handed out twice, so a client polling job N
    # can never end up looking at another job (PostgreSQL sequences never reuse anyway).
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True)
    status: str = Field(index=True)
    params: str  # canonical JSON object, as normalised by the kind's validate
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    progress: str | None = None  # canonical JSON object, the handler's latest report
    result: str | None = None  # canonical JSON, what the handler returned
    error: str | None = None  # one line for a person, set when status is failed
    cancel_requested: bool = False
