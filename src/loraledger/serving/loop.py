"""A background thread that drives :meth:`Engine.step`, so an asyncio API can submit and await.

**All of the engine's torch work runs on this one thread**: the model is loaded there
(:meth:`EngineLoop.build`) and operator actions that touch the device slots run there between
steps (:meth:`EngineLoop.call`). On a CPU this is a matter of speed, not style: torch's
OpenMP runtime (libgomp) keeps a pool of worker threads per thread that ever ran a parallel
kernel, for that thread's life (the main thread's, for the process's), and once a process holds
more pool threads than CPUs every pool stops spinning between kernels and sleeps instead. A
decode step is hundreds of small kernels, so an engine on its own thread in a process whose
main thread loaded the model ran 1.5-2x slower than in the main thread (measured on 2 cores:
a 32x256 matmul 86 µs against 21 µs). With every kernel on one thread there is one pool.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from .engine import Engine
from .requests import OutputEvent, RequestHandle
from .sampling import SamplingParams

__all__ = ["EngineLoop"]

log = logging.getLogger(__name__)

T = TypeVar("T")

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
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        engine._wake = self._wake.set

    @classmethod
    def build(cls, make: Callable[[], Engine], *, name: str = "loraledger-engine",
              timeout: float | None = None) -> EngineLoop:
        """Start a thread, run ``make()`` on it (load the model there: see the module docstring),
        then serve its engine on that thread. Raises what ``make`` raised."""
        made: Future[Engine] = Future()
        loop: EngineLoop | None = None

        def run() -> None:
            nonlocal loop
            try:
                engine = make()
                loop = cls(engine, name=name)
                loop._thread = threading.current_thread()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                made.set_exception(exc)
                return
            made.set_result(engine)
            loop._run()

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        made.result(timeout)
        assert loop is not None
        return loop

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the engine loop is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the engine's thread between two steps and return its result (or raise its
        error): for torch work outside a step, such as copying an adapter into a device slot.
        Runs ``fn`` here when called on that thread or when the loop is not running."""
        thread = self._thread
        if thread is None or thread is threading.current_thread() or not thread.is_alive():
            return fn()
        future: Future[T] = Future()
        self._calls.put((fn, future))
        self._wake.set()
        while True:
            try:
                return future.result(timeout=0.5)
            except FutureTimeout:
                if not thread.is_alive() and future.cancel():
                    return fn()  # the loop stopped before it took the call

    def _run_calls(self) -> None:
        while not self._calls.empty():
            fn, future = self._calls.get_nowait()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                    future.set_exception(exc)

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
            self._run_calls()
            if not self.engine.has_work():
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                events = self.engine.step()
            except Exception as exc:  # a bug or a foreign error: fail what is running, keep serving
                log.exception("engine step failed")
                try:
                    self.engine.abort_all("error", f"engine step failed: {exc}", running_only=True)
                except Exception:  # noqa: BLE001 - the loop must outlive any one step
                    log.exception("ending the running requests failed too: dropping the batch whole")
                    self.engine.reset_running(f"engine step failed: {exc}")
                continue
            if not events and self.engine.running == 0 and self._calls.empty():
                # Requests wait for adapter slots that something else must free: do not spin.
                self._wake.wait(_IDLE_POLL_S)
                self._wake.clear()
        self._run_calls()  # a call that raced with stop still gets its answer
