"""Each HTTP request gets an id and one log line.

The id is the client's ``X-Request-Id`` when it is a sane token, else a fresh one; it is set in
:data:`loraledger.logs.request_id` for everything logged while the request is handled and sent
back as ``X-Request-Id``. When the response ends (its last byte, for a stream), one line says the
method, path, status and milliseconds (probes and ``/metrics`` at debug level, so a supervisor
polling them does not fill the log).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..logs import new_request_id, request_id, valid_request_id

__all__ = ["RequestLog"]

log = logging.getLogger("loraledger.http")
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestLog:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"x-request-id"), None)
        rid = valid_request_id(given) or new_request_id()
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it starts a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("ascii"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope.get("path", "")
            level = logging.DEBUG if path in _QUIET else logging.INFO
            ms = round((time.perf_counter() - started) * 1000, 1)
            log.log(level, "%s %s %s %.1f ms", scope.get("method"), path, status, ms,
                    extra={"method": scope.get("method"), "path": path, "status": status, "ms": ms})
            request_id.reset(token)
