"""``GET /metrics`` of a node serving a tiny llama and three adapters: requests sent with the
official ``openai`` client over real HTTP, then the Prometheus text scraped with httpx and parsed
with ``prometheus_client``'s parser; per-model counters against the usage the answers reported,
histogram counts, the adapter tiers against ``store.resident()``, the bounded ``model`` label;
a node that serves no model; the label bound and the per-request arithmetic alone."""

from __future__ import annotations

import dataclasses
import json
import threading
from types import SimpleNamespace

import httpx
import openai
import pytest
from conftest import deployed_settings, make_peft_adapter, serve, wait_for
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loraledger.api import create_app
from loraledger.errors import InputError
from loraledger.node.context import open_node
from loraledger.serving.metrics import OTHER, ModelLabels, ServingMetrics
from loraledger.serving.pricing import Price, Prices, fee_for
from loraledger.serving.recorder import Answered, InferenceRecorder
from loraledger.serving.service import ServingService
from loraledger.training.hf.tiny import init_tiny_model

BASE = "tiny-llama"
ADAPTERS = ("alpha", "beta", "gamma")
PRICE = Price(1000, 2000)
STORE_COUNTERS = ("cold_loads", "host_hits", "device_hits", "host_evictions", "device_evictions", "load_failures")


@pytest.fixture(scope="module")
def served(anvil, accounts, artifacts, tmp_path_factory):
    root = tmp_path_factory.mktemp("serving-metrics")
    settings = deployed_settings(anvil, accounts[0], artifacts, root)
    node = open_node(settings, operator=accounts[0])
    base = init_tiny_model(root / BASE, "llama").path
    for i, name in enumerate(ADAPTERS):
        node.factory.import_adapter(make_peft_adapter(base, root / f"src-{name}", seed=i), name=name, base_dir=base,
                                    developer=accounts[4].address, register=False)
    prices = Prices(node.engine, node.records, default=PRICE)
    recorder = InferenceRecorder(node.records, operator=accounts[0].address)
    node.serving = ServingService.open(base, factory=node.factory, prices=prices, recorder=recorder, max_loras=2,
                                       max_cpu_loras=3, max_rank=16, max_running=8)
    _, key = node.payers.create(accounts[5].address, label="tests")
    servers = []

    def start(app_node):
        url, server, thread = serve(create_app(settings, node=app_node))
        servers.append((server, thread))
        return url

    url = start(node)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)
    yield {"url": url, "node": node, "client": client, "key": key, "settings": settings, "start": start}
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)
    node.serving.close()


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """``GET /metrics``, parsed: (sample name, labels) → value."""
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def by_label(samples, name: str, label: str = "model") -> dict[str, float]:
    return {dict(key)[label]: v for (sample, key), v in samples.items() if sample == name}


def test_counters_histograms_and_gauges_match_what_was_served(served):
    client, node, url = served["client"], served["node"], served["url"]
    usages: list[tuple[str, str, int, int]] = []  # (model, finish reason, prompt tokens, completion tokens)

    def ask(model: str, i: int) -> None:
        answer = client.completions.create(model=model, prompt=f"Question {i}", max_tokens=3 + i % 3, temperature=0.7,
                                           seed=i)
        usages.append((model, answer.choices[0].finish_reason, answer.usage.prompt_tokens,
                       answer.usage.completion_tokens))

    threads = [threading.Thread(target=ask, args=(model, i))
               for i, model in enumerate(("alpha", "alpha", "beta", "gamma", BASE, "alpha", BASE))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    chat = client.chat.completions.create(model="beta", messages=[{"role": "user", "content": "Hi"}], max_tokens=5,
                                          temperature=0)
    usages.append(("beta", chat.choices[0].finish_reason, chat.usage.prompt_tokens, chat.usage.completion_tokens))
    chunks = list(client.chat.completions.create(model="gamma", messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=4, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    finish = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
    usages.append(("gamma", finish, chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens))

    # A stream the client leaves after one chunk: cancelled, recorded and counted in the background.
    longest = node.serving.loop.engine.max_model_len - 16
    before = node.records.size()
    body = {"model": "alpha", "prompt": "Tell me a long story", "max_tokens": longest, "stream": True}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {served['key']}"}) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                json.loads(line[6:])
                break
    wait_for(lambda: value(scrape(url), "loraledger_requests_total", model="alpha", finish_reason="cancelled"), 30,
             "the cancelled stream to be counted")
    engine = node.serving.loop.engine
    wait_for(lambda: engine.running == 0 and engine.waiting == 0, 30, "the engine to be idle")

    record = node.records.range(before, before + 1)[0]
    assert record.kind == "inference" and record.finish_reason == "cancelled" and record.completion_tokens >= 1
    assert 0 <= record.queue_ms <= record.first_token_ms <= record.total_ms  # the record has the same timings
    usages.append(("alpha", "cancelled", record.prompt_tokens, record.completion_tokens))

    samples = scrape(url)
    for model in (*ADAPTERS, BASE):
        mine = [u for u in usages if u[0] == model]
        for reason in ("stop", "length", "cancelled"):
            assert value(samples, "loraledger_requests_total", model=model, finish_reason=reason) == sum(
                1 for u in mine if u[1] == reason), (model, reason)
        assert value(samples, "loraledger_prompt_tokens_total", model=model) == sum(u[2] for u in mine)
        assert value(samples, "loraledger_completion_tokens_total", model=model) == sum(u[3] for u in mine)
        fees = sum(fee_for(PRICE, p, c) for _, _, p, c in mine)
        assert value(samples, "loraledger_fees_wei_total", model=model) == fees
        assert value(samples, "loraledger_e2e_request_latency_seconds_count", model=model) == len(mine)
        assert value(samples, "loraledger_queue_time_seconds_count", model=model) == len(mine)  # all were admitted
        assert value(samples, "loraledger_time_to_first_token_seconds_count", model=model) == len(mine)
        assert value(samples, "loraledger_time_per_output_token_seconds_count", model=model) == sum(
            1 for u in mine if u[3] > 1)
        # the +Inf bucket holds every observation
        assert value(samples, "loraledger_e2e_request_latency_seconds_bucket", model=model, le="+Inf") == len(mine)
        if model in ADAPTERS:  # each admission found its adapter in a slot, or moved it there from host memory
            assert value(samples, "loraledger_adapter_host_hits_total", model=model) + value(
                samples, "loraledger_adapter_device_hits_total", model=model) == len(mine)
            assert value(samples, "loraledger_adapter_cold_loads_total", model=model) == 1  # three fit in host memory

    # the store's counters as the store has them
    stats = node.serving.store.stats.per_adapter
    for what in STORE_COUNTERS:
        assert by_label(samples, f"loraledger_adapter_{what}_total") == {
            name: float(counters[what]) for name, counters in stats.items() if counters.get(what)}, what
    # live gauges
    resident = node.serving.store.resident()
    assert value(samples, "loraledger_adapter_slots_used") == resident["slots"]["used"] == len(resident["device"])
    assert value(samples, "loraledger_adapter_slots_total") == resident["slots"]["total"] == 2
    assert value(samples, "loraledger_adapters_host") == len(resident["host"]) == 3
    assert value(samples, "loraledger_adapter_host_bytes") == resident["hostBytes"] > 0
    assert value(samples, "loraledger_requests_running") == value(samples, "loraledger_requests_waiting") == 0
    assert value(samples, "loraledger_recorder_waiting") == 0
    assert value(samples, "loraledger_recorder_committed_total") == len(usages) == 10
    assert 1 <= value(samples, "loraledger_recorder_batches_total") <= len(usages)
    assert value(samples, "loraledger_log_size") == node.records.size()


def test_with_one_label_every_adapter_is_other(served):
    node = served["node"]
    serving = node.serving
    one = ServingService(model=serving.model, tokenizer=serving.tokenizer, base_name=serving.base_name,
                         base_model_hash=serving.base_model_hash, factory=serving.factory, store=serving.store,
                         loop=serving.loop, prices=serving.prices, recorder=serving.recorder, metrics_models=1)
    url = served["start"](dataclasses.replace(node, serving=one))  # same engine, its own metrics
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=served["key"], max_retries=0, timeout=60)
    for model in ("alpha", "beta", BASE, "gamma"):
        client.completions.create(model=model, prompt="Hi", max_tokens=2, temperature=0)
    samples = scrape(url)
    assert by_label(samples, "loraledger_e2e_request_latency_seconds_count") == {BASE: 1.0, OTHER: 3.0}
    assert set(by_label(samples, "loraledger_prompt_tokens_total")) == {BASE, OTHER}
    for what in STORE_COUNTERS:  # the shared store's counters of all three adapters, under one label
        assert set(by_label(samples, f"loraledger_adapter_{what}_total")) <= {OTHER}
    assert by_label(samples, "loraledger_adapter_cold_loads_total") == {OTHER: 3.0}


def test_a_node_serving_no_model_answers_its_own_gauges(served):
    node = served["node"]
    url = served["start"](dataclasses.replace(node, serving=None))
    samples = scrape(url)
    assert value(samples, "loraledger_log_size") == node.records.size()
    assert value(samples, "loraledger_recorder_waiting") == 0
    assert not any(name.startswith("loraledger_requests") for name, _ in samples)
    document = httpx.get(f"{url}/openapi.json").json()
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert httpx.post(f"{url}/metrics").status_code == 405


# ---------------------------------------------------------------------------- units


def test_model_labels_are_bounded_and_stable():
    labels = ModelLabels(3, reserved=("base",))
    assert [labels(n) for n in ("a", "base", "b", "c", "a", "d", "b")] == ["a", "base", "b", OTHER, "a", OTHER, "b"]
    assert labels.named == {"base", "a", "b"}
    many = ModelLabels(20)
    threads = [threading.Thread(target=lambda i=i: [many(f"m{i}-{j}") for j in range(50)]) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(many.named) == 20  # never more, whatever the interleaving
    assert all(many(name) == name for name in many.named) and many("new") == OTHER
    with pytest.raises(InputError):
        ModelLabels(0)


def test_observe_splits_the_timings_exactly():
    store = SimpleNamespace(stats=SimpleNamespace(per_adapter={"a": {"cold_loads": 2}, "b": {"cold_loads": 1}}),
                            resident=lambda: {"slots": {"used": 1, "total": 4}, "host": {"a": 10}, "hostBytes": 10})
    engine = SimpleNamespace(running=2, waiting=5)
    recorder = SimpleNamespace(waiting=1, committed=7, batches=3)
    metrics = ServingMetrics(store=store, engine=engine, recorder=recorder, base_name="base", max_models=2)

    def answered(model: str, completion: int, reason: str = "length") -> Answered:
        return Answered(model=model, adapter_hash=None, base_model_hash="0x", prompt="p", output="o",
                        prompt_tokens=10, completion_tokens=completion, finish_reason=reason, sampling={}, payer="0x",
                        price=PRICE, queue_ms=0, first_token_ms=None, total_ms=0, backend="builtin", api="completions")

    metrics.observe(answered("a", 5), submitted=10.0, admitted=10.5, first_token=11.0, finished=13.0)
    metrics.observe(answered("b", 1, "stop"), submitted=0.0, admitted=0.25, first_token=1.0, finished=1.0)
    metrics.observe(answered("a", 0, "cancelled"), submitted=0.0, admitted=None, first_token=None, finished=4.0)
    text = generate_latest(metrics.registry).decode()
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert value(samples, "loraledger_queue_time_seconds_sum", model="a") == 0.5
    assert value(samples, "loraledger_queue_time_seconds_count", model="a") == 1  # the cancelled one never ran
    assert value(samples, "loraledger_time_to_first_token_seconds_sum", model="a") == 1.0
    assert value(samples, "loraledger_time_per_output_token_seconds_sum", model="a") == 0.5  # (13 - 11) / 4
    assert value(samples, "loraledger_time_per_output_token_seconds_count", model=OTHER) == 0  # one token only
    assert value(samples, "loraledger_e2e_request_latency_seconds_sum", model="a") == 7.0
    assert value(samples, "loraledger_requests_total", model=OTHER, finish_reason="stop") == 1  # "b": past the bound
    assert value(samples, "loraledger_requests_total", model="a", finish_reason="cancelled") == 1
    assert value(samples, "loraledger_fees_wei_total", model="a") == fee_for(PRICE, 10, 5) + fee_for(PRICE, 10, 0)
    assert by_label(samples, "loraledger_adapter_cold_loads_total") == {"a": 2.0, OTHER: 1.0}
    assert value(samples, "loraledger_requests_waiting") == 5 and value(samples, "loraledger_adapter_slots_total") == 4
    assert value(samples, "loraledger_recorder_committed_total") == 7
