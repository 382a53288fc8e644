"""How the node's background loops (epochs, jobs) live through failures.

A loop that meets an error must not die, and must not flood the log: :class:`Retry` logs
one clear line when a part starts failing (and again only if the reason changes), backs
off exponentially up to a cap, reports the part as failing to :class:`~loraledger.health.NodeHealth`
(so ``/v1/health`` says ``degraded`` with the reason), and logs one line and clears the
report when the part works again.
"""

from __future__ import annotations

import logging
import time

from .errors import ChainError, LedgerError, LoraLedgerError
from .health import NodeHealth

__all__ = ["Retry", "describe_failure"]


def describe_failure(exc: BaseException) -> str:
    """One line saying what failed, for logs and ``/v1/health``: ``chain unreachable: ...``,
    ``database locked: ...``, the error's own message, or the class of an unexpected one."""
    if isinstance(exc, ChainError):
        text = exc.message
        return text if text.startswith("chain") else f"chain: {text}"
    if isinstance(exc, LedgerError):
        text = exc.message
        return f"database locked: {text}" if "locked" in text.lower() else f"database: {text}"
    if isinstance(exc, LoraLedgerError):
        return exc.message
    return f"unexpected {type(exc).__name__}: {exc}"


class Retry:
    """Failure bookkeeping of one background loop (``component`` names it in health and logs)."""

    def __init__(self, component: str, *, health: NodeHealth | None, logger: logging.Logger, base: float = 1.0,
                 cap: float = 60.0) -> None:
        self.component = component
        self.health = health
        self.log = logger
        self.base = base
        self.cap = cap
        self.delay = base
        self._reason: str | None = None
        self._since = 0.0

    @property
    def failing(self) -> bool:
        return self._reason is not None

    def failed(self, exc: BaseException) -> float:
        """Record a failure; returns how long to wait before the next try."""
        reason = describe_failure(exc)
        if reason != self._reason:
            if self._reason is None:
                self._since = time.monotonic()
            if isinstance(exc, LoraLedgerError):
                self.log.error("%s failing: %s (retrying with backoff up to %.0f s)", self.component, reason, self.cap)
            else:  # a bug: keep the traceback, once
                self.log.exception("%s failing: %s (retrying with backoff up to %.0f s)", self.component, reason,
                                   self.cap)
            self._reason = reason
        else:
            self.log.debug("%s still failing: %s", self.component, reason)
        if self.health is not None:
            self.health.fail(self.component, reason)
        delay, self.delay = self.delay, min(self.delay * 2, self.cap)
        return delay

    def succeeded(self) -> None:
        """Record a success: clears the failure (one log line if there was one) and the backoff."""
        if self._reason is not None:
            self.log.info("%s recovered after %.0f s (was: %s)", self.component, time.monotonic() - self._since,
                          self._reason)
            self._reason = None
        if self.health is not None:
            self.health.ok(self.component)
        self.delay = self.base
