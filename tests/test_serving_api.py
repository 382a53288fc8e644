"""The OpenAI-compatible API of a node serving a tiny llama and three adapters, driven by the
official ``openai`` client over real HTTP: models, completions, chat, streaming, errors, payer
keys, the record of every answer (inference + fee, committed before the answer ends), a client
that goes away mid-stream, and vLLM's load/unload."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest
from conftest import deployed_settings, make_peft_adapter, serve, wait_for

from loraledger.api import create_app
from loraledger.node.context import open_node
from loraledger.records.kinds import FeeRecord, InferenceRecord, record_hash
from loraledger.serving.recorder import InferenceRecorder
from loraledger.serving.service import ServingService
from loraledger.training.hf.tiny import init_tiny_model

TOKEN = "t0ken"
ADAPTERS = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def served(anvil, accounts, artifacts, tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    settings = deployed_settings(anvil, accounts[0], artifacts, root, admin_token=TOKEN, price_input_per_1k=1000,
                                 price_output_per_1k=2000)
    node = open_node(settings, operator=accounts[0])
    base = init_tiny_model(root / "tiny-llama", "llama").path
    for i, name in enumerate(ADAPTERS):
        node.factory.import_adapter(make_peft_adapter(base, root / f"src-{name}", seed=i), name=name, base_dir=base,
                                    developer=accounts[4].address, register=False)
    recorder = InferenceRecorder(node.records, operator=accounts[0].address)
    node.serving = ServingService.open(base, factory=node.factory, prices=node.prices, recorder=recorder, max_loras=2,
                                       max_cpu_loras=3, max_rank=16, max_running=8)
    _, key = node.payers.create(accounts[5].address, label="tests")
    url, server, thread = serve(create_app(settings, node=node))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)
    yield {"url": url, "node": node, "client": client, "key": key, "payer": accounts[5].address,
           "developer": accounts[4].address, "operator": accounts[0].address}
    server.should_exit = True
    thread.join(timeout=10)
    node.serving.close()


def _inference(served, digest: str) -> InferenceRecord:
    body = httpx.get(f"{served['url']}/v1/inferences/{digest}").json()
    record = InferenceRecord.model_validate(body["record"])
    assert "0x" + record_hash(record).hex() == digest and body["inclusionProof"]["size"] == body["logSize"]
    assert body["attribution"] is None  # these adapters have no attribution index: nothing is queued
    return record


def test_models_lists_the_base_and_its_adapters(served):
    models = {m.id: m for m in served["client"].models.list()}
    assert set(models) == {"tiny-llama", *ADAPTERS}
    assert models["alpha"].parent == "tiny-llama" and models["tiny-llama"].parent is None  # type: ignore[attr-defined]


def test_a_completion_is_answered_recorded_and_paid(served):
    client, node = served["client"], served["node"]
    before = node.records.size()
    raw = client.completions.with_raw_response.create(model="alpha", prompt="Hello there", max_tokens=6,
                                                       temperature=0, seed=1)
    completion = raw.parse()
    digest = raw.headers["X-Loraledger-Inference"]
    assert completion.model_extra["inference"] == digest
    assert completion.usage.completion_tokens == 6 and completion.choices[0].finish_reason == "length"
    record = _inference(served, digest)
    assert (record.model, record.completion_tokens, record.payer) == ("alpha", 6, served["payer"])
    assert record.fee == -(-(record.prompt_tokens * 1000 + 6 * 2000) // 1000)
    fee = node.records.range(record.seq + 1, record.seq + 2)[0]
    assert isinstance(fee, FeeRecord) and fee.ref == f"inference:{record.request_id}" and fee.fee == record.fee
    assert fee.developer == served["developer"] and dict(fee.weights) == {}  # an external adapter: no contributors
    assert node.records.size() == before + 2
    again = client.completions.create(model="alpha", prompt="Hello there", max_tokens=6, temperature=0, seed=1)
    assert again.choices[0].text == completion.choices[0].text  # greedy: the same answer


def test_chat_streams_the_same_answer_and_ends_with_its_record(served):
    client = served["client"]
    messages = [{"role": "user", "content": "Say something"}]
    whole = client.chat.completions.create(model="beta", messages=messages, max_tokens=8, temperature=0)
    chunks = list(client.chat.completions.create(model="beta", messages=messages, max_tokens=8, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].model_extra["inference"].startswith("0x")
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # the usage chunk comes last
    assert _inference(served, finals[0].model_extra["inference"]).api == "chat"


def test_mixed_adapters_at_once_each_recorded_once(served):
    client, node = served["client"], served["node"]
    before = node.records.size()
    results: dict[int, str] = {}

    def ask(i: int) -> None:
        model = (*ADAPTERS, "tiny-llama")[i % 4]
        answer = client.completions.create(model=model, prompt=f"Question {i}", max_tokens=4, temperature=0.7, seed=i)
        results[i] = answer.model_extra["inference"]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(set(results.values())) == 8
    assert node.records.size() == before + 16  # an inference and a fee record each, nothing twice
    assert node.serving.store.resident()["slots"]["used"] <= 2  # three adapters shared two slots


@pytest.mark.parametrize(("call", "error", "status"), [
    (lambda c: c.completions.create(model="nope", prompt="x"), openai.NotFoundError, 404),
    (lambda c: c.completions.create(model="../../etc/passwd", prompt="x"), openai.NotFoundError, 404),
    (lambda c: c.completions.create(model="alpha", prompt="x", temperature=5), openai.BadRequestError, 400),
    (lambda c: c.completions.create(model="alpha", prompt="x", n=2), openai.BadRequestError, 400),
    (lambda c: c.completions.create(model="alpha", prompt="x " * 5000, max_tokens=4), openai.BadRequestError, 400),
    (lambda c: c.chat.completions.create(model="alpha", messages=[]), openai.BadRequestError, 400),
])
def test_bad_requests_get_openai_errors_and_write_nothing(served, call, error, status):
    before = served["node"].records.size()
    with pytest.raises(error) as caught:
        call(served["client"])
    assert caught.value.status_code == status
    body = caught.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["message"]
    assert served["node"].records.size() == before


def test_keys_are_required_and_revocable(served):
    url, node = served["url"], served["node"]
    anonymous = openai.OpenAI(base_url=f"{url}/v1", api_key="llk_not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.completions.create(model="alpha", prompt="x", max_tokens=2)
    no_key = httpx.post(f"{url}/v1/completions", json={"model": "alpha", "prompt": "x"})
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"
    row, key = node.payers.create(served["payer"])
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    assert client.completions.create(model="alpha", prompt="x", max_tokens=1).choices
    node.payers.revoke(row.id)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        client.completions.create(model="alpha", prompt="x", max_tokens=1)


def test_a_client_that_leaves_mid_stream_cancels_and_is_recorded(served):
    url, node = served["url"], served["node"]
    before = node.records.size()
    headers = {"Authorization": f"Bearer {served['key']}"}
    longest = node.serving.loop.engine.max_model_len - 16  # as long as the model allows: it will not finish first
    body = {"model": "gamma", "prompt": "Tell me a long story", "max_tokens": longest, "stream": True}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                json.loads(line[6:])
                break  # one chunk, then the client goes away
    engine = node.serving.loop.engine
    wait_for(lambda: engine.running == 0 and engine.waiting == 0, 30, "the cancelled request to leave the batch")
    wait_for(lambda: node.records.size() > before, 30, "the cancelled request's record")
    record = node.records.range(before, before + 1)[0]
    assert isinstance(record, InferenceRecord) and record.finish_reason == "cancelled"
    assert 0 < record.completion_tokens < longest


def test_load_and_unload_need_the_admin_token_and_registered_names(served):
    url = served["url"]
    admin = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "alpha"}).status_code == 401
    refused = httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": "/tmp/x"}, headers=admin)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "lora_path"
    assert httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "nope"}, headers=admin).status_code == 404
    loaded = httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "alpha", "pin": True}, headers=admin)
    assert loaded.status_code == 200 and "alpha" in loaded.json()["resident"]["pinned"]
    unloaded = httpx.post(f"{url}/v1/unload_lora_adapter", json={"lora_name": "alpha"}, headers=admin).json()
    assert unloaded["wasResident"] is True and "alpha" not in unloaded["resident"]["host"]


def test_node_run_with_base_serves_the_infer_command(anvil, accounts, artifacts, tmp_path):
    import subprocess
    import sys

    from conftest import cli_environment, free_port, node_process

    from loraledger.node.context import ledger_contracts

    settings = deployed_settings(anvil, accounts[0], artifacts, tmp_path)
    base = init_tiny_model(tmp_path / "tiny-llama", "llama").path
    port = free_port()
    env = cli_environment(anvil.url, tmp_path, operator=accounts[0], deployments=settings.deployments_dir,
                          LORALEDGER_ADMIN_TOKEN=TOKEN, LORALEDGER_SERVE_BASE=str(base), LORALEDGER_API_PORT=str(port))

    def cli(*args, **extra):
        return subprocess.run([sys.executable, "-m", "loraledger", *args], env={**env, **extra}, capture_output=True,
                              text=True, timeout=120)

    key = cli("keys", "create", "--payer", accounts[5].address).stdout.strip()
    broke = cli("keys", "create", "--payer", accounts[6].address).stdout.strip()  # a payer who deposited nothing
    contracts = ledger_contracts(settings)
    contracts.client.transact(accounts[0], contracts.token.functions.transfer(accounts[5].address, 10**18),
                              what="fund the payer")
    imported = cli("adapters", "import", str(make_peft_adapter(base, tmp_path / "src-qa", seed=7)), "--name", "qa", "--base", str(base),
                   "--no-register")
    assert imported.returncode == 0, imported.stderr
    assert cli("prices", "set", "qa", "--input", "0", "--output", "3000").returncode == 0
    shown = json.loads(cli("prices", "show", "qa", "--json").stdout)
    assert (shown["inputPer1k"], shown["outputPer1k"], shown["default"]) == ("0", "3000", False)
    with node_process(env, port, tmp_path / "node.log") as node:
        # Answers are paid from deposits: the payer deposits, the node's loop credits it.
        deposited = cli("payer", "deposit", "0.5", "--wait", "30", "--node", node.url,
                        LORALEDGER_KEY="0x" + accounts[5].key.hex())
        assert deposited.returncode == 0 and "credited by the node" in deposited.stdout, deposited.stderr
        refused = openai.OpenAI(base_url=f"{node.url}/v1", api_key=broke, max_retries=0)
        with pytest.raises(openai.APIStatusError) as short:
            refused.completions.create(model="qa", prompt="Hello", max_tokens=2)
        error = short.value.response.json()["error"]
        assert short.value.status_code == 402 and error["code"] == "insufficient_funds"
        assert (error["balance"], error["needed"], error["price"]["outputPer1k"]) == ("0", "6", "3000")
        paid = json.loads(cli("infer", "qa", "Hello", "--max-tokens", "2", "--json", LORALEDGER_API_KEY=key).stdout)
        record = httpx.get(f"{node.url}/v1/inferences/{paid['inference']}").json()["record"]
        assert (record["model"], record["fee"], record["payer"]) == ("qa", "6", accounts[5].address)
        answer = cli("infer", "tiny-llama", "Hello", "--max-tokens", "4", LORALEDGER_API_KEY=key)
        assert answer.returncode == 0, answer.stderr
        assert "4 completion tokens; inference 0x" in answer.stderr
        streamed = cli("infer", "tiny-llama", "Hello", "--max-tokens", "4", "--stream", "--chat", "--json",
                       LORALEDGER_API_KEY=key)
        assert json.loads(streamed.stdout)["usage"]["completion_tokens"] == 4
        unknown = cli("infer", "nope", "Hello", LORALEDGER_API_KEY=key)
        assert unknown.returncode == 3 and "no model" in unknown.stderr
        no_key = cli("infer", "tiny-llama", "Hello")
        assert no_key.returncode == 4 and "API key" in no_key.stderr
        account = json.loads(cli("payer", "balance", accounts[5].address, "--node", node.url, "--json").stdout)
        assert (account["deposited"], account["answers"]) == (str(10**18 // 2), 3)
        usage = {use["model"]: use for use in account["usage"]}
        assert {model: use["answers"] for model, use in usage.items()} == {"qa": 1, "tiny-llama": 2}
        assert usage["qa"]["spent"] == "6"  # the record's fee, debited
        assert int(account["balance"]) == 10**18 // 2 - int(account["spent"]) < 10**18 // 2 - 6


def test_prices_are_set_by_the_admin_or_the_signing_developer_and_charged(served, accounts):
    from eth_account.messages import encode_defunct

    url, client = served["url"], served["client"]
    shown = httpx.get(f"{url}/v1/adapters/beta/price").json()
    assert (shown["inputPer1k"], shown["outputPer1k"], shown["default"]) == ("1000", "2000", True)
    assert httpx.post(f"{url}/v1/adapters/beta/price", json={"inputPer1k": 1, "outputPer1k": 1}).status_code == 401
    admin = {"Authorization": f"Bearer {TOKEN}"}
    set_ = httpx.post(f"{url}/v1/adapters/beta/price", json={"inputPer1k": "0", "outputPer1k": "5000"}, headers=admin)
    assert set_.status_code == 200 and set_.json()["record"]["kind"] == "price"
    answer = client.completions.create(model="beta", prompt="Hi", max_tokens=3, temperature=0)
    record = _inference(served, answer.model_extra["inference"])
    assert (record.input_per_1k, record.output_per_1k, record.fee) == (0, 5000, 15)
    assert record.price_seq == set_.json()["priceSeq"]

    # The developer signs the next change; the message names the price it replaces.
    message = httpx.get(f"{url}/v1/adapters/beta/price").json()["messageToSign"]
    message = message.replace("<inputPer1k>", "7").replace("<outputPer1k>", "9")
    signature = accounts[4].sign_message(encode_defunct(text=message)).signature.hex()
    signature = signature if signature.startswith("0x") else "0x" + signature
    signed = httpx.post(f"{url}/v1/adapters/beta/price",
                        json={"inputPer1k": 7, "outputPer1k": 9, "signature": signature})
    assert signed.status_code == 200, signed.text
    assert signed.json()["record"]["set_by"] == served["developer"]
    replayed = httpx.post(f"{url}/v1/adapters/beta/price", json={"inputPer1k": 7, "outputPer1k": 9,
                                                                 "signature": signature})
    assert replayed.status_code == 401  # it named the price it replaced, which is no longer in force
