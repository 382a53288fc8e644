"""The node's dashboard: server-rendered pages of its datanets, adapters, answers, epochs and
contributors, and a Claim button that works with any EIP-1193 wallet. Mounted at ``/dashboard``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from .pages import router
from .web import create_dashboard

__all__ = ["mount_dashboard"]


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/dashboard`` of ``app`` (sharing its state) and send ``/`` there."""
    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("dashboard/", status_code=307)  # relative: kept behind a proxy's prefix

    app.mount("/dashboard", create_dashboard(app.state, router), name="dashboard")
