"""Generation on an upstream OpenAI-compatible server: a second node of ours (built-in engine) is
the upstream; the front node resolves models against its own ledger, renders prompts, checks its
payers' keys, prices and records every answer, and its answers equal the upstream's."""

from __future__ import annotations

import httpx
import openai
import pytest
from conftest import deployed_settings, make_peft_adapter, serve

from loraledger.api import create_app
from loraledger.node.context import open_node
from loraledger.records.kinds import FeeRecord, InferenceRecord
from loraledger.serving.recorder import InferenceRecorder
from loraledger.serving.service import ServingService
from loraledger.training.hf.tiny import init_tiny_model


@pytest.fixture(scope="module")
def nodes(anvil, accounts, artifacts, tmp_path_factory):
    root = tmp_path_factory.mktemp("upstream")
    base = init_tiny_model(root / "tiny-llama", "llama").path
    adapter = make_peft_adapter(base, root / "src-qa", seed=3)
    started = []
    apps = {}
    for role in ("upstream", "front"):
        settings = deployed_settings(anvil, accounts[0], artifacts, root / role, price_input_per_1k=1000,
                                     price_output_per_1k=1000)
        node = open_node(settings, operator=accounts[0])
        node.factory.import_adapter(adapter, name="qa", base_dir=base, developer=accounts[4].address, register=False)
        recorder = InferenceRecorder(node.records, operator=accounts[0].address)
        if role == "upstream":
            node.serving = ServingService.open(base, factory=node.factory, prices=node.prices, recorder=recorder,
                                               max_loras=1, max_cpu_loras=2, max_rank=8)
            _, front_key = node.payers.create(accounts[0].address, label="the front node")  # the front pays upstream
        else:
            node.serving = ServingService.open_upstream(base, apps["upstream"]["url"], factory=node.factory,
                                                        prices=node.prices, recorder=recorder, api_key=front_key)
        _, key = node.payers.create(accounts[5].address)
        url, server, thread = serve(create_app(settings, node=node))
        started.append((server, thread, node))
        apps[role] = {"url": url, "node": node, "key": key,
                      "client": openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)}
    yield apps
    for server, thread, node in started:
        server.should_exit = True
        thread.join(timeout=10)
        node.serving.close()


def test_the_front_answers_what_the_upstream_answers_and_records_it(nodes, accounts):
    front, upstream = nodes["front"], nodes["upstream"]
    direct = upstream["client"].completions.create(model="qa", prompt="Hello there", max_tokens=6, temperature=0)
    before = front["node"].records.size()
    relayed = front["client"].completions.create(model="qa", prompt="Hello there", max_tokens=6, temperature=0)
    assert relayed.choices[0].text == direct.choices[0].text
    assert relayed.usage.completion_tokens == 6 and relayed.usage.prompt_tokens == direct.usage.prompt_tokens
    records = front["node"].records.range(before, front["node"].records.size())
    inference, fee = records
    assert isinstance(inference, InferenceRecord) and isinstance(fee, FeeRecord)
    assert inference.backend == f"upstream:{upstream['url']}" and inference.model == "qa"
    assert inference.payer == accounts[5].address  # the front's payer pays the front
    upstream_last = upstream["node"].records.range(upstream["node"].records.size() - 2, upstream["node"].records.size())
    assert upstream_last[0].payer == accounts[0].address  # and the front node pays the upstream, on its own ledger
    assert fee.ref == f"inference:{inference.request_id}" and fee.fee == inference.fee > 0


def test_streamed_chat_through_the_upstream(nodes):
    front, upstream = nodes["front"], nodes["upstream"]
    messages = [{"role": "user", "content": "Say something"}]
    direct = upstream["client"].chat.completions.create(model="qa", messages=messages, max_tokens=5, temperature=0)
    chunks = list(front["client"].chat.completions.create(model="qa", messages=messages, max_tokens=5,
                                                          temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == direct.choices[0].message.content
    assert [c for c in chunks if c.choices and c.choices[0].finish_reason][0].model_extra["inference"]


def test_the_front_refuses_what_it_does_not_serve_before_the_upstream_hears_of_it(nodes):
    front, upstream = nodes["front"], nodes["upstream"]
    upstream_size = upstream["node"].records.size()
    with pytest.raises(openai.NotFoundError):
        front["client"].completions.create(model="nope", prompt="x")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{front['url']}/v1", api_key="llk_wrong", max_retries=0).completions.create(
            model="qa", prompt="x")
    refused = httpx.post(f"{front['url']}/v1/load_lora_adapter", json={"lora_name": "qa"})
    assert refused.status_code == 401
    assert upstream["node"].records.size() == upstream_size  # nothing reached the upstream
