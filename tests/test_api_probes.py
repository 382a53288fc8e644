"""``/healthz`` (alive, no I/O) and ``/readyz`` (database writable, chain answering, model loaded)
on a real node: ready, then not ready for a model that is configured but not loaded and for a
chain that does not answer, each named."""

from __future__ import annotations

import httpx
import pytest
from conftest import deployed_settings, serve

from loraledger.api import create_app
from loraledger.node.context import open_node


@pytest.fixture
def probed(anvil, accounts, artifacts, tmp_path):
    settings = deployed_settings(anvil, accounts[0], artifacts, tmp_path)
    node = open_node(settings)
    url, server, thread = serve(create_app(settings, node=node))
    yield url, node
    server.should_exit = True
    thread.join(timeout=10)
    node.engine.dispose()


def test_ready_then_not_ready_for_each_missing_part(probed, tmp_path):
    url, node = probed
    assert httpx.get(f"{url}/healthz").json() == {"status": "alive"}
    ready = httpx.get(f"{url}/readyz")
    checks = ready.json()["checks"]
    assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
    assert checks["database"] == "ok: writable" and checks["chain"].startswith("ok: block ")
    assert checks["model"] == "ok: this node serves no model"

    # A node configured to serve a model that is not loaded (yet) is not ready.
    settings = node.settings
    node.settings = settings.model_copy(update={"serve_base": tmp_path / "model"})
    waiting = httpx.get(f"{url}/readyz")
    assert waiting.status_code == 503 and waiting.json()["status"] == "not ready"
    assert waiting.json()["checks"]["model"].startswith("failed: the model at") and \
        waiting.json()["checks"]["chain"].startswith("ok")
    node.settings = settings

    # The chain stops answering (the node's RPC endpoint refuses connections): named, and /healthz still answers.
    provider = node.contracts.client.w3.provider
    endpoint = provider.endpoint_uri
    provider.endpoint_uri = "http://127.0.0.1:9"
    try:
        down = httpx.get(f"{url}/readyz", timeout=60)
        assert down.status_code == 503 and down.json()["checks"]["chain"].startswith("failed: "), down.text
        assert down.json()["checks"]["database"] == "ok: writable"
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        provider.endpoint_uri = endpoint
    assert httpx.get(f"{url}/readyz").status_code == 200
