"""Job endpoints of the node API (``/v1/jobs``): background training and benchmark jobs.

Routes
------
* ``GET /v1/jobs?status=&kind=&limit=`` (public): jobs, newest first; ``status`` one of
  queued, running, done, failed, cancelled; ``limit`` 1..1000, default 100.
* ``GET /v1/jobs/{id}`` (public): one job; 404 if there is none.
* ``POST /v1/jobs`` (admin token; 201): ``{"kind": "...", "params": {...}}`` (``params``
  optional, default ``{}``) → the queued job. 400 with the reason for an unknown kind
  (the message lists the known ones) or params the kind refuses.
* ``POST /v1/jobs/{id}/cancel`` (admin token): the job after the request: ``cancelled``
  if it was still queued; ``running`` with ``cancelRequested: true`` if it was running
  (it turns ``cancelled`` when its handler next checks, typically within a second). 400
  if it had already finished, 404 if there is none.

A job's JSON (:func:`loraledger.jobs.queue.job_to_dict`)::

    {"id": 7, "kind": "train", "status": "running", "params": {...},
     "createdAt": 1700000000.1, "startedAt": 1700000001.2, "finishedAt": null,
     "progress": {...} | null, "result": ... | null, "error": null | "one line",
     "cancelRequested": false}

Times are unix seconds. Poll ``GET /v1/jobs/{id}`` until ``status`` is done, failed or
cancelled. Jobs run one at a time on the node's worker, which ``loraledger node run``
starts; an app served without it queues jobs that wait for a worker.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request

from ...config import Settings
from ...errors import InputError, NotFoundError
from ...jobs.queue import JobQueue, job_to_dict
from ..auth import admin_dependency

__all__ = ["install_jobs", "jobs_router"]

PREFIX = "/v1/jobs"
#: Largest request body ``POST /v1/jobs`` reads (job params are small: no data goes inline).
MAX_BODY_BYTES = 1024 * 1024
_MAX_ID = 2**63 - 1  # what the ledger database stores


def _queue(request: Request) -> JobQueue:
    return request.app.state.node.jobs


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise InputError(f"request body is larger than {MAX_BODY_BYTES} bytes")
    if not body.strip():
        raise InputError('request body is empty; send {"kind": "...", "params": {...}}')
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise InputError("request body is not JSON") from None


# Module level, so that FastAPI can resolve the (string) annotations of the routes.
Jobs = Annotated[JobQueue, Depends(_queue)]
JsonBody = Annotated[Any, Depends(_json_body)]


def _job_id(value: int) -> int:
    if not 1 <= value <= _MAX_ID:  # ids start at 1; larger ones do not fit the database
        raise NotFoundError(f"job {value} not found", job_id=value)
    return value


def jobs_router(settings: Settings) -> APIRouter:
    """The ``/v1/jobs`` routes; ``settings`` gives the admin token."""
    router = APIRouter(prefix=PREFIX, tags=["jobs"])
    require_admin = admin_dependency(settings)

    @router.get("")
    def list_jobs(
        jobs: Jobs,
        status: str | None = None,
        kind: str | None = None,
        limit: Annotated[int, Query(description="at most this many jobs, 1..1000")] = 100,
    ) -> list[dict[str, Any]]:
        return [job_to_dict(row) for row in jobs.list(status=status, kind=kind, limit=limit)]

    @router.get("/{job_id}")
    def get_job(jobs: Jobs, job_id: int) -> dict[str, Any]:
        return job_to_dict(jobs.get(_job_id(job_id)))

    @router.post("", status_code=201, dependencies=[Depends(require_admin)])
    def submit(jobs: Jobs, body: JsonBody) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InputError(f"request body must be a JSON object, got {type(body).__name__}")
        unknown = sorted(set(body) - {"kind", "params"})
        if unknown:
            raise InputError(f"unknown field(s) {', '.join(unknown)}; allowed: kind, params")
        kind = body.get("kind")
        if not isinstance(kind, str) or not kind:
            raise InputError("kind is required: the name of a job kind (a string)", field="kind")
        params = body.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InputError(f"params must be a JSON object, got {type(params).__name__}", field="params")
        return job_to_dict(jobs.submit(kind, params))

    @router.post("/{job_id}/cancel", dependencies=[Depends(require_admin)])
    def cancel(jobs: Jobs, job_id: int) -> dict[str, Any]:
        return job_to_dict(jobs.cancel(_job_id(job_id)))

    return router


def install_jobs(app: FastAPI, settings: Settings) -> None:
    """Add the job routes to ``app``. Refused admin calls and job errors are answered by the
    app's own handlers (``AdminUnauthorized`` → 401, ``InputError`` → 400, ``NotFoundError`` → 404)."""
    app.include_router(jobs_router(settings))
