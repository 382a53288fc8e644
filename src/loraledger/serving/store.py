"""Registered adapters in three residency tiers: disk → host memory → device slots.

Like vLLM's ``max_cpu_loras`` / ``max_loras``: every adapter registered on the node (trained
by its ModelFactory or imported) can be served; at most ``max_cpu_loras`` are held in host
memory as :class:`~loraledger.serving.weights.AdapterWeights`, and at most ``max_loras``
are in the engine's device slots. Both tiers are LRUs; an adapter in use by a running
sequence is never evicted from its slot, and a pinned one is never evicted at all.

Only registered adapters load: a name is validated (``[a-z0-9][a-z0-9._-]{0,63}``) and looked
up in the ledger's adapter table, never taken as a path. At load the adapter's files are
hashed again and must give the hash the ledger recorded, and the adapter must have been
trained for the base model the node serves.

A cold load (disk → host) runs on a background thread: :meth:`AdapterStore.slot_for`
answers ``None`` at once for an adapter that is not in host memory yet (its requests wait in
the queue) and starts the load, so requests for resident adapters never stall behind a disk
read. Moving host → device is a copy into the slot tensors, done on the spot.

Loads follow the queue. Every scheduling step the scheduler hands :meth:`AdapterStore.prefetch`
the adapters of its waiting requests in queue order; the first ``max_cpu_loras - max_loras``
of them that are not on the device form the *window*: those in host memory are marked
recently used (so the LRU evicts adapters nobody waits for first), and those not yet loaded are
loaded in order, at most :data:`MAX_LOADS_IN_FLIGHT` at a time. An adapter outside the window is
not loaded for a waiting request, so with ten thousand distinct adapters queued the store
never loads one only to evict it before its request runs.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import InputError, LedgerError, LoraLedgerError, NotFoundError
from ..training.adapters import manifest_hash
from ..training.config import validate_adapter_name
from .weights import AdapterWeights, load_adapter_weights, read_config, read_weights_file

__all__ = ["AdapterStore", "SlotTensors", "StoreStats"]

log = logging.getLogger("loraledger.serving")

#: Cold loads queued on the loader thread at once (one reading, one next): loads follow the
#: queue's order instead of racing ahead of what the host tier can keep.
MAX_LOADS_IN_FLIGHT = 2


class SlotTensors(Protocol):
    """The engine's device slots (:class:`loraledger.serving.lora.LoraSlots`): slot 0 is the
    base (all zeros); slots ``1 .. max_loras`` hold adapters."""

    def load(self, slot: int, weights: AdapterWeights) -> None: ...

    def clear(self, slot: int) -> None: ...


class AdapterRowLike(Protocol):
    """What the store reads of a ledger adapter row (``training.tables.AdapterRow``)."""

    name: str
    path: str
    adapter_hash: str
    base_model_hash: str


@dataclass
class StoreStats:
    """Counters since start (exported as metrics)."""

    cold_loads: int = 0
    host_hits: int = 0
    device_hits: int = 0
    host_evictions: int = 0
    device_evictions: int = 0
    load_failures: int = 0
    per_adapter: dict[str, dict[str, int]] = field(default_factory=dict)

    #: Adapters with counters of their own; the rest are counted together under ``_other``, so a
    #: node that serves tens of thousands of adapters does not grow this without bound.
    max_named: int = 1024

    def count(self, name: str, what: str) -> None:
        setattr(self, what, getattr(self, what) + 1)
        if name not in self.per_adapter and len(self.per_adapter) >= self.max_named:
            name = "_other"
        counters = self.per_adapter.setdefault(name, {})
        counters[what] = counters.get(what, 0) + 1


class AdapterStore:
    """The adapters one engine serves; thread-safe. See the module docstring."""

    def __init__(
        self,
        lookup: Callable[[str], AdapterRowLike],
        slots: SlotTensors,
        *,
        base_model_hash: str,
        max_loras: int,
        max_cpu_loras: int,
        max_rank: int,
        base_name: str = "base",
    ) -> None:
        if max_loras < 1 or max_cpu_loras < max_loras:
            raise InputError(f"need 1 <= max_loras ({max_loras}) <= max_cpu_loras ({max_cpu_loras})")
        self._lookup = lookup
        self._slots = slots
        self.base_model_hash = base_model_hash
        self.max_loras = max_loras
        self.max_cpu_loras = max_cpu_loras
        self.max_rank = max_rank
        self.base_name = base_name
        self.stats = StoreStats()
        self._lock = threading.RLock()
        self._host: OrderedDict[str, AdapterWeights] = OrderedDict()  # LRU order: oldest first
        self._device: OrderedDict[str, int] = OrderedDict()  # name → slot, LRU order
        self._free_slots = list(range(max_loras, 0, -1))  # pop() gives slot 1 first
        self._in_use: dict[str, int] = {}  # name → running sequences
        self._pinned: set[str] = set()
        self._loading: dict[str, Future[None]] = {}
        self._failed: dict[str, LoraLedgerError] = {}
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adapter-load")
        #: The prefetch window of the last scheduling step (None: no scheduler calls prefetch).
        self._window: set[str] | None = None
        #: Runs device-slot work (a copy into or a zeroing of slot tensors) for operator actions:
        #: the serving service points it at the engine thread (``EngineLoop.call``), where every
        #: torch kernel of the engine runs (see :mod:`loraledger.serving.loop`).
        self.run_on_device: Callable[[Callable[[], Any]], Any] = lambda fn: fn()

    # ---- lookups ---------------------------------------------------------------------
    def check(self, name: str) -> AdapterRowLike | None:
        """The ledger row of ``name`` (``None`` for the base model): ``NotFoundError`` for an
        unknown adapter, ``InputError`` for a bad name or an adapter of another base model."""
        if name == self.base_name:
            return None
        try:
            validate_adapter_name(name)
        except InputError:
            raise NotFoundError(f"no model {name[:80]!r} on this node") from None
        try:
            row = self._lookup(name)
        except NotFoundError:
            raise NotFoundError(f"no model {name!r} on this node (GET /v1/models lists them)") from None
        if row.base_model_hash != self.base_model_hash:
            raise InputError(f"adapter {name} was trained for base model {row.base_model_hash}, but this node serves "
                             f"base model {self.base_model_hash}")
        return row

    def _read(self, name: str) -> AdapterWeights:
        """Disk → host: the files, checked against the ledger's hash, as tensors. The weights are
        read once: the bytes hashed are the bytes parsed (a file rewritten between a hash and a
        second read could not slip in)."""
        row = self.check(name)
        assert row is not None
        directory = Path(row.path)
        try:
            config = read_config(directory)
            data = read_weights_file(directory)
            digest = manifest_hash(config, hashlib.sha256(data).hexdigest())
        except InputError as exc:
            raise LedgerError(f"adapter {name}'s files at {directory} cannot be read: {exc.message}") from None
        except (TypeError, AttributeError):  # a config whose target_modules are not names
            raise LedgerError(f"adapter {name}'s {directory / 'adapter_config.json'} is malformed") from None
        if digest != row.adapter_hash:
            raise LedgerError(f"adapter {name}'s files hash to {digest}, not the recorded {row.adapter_hash}: "
                              "they changed after registration; refusing to serve them")
        return load_adapter_weights(directory, name=name, adapter_hash=row.adapter_hash, max_rank=self.max_rank,
                                    config=config, data=data)

    # ---- host tier -------------------------------------------------------------------
    def _host_put(self, weights: AdapterWeights) -> None:
        with self._lock:
            self._host[weights.name] = weights
            self._host.move_to_end(weights.name)
            while len(self._host) > self.max_cpu_loras:
                victim = next((n for n in self._host if n not in self._pinned and n not in self._device), None)
                if victim is None:
                    break  # everything left is pinned or on the device: over the bound until one leaves
                del self._host[victim]
                self.stats.count(victim, "host_evictions")

    def _start_load(self, name: str, *, force: bool = False) -> Future[None] | None:
        """Start reading ``name`` into host memory on the loader thread (once at a time); None when
        :data:`MAX_LOADS_IN_FLIGHT` are under way already (``force``: start it anyway)."""
        with self._lock:
            running = self._loading.get(name)
            if running is not None:
                return running
            if not force and len(self._loading) >= MAX_LOADS_IN_FLIGHT:
                return None
            self.stats.count(name, "cold_loads")
            future = self._loader.submit(self._load, name)
            self._loading[name] = future
            return future

    def _load(self, name: str) -> None:
        """The loader thread's task: disk → host, or the reason it failed (kept for the requests
        waiting on it). The host tier is filled before the future completes."""
        try:
            weights = self._read(name)
        except LoraLedgerError as exc:
            failure: LoraLedgerError | None = exc
            log.error("cannot load adapter %s: %s", name, exc.message)
        except Exception as exc:  # noqa: BLE001 - reported to the waiting requests as a LedgerError
            failure = LedgerError(f"cannot load adapter {name}: {type(exc).__name__}: {exc}")
            log.exception("cannot load adapter %s", name)
        else:
            failure = None
            self._host_put(weights)
        with self._lock:
            self._loading.pop(name, None)
            if failure is not None:
                self.stats.count(name, "load_failures")
                self._failed[name] = failure

    def host_weights(self, name: str, *, timeout: float | None = None) -> AdapterWeights:
        """``name`` in host memory, loading it now if needed (blocks; for preload and tests)."""
        with self._lock:
            if name in self._host:
                self._host.move_to_end(name)
                return self._host[name]
            self._failed.pop(name, None)
        future = self._start_load(name, force=True)
        assert future is not None
        future.result(timeout=timeout)
        with self._lock:
            if name in self._host:
                return self._host[name]
            error = self._failed.pop(name, None)
        raise error or LedgerError(f"adapter {name} was evicted from host memory as soon as it was loaded")

    # ---- device tier -----------------------------------------------------------------
    def _take_slot(self) -> int | None:
        if self._free_slots:
            return self._free_slots.pop()
        victim = next((n for n in self._device if n not in self._pinned and not self._in_use.get(n)), None)
        if victim is None:
            return None  # every slot is pinned or serving a running sequence: wait
        slot = self._device.pop(victim)
        self._slots.clear(slot)
        self.stats.count(victim, "device_evictions")
        return slot

    def slot_for(self, name: str) -> int | None:
        """The device slot serving ``name`` now (0 for the base), reserved for one more running
        sequence (give it back with :meth:`release`); ``None`` while it cannot be had yet (a
        cold load is under way, or every slot is busy). Raises the load's error if it failed."""
        if name == self.base_name:
            return 0
        with self._lock:
            if name in self._device:
                self._device.move_to_end(name)
                self._in_use[name] = self._in_use.get(name, 0) + 1
                self.stats.count(name, "device_hits")
                return self._device[name]
            failed = self._failed.pop(name, None)
            if failed is not None:
                raise failed
            weights = self._host.get(name)
            if weights is None:
                if self._window is None or name in self._window:
                    self._start_load(name)
                return None
            slot = self._take_slot()
            if slot is None:
                return None
            self._slots.load(slot, weights)
            self._host.move_to_end(name)
            self._device[name] = slot
            self._in_use[name] = self._in_use.get(name, 0) + 1
            self.stats.count(name, "host_hits")
            return slot

    def prefetch(self, names: Iterable[str]) -> None:
        """The adapters of the waiting requests, in queue order (once per scheduling step): keep the
        window's loaded adapters from eviction and load its missing ones in order (module docstring)."""
        room = max(1, self.max_cpu_loras - self.max_loras)
        window: dict[str, None] = {}
        with self._lock:
            for name in names:
                if len(window) >= room:
                    break
                if name != self.base_name and name not in window and name not in self._device:
                    window[name] = None
            self._window = set(window)
            for name in window:
                if name in self._host:
                    self._host.move_to_end(name)
            for name in window:
                if len(self._loading) >= MAX_LOADS_IN_FLIGHT:
                    break
                if name not in self._host and name not in self._failed:
                    self._start_load(name)

    def release(self, name: str) -> None:
        """One running sequence of ``name`` finished (its slot may be evicted when unused)."""
        if name == self.base_name:
            return
        with self._lock:
            left = self._in_use.get(name, 0) - 1
            if left > 0:
                self._in_use[name] = left
            else:
                self._in_use.pop(name, None)

    def touch(self, name: str) -> None:
        """``name`` served a step: most recently used in both tiers."""
        with self._lock:
            if name in self._device:
                self._device.move_to_end(name)
            if name in self._host:
                self._host.move_to_end(name)

    # ---- operator actions ------------------------------------------------------------
    def preload(self, name: str, *, device: bool = True) -> None:
        """Load ``name`` into host memory (and a device slot, when one is free or evictable)."""
        self.check(name)
        self.host_weights(name)  # here, not on the engine thread: a disk read must not stall steps

        def to_device() -> None:
            if self.slot_for(name) is not None:
                self.release(name)

        if device:
            self.run_on_device(to_device)

    def pin(self, name: str) -> None:
        """Keep ``name`` resident (host and device) until :meth:`unpin`; loads it now."""
        self.check(name)
        with self._lock:
            pinned_on_device = sum(1 for n in self._pinned if n in self._device)
            if name not in self._pinned and pinned_on_device >= self.max_loras - 1:
                raise InputError(f"cannot pin {name}: {pinned_on_device} of {self.max_loras} slots are pinned, and one "
                                 "must stay free for the other adapters")
            self._pinned.add(name)
        try:
            self.preload(name)
        except BaseException:
            with self._lock:
                self._pinned.discard(name)
            raise
        with self._lock:
            if name not in self._device:
                self._pinned.discard(name)
                raise InputError(f"cannot pin {name} now: every device slot is serving a running request; try again")

    def unpin(self, name: str) -> None:
        with self._lock:
            self._pinned.discard(name)

    def unload(self, name: str) -> bool:
        """Drop ``name`` from the device and host tiers (frees its memory); False if it was not
        resident. Refused while running sequences use it, or while it is pinned."""
        return bool(self.run_on_device(lambda: self._unload(name)))

    def _unload(self, name: str) -> bool:
        with self._lock:
            if name in self._pinned:
                raise InputError(f"adapter {name} is pinned; unpin it first")
            if self._in_use.get(name):
                raise InputError(f"adapter {name} is serving {self._in_use[name]} running request(s); try again when "
                                 "they finish")
            resident = False
            slot = self._device.pop(name, None)
            if slot is not None:
                self._slots.clear(slot)
                self._free_slots.append(slot)
                resident = True
            if self._host.pop(name, None) is not None:
                resident = True
            return resident

    # ---- state -----------------------------------------------------------------------
    def resident(self) -> dict[str, Any]:
        """Who is where: device slots, host memory (bytes), pinned, loading."""
        with self._lock:
            return {
                "device": {name: slot for name, slot in self._device.items()},
                "host": {name: weights.nbytes for name, weights in self._host.items()},
                "hostBytes": sum(w.nbytes for w in self._host.values()),
                "pinned": sorted(self._pinned),
                "loading": sorted(self._loading),
                "slots": {"used": len(self._device), "total": self.max_loras},
            }

    def close(self) -> None:
        self._loader.shutdown(wait=True, cancel_futures=True)
