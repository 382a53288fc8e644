"""FastAPI app factory: ``create_app(settings)``.

Read endpoints serve what anyone needs to check the node's books: epoch files, reward
proofs, record inclusion proofs and log consistency proofs. Admin endpoints (append
records, close an epoch, create datanets, submit jobs) need ``Authorization: Bearer
<LORALEDGER_ADMIN_TOKEN>``. Every error is a JSON body ``{"error", "message", ...}`` with
a 4xx status (5xx only when the chain or the node itself fails), never a traceback.
``GET /metrics`` answers Prometheus metrics (no auth). ``/dashboard`` serves HTML pages for
people (:mod:`loraledger.api.dashboard`; ``/`` redirects there), outside the OpenAPI document.

The routes live in one module per concern (:mod:`loraledger.api.routes`); they reach the
node and the settings through ``request.app.state`` (:mod:`loraledger.api.deps`), read
bodies through one guarded reader (:mod:`loraledger.api.body`) and raise
``LoraLedgerError``s that one table maps to statuses (:mod:`loraledger.api.errors`).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

from ..config import Settings
from ..node.context import NodeContext, open_node
from .dashboard import mount_dashboard
from .errors import install_error_handlers
from .requestlog import RequestLog
from .routes import adapters, datanets, jobs, ledger, metrics, openai, payers, probes
from .schemas import install_openapi

__all__ = ["create_app"]


def create_app(settings: Settings, *, operator: LocalAccount | None = None, node: NodeContext | None = None) -> FastAPI:
    """Build the API for one node. ``node`` may be given (tests, the daemon); otherwise it is
    opened from ``settings`` at start-up.

    The app only queues jobs (``/v1/jobs``): running them (``JobWorker``) and failing jobs
    a dead process left running (``JobQueue.recover``) is the daemon's part
    (:func:`loraledger.node.daemon.run_node`), so an app served without the daemon (tests,
    a read-only replica) never runs a job by itself."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.node is None:
            app.state.node = open_node(settings, operator=operator)
        yield

    app = FastAPI(title="loraledger node", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.node = node
    # Per-app state the routes share: one epoch close and one snapshot at a time, and the
    # owner signatures already used (replay guard).
    app.state.close_lock = threading.Lock()
    app.state.snapshot_lock = threading.Lock()
    app.state.owner_signatures = datanets.SeenSignatures()
    # Prometheus metrics (GET /metrics): a registry of this app's own, never the global one.
    app.state.metrics_registry = metrics.node_registry(app.state)
    for module in (ledger, datanets, jobs, adapters, openai, payers, metrics, probes):
        app.include_router(module.router)
    mount_dashboard(app)
    install_error_handlers(app)
    app.add_middleware(RequestLog)  # outermost of ours: every response, errors included, carries the id
    install_openapi(app)
    return app
