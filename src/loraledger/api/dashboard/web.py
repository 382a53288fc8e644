"""The dashboard's web plumbing: templates, error pages, security headers, and the app itself.

The dashboard is an app of its own, mounted by the node's API at ``/dashboard``. Mounting a sub-app (rather than adding routes to the API) gives the dashboard its own error
pages: every refusal under ``/dashboard`` is an HTML page (a ``LoraLedgerError`` at the status
:data:`~loraledger.api.errors.STATUS_BY_ERROR` gives it; an unknown page 404; a chain that does not
answer 502 "the chain is unreachable"; a bug 500 with the traceback in the log only), while the
API keeps its JSON bodies. The one JSON route (``.../claim.json``) answers errors as the API does.
The sub-app shares the API's ``state`` (the node, the settings), has no OpenAPI document, and its
routes are ``include_in_schema=False``, so the API's document is unchanged.

Every response carries a strict Content-Security-Policy: scripts, styles and images from the node
only (no inline script, no CDN); the templates are autoescaped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import State
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...errors import ChainError, InputError, LoraLedgerError
from ..errors import error_response, status_of
from . import present

__all__ = ["SECURITY_HEADERS", "base_path", "create_dashboard", "render"]

log = logging.getLogger("loraledger.dashboard")

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.filters.update(open=present.format_open, short=present.short, time=present.format_time,
                    value=present.format_value)


def base_path(request: Request) -> str:
    """Where the dashboard is mounted (``/dashboard``, behind any proxy prefix): links start here."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered with ``context`` (plus ``base``, the dashboard's path)."""
    html = _env.get_template(template).render(base=base_path(request), path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)


_TITLES = {400: "Bad request", 401: "Not allowed", 404: "Not found", 405: "Method not allowed", 409: "Ledger problem",
           413: "Too large", 429: "Busy", 500: "Internal error", 502: "Chain error", 503: "Unavailable"}


def _error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", status_code=status, title=title, message=message, status=status)


def _wants_json(request: Request) -> bool:
    return request.url.path.endswith(".json")


async def _ledger_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoraLedgerError)
    if _wants_json(request):
        return error_response(exc, request=request)
    status = status_of(exc)
    title = _TITLES.get(status, "Error")
    if isinstance(exc, ChainError) and exc.code == "chain_unreachable":
        title = "The chain is unreachable"
    elif isinstance(exc, ChainError):
        title = "The chain refused a read"
    return _error_page(request, status, title, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404:
        message = f"There is no page at {request.url.path[:200]}."
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path[:200]}; the dashboard only reads."
    else:
        message = str(exc.detail or _TITLES.get(status, "error"))
    if _wants_json(request):
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_input")
        return JSONResponse({"error": code, "message": message}, status_code=status, headers=exc.headers)
    return _error_page(request, status, _TITLES.get(status, "Error"), message)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return await _ledger_error(request, InputError(problems[:500]))


class _Guard:
    """ASGI middleware: the security headers on every response, and an HTML 500 page (traceback to
    the log only) for an exception nothing else handled."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present_names = {name.lower() for name, _ in headers}
                headers += [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()
                            if name.lower().encode() not in present_names]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:  # noqa: BLE001 - the last resort: a page, never a traceback
            log.exception("unexpected error on dashboard %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            request = Request(scope)
            page = _error_page(request, 500, "Internal error",
                               f"The page failed ({type(exc).__name__}); the node's log has the details.")
            await page(scope, receive, guarded_send)


def create_dashboard(state: State, router: APIRouter) -> FastAPI:
    """The dashboard app serving ``router``'s pages, sharing ``state`` (the node and settings) with
    the API that mounts it."""
    dashboard = FastAPI(title="loraledger dashboard", openapi_url=None, docs_url=None, redoc_url=None)
    dashboard.state = state
    dashboard.include_router(router)
    dashboard.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    dashboard.add_exception_handler(LoraLedgerError, _ledger_error)
    dashboard.add_exception_handler(StarletteHTTPException, _http_error)
    dashboard.add_exception_handler(RequestValidationError, _validation_error)
    dashboard.add_middleware(_Guard)
    return dashboard
