"""What is wrong with the node right now, for ``/v1/health`` and the logs.

The node's background loops (epochs, jobs) never die on a failure: they log one line, back
off and try again. While a part of the node keeps failing, :class:`NodeHealth` holds why,
so ``/v1/health`` says ``degraded`` with the reason (``chain unreachable: ...``, ``database
locked: ...``) instead of ``ok``, and says ``ok`` again as soon as the part recovers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["NodeHealth", "Problem"]


@dataclass(frozen=True)
class Problem:
    """One part of the node that is failing: which part, why, since when (unix seconds)."""

    component: str
    reason: str
    since: float

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, "reason": self.reason, "since": int(self.since)}


class NodeHealth:
    """The failing parts of one node (thread-safe). ``fail`` and ``ok`` report on a part;
    ``status`` is ``"ok"`` when no part is failing, else ``"degraded"``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._problems: dict[str, Problem] = {}

    def fail(self, component: str, reason: str) -> bool:
        """Record that ``component`` is failing; returns whether it was healthy until now
        (so a caller logs the first failure loudly and the repeats quietly)."""
        with self._lock:
            previous = self._problems.get(component)
            self._problems[component] = Problem(component, reason, previous.since if previous else time.time())
            return previous is None

    def ok(self, component: str) -> bool:
        """Record that ``component`` works; returns whether it was failing until now."""
        with self._lock:
            return self._problems.pop(component, None) is not None

    @property
    def status(self) -> str:
        with self._lock:
            return "degraded" if self._problems else "ok"

    def problems(self) -> list[Problem]:
        with self._lock:
            return sorted(self._problems.values(), key=lambda p: p.component)
