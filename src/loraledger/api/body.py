"""The one reader of request bodies: every JSON body the API takes goes through it.

FastAPI never parses a body itself here (no route declares a pydantic body parameter; the
OpenAPI schemas of the bodies are documentation only, :mod:`loraledger.api.schemas`).
Instead a route depends on a :class:`JsonBody` (or, where a signature covers the exact
bytes, :func:`read_body`), which

1. reads the stream with a cap: a declared ``Content-Length`` over the limit is refused
   before anything is read, a chunked body as soon as it passes the limit (413);
2. refuses nesting deeper than :data:`~loraledger.crypto.canonical.MAX_JSON_DEPTH` and
   more values than the route's bound, with a flat scan BEFORE parsing (400). The node
   imports py_ecc, which raises the recursion limit to 100,000: Python's C JSON parser
   then overflows the C stack on ~70 KB of ``[`` and the process dies with SIGSEGV;
3. parses strictly (:func:`~loraledger.crypto.canonical.strict_loads`): UTF-8 only, no
   duplicate keys, no NaN/Infinity (400).

Admin routes list :data:`~loraledger.api.deps.AdminOnly` first, so a refused call is
answered 401 before its body is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from ..crypto.canonical import MAX_JSON_DEPTH, NotJSON, strict_loads
from ..errors import InputError
from .errors import BodyTooLarge

__all__ = [
    "CONTRIBUTION_MAX_BYTES",
    "DEFAULT_MAX_BYTES",
    "RECORDS_MAX_BYTES",
    "BodyLimits",
    "JsonBody",
    "read_body",
]

MiB = 1024 * 1024
#: Jobs and admin calls: their bodies are small (no data travels inline).
DEFAULT_MAX_BYTES = 1 * MiB
#: ``POST /v1/records``: up to 10,000 records (``MAX_RECORDS_PER_REQUEST``); a fee record
#: is ~400 bytes with two weights, so this leaves ~1.6 KiB per record on average.
RECORDS_MAX_BYTES = 16 * MiB
#: ``POST /v1/datanets/{id}/contributions``: the rows travel as one JSON string. A batch may
#: hold 10,000 rows of up to 32 KiB each (``datanets.content``), 320 MiB in the worst
#: case, which no node should buffer per request; 64 MiB carries a full batch of rows of a
#: few KiB (JSON escaping included). Larger uploads are split into batches.
CONTRIBUTION_MAX_BYTES = 64 * MiB
# Parse in a worker thread above this size, so that a large body does not stall the
# event loop (and with it every other request) while it is scanned and parsed.
_THREAD_ABOVE = 256 * 1024


@dataclass(frozen=True)
class BodyLimits:
    """What one route accepts: bytes, JSON values (arrays, objects and their items), depth."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_values: int = 100_000
    max_depth: int = MAX_JSON_DEPTH


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, read once per request (later calls get the same bytes); 413 over ``max_bytes``."""
    cached: bytes | None = getattr(request.state, "raw_body", None)
    if cached is not None:
        if len(cached) > max_bytes:
            raise _too_large(max_bytes)
        return cached
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()) or len(declared) > 20:  # h11 refuses these first
            raise InputError("Content-Length must be a decimal number of bytes")
        if int(declared) > max_bytes:
            raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            chunks.append(chunk)
    except ClientDisconnect:
        raise InputError("the client went away before sending the whole body") from None
    body = b"".join(chunks)
    request.state.raw_body = body
    return body


def _too_large(max_bytes: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body is over this endpoint's limit of {max_bytes:,} bytes", limit=max_bytes)


def parse_json_body(raw: bytes, limits: BodyLimits) -> Any:
    """Parse a body read by :func:`read_body` (400 ``invalid_input`` if it is not acceptable JSON)."""
    try:
        return strict_loads(raw, what="request body", max_depth=limits.max_depth, max_values=limits.max_values)
    except NotJSON as exc:
        raise InputError(f"request body is not JSON: {exc.reason}") from None


class JsonBody:
    """Dependency: the request's JSON body, read and checked as the module docstring says.

    ``empty`` is the message for an empty body (``None``: an empty body is the value
    ``None``). One instance per route; FastAPI calls it once per request."""

    def __init__(self, limits: BodyLimits = BodyLimits(), *, empty: str | None = "request body is empty; send a JSON object"):
        self.limits = limits
        self.empty = empty

    async def __call__(self, request: Request) -> Any:
        raw = await read_body(request, self.limits.max_bytes)
        if not raw or raw.isspace():
            if self.empty is None:
                return None
            raise InputError(self.empty)
        if len(raw) > _THREAD_ABOVE:
            return await run_in_threadpool(parse_json_body, raw, self.limits)
        return parse_json_body(raw, self.limits)
