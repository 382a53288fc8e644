"""The node's log lines: JSON objects (or plain text), each with the id of the HTTP request it
belongs to.

:func:`configure_logging` installs one handler on the root logger (uvicorn's loggers propagate to
it). :data:`request_id` is a context variable the API sets for each request (from a valid
``X-Request-Id`` header, else a fresh one): every line logged while the request is handled, in
its task or in the worker threads FastAPI runs it on (they copy the context), carries it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid

__all__ = ["JsonFormatter", "configure_logging", "new_request_id", "request_id", "valid_request_id"]

#: The id of the HTTP request being handled (None outside one).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("loraledger_request_id", default=None)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: Attributes every LogRecord has; anything else was passed in ``extra=`` and is written as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def new_request_id() -> str:
    return uuid.uuid4().hex


def valid_request_id(value: str | None) -> str | None:
    """A client's ``X-Request-Id`` if it is a sane token (at most 64 of ``A-Za-z0-9._:-``), else None."""
    return value if value is not None and _REQUEST_ID.fullmatch(value) else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
    ``message``, ``requestId`` when in a request, fields passed with ``extra=``, ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            line["requestId"] = current
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class _TextWithRequestId(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        current = request_id.get()
        return f"{text} [request {current}]" if current is not None else text


def configure_logging(fmt: str = "json", level: str = "info") -> None:
    """Send every log line to stderr as ``fmt`` (``json`` or ``text``) from ``level`` up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         _TextWithRequestId("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through the root handler, not their own
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
