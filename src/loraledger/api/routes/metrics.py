"""``GET /metrics``: the node's Prometheus metrics, in the text exposition format (0.0.4), no auth.

Each app has its own ``CollectorRegistry`` (:func:`node_registry`, made by ``create_app``;
never the process-global default one). It answers the node-level gauges (the ledger's log
size) and, on a node that serves a model, every metric of its
:class:`~loraledger.serving.metrics.ServingMetrics`; on a node that serves none, the
recorder's queue is 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from ..deps import current_node
from ..schemas import errors

__all__ = ["CONTENT_TYPE", "node_registry", "router"]

#: The Prometheus text format that every scraper reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter(tags=["metrics"])


class _NodeCollector:
    """Reads the app's node at each scrape (it is opened after ``create_app``)."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        node = self._state.node
        if node is None:
            return
        yield GaugeMetricFamily("loraledger_log_size", "records in the ledger's log", value=node.records.size())
        if node.serving is None:
            yield GaugeMetricFamily("loraledger_recorder_waiting", "answers waiting for their group commit", value=0)
        else:
            yield from node.serving.metrics.registry.collect()


def node_registry(state: Any) -> CollectorRegistry:
    """The registry of one app (``state``: its ``app.state``, which holds the node)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_NodeCollector(state))
    return registry


@router.get("/metrics", response_class=Response, responses={
    200: {"description": "Prometheus text exposition format 0.0.4",
          "content": {"text/plain": {"schema": {"type": "string"}}}},
    **errors(503)})
def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, tokens and fees per model, latency histograms, the adapter
    tiers, the engine's queue and the recorder (no auth)."""
    current_node(request)  # 503 while the node is starting
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE)
