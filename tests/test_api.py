"""The node's /v1 API over real HTTP (uvicorn on loopback), against a real anvil and SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import httpx
import pytest
import uvicorn
from conftest import BIN, deployed_settings, free_port, serve

from loraledger.api import create_app
from loraledger.crypto.merkle import StandardMerkleTree
from loraledger.crypto.translog import verify_consistency, verify_inclusion
from loraledger.node.context import open_node
from loraledger.rewards.split import REWARD_LEAF_ENCODING

TOKEN = "s3cret-admin-token"


@pytest.fixture(scope="module")
def api(anvil, accounts, artifacts, tmp_path_factory):
    base = tmp_path_factory.mktemp("api")
    settings = deployed_settings(anvil, accounts[0], artifacts, base, admin_token=TOKEN)
    node = open_node(settings, operator=accounts[0])
    url, server, thread = serve(create_app(settings, node=node))
    yield {"url": url, "settings": settings, "node": node, "base": base}
    server.should_exit = True
    thread.join(timeout=10)


def admin(**extra):
    return {"Authorization": f"Bearer {TOKEN}", **extra}


def fee(accounts, amount: int, ref: str) -> dict:
    return {"kind": "fee", "timestamp": 1_700_000_000, "payer": accounts[5].address, "fee": str(amount),
            "weights": {accounts[1].address: 2, accounts[2].address: 1}, "developer": accounts[4].address,
            "operator": accounts[0].address, "ref": ref}


def test_full_api_flow(api, accounts):
    url = api["url"]
    assert httpx.get(f"{url}/v1/health").json()["status"] == "ok"

    # admin endpoints need the token
    assert httpx.post(f"{url}/v1/records", json=fee(accounts, 10**18, "x")).status_code == 401
    assert httpx.post(f"{url}/v1/records", json=fee(accounts, 10**18, "x"),
                      headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(f"{url}/v1/epochs/close").status_code == 401

    created = httpx.post(f"{url}/v1/records", json=[fee(accounts, 10**18, "a"), fee(accounts, 3 * 10**18, "b")],
                         headers=admin())
    assert created.status_code == 201, created.text
    appended = created.json()["appended"]
    assert [a["seq"] for a in appended] == [0, 1]

    closed = httpx.post(f"{url}/v1/epochs/close", headers=admin(), timeout=120).json()
    assert closed["sealed"]["epoch"] == 1 and closed["sealed"]["status"] == "confirmed"
    assert httpx.post(f"{url}/v1/epochs/close", headers=admin(), timeout=120).json() == {"sealed": None}

    epochs = httpx.get(f"{url}/v1/epochs").json()
    assert [e["epoch"] for e in epochs] == [1]
    epoch_file = httpx.get(f"{url}/v1/epochs/1").json()
    assert epoch_file["log"]["size"] == 2 and epoch_file["rewards"]["root"] == epochs[0]["rewardsRoot"]

    # a reward proof that verifies against the on-chain root
    reward = httpx.get(f"{url}/v1/rewards/{accounts[1].address}").json()
    onchain_root = api["node"].contracts.merkle_root()
    assert reward["root"] == onchain_root
    assert StandardMerkleTree.verify(onchain_root, REWARD_LEAF_ENCODING,
                                     [reward["account"], int(reward["cumulativeAmount"])], reward["proof"])
    # 70% of 4 OPEN by weight 2:1 → 2/3 of 2.8 OPEN
    assert int(reward["cumulativeAmount"]) == 28 * 10**17 * 2 // 3 + 1  # largest remainder gives the odd wei

    # a record's inclusion proof, checked offline
    record = httpx.get(f"{url}/v1/records/{appended[1]['hash']}").json()
    proof = record["inclusionProof"]
    assert record["seq"] == 1 and record["record"]["ref"] == "b"
    assert verify_inclusion(bytes.fromhex(proof["leafHash"][2:]),
                            proof["index"], proof["size"], [bytes.fromhex(h[2:]) for h in proof["path"]],
                            bytes.fromhex(record["logRoot"][2:]))

    # more records, and a consistency proof between the two log sizes
    httpx.post(f"{url}/v1/records", json=fee(accounts, 5, "c"), headers=admin()).raise_for_status()
    consistency = httpx.get(f"{url}/v1/log/consistency", params={"first": 2, "second": 3}).json()
    assert verify_consistency(2, 3, bytes.fromhex(consistency["firstRoot"][2:]), bytes.fromhex(consistency["secondRoot"][2:]),
                              [bytes.fromhex(h[2:]) for h in consistency["proof"]["path"]])
    assert consistency["firstRoot"] == epoch_file["log"]["root"]


@pytest.mark.parametrize(
    "method,path,kwargs,status,needle",
    [
        ("get", "/v1/epochs/0", {}, 400, "start at 1"),
        ("get", "/v1/epochs/999", {}, 404, "not sealed"),
        ("get", "/v1/epochs/abc", {}, 422, "number"),
        ("get", "/v1/rewards/0x1234", {}, 400, "40 hex digits"),
        ("get", "/v1/rewards/0x000000000000000000000000000000000000dEaD", {}, 404, "no rewards"),
        ("get", "/v1/records/0x1234", {}, 400, "64 hex digits"),
        ("get", "/v1/records/0x" + "ab" * 32, {}, 404, ""),
        ("get", "/v1/log/consistency?first=3&second=1", {}, 400, "must not exceed"),
        ("get", "/v1/log/consistency?first=1&second=9999", {}, 404, ""),
        ("get", "/v1/log/consistency?first=1", {}, 422, "second"),
        ("post", "/v1/records", {"json": {"kind": "fee", "payer": "0xnope"}}, 400, "records[0]"),
        ("post", "/v1/records", {"json": {"kind": "bogus"}}, 400, "records[0]"),
        ("post", "/v1/records", {"json": []}, 400, "between 1 and"),
        ("post", "/v1/records", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "not JSON"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(api, accounts, method, path, kwargs, status, needle):
    headers = {**admin(), **kwargs.pop("headers", {})} if method == "post" else {}
    response = getattr(httpx, method)(api["url"] + path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] and needle in body["message"]


def test_record_with_a_seq_is_refused(api, accounts):
    body = {**fee(accounts, 1, "s"), "seq": 5}
    response = httpx.post(f"{api['url']}/v1/records", json=body, headers=admin())
    assert response.status_code == 400 and "assigned by the ledger" in response.json()["message"]


def test_admin_endpoints_are_off_without_a_configured_token(api, tmp_path):
    settings = api["settings"].model_copy(update={"admin_token": None})
    app = create_app(settings, node=api["node"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/v1/epochs/close", headers=admin())
        assert response.status_code == 401 and "disabled" in response.json()["message"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_claim_with_a_proof_from_the_node(api, accounts):
    env = dict(os.environ)
    env.update({
        "LORALEDGER_RPC_URL": api["settings"].rpc_url,
        "LORALEDGER_DEPLOYMENTS_DIR": str(api["base"] / "deployments"),
        "LORALEDGER_DATA_DIR": str(api["base"] / "elsewhere"),  # no local epoch files: the node is the source
        "LORALEDGER_KEY": "0x" + accounts[2].key.hex(),
        "PATH": f"{BIN}:{env.get('PATH', '')}",
    })
    result = subprocess.run([sys.executable, "-m", "loraledger", "claim", "--node", api["url"]], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "claimed" in result.stdout
    assert api["node"].contracts.claimed(accounts[2].address) > 0


def test_a_large_epoch_is_published_as_chunks_that_verify_and_pay(anvil, accounts, artifacts, tmp_path):
    """A node whose epochs split at 1 byte, in chunks of ~600 bytes: the seal writes content-addressed
    chunks and a manifest, the API serves both, and proofs, claims' roots and verify work from them."""
    import json

    from loraledger.claims.earnings import account_earnings
    from loraledger.claims.service import verify_with_chain
    from loraledger.crypto.merkle.hashing import keccak256
    from loraledger.epochs.file import data_hash

    settings = deployed_settings(anvil, accounts[0], artifacts, tmp_path, admin_token=TOKEN,
                                 epoch_file_max_bytes=1, epoch_chunk_bytes=600)
    node = open_node(settings, operator=accounts[0])
    url, server, thread = serve(create_app(settings, node=node))
    try:
        records = [fee(accounts, 10**15 * (i + 1), f"r{i}") for i in range(12)]
        httpx.post(f"{url}/v1/records", json=records, headers=admin()).raise_for_status()
        closed = httpx.post(f"{url}/v1/epochs/close", headers=admin(), timeout=120).json()
        assert closed["sealed"]["status"] == "confirmed"

        manifest = httpx.get(f"{url}/v1/epochs/1").json()
        assert manifest["format"] == "loraledger-epoch-chunked-v1" and "records" not in manifest
        assert len(manifest["chunks"]) >= 3 and sum(c["records"] for c in manifest["chunks"]) == 12
        seen = []
        for entry in manifest["chunks"]:
            response = httpx.get(f"{url}/v1/epochs/1/chunks/{entry['hash']}")
            assert response.status_code == 200 and "immutable" in response.headers["cache-control"]
            assert "0x" + keccak256(response.content).hex() == entry["hash"] and len(response.content) == entry["bytes"]
            seen += json.loads(response.content)["records"]
        assert [r["seq"] for r in seen] == list(range(12)) and [r["ref"] for r in seen] == [f"r{i}" for i in range(12)]
        # the chain holds the manifest's data hash and the count of the records in its chunks
        posted = node.contracts.epoch(1)
        assert posted.data_hash == data_hash(manifest)
        assert posted.record_count == 12 and posted.log_size == 12

        # only listed chunks, only well-formed hashes
        other = "0x" + "ab" * 32
        assert httpx.get(f"{url}/v1/epochs/1/chunks/{other}").status_code == 404
        assert httpx.get(f"{url}/v1/epochs/1/chunks/..%2F1.json").status_code in (400, 404)
        bad = httpx.get(f"{url}/v1/epochs/1/chunks/0x1234")
        assert bad.status_code == 400 and "64 hex digits" in bad.json()["message"]
        assert httpx.get(f"{url}/v1/epochs/2/chunks/{manifest['chunks'][0]['hash']}").status_code == 404

        reward = httpx.get(f"{url}/v1/rewards/{accounts[1].address}").json()
        assert StandardMerkleTree.verify(node.contracts.merkle_root(), REWARD_LEAF_ENCODING,
                                         [reward["account"], int(reward["cumulativeAmount"])], reward["proof"])
        report = verify_with_chain(node.store.read_all(), node.contracts, node.store.read_chunk)
        assert report.ok, report.problems
        page = httpx.get(f"{url}/dashboard/epochs/1")
        assert page.status_code == 200 and "12 fee" in page.text
        assert f'/v1/epochs/1/chunks/{manifest["chunks"][0]["hash"]}' in page.text
        earnings = account_earnings([manifest], accounts[1].address, node.store.read_chunk)
        assert [group.fees for group in earnings.by_model] == [12] and earnings.tree_amount == int(reward["cumulativeAmount"])
        assert httpx.get(f"{url}/dashboard/contributors/{accounts[1].address}").status_code == 200

        cli = [sys.executable, "-m", "loraledger", "verify", "--epochs", str(node.store.directory), "--rpc-url", anvil.url]
        verified = subprocess.run(cli, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert verified.returncode == 0 and "verified 1 epoch" in verified.stdout, verified.stderr

        # a chunk changed on disk is named by verify
        chunk = node.store.chunk_path(manifest["chunks"][1]["hash"])
        chunk.write_bytes(chunk.read_bytes()[:-2] + b" ]}")
        report = verify_with_chain(node.store.read_all(), node.contracts, node.store.read_chunk)
        assert any("chunks[1]" in p and "hash to" in p for p in report.problems), report.problems
        refused = subprocess.run(cli, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert refused.returncode == 1 and "MISMATCH epoch 1: chunks[1]" in refused.stderr, refused.stderr
    finally:
        server.should_exit = True
        thread.join(timeout=10)
