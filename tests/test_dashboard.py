"""The dashboard (/dashboard) of a real node over real HTTP, against a real anvil and SQLite, in
Debian's Chromium driven by Playwright.

The node holds a datanet (signed contributions, a snapshot published on chain), an adapter trained on
it (its record, row and registration on chain; the torch training run itself is left out: its
provenance is written as `train` writes it), benchmark records, three answers recorded by the
node's `InferenceRecorder` (one credited by training rows, one attributed with exact spans and
settled by the `AttributionWorker`'s own write, one whose attribution is still pending), a fee
imported through the admin endpoint, and one epoch closed and confirmed on chain.

The browser's wallet is a test EIP-1193 provider injected into the page: it answers the accounts and
the chain id itself, signs `eth_sendTransaction` in Python with the contributor's devnet key and
sends the raw transaction to anvil, and forwards every other call to anvil's JSON-RPC.

Skipped, with the reason, only when Playwright or Chromium cannot be found (scripts/test.sh installs
Debian's chromium as root). With LORALEDGER_DASHBOARD_SCREENSHOTS=DIR the pages are also saved as
PNGs there (scripts/dashboard_screenshots.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, deployed_settings, serve

from loraledger.api import create_app
from loraledger.api.dashboard.present import format_open
from loraledger.datanets.content import content_hash, parse_rows
from loraledger.datanets.contribution import Contribution, sign_contribution
from loraledger.node.context import open_node
from loraledger.records.kinds import AdapterRecord, AttributionRecord, BenchmarkRecord
from loraledger.rewards.split import FeeSplit, split_fee
from loraledger.serving.pricing import Price
from loraledger.serving.recorder import Answered, InferenceRecorder
from loraledger.training.factory import adapter_id
from loraledger.training.provenance import PROVENANCE_FILE, PROVENANCE_FORMAT, provenance_hash, rows_tree

TOKEN = "dashboard-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ADAPTER = "med-qa-lora"
HOSTILE_NAME = '<script>alert("x")</script> & co'
ATTRIBUTED_OUTPUT = "Aspirin is an NSAID used against pain and fever. Take it with water."
SPAN = "an NSAID used against pain and fever"


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


devwallet = _load_script("devwallet")  # the injected EIP-1193 wallet the demo uses too
WALLET_SCRIPT, DevWallet = devwallet.WALLET_SCRIPT, devwallet.DevWallet


screenshots = _load_script("dashboard_screenshots")


# ---- the node and its data -------------------------------------------------------------------


def _contribute(node, datanet_id: int, account, pairs: list[tuple[str, str]]) -> list[str]:
    rows = "".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in pairs)
    signed = Contribution(datanet_id, account.address, content_hash(parse_rows(rows, "instruction")), "CC-BY-4.0",
                          node.datanets.next_nonce(account.address), int(time.time()) + 3600)
    return node.datanets.contribute(datanet_id, rows, signed,
                                    sign_contribution(account, node.datanets.domain, signed)).row_hashes


def _adapter(node, base: Path, datanet_id: int, developer: str) -> Any:
    """The adapter `train` would leave: provenance.json, the adapter record and row, registered on chain."""
    factory = node.factory
    version, manifest, rows = factory.snapshot_training_rows(datanet_id, None)
    tree = rows_tree(rows)
    adapter_hash = "0x" + "a1" * 32
    base_hash = "0x" + "b2" * 32
    provenance = {
        "format": PROVENANCE_FORMAT, "name": ADAPTER, "source": "trained", "adapterHash": adapter_hash,
        "developer": developer, "baseModel": {"hash": base_hash, "modelType": "llama", "tiny": True},
        "datanet": {"id": datanet_id, "snapshotVersion": version, "snapshotRoot": manifest["root"]},
        "trainingRows": {"count": len(rows), "root": tree.root},
        "hyperparameters": {"rank": 8, "alpha": 16, "learningRate": 0.0002, "epochs": 3, "seed": 7,
                            "targetModules": ["q_proj", "v_proj"]},
        "metrics": {"steps": 12, "finalLoss": 0.42, "valLoss": None}, "createdAt": int(time.time()),
    }
    folder = base / "data" / "adapters" / ADAPTER
    folder.mkdir(parents=True)
    (folder / PROVENANCE_FILE).write_text(json.dumps(provenance))
    record = AdapterRecord(
        timestamp=provenance["createdAt"], name=ADAPTER, adapter_id=adapter_id(ADAPTER), adapter_hash=adapter_hash,
        base_model_hash=base_hash, provenance_hash=provenance_hash(provenance), developer=developer, source="trained",
        datanet_id=datanet_id, snapshot_version=version, snapshot_root=manifest["root"], training_rows_root=tree.root,
        training_row_count=len(rows))
    factory._store(record, folder)  # what ModelFactory.train does once torch is done
    row, _ = factory.register(ADAPTER)
    return row


@pytest.fixture(scope="module")
def dash(anvil, accounts, artifacts, tmp_path_factory):
    base = tmp_path_factory.mktemp("dashboard")
    settings = deployed_settings(anvil, accounts[0], artifacts, base, admin_token=TOKEN)
    node = open_node(settings, operator=accounts[0])
    operator, owner, alice, bob, developer, payer = (accounts[i] for i in range(6))

    datanet = node.datanets.create(operator, owner=owner.address, name="med-qa", row_schema="instruction",
                                   licenses=["CC-BY-4.0"], policy="auto", near_duplicate_pct=80)
    _contribute(node, datanet.id, alice, [("What is aspirin?", "Aspirin is an NSAID used against pain and fever."),
                                          ("What is insulin?", "A hormone that lowers blood glucose.")])
    _contribute(node, datanet.id, bob, [("What does the liver do?", "It filters blood and makes bile.")])
    snapshot = node.datanets.snapshot(datanet.id, operator)
    hostile = node.datanets.create(operator, owner=owner.address, name=HOSTILE_NAME, row_schema="text",
                                   licenses=["CC0-1.0"])

    adapter = _adapter(node, base, datanet.id, developer.address)
    now = int(time.time())
    node.records.append_many([
        BenchmarkRecord(timestamp=now, eval_set_hash="0x" + "e5" * 32, eval_examples=12,
                        base_model_hash=adapter.base_model_hash, loss=2.1, perplexity=8.17, exact_match=0.25,
                        rouge_l=0.41),
        BenchmarkRecord(timestamp=now, eval_set_hash="0x" + "e5" * 32, eval_examples=12,
                        base_model_hash=adapter.base_model_hash, adapter_hash=adapter.adapter_hash,
                        adapter_name=ADAPTER, loss=0.9, perplexity=2.46, exact_match=0.58, rouge_l=0.77),
    ])

    # three answers, recorded as the serving node records them
    recorder = InferenceRecorder(node.records, operator=operator.address)
    price = Price(10**17, 3 * 10**17)

    def answer(output: str, *, attribute: bool) -> Any:
        return recorder.record(Answered(
            model=ADAPTER, adapter_hash=adapter.adapter_hash, base_model_hash=adapter.base_model_hash,
            prompt="What is aspirin?", output=output, prompt_tokens=12, completion_tokens=len(output.split()),
            finish_reason="stop", sampling={"temperature": 0.0, "max_tokens": 64}, payer=payer.address, price=price,
            queue_ms=1, first_token_ms=20, total_ms=90, backend="builtin", api="chat", developer=developer.address,
            weights={alice.address: 2, bob.address: 1}, attribute=attribute))

    plain = answer("Insulin lowers blood glucose.", attribute=False)
    attributed = answer(ATTRIBUTED_OUTPUT, attribute=True)
    pending = answer("The liver filters blood.", attribute=True)
    recorder.close()

    # the attributed answer settled as the attribution worker settles it (the gradient scoring,
    # torch, is not what is tested here): its attribution record, its fee and the task, in one write
    from sqlmodel import Session

    from loraledger.attribution.tables import AttributionTaskRow
    from loraledger.attribution.worker import AttributionWorker

    worker = AttributionWorker(node.records, operator=operator.address, index_for=None, model_for=None)
    with Session(node.engine) as session:
        task = session.get(AttributionTaskRow, attributed.seq)
    row_hash = next(h for h, c, _ in node.datanets.snapshot_rows(datanet.id, snapshot.version) if c == alice.address)
    start = ATTRIBUTED_OUTPUT.index(SPAN)
    weights = {alice.address: 3, bob.address: 1}
    record = AttributionRecord(
        timestamp=int(time.time()), inference=attributed.hash_hex, inference_seq=attributed.seq,
        adapter_hash=adapter.adapter_hash, index_hash="0x" + "c3" * 32, status="done", query_hash="0x" + "d4" * 32,
        score_exponent=20, top=[{"row": row_hash, "contributor": alice.address, "score": 123456}],
        spans=[{"start": start, "end": start + len(SPAN), "rows": [row_hash]}], weights=weights)
    worker._write(task, record, weights, None)

    url, server, thread = serve(create_app(settings, node=node))
    imported = {"kind": "fee", "timestamp": now, "payer": payer.address, "fee": str(5 * 10**17),
                "weights": {alice.address: 1}, "developer": None, "operator": operator.address, "ref": "batch-7"}
    appended = httpx.post(f"{url}/v1/records", json=imported, headers=ADMIN)
    assert appended.status_code == 201, appended.text
    closed = httpx.post(f"{url}/v1/epochs/close", headers=ADMIN, timeout=120).json()
    assert closed["sealed"]["status"] == "confirmed", closed

    yield {"url": url, "node": node, "settings": settings, "datanet": datanet, "hostile": hostile,
           "snapshot": snapshot, "adapter": adapter, "plain": plain, "attributed": attributed, "pending": pending,
           "epoch": closed["sealed"], "alice": alice, "bob": bob, "anvil": anvil}
    server.should_exit = True
    thread.join(timeout=10)


def page(dash, path: str) -> httpx.Response:
    return httpx.get(dash["url"] + path, timeout=30)


def text_of(html: str) -> str:
    """The page's visible text, roughly: tags dropped, entities of the few kinds used decoded."""
    plain = re.sub(r"<[^>]+>", " ", html)
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&#34;", '"'), ("&#39;", "'"), ("&amp;", "&")):
        plain = plain.replace(entity, char)
    return re.sub(r"\s+", " ", plain)


# ---- what the templates show (pure) ---------------------------------------------------------


def test_amounts_spans_pages_and_the_chart():
    from loraledger.api.dashboard.present import Segment, benchmark_chart, pager, parse_page, segments
    from loraledger.errors import InputError, NotFoundError

    assert format_open(0) == "0 OPEN" and format_open(10**18) == "1 OPEN"
    assert format_open(1866666666666666667) == "1.866666666666666667 OPEN" and format_open(1) == "0.000000000000000001 OPEN"
    assert format_open(12345 * 10**18 + 5 * 10**17) == "12,345.5 OPEN" and format_open(None) == "–"
    assert format_open(2**256 - 1).startswith("115,792,089,237,316,195,423,570,985,008,687,907,853,269,984,665,640,564,039,457.")

    text = "abcdefghij"
    assert segments(text, []) == [Segment(text)]
    assert segments(text, [(2, 4, ["r1"]), (3, 6, ["r2", "r1"]), (8, 99, ["r3"]), (5, 5, ["r4"])]) == [
        Segment("ab"), Segment("cdef", ("r1", "r2")), Segment("gh"), Segment("ij", ("r3",))]
    assert segments("", [(0, 3, ["r"])]) == [Segment("")]
    assert "".join(s.text for s in segments(text, [(0, 10, ["r"])])) == text

    assert parse_page(None) == 1 and parse_page("3") == 3
    for bad in ("0", "-1", "01", "1.0", "abc", "9" * 12):
        with pytest.raises(InputError):
            parse_page(bad)
    assert (pager(1, 20, 0).pages, pager(2, 20, 41).offset, pager(3, 20, 41).next, pager(3, 20, 41).previous) == (1, 20, None, 2)
    with pytest.raises(NotFoundError):
        pager(4, 20, 41)

    chart = benchmark_chart({"rouge_l": 0.5, "exact_match": None, "perplexity": 8.0, "loss": 2.0},
                            {"rouge_l": 1.0, "exact_match": None, "perplexity": 2.0, "loss": 0.5})
    rouge, exact, perplexity, _ = chart.panels
    assert rouge.bars[1].height == 2 * rouge.bars[0].height and rouge.bars[1].text == "100.0%"
    assert exact.missing and all(bar.height == 0 and bar.text == "–" for bar in exact.bars)
    assert perplexity.bars[0].height == 4 * perplexity.bars[1].height and perplexity.note == "lower is better"
    assert all(bar.y + bar.height == chart.baseline for panel in chart.panels for bar in panel.bars)
    assert all(bar.y >= chart.top for panel in chart.panels for bar in panel.bars)


# ---- pages over plain HTTP -------------------------------------------------------------------


def test_root_redirects_to_the_dashboard_and_the_api_document_is_unchanged(dash):
    response = httpx.get(dash["url"] + "/", follow_redirects=False)
    assert response.status_code == 307
    assert httpx.get(dash["url"] + "/", follow_redirects=True).url.path == "/dashboard/"
    bare = httpx.get(dash["url"] + "/dashboard", follow_redirects=True)  # with or without the slash
    assert bare.status_code == 200 and bare.url.path == "/dashboard/"
    document = httpx.get(dash["url"] + "/openapi.json").json()
    assert not [path for path in document["paths"] if path == "/" or path.startswith("/dashboard")]
    assert page(dash, "/dashboard/openapi.json").status_code == 404


def test_overview_counts(dash):
    response = page(dash, "/dashboard/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    for element, value in (("count-datanets", "2"), ("count-rows", "3"), ("count-adapters", "1"),
                           ("count-inferences", "3"), ("count-epochs", "1")):
        assert re.search(rf'id="{element}">{value}<', html), element
    assert f'id="total-paid">{format_open(int(dash["epoch"]["cumulativeTotal"]))}<' in html
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_datanet_pages_list_contributors_and_snapshots(dash):
    listing = page(dash, "/dashboard/datanets")
    assert listing.status_code == 200 and "med-qa" in listing.text
    for ref in (str(dash["datanet"].id), "med-qa"):
        response = page(dash, f"/dashboard/datanets/{ref}")
        assert response.status_code == 200, response.text
        text = text_of(response.text)
        assert f"{dash['alice'].address} 2 0 0" in text and f"{dash['bob'].address} 1 0 0" in text
        assert f"v1 {dash['snapshot'].root} 3" in text
        assert ADAPTER in text


def test_everything_is_escaped(dash):
    response = page(dash, f"/dashboard/datanets/{dash['hostile'].id}")
    assert response.status_code == 200
    assert "<script>alert" not in response.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in response.text
    assert "<script>alert" not in page(dash, "/dashboard/datanets").text


def test_adapter_page_shows_provenance_and_the_benchmark_chart(dash):
    adapter = dash["adapter"]
    assert ADAPTER in page(dash, "/dashboard/adapters").text
    response = page(dash, f"/dashboard/adapters/{ADAPTER}")
    assert response.status_code == 200, response.text
    html = response.text
    record = dash["node"].records.get(adapter.record_seq)
    for value in (adapter.base_model_hash, adapter.adapter_hash, record.snapshot_root, record.training_rows_root,
                  dash["datanet"].name, dash["adapter"].developer, "learningRate", "registered, version 1"):
        assert value in html, value
    chart = re.search(r'<svg id="benchmark-chart".*?</svg>', html, re.S)
    assert chart, "no chart"
    bars = re.findall(r'<rect class="bar bar-(base|adapter)"[^>]*height="([0-9.]+)"', chart.group(0))
    assert len(bars) == 8 and all(float(height) > 0 for _, height in bars)
    for label in ("ROUGE-L", "Exact match", "Perplexity", "77.0%", "41.0%", "2.46", "8.17"):
        assert label in chart.group(0), label


def test_inference_pages_show_spans_credits_and_pending(dash):
    listing = page(dash, "/dashboard/inferences")
    assert listing.status_code == 200
    assert all(dash[name].hash_hex in listing.text for name in ("plain", "attributed", "pending"))
    assert 'badge-pending">pending<' in listing.text and 'badge-done">done<' in listing.text

    node = dash["node"]
    response = page(dash, f"/dashboard/inferences/{dash['attributed'].hash_hex}")
    assert response.status_code == 200, response.text
    html = response.text
    assert re.search(rf"<mark title=\"training rows: [^\"]+\">{SPAN}</mark>", html), "the span is not highlighted"
    answer = re.search(r'<blockquote class="answer" id="answer">(.*?)</blockquote>', html, re.S).group(1)
    assert re.sub(r"<[^>]+>", "", answer) == ATTRIBUTED_OUTPUT
    split = FeeSplit.from_tuple(node.contracts.fee_split())
    fee = dash["attributed"].fee
    shares = split_fee(fee, {dash["alice"].address: 3, dash["bob"].address: 1}, dash["adapter"].developer,
                       node.operator.address, split)
    text = text_of(re.search(r'<table id="credited">.*?</table>', html, re.S).group(0))
    assert f"{dash['alice'].address} 3 75.0% 1 {format_open(shares[dash['alice'].address])} " \
           f"{shares[dash['alice'].address]}" in text
    assert f"{dash['bob'].address} 1 25.0% 0 {format_open(shares[dash['bob'].address])}" in text

    pending = page(dash, f"/dashboard/inferences/{dash['pending'].hash_hex}")
    assert pending.status_code == 200
    assert 'id="fee-pending"' in pending.text and "Pending" in pending.text
    plain = page(dash, f"/dashboard/inferences/{dash['plain'].hash_hex}")
    assert plain.status_code == 200 and "not attributed" in plain.text and 'id="credited"' in plain.text
    assert page(dash, "/dashboard/inferences?page=1").status_code == 200


def test_epoch_pages(dash):
    epoch = dash["epoch"]
    listing = page(dash, "/dashboard/epochs")
    assert listing.status_code == 200 and 'badge-confirmed">confirmed<' in listing.text
    response = page(dash, "/dashboard/epochs/1")
    assert response.status_code == 200, response.text
    html = response.text
    for value in (epoch["logRoot"], epoch["rewardsRoot"], epoch["dataHash"]):
        assert value in html, value
    assert re.search(r'id="post-tx">0x[0-9a-f]{64}<', html)
    assert str(epoch["block"]) in html
    assert html.count("✓ equal") == 6 and "✗" not in html


def test_contributor_page_splits_earnings_per_adapter(dash):
    node, alice = dash["node"], dash["alice"]
    response = page(dash, f"/dashboard/contributors/{alice.address}")
    assert response.status_code == 200, response.text
    html = response.text
    epoch_file = node.store.read(1)
    split = FeeSplit.from_json(epoch_file["feeSplit"])
    fees = [r for r in epoch_file["records"] if r["kind"] == "fee"]
    per_fee = [split_fee(int(f["fee"]), f["weights"], f["developer"], f["operator"], split).get(alice.address, 0)
               for f in fees]
    from_answers = sum(amount for fee, amount in zip(fees, per_fee) if fee["ref"].startswith("inference:"))
    imported = sum(amount for fee, amount in zip(fees, per_fee) if not fee["ref"].startswith("inference:"))
    earnings = text_of(re.search(r'<table id="earnings">.*?</table>', html, re.S).group(0))
    assert f"{ADAPTER} contributor 2 {format_open(from_answers)} {from_answers}" in earnings
    assert f"(imported) contributor 1 {format_open(imported)} {imported}" in earnings
    cumulative = int(httpx.get(f"{dash['url']}/v1/rewards/{alice.address}").json()["cumulativeAmount"])
    assert from_answers + imported == cumulative
    assert f'id="earned">{format_open(cumulative)}<' in html and "✓ equals the account's leaf" in html
    assert 'id="claimable" data-figure="claimable">' in html and '<button type="button" id="claim"' in html
    lowercase = page(dash, f"/dashboard/contributors/{alice.address.lower()}")
    assert lowercase.status_code == 200 and alice.address in lowercase.text
    nobody = page(dash, "/dashboard/contributors/0x000000000000000000000000000000000000dEaD")
    assert nobody.status_code == 200 and "Nothing earned in a confirmed epoch yet" in nobody.text
    figures = httpx.get(f"{dash['url']}/dashboard/contributors/0x000000000000000000000000000000000000dEaD/claim.json").json()
    assert (figures["claimable"], figures["proof"], figures["cumulativeAmount"]) == ("0", [], "0")
    listing = page(dash, "/dashboard/contributors")
    assert listing.status_code == 200 and alice.address in listing.text and dash["bob"].address in listing.text
    bad = httpx.get(f"{dash['url']}/dashboard/contributors/0x1234/claim.json")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_input" and "not an address" in bad.json()["message"]


@pytest.mark.parametrize(("path", "status", "needle"), [
    ("/dashboard/nope", 404, "There is no page at /dashboard/nope"),
    ("/dashboard/static/nope.css", 404, "There is no page"),
    ("/dashboard/adapters/no-such-adapter", 404, "no adapter named 'no-such-adapter'"),
    ("/dashboard/adapters/Bad%20Name", 400, "invalid adapter name"),
    ("/dashboard/datanets/999", 404, "no datanet 999"),
    ("/dashboard/datanets/no-such-datanet", 404, "no datanet named"),
    ("/dashboard/datanets/007", 400, "datanet ids are whole numbers"),
    ("/dashboard/inferences/0x" + "ab" * 32, 404, "no record with hash"),
    ("/dashboard/inferences/0x1234", 400, "0x followed by 64 hex digits"),
    ("/dashboard/inferences/0x" + "zz" * 32, 400, "0x followed by 64 hex digits"),
    ("/dashboard/inferences?page=abc", 400, "page must be a positive whole number"),
    ("/dashboard/inferences?page=0", 400, "page must be a positive whole number"),
    ("/dashboard/inferences?page=99", 404, "past the last page"),
    ("/dashboard/epochs/9", 404, "epoch 9 is not sealed"),
    ("/dashboard/epochs/abc", 400, "an epoch number is a whole number"),
    ("/dashboard/epochs/0", 400, "an epoch number is a whole number"),
    ("/dashboard/contributors/0x1234", 400, "not an address"),
    ("/dashboard/contributors/0xF39FD6E51AAD88F6F4CE6AB8827279CFFFB92266x", 400, "not an address"),
    ("/dashboard/contributors/0xf39FD6E51aad88F6F4ce6aB8827279cffFb92266", 400, "checksum"),
    ("/dashboard/adapters/" + "a" * 5000, 400, "invalid adapter name"),
    ("/dashboard/datanets/" + "x" * 5000, 400, "at most 200 characters"),
    ("/dashboard/inferences/%00", 400, "0x followed by 64 hex digits"),
    ("/dashboard/epochs/1.0", 400, "an epoch number is a whole number"),
    ("/dashboard/epochs/" + "9" * 40, 400, "an epoch number is a whole number"),
])
def test_unknown_and_bad_ids_answer_html_error_pages(dash, path, status, needle):
    response = page(dash, path)
    assert response.status_code == status, (path, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html"), path
    assert needle in text_of(response.text), (path, text_of(response.text)[:500])
    assert "Traceback" not in response.text


def test_a_record_that_is_no_inference_is_not_found(dash):
    node = dash["node"]
    fee_hash = next(r.hash_hex for r in node.records.of_kind("fee"))
    response = page(dash, f"/dashboard/inferences/{fee_hash}")
    assert response.status_code == 404 and "is a fee record, not an inference" in response.text
    assert httpx.post(dash["url"] + "/dashboard/", timeout=10).status_code == 405


def test_a_bug_is_an_html_500_page_with_the_traceback_in_the_log_only(caplog):
    from fastapi import APIRouter
    from fastapi.testclient import TestClient
    from starlette.datastructures import State

    from loraledger.api.dashboard.web import create_dashboard

    router = APIRouter()

    @router.get("/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("secret detail")

    with TestClient(create_dashboard(State(), router), raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/html")
    assert "RuntimeError" in response.text and "secret detail" not in response.text
    assert "content-security-policy" in response.headers
    assert "secret detail" in caplog.text


# ---- the browser and the wallet -------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install loraledger[test])")
    executable = screenshots.chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; scripts/test.sh does it as root)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


def open_contributor(browser, dash, wallet: DevWallet | None):
    context = browser.new_context()
    if wallet is not None:
        context.expose_function("__testWallet", wallet)
        context.add_init_script(WALLET_SCRIPT)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    response = tab.goto(f"{dash['url']}/dashboard/contributors/{dash['alice'].address}")
    assert response is not None and response.status == 200
    return context, tab, problems


def claim_status(tab, kind: str) -> str:
    from playwright.sync_api import expect

    status = tab.locator("#claim-status")
    expect(status).to_have_class(re.compile(rf"\b{kind}\b"), timeout=30_000)
    return status.inner_text()


def test_pages_render_in_chromium_without_errors(browser, dash):
    context = browser.new_context()
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    for path in ("/", f"/datanets/{dash['datanet'].id}", f"/adapters/{ADAPTER}",
                 f"/inferences/{dash['attributed'].hash_hex}", "/epochs/1", f"/contributors/{dash['alice'].address}"):
        response = tab.goto(f"{dash['url']}/dashboard{path}")
        assert response is not None and response.status == 200, path
    assert tab.locator("#claim").is_visible()
    tab.goto(f"{dash['url']}/dashboard/adapters/{ADAPTER}")
    assert tab.locator("#benchmark-chart rect.bar-adapter").count() == 4
    box = tab.locator("#benchmark-chart").bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100  # drawn, styled by the node's own CSS
    tab.goto(f"{dash['url']}/dashboard/inferences/{dash['attributed'].hash_hex}")
    assert tab.locator("#answer mark").inner_text() == SPAN
    assert tab.locator("mark").evaluate("m => getComputedStyle(m).backgroundColor") != "rgba(0, 0, 0, 0)"
    assert not problems, problems  # no CSP violation, no script error
    context.close()
    if os.environ.get("LORALEDGER_DASHBOARD_SCREENSHOTS"):
        saved = screenshots.capture(dash["url"], Path(os.environ["LORALEDGER_DASHBOARD_SCREENSHOTS"]),
                                    contributor=dash["alice"].address, browser=browser)
        assert len(saved) == 6, saved


def test_claim_refusals_say_why(browser, dash):
    node, alice = dash["node"], dash["alice"]
    chain_id = node.contracts.client.chain_id
    balance = node.contracts.balance_of(alice.address)

    context, tab, _ = open_contributor(browser, dash, None)
    tab.click("#claim")
    assert "No wallet found" in claim_status(tab, "error")
    context.close()

    wrong = DevWallet(dash["anvil"].url, alice, 1)
    context, tab, _ = open_contributor(browser, dash, wrong)
    tab.click("#claim")
    assert f"Wrong network: the wallet is on chain 1, this node's contracts are on chain {chain_id}" \
        in claim_status(tab, "error")
    assert "eth_sendTransaction" not in wrong.calls
    context.close()

    rejecting = DevWallet(dash["anvil"].url, alice, chain_id, reject=True)
    context, tab, _ = open_contributor(browser, dash, rejecting)
    tab.click("#claim")
    assert "You rejected the connection request in the wallet; nothing was sent." in claim_status(tab, "error")
    context.close()

    if node.contracts.claimed(alice.address) == 0:  # (the claim test below has not run yet)
        tampering = DevWallet(dash["anvil"].url, alice, chain_id, tamper=True)
        context, tab, problems = open_contributor(browser, dash, tampering)
        tab.click("#claim")
        message = claim_status(tab, "error")
        assert "The claim reverted on chain" in message and tampering.sent[0] in message
        assert node.contracts.client.w3.eth.get_transaction_receipt(tampering.sent[0])["status"] == 0
        assert not problems, problems
        context.close()
    assert node.contracts.claimed(alice.address) == 0 or node.contracts.balance_of(alice.address) == balance


def test_claim_from_the_contributor_page_pays_the_cumulative_amount(browser, dash):
    from playwright.sync_api import expect

    node, alice = dash["node"], dash["alice"]
    proof = httpx.get(f"{dash['url']}/v1/rewards/{alice.address}").json()
    cumulative = int(proof["cumulativeAmount"])
    assert cumulative > 0 and int(proof["claimed"]) == 0
    before = node.contracts.balance_of(alice.address)

    wallet = DevWallet(dash["anvil"].url, alice, node.contracts.client.chain_id)
    context, tab, problems = open_contributor(browser, dash, wallet)
    assert tab.locator("#claimable").inner_text() == format_open(cumulative)
    tab.click("#claim")
    expect(tab.locator("#claimed")).to_have_text(format_open(cumulative), timeout=30_000)
    message = claim_status(tab, "ok")
    assert f"Claimed {format_open(cumulative)} in transaction {wallet.sent[0]}" in message
    expect(tab.locator("#claimable")).to_have_text(format_open(0))
    expect(tab.locator("#balance")).to_have_text(format_open(before + cumulative))
    assert not problems, problems
    context.close()

    assert node.contracts.claimed(alice.address) == cumulative
    assert node.contracts.balance_of(alice.address) == before + cumulative
    assert wallet.calls.count("eth_sendTransaction") == 1


def test_a_second_claim_says_there_is_nothing_to_claim(browser, dash):
    node, alice = dash["node"], dash["alice"]
    proof = httpx.get(f"{dash['url']}/v1/rewards/{alice.address}").json()
    if int(proof["claimable"]):  # (run alone: claim first, as any wallet or the CLI would)
        node.contracts.claim(alice, alice.address, int(proof["cumulativeAmount"]), proof["proof"])
    balance, claimed = node.contracts.balance_of(alice.address), node.contracts.claimed(alice.address)

    wallet = DevWallet(dash["anvil"].url, alice, node.contracts.client.chain_id)
    context, tab, problems = open_contributor(browser, dash, wallet)
    assert tab.locator("#claimable").inner_text() == format_open(0)
    tab.click("#claim")
    tab.wait_for_function("() => document.getElementById('claim-status').textContent.startsWith('Nothing to claim')")
    assert tab.locator("#claim-status").inner_text() == \
        f"Nothing to claim: {format_open(claimed)} of {format_open(claimed)} is already claimed."
    assert "eth_sendTransaction" not in wallet.calls and not wallet.sent
    assert not problems, problems
    context.close()
    assert node.contracts.balance_of(alice.address) == balance and node.contracts.claimed(alice.address) == claimed


def test_claim_js_encodes_the_claim_call_as_the_abi_does(browser, dash):
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector

    source = (ROOT / "src" / "loraledger" / "api" / "dashboard" / "static" / "claim.js").read_text()
    selector = "0x" + function_signature_to_4byte_selector("claim(address,uint256,bytes32[])").hex()
    assert f'var CLAIM_SELECTOR = "{selector}";' in source
    proof = ["0x" + "11" * 32, "0x" + "22" * 32, "0x" + "33" * 32]
    account, amount = dash["alice"].address, 2**255 + 12345
    expected = selector + encode(["address", "uint256", "bytes32[]"],
                                 [account, amount, [bytes.fromhex(p[2:]) for p in proof]]).hex()
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(f"{dash['url']}/dashboard/")
    # the same function body, lifted out of the file's closure
    body = source[source.index("function word"):source.index("function sleep")]
    encoded = tab.evaluate(f"([a, n, p]) => {{ var CLAIM_SELECTOR = {json.dumps(selector)}; {body}; "
                           "return encodeClaim(a, n, p); }", [account, str(amount), proof])
    assert encoded == expected
    context.close()


def test_a_chain_that_does_not_answer_is_a_page_saying_so(dash):
    # last: stops this module's anvil
    dash["anvil"].process.terminate()
    dash["anvil"].process.wait(timeout=10)
    alice = dash["alice"].address
    response = page(dash, f"/dashboard/contributors/{alice}")
    assert response.status_code == 502 and response.headers["content-type"].startswith("text/html")
    assert "The chain is unreachable" in response.text and "Traceback" not in response.text
    figures = page(dash, f"/dashboard/contributors/{alice}/claim.json")
    assert figures.status_code == 502 and figures.json()["error"] == "chain_unreachable"
    epoch = page(dash, "/dashboard/epochs/1")  # the chain is only a comparison there
    assert epoch.status_code == 200 and "The chain is unreachable" in epoch.text
    assert page(dash, "/dashboard/").status_code == 200
