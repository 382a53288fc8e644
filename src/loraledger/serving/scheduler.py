"""Continuous batching: the waiting and running queues, admission under a token budget, and which
adapters are resident in the engine's slots (the ``SlotProvider`` protocol).

A step never needs more distinct adapters than there are slots, because a request is admitted
only once its adapter has a slot (``slot_for``), and the provider holds that slot for it until
``release``: a request whose adapter has no slot now simply stays waiting, and requests behind
it whose adapters are resident go ahead.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from ..errors import InputError, LoraLedgerError
from .lora import LoraSlots
from .requests import Request, RequestHandle
from .sampling import TokenLogprob
from .text import TextTracker
from .weights import AdapterWeights

__all__ = ["BASE_MODEL", "Scheduler", "Sequence", "SlotProvider", "StaticSlots"]

#: The adapter name that means the base model (slot 0).
BASE_MODEL = "base"


@runtime_checkable
class SlotProvider(Protocol):
    """Where adapters are resident on the device.

    ``slot_for(name)``: the slot holding ``name`` (0 for the base model), loading it first if the
    provider can; None if it cannot be made resident now (every slot is held by running
    requests). A returned slot is held for the caller until ``release(name)`` (one release per
    successful ``slot_for``), so it is never reloaded under a running request. InputError (or
    NotFoundError) for a name the provider does not serve. ``touch(name)``: called every step for
    each adapter in the batch (recency, for eviction). ``prefetch(names)``: called every step with
    the adapters of the waiting requests in queue order (a lazy iterable: take what is needed),
    so a provider that loads adapters can load ahead in that order.
    """

    def slot_for(self, adapter: str) -> int | None: ...

    def prefetch(self, adapters: Iterable[str]) -> None: ...

    def release(self, adapter: str) -> None: ...

    def touch(self, adapter: str) -> None: ...


class StaticSlots:
    """A fixed set of adapters in host memory, made resident in ``slots`` on demand.

    An adapter not resident takes an empty slot, or the least recently used slot that no running
    request holds; with every slot held, ``slot_for`` returns None. ``base_name`` is slot 0.
    """

    def __init__(self, slots: LoraSlots, adapters: Mapping[str, AdapterWeights], *,
                 base_name: str = BASE_MODEL) -> None:
        self.slots = slots
        self.adapters = dict(adapters)
        self.base_name = base_name
        self.resident: dict[str, int] = {}
        self.holds: dict[str, int] = {}
        self._used: dict[str, int] = {}
        self._clock = itertools.count()
        #: Adapter loads done (tests and logs).
        self.loads = 0

    def slot_for(self, adapter: str) -> int | None:
        if adapter == self.base_name:
            return 0
        if adapter not in self.adapters:
            raise InputError(f"unknown adapter {adapter!r}", adapter=adapter)
        slot = self.resident.get(adapter)
        if slot is None:
            slot = self._free_slot()
            if slot is None:
                return None
            self.slots.load(slot, self.adapters[adapter])
            self.loads += 1
            self.resident[adapter] = slot
        self.holds[adapter] = self.holds.get(adapter, 0) + 1
        self._used[adapter] = next(self._clock)
        return slot

    def _free_slot(self) -> int | None:
        taken = set(self.resident.values())
        for slot in range(1, self.slots.max_loras + 1):
            if slot not in taken:
                return slot
        idle = [name for name in self.resident if not self.holds.get(name)]
        if not idle:
            return None
        victim = min(idle, key=lambda name: self._used.get(name, -1))
        return self.resident.pop(victim)

    def release(self, adapter: str) -> None:
        if adapter == self.base_name:
            return
        held = self.holds.get(adapter, 0)
        if held <= 0:
            raise RuntimeError(f"release of adapter {adapter!r}, which holds no slot")
        self.holds[adapter] = held - 1

    def touch(self, adapter: str) -> None:
        if adapter in self.resident:
            self._used[adapter] = next(self._clock)

    def prefetch(self, adapters: Iterable[str]) -> None:
        """Nothing to load ahead: every adapter is in host memory."""


@dataclass(eq=False)
class Sequence:
    """A request's state inside the engine."""

    request: Request
    handle: RequestHandle
    text: TextTracker
    generator: torch.Generator
    adapter: str
    slot: int | None = None
    #: The sequence's row in the engine's running batch cache (None: not running).
    row: int | None = None
    #: Generated tokens; the last one is not in the cache yet (it is the next decode input).
    output_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    error: str | None = None
    # Since the last event:
    new_ids: list[int] = field(default_factory=list)
    new_logprobs: list[TokenLogprob] = field(default_factory=list)

    @property
    def prompt_len(self) -> int:
        return len(self.request.prompt_ids)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


class Scheduler:
    """Waiting (FIFO) and running sequences; admission within ``max_running`` and ``max_batch_tokens``.

    A step's tokens are one per running sequence (its decode) plus each admitted prompt and its
    first decode; admission stops at the first request that does not fit the budget (so a long
    prompt is not starved by later short ones) and skips requests whose adapter has no slot now.
    """

    def __init__(self, provider: SlotProvider, *, max_running: int, max_batch_tokens: int) -> None:
        if max_running < 1 or max_batch_tokens < 2:
            raise InputError("max_running must be >= 1 and max_batch_tokens >= 2")
        self.provider = provider
        self.max_running = max_running
        self.max_batch_tokens = max_batch_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def admit(self) -> tuple[list[Sequence], list[tuple[Sequence, LoraLedgerError]]]:
        """Move what fits from waiting to running: (admitted, refused with the provider's error)."""
        budget = self.max_batch_tokens - len(self.running)
        admitted: list[Sequence] = []
        refused: list[tuple[Sequence, LoraLedgerError]] = []
        for seq in list(self.waiting):
            if len(self.running) + len(admitted) >= self.max_running:
                break
            cost = seq.prompt_len + 1
            if cost > budget:
                break
            try:
                slot = self.provider.slot_for(seq.adapter)
            except LoraLedgerError as exc:
                self.waiting.remove(seq)
                refused.append((seq, exc))
                continue
            if slot is None:
                continue
            seq.slot = slot
            budget -= cost
            self.waiting.remove(seq)
            admitted.append(seq)
        self.running.extend(admitted)
        self.provider.prefetch(seq.adapter for seq in self.waiting)
        return admitted, refused

    def retire(self, seq: Sequence) -> None:
        """Take ``seq`` out of the queues and give back its slot hold."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        if seq.slot is not None:
            self.provider.release(seq.adapter)
            seq.slot = None

    def cancelled(self) -> list[Sequence]:
        return [s for s in itertools.chain(self.waiting, self.running) if s.handle.cancelled]

    def active_adapters(self) -> set[str]:
        return {s.adapter for s in self.running}

    def __len__(self) -> int:
        return len(self.waiting) + len(self.running)
