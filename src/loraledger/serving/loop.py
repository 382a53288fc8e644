"""A background thread that drives :meth:`Engine.step`, so an asyncio API can submit and await."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .engine import Engine
from .requests import OutputEvent, RequestHandle
from .sampling import SamplingParams

__all__ = ["EngineLoop"]

log = logging.getLogger(__name__)

#: How long the thread sleeps when a step could do nothing (waiting requests without a slot).
_IDLE_POLL_S = 0.01


class EngineLoop:
    """Runs ``engine.step()`` on a thread while there is work, and sleeps until a submission wakes it.

    ``submit`` is the engine's, from any thread; a request's events arrive on its handle. ``stop``
    finishes every outstanding request with ``cancelled`` and joins the thread.
    """

    def __init__(self, engine: Engine, *, name: str = "loraledger-engine") -> None:
        self.engine = engine
        self._name = name
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        engine._wake = self._wake.set

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the engine loop is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.engine.abort_all("cancelled", "the engine stopped")

    def __enter__(self) -> EngineLoop:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def submit(self, prompt: str | Sequence[int], *, adapter: str | None = None,
               params: SamplingParams | None = None, request_id: str | None = None,
               on_event: Callable[[OutputEvent], None] | None = None) -> RequestHandle:
        if self._stopping.is_set() or self._thread is None:
            raise RuntimeError("the engine loop is not running")
        return self.engine.submit(prompt, adapter=adapter, params=params, request_id=request_id, on_event=on_event)

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self.engine.has_work():
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                events = self.engine.step()
            except Exception as exc:  # a bug or a foreign error: fail what is running, keep serving
                log.exception("engine step failed")
                self.engine.abort_all("error", f"engine step failed: {exc}", running_only=True)
                continue
            if not events and self.engine.running == 0:
                # Requests wait for adapter slots that something else must free: do not spin.
                self._wake.wait(_IDLE_POLL_S)
                self._wake.clear()
