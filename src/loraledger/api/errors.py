"""The API's one error mapping: every refusal is a JSON body ``{"error", "message", ...}``.

* :data:`STATUS_BY_ERROR`: the ``LoraLedgerError`` → HTTP status table (first match wins,
  so subclasses come before their bases).
* :func:`install_error_handlers`: handlers for ``LoraLedgerError``, FastAPI's request
  validation (422, or 400 for a non-canonical integer parameter), Starlette's
  ``HTTPException`` (404 for an unknown route, 405 for a wrong method), and a catch-all
  middleware answering an unexpected exception with a JSON 500 (the traceback goes to the
  log, never to the client).
* :class:`ErrorBody`: the body's schema, the one the OpenAPI document names for every error.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    ChainError,
    ConfigError,
    InputError,
    LedgerError,
    LoraLedgerError,
    NotFoundError,
    Overloaded,
    PaymentRequired,
    ResourceError,
    Unauthorized,
)
from .params import NonCanonicalInteger

__all__ = [
    "STATUS_BY_ERROR",
    "BodyTooLarge",
    "ErrorBody",
    "error_response",
    "install_error_handlers",
    "status_of",
]

log = logging.getLogger("loraledger.api")


class BodyTooLarge(InputError):
    """A request body is over its endpoint's size limit (answered 413)."""

    code = "too_large"


STATUS_BY_ERROR: list[tuple[type[LoraLedgerError], int]] = [
    (BodyTooLarge, 413),
    (InputError, 400),
    (Unauthorized, 401),
    (PaymentRequired, 402),
    (NotFoundError, 404),
    (LedgerError, 409),
    (ChainError, 502),
    (ConfigError, 503),
    (Overloaded, 429),
    (ResourceError, 503),  # out of memory or a device failed: try again later
]


class ErrorBody(BaseModel):
    """Every error the API answers: a machine code and one line for a person. Some errors
    add fields (``field``, ``rows``, ``limit``, ...)."""

    model_config = ConfigDict(extra="allow")

    error: str
    message: str


def status_of(exc: LoraLedgerError) -> int:
    """The HTTP status of a ``LoraLedgerError`` (500 for a kind the table does not name)."""
    return next((status for cls, status in STATUS_BY_ERROR if isinstance(exc, cls)), 500)


#: The OpenAI-compatible routes answer errors in OpenAI's shape, which its clients parse:
#: ``{"error": {"message", "type", "param", "code"}}``.
OPENAI_PATHS = frozenset({"/v1/models", "/v1/completions", "/v1/chat/completions", "/v1/load_lora_adapter",
                          "/v1/unload_lora_adapter"})
_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota", 404: "invalid_request_error",
                 405: "invalid_request_error", 413: "invalid_request_error", 422: "invalid_request_error",
                 429: "rate_limit_error"}


def is_openai_route(request: Request | None) -> bool:
    return request is not None and (request.url.path in OPENAI_PATHS or request.url.path.startswith("/v1/models/"))


def openai_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body."""
    return {"error": {"message": message, "type": _OPENAI_TYPES.get(status, "server_error"), "param": param,
                      "code": code}}


def error_response(exc: LoraLedgerError, headers: dict[str, str] | None = None, *,
                   request: Request | None = None) -> JSONResponse:
    """The JSON response for ``exc`` (OpenAI's shape on the OpenAI-compatible routes)."""
    status = status_of(exc)
    if isinstance(exc, Overloaded):
        headers = {**(headers or {}), "Retry-After": str(exc.retry_after)}
    if is_openai_route(request):
        code = "model_not_found" if status == 404 and request.url.path != "/v1/models" else exc.code
        content = openai_body(status, code, exc.message, exc.details.get("param"))
        if isinstance(exc, PaymentRequired):  # what the payer has and what the request needs, beside OpenAI's fields
            content["error"].update(_jsonable({k: v for k, v in exc.details.items() if k != "param"}))
    else:
        content = _jsonable(exc.to_dict())
    return JSONResponse(status_code=status, content=content, headers=headers)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    # ("path", "number") → "path.number"; a body error's loc may hold list indices.
    return ".".join(str(part) for part in loc)


async def _ledger_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LoraLedgerError)
    return error_response(exc, request=request)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for error in errors:
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, NonCanonicalInteger):  # an integer spelled "1.0", "+1", "01", " 1": 400
            name = str(error["loc"][-1]) if error.get("loc") else "parameter"
            return error_response(InputError(f"{_where(error.get('loc', ()))}: {cause}", field=name), request=request)
    problems = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors)
    if is_openai_route(request):
        return JSONResponse(status_code=422, content=openai_body(422, "invalid_input", problems[:2000]))
    return JSONResponse(status_code=422, content={"error": "invalid_input", "message": problems[:2000]})


_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "too_large"}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404:
        message = f"no route {request.method} {request.url.path[:200]}"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path[:200]}"
        allow = (exc.headers or {}).get("Allow")
        if allow:
            message += f" (allowed: {allow})"
    else:
        message = str(exc.detail) if exc.detail else HTTPStatus(status).phrase
    code = _CODES.get(status, "invalid_input" if status < 500 else "internal")
    if is_openai_route(request):
        return JSONResponse(status_code=status, content=openai_body(status, code, message), headers=exc.headers)
    return JSONResponse(status_code=status, content={"error": code, "message": message}, headers=exc.headers)


class CatchAll:
    """ASGI middleware: an exception nothing else handled becomes a JSON 500 (the traceback
    is logged once, here), so a bug never reaches the client as a traceback or a dropped
    connection. Starlette's own last resort answers plain text and re-raises."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the last resort: every bug answers JSON
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:  # the response is half sent: nothing better to do than to drop it
                raise
            body = {"error": "internal", "message": f"internal error ({type(exc).__name__}); see the node's log"}
            await JSONResponse(status_code=500, content=body)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error on ``app`` with an :class:`ErrorBody`."""
    app.add_exception_handler(LoraLedgerError, _ledger_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(CatchAll)
