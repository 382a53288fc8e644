"""What a client submits to the engine and what it gets back: output events on a handle."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .sampling import SamplingParams, TokenLogprob

__all__ = ["FINISH_REASONS", "OutputEvent", "Request", "RequestHandle"]

#: ``stop``: end-of-sequence token or a stop string; ``length``: max_tokens or the model's context;
#: ``cancelled``: the client cancelled (or the engine stopped); ``error``: the request failed (see
#: ``OutputEvent.error``).
FINISH_REASONS = ("stop", "length", "cancelled", "error")


@dataclass(frozen=True)
class Request:
    """A tokenized generation request: ``adapter`` None means the base model."""

    request_id: str
    prompt_ids: tuple[int, ...]
    adapter: str | None
    params: SamplingParams


@dataclass(frozen=True)
class OutputEvent:
    """What one engine step produced for one request.

    ``text`` and ``token_ids`` are new since the previous event (``text`` may be empty while a
    possible stop string is held back); the last event has ``finished`` set and a
    ``finish_reason``. ``token_ids`` include an end-of-sequence token, which adds no text;
    ``logprobs`` has one entry per new token when the request asked for them.
    """

    request_id: str
    text: str
    token_ids: tuple[int, ...]
    finished: bool
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    logprobs: tuple[TokenLogprob, ...] = ()
    error: str | None = None
    #: The stop string that ended the output, if one did.
    stop: str | None = None


class RequestHandle:
    """A submitted request's events, in order, on a thread-safe queue; ``cancel()`` from any thread.

    An asyncio caller passes ``on_event`` (called on the engine's thread, e.g.
    ``lambda e: loop.call_soon_threadsafe(aqueue.put_nowait, e)``) or reads ``events`` from a
    worker thread.
    """

    def __init__(self, request: Request, on_event: Callable[[OutputEvent], None] | None = None,
                 wake: Callable[[], None] | None = None) -> None:
        self.request = request
        self.events: queue.Queue[OutputEvent] = queue.Queue()
        self._on_event = on_event
        self._cancelled = threading.Event()
        self._wake = wake
        self.finished = False
        #: When the engine admitted the request into its batch (``time.monotonic()``; None until
        #: then): the end of its queue time.
        self.admitted_at: float | None = None

    @property
    def request_id(self) -> str:
        return self.request.request_id

    def cancel(self) -> None:
        """Ask the engine to drop the request; it leaves the batch at the next step (a ``cancelled`` event)."""
        self._cancelled.set()
        if self._wake is not None:
            self._wake()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def _emit(self, event: OutputEvent) -> None:
        if event.finished:
            self.finished = True
        self.events.put(event)
        if self._on_event is not None:
            self._on_event(event)

    def __iter__(self) -> Iterator[OutputEvent]:
        """Block for events until the finished one (for threads and tests)."""
        while True:
            event = self.events.get()
            yield event
            if event.finished:
                return

    def get(self, timeout: float | None = None) -> OutputEvent:
        """The next event (``queue.Empty`` after ``timeout`` seconds)."""
        return self.events.get(timeout=timeout)
