"""Prometheus metrics of one served base model (``GET /metrics``), on a registry of its own.

Every :class:`ServingMetrics` has its own ``CollectorRegistry`` (never the process-global
default one: a process may hold many nodes, e.g. tests). Per request, counted by
:meth:`ServingMetrics.observe` when :meth:`~loraledger.serving.service.ServingService.finish`
has recorded the answer:

* ``loraledger_requests_total{model, finish_reason}``, ``loraledger_prompt_tokens_total{model}``,
  ``loraledger_completion_tokens_total{model}``, ``loraledger_fees_wei_total{model}`` (a float:
  exact amounts are in the ledger's fee records);
* histograms ``loraledger_queue_time_seconds`` (submitted → admitted into the engine's batch),
  ``loraledger_time_to_first_token_seconds`` (submitted → first token),
  ``loraledger_time_per_output_token_seconds`` ((latency − time to first token) / (completion
  tokens − 1), for answers of 2 tokens or more) and ``loraledger_e2e_request_latency_seconds``
  (submitted → finished), each by ``model``.

Read live at each scrape (:class:`_LiveCollector`): the adapter store's counters per adapter
(``loraledger_adapter_{cold_loads,host_hits,device_hits,host_evictions,device_evictions,
load_failures}_total{model}``), device slots used and total, adapters and bytes in host memory,
running and waiting requests of the engine, and the recorder's group commit (answers waiting,
committed, batches).

``model`` is bounded (:class:`ModelLabels`): the base and the first ``max_models − 1`` other
models seen keep their own name, any later one is counted under ``other``, so the number of
series cannot grow with the number of adapters registered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..errors import InputError

if TYPE_CHECKING:  # torch: the engine
    from .engine import Engine
    from .recorder import Answered, InferenceRecorder
    from .store import AdapterStore

__all__ = ["DEFAULT_MAX_MODELS", "OTHER", "ModelLabels", "ServingMetrics"]

#: Models with a label of their own (the base included); the rest are ``_other``.
DEFAULT_MAX_MODELS = 20
#: The label of every model beyond the bound (a model name starts with [a-z0-9], so no model is called this).
OTHER = "_other"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_PER_TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5)
#: AdapterStore.stats counters → metric names (``_total`` is added by the exposition).
_STORE_COUNTERS = {
    "cold_loads": "adapter loads from disk into host memory",
    "host_hits": "adapters moved from host memory into a device slot",
    "device_hits": "requests whose adapter was already in a device slot",
    "host_evictions": "adapters evicted from host memory",
    "device_evictions": "adapters evicted from a device slot",
    "load_failures": "adapter loads that failed",
}


class ModelLabels:
    """Bounded label values for model names (thread-safe).

    A name gets a label of its own when first seen while fewer than ``limit`` names have one
    (``reserved`` names, e.g. the base model, have one from the start); every later name is
    :data:`OTHER`, for good. The mapping never changes once made, so every series stays
    monotonic, and at most ``limit + 1`` values exist.
    """

    def __init__(self, limit: int = DEFAULT_MAX_MODELS, *, reserved: tuple[str, ...] = ()) -> None:
        if limit < 1:
            raise InputError(f"the metrics need at least one model label, got {limit}")
        self.limit = limit
        self._named: set[str] = set(reserved[:limit])
        self._lock = threading.Lock()

    def __call__(self, name: str) -> str:
        with self._lock:
            if name in self._named:
                return name
            if len(self._named) < self.limit:
                self._named.add(name)
                return name
            return OTHER

    @property
    def named(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._named)


class ServingMetrics:
    """The metrics of one :class:`~loraledger.serving.service.ServingService` (see the module docstring)."""

    def __init__(self, *, store: AdapterStore, engine: Engine, recorder: InferenceRecorder, base_name: str,
                 max_models: int = DEFAULT_MAX_MODELS) -> None:
        self.labels = ModelLabels(max_models, reserved=(base_name,))
        self.registry = CollectorRegistry(auto_describe=False)
        registry = self.registry
        self.requests = Counter("loraledger_requests", "answered requests, by model and finish reason",
                                ["model", "finish_reason"], registry=registry)
        self.prompt_tokens = Counter("loraledger_prompt_tokens", "prompt tokens of answered requests", ["model"],
                                     registry=registry)
        self.completion_tokens = Counter("loraledger_completion_tokens", "completion tokens of answered requests",
                                         ["model"], registry=registry)
        self.fees = Counter("loraledger_fees_wei", "fees of answered requests, in wei of OPEN (a float; the fee "
                            "records are exact)", ["model"], registry=registry)
        self.queue_time = Histogram("loraledger_queue_time_seconds", "submitted until admitted into the engine's "
                                    "batch", ["model"], buckets=_LATENCY_BUCKETS, registry=registry)
        self.time_to_first_token = Histogram("loraledger_time_to_first_token_seconds", "submitted until the first "
                                             "token", ["model"], buckets=_LATENCY_BUCKETS, registry=registry)
        self.time_per_output_token = Histogram("loraledger_time_per_output_token_seconds", "after the first token, "
                                               "seconds per further token", ["model"], buckets=_PER_TOKEN_BUCKETS,
                                               registry=registry)
        self.latency = Histogram("loraledger_e2e_request_latency_seconds", "submitted until finished", ["model"],
                                 buckets=_LATENCY_BUCKETS, registry=registry)
        self.live = _LiveCollector(store, engine, recorder, self.labels)
        registry.register(self.live)

    def observe(self, answered: Answered, *, submitted: float, admitted: float | None, first_token: float | None,
                finished: float) -> None:
        """Count one answered request; the times are ``time.monotonic()`` values (``admitted``:
        when the engine took it into its batch, None if it never did)."""
        model = self.labels(answered.model)
        self.requests.labels(model, answered.finish_reason).inc()
        self.prompt_tokens.labels(model).inc(answered.prompt_tokens)
        self.completion_tokens.labels(model).inc(answered.completion_tokens)
        self.fees.labels(model).inc(answered.fee)
        if admitted is not None:
            self.queue_time.labels(model).observe(max(0.0, admitted - submitted))
        if first_token is not None:
            self.time_to_first_token.labels(model).observe(max(0.0, first_token - submitted))
            if answered.completion_tokens > 1:
                per_token = (finished - first_token) / (answered.completion_tokens - 1)
                self.time_per_output_token.labels(model).observe(max(0.0, per_token))
        self.latency.labels(model).observe(max(0.0, finished - submitted))


class _LiveCollector:
    """What is read at scrape time: the adapter store, the engine's queue, the recorder."""

    def __init__(self, store: AdapterStore, engine: Engine, recorder: InferenceRecorder, labels: ModelLabels) -> None:
        self.store = store
        self.engine = engine
        self.recorder = recorder
        self.labels = labels
        #: The attribution worker's backlog and counters, once a node attaches one.
        self.attribution: Any = None

    def collect(self) -> Iterator[Metric]:
        yield from self._store_counters()
        resident: dict[str, Any] = self.store.resident()
        yield _gauge("loraledger_adapter_slots_used", "device slots holding an adapter", resident["slots"]["used"])
        yield _gauge("loraledger_adapter_slots_total", "device slots for adapters (max_loras)",
                     resident["slots"]["total"])
        yield _gauge("loraledger_adapters_host", "adapters in host memory", len(resident["host"]))
        yield _gauge("loraledger_adapter_host_bytes", "bytes of the adapters in host memory", resident["hostBytes"])
        yield _gauge("loraledger_requests_running", "requests in the engine's batch", self.engine.running)
        yield _gauge("loraledger_requests_waiting", "requests waiting for the engine's batch", self.engine.waiting)
        yield _gauge("loraledger_recorder_waiting", "answers waiting for their group commit", self.recorder.waiting)
        yield _counter("loraledger_recorder_committed", "answers committed to the ledger", self.recorder.committed)
        yield _counter("loraledger_recorder_batches", "group commits (transactions)", self.recorder.batches)
        if self.attribution is not None:
            yield _gauge("loraledger_attribution_backlog", "answers waiting for their attribution (their fees wait "
                         "too)", self.attribution.backlog())
            yield _counter("loraledger_attribution_done", "answers attributed", self.attribution.done)
            yield _counter("loraledger_attribution_fallbacks", "answers whose fee fell back to training-row weights",
                           self.attribution.fallbacks)

    def _store_counters(self) -> Iterator[Metric]:
        # The store updates its counters under its lock; copying the dicts takes the GIL only
        # (no Python code runs), so the copy is a consistent view of each dict.
        per_adapter = {name: dict(counters) for name, counters in list(self.store.stats.per_adapter.items())}
        for what, documentation in _STORE_COUNTERS.items():
            family = CounterMetricFamily(f"loraledger_adapter_{what}", documentation, labels=["model"])
            summed: dict[str, int] = {}
            for name, counters in per_adapter.items():
                if counters.get(what):
                    label = self.labels(name)
                    summed[label] = summed.get(label, 0) + counters[what]
            for label, value in summed.items():
                family.add_metric([label], value)
            yield family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
