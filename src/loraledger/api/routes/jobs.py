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

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from ...errors import InputError, NotFoundError
from ...jobs.queue import JobQueue, job_to_dict
from ..body import BodyLimits, JsonBody
from ..deps import AdminOnly, current_node
from ..params import CanonicalInt
from ..schemas import JOB_BODY, JOB_EXAMPLE, errors, json_body

__all__ = ["router"]

_MAX_ID = 2**63 - 1  # what the ledger database stores

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# Job params are small: no data goes inline (1 MiB, the default).
_job_body = JsonBody(BodyLimits(), empty='request body is empty; send {"kind": "...", "params": {...}}')


def _queue(request: Request) -> JobQueue:
    return current_node(request).jobs


Jobs = Annotated[JobQueue, Depends(_queue)]


def _job_id(value: int) -> int:
    if not 1 <= value <= _MAX_ID:  # ids start at 1; larger ones do not fit the database
        raise NotFoundError(f"job {value} not found", job_id=value)
    return value


@router.get("", responses=errors(400, 409, 422, 503))
def list_jobs(
    jobs: Jobs,
    status: str | None = None,
    kind: str | None = None,
    limit: Annotated[CanonicalInt, Query(description="at most this many jobs, 1..1000")] = 100,
) -> list[dict[str, Any]]:
    return [job_to_dict(row) for row in jobs.list(status=status, kind=kind, limit=limit)]


@router.get("/{job_id}", responses=errors(400, 404, 409, 422, 503))
def get_job(jobs: Jobs, job_id: CanonicalInt) -> dict[str, Any]:
    return job_to_dict(jobs.get(_job_id(job_id)))


@router.post("", status_code=201, dependencies=[AdminOnly], responses=errors(400, 401, 409, 413, 503),
             openapi_extra=json_body(JOB_BODY, example=JOB_EXAMPLE))
def submit(jobs: Jobs, body: Annotated[Any, Depends(_job_body)]) -> dict[str, Any]:
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


@router.post("/{job_id}/cancel", dependencies=[AdminOnly], responses=errors(400, 401, 404, 409, 422, 503))
def cancel(jobs: Jobs, job_id: CanonicalInt) -> dict[str, Any]:
    return job_to_dict(jobs.cancel(_job_id(job_id)))
