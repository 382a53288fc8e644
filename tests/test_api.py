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
