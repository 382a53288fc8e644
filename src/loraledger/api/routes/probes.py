"""Liveness and readiness probes, for supervisors and load balancers (outside ``/v1``).

``GET /healthz``: the process answers (no I/O at all). ``GET /readyz``: the node can do its work
now: the database takes a write transaction, the chain answers, and the model is loaded when the
node serves one; 200 with each check's result, or 503 naming the checks that failed.
``/v1/health`` says more (the background loops' problems, the epoch, the log size).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...db import check_writable
from ...errors import LoraLedgerError
from ..deps import Node
from ..schemas import errors

__all__ = ["router"]

router = APIRouter(tags=["probes"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive (answers without touching the database, the chain or the model)."""
    return {"status": "alive"}


@router.get("/readyz", responses=errors(503))
def readyz(node: Node) -> Any:
    """``{"status": "ready", "checks": {"database", "chain", "model"}}``; 503 with the error body
    (``error`` ``not_ready``, a ``message`` naming the failed checks) and the same two fields."""
    checks: dict[str, str] = {}
    failed = False
    try:
        check_writable(node.engine)
        checks["database"] = "ok: writable"
    except LoraLedgerError as exc:
        checks["database"], failed = f"failed: {exc.message}", True
    try:
        checks["chain"] = f"ok: block {node.contracts.client.block_number()}"
    except LoraLedgerError as exc:
        checks["chain"], failed = f"failed: {exc.message}", True
    if node.settings.serve_base is None:
        checks["model"] = "ok: this node serves no model"
    elif node.serving is None:
        checks["model"], failed = f"failed: the model at {node.settings.serve_base} is not loaded", True
    else:
        checks["model"] = f"ok: {node.serving.base_name} loaded"
    if not failed:
        return {"status": "ready", "checks": checks}
    broken = "; ".join(f"{name} {result}" for name, result in checks.items() if result.startswith("failed"))
    return JSONResponse({"error": "not_ready", "message": f"not ready: {broken}", "status": "not ready",
                         "checks": checks}, status_code=503)
