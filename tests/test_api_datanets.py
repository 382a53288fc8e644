"""The /v1/datanets API over real HTTP (uvicorn on loopback), against a real anvil and SQLite:
create, signed contributions, owner-signed review and snapshot, manifest, on-chain row proof,
and the refusals (auth, duplicates, bad signatures, unknown ids, malformed input)."""

from __future__ import annotations

import dataclasses
import json
import time

import httpx
import pytest
from conftest import deployed_settings, serve

from loraledger.api import create_app
from loraledger.api.routes.datanets import owner_headers
from loraledger.crypto.merkle import StandardMerkleTree
from loraledger.datanets.content import content_hash, parse_rows
from loraledger.datanets.contribution import Contribution, ContributionDomain, sign_contribution
from loraledger.node.context import open_node

TOKEN = "datanet-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}



@pytest.fixture(scope="module")
def api(anvil, accounts, artifacts, tmp_path_factory):
    settings = deployed_settings(anvil, accounts[0], artifacts, tmp_path_factory.mktemp("api-datanets"),
                                 admin_token=TOKEN)
    node = open_node(settings, operator=accounts[0])
    url, server, thread = serve(create_app(settings, node=node))
    yield {"url": url, "settings": settings, "node": node}
    server.should_exit = True
    thread.join(timeout=10)


def create_datanet(api, accounts, name: str, policy: str = "review") -> dict:
    response = httpx.post(f"{api['url']}/v1/datanets", headers=ADMIN, timeout=60, json={
        "owner": accounts[1].address, "name": name, "schema": "instruction", "licenses": ["CC-BY-4.0", "CC0-1.0"],
        "policy": policy, "nearDuplicatePct": 80, "metadataURI": "ipfs://example",
    })
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def spare(api, accounts):
    """A review datanet for the refusal tests, with one pending row by accounts[2]."""
    dn = create_datanet(api, accounts, "spare")
    response = contribute(api, dn, accounts[2], jsonl(("What is a spare?", "Something kept in reserve.")))
    assert response.status_code == 201, response.text
    return dn


def jsonl(*pairs: tuple[str, str]) -> str:
    return "".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in pairs)


def contribution_body(api, dn: dict, account, rows: str, *, license="CC-BY-4.0", nonce=None, signer=None) -> dict:
    url = api["url"]
    if nonce is None:
        nonce_reply = httpx.get(f"{url}/v1/datanets/{dn['id']}/nonce/{account.address}")
        assert nonce_reply.status_code == 200, nonce_reply.text
        nonce = nonce_reply.json()["nonce"]
    domain = ContributionDomain(dn["domain"]["chainId"], dn["domain"]["verifyingContract"])
    deadline = int(time.time()) + 3600
    contribution = Contribution(dn["id"], account.address, content_hash(parse_rows(rows, dn["schema"])), license,
                                nonce, deadline)
    return {"contributor": account.address, "license": license, "nonce": str(nonce), "deadline": deadline,
            "signature": sign_contribution(signer or account, domain, contribution), "rows": rows}


def contribute(api, dn: dict, account, rows: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{api['url']}/v1/datanets/{dn['id']}/contributions",
                      json=contribution_body(api, dn, account, rows, **kwargs), timeout=60)


def as_owner(api, account, method: str, datanet_id: int, suffix: str, body: dict | None = None, *,
             deadline: int | None = None, send_path: str | None = None) -> httpx.Response:
    """An owner-endpoint request signed by ``account`` (send_path: send it elsewhere than it was signed for)."""
    path = f"/v1/datanets/{datanet_id}{suffix}"
    raw = json.dumps(body).encode() if body is not None else b""
    headers = owner_headers(account, datanet_id, method, path, raw, deadline or int(time.time()) + 600)
    if raw:
        headers["Content-Type"] = "application/json"
    return httpx.request(method, api["url"] + (send_path or path), content=raw, headers=headers, timeout=60)


def test_full_datanet_flow(api, accounts):
    url = api["url"]
    owner = accounts[1]
    dn = create_datanet(api, accounts, "med-qa")
    assert dn["owner"] == owner.address and dn["schema"] == "instruction" and dn["policy"] == "review"
    assert dn["licenses"] == ["CC-BY-4.0", "CC0-1.0"] and dn["nearDuplicatePct"] == 80 and dn["latestVersion"] == 0
    assert dn["rows"] == {"pending": 0, "accepted": 0, "rejected": 0}
    assert dn["domain"] == {"name": "loraledger", "version": "1", "chainId": 31337,
                            "verifyingContract": api["node"].datanets.registry.address}
    assert httpx.get(f"{url}/v1/datanets/{dn['id']}").json() == dn
    assert dn["id"] in [d["id"] for d in httpx.get(f"{url}/v1/datanets").json()]

    # three contributors, each with a signed batch of one row
    batches = {
        2: jsonl(("What is aspirin?", "An NSAID used against pain and fever.")),
        3: jsonl(("What is insulin?", "A hormone that lowers blood glucose.")),
        4: jsonl(("What does the liver do?", "It filters blood and makes bile.")),
    }
    hashes = {}
    for index, rows in batches.items():
        response = contribute(api, dn, accounts[index], rows, license="cc0-1.0" if index == 3 else "CC-BY-4.0")
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "pending" and len(body["rowHashes"]) == 1 and isinstance(body["seq"], int)
        hashes[index] = body["rowHashes"][0]
    assert httpx.get(f"{url}/v1/datanets/{dn['id']}/nonce/{accounts[2].address}").json()["nonce"] >= 1

    # the owner lists the pending rows
    pending = as_owner(api, owner, "GET", dn["id"], "/pending")
    assert pending.status_code == 200, pending.text
    listed = pending.json()["pending"]
    assert [p["rowHash"] for p in listed] == [hashes[2], hashes[3], hashes[4]]
    assert listed[0]["contributor"] == accounts[2].address and listed[0]["row"]["prompt"] == "What is aspirin?"

    # accept two, reject one; decided_by is the owner
    accepted = as_owner(api, owner, "POST", dn["id"], "/review", {"rowHashes": [hashes[2], hashes[3]], "accept": True})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"datanetId": dn["id"], "decided": 2, "decision": "accepted",
                               "decidedBy": owner.address, "authorizedBy": "owner"}
    rejected_body = {"rowHashes": [hashes[4]], "accept": False, "reason": "off topic"}
    rejected = as_owner(api, owner, "POST", dn["id"], "/review", rejected_body)
    assert rejected.status_code == 200 and rejected.json()["decision"] == "rejected", rejected.text
    counts = httpx.get(f"{url}/v1/datanets/{dn['id']}").json()["rows"]
    assert counts == {"pending": 0, "accepted": 2, "rejected": 1}

    # the owner snapshots: published on chain
    snap = as_owner(api, owner, "POST", dn["id"], "/snapshots")
    assert snap.status_code == 201, snap.text
    snap = snap.json()
    assert snap["version"] == 1 and snap["rowCount"] == 2 and snap["txHash"].startswith("0x")
    assert api["node"].datanets.registry.snapshot_root(dn["id"], 1) == snap["root"]
    assert httpx.get(f"{url}/v1/datanets/{dn['id']}").json()["latestVersion"] == 1

    manifest = httpx.get(f"{url}/v1/datanets/{dn['id']}/snapshots/1")
    assert manifest.status_code == 200 and manifest.json() == snap["manifest"]
    assert manifest.json()["contributors"] == {accounts[2].address: 1, accounts[3].address: 1}
    assert manifest.json()["root"] == snap["root"]

    # a row proof that the registry accepts, for the latest and for an explicit version
    proof = httpx.get(f"{url}/v1/datanets/{dn['id']}/rows/{hashes[3].upper().replace('0X', '0x')}/proof")
    assert proof.status_code == 200, proof.text
    proof = proof.json()
    assert proof["verifiedOnChain"] is True and proof["contributor"] == accounts[3].address
    assert proof["version"] == 1 and proof["root"] == snap["root"]
    assert StandardMerkleTree.verify(snap["root"], ["bytes32", "address"], [proof["rowHash"], proof["contributor"]],
                                     proof["proof"])
    assert httpx.get(f"{url}/v1/datanets/{dn['id']}/rows/{hashes[2]}/proof?version=1").json()["verifiedOnChain"]
    # the rejected row is in no snapshot
    missing = httpx.get(f"{url}/v1/datanets/{dn['id']}/rows/{hashes[4]}/proof")
    assert missing.status_code == 404 and "not in version 1" in missing.json()["message"]

    # nothing new: a second snapshot is refused, with the admin token too
    again = httpx.post(f"{url}/v1/datanets/{dn['id']}/snapshots", headers=ADMIN, timeout=60)
    assert again.status_code == 400 and "nothing changed" in again.json()["message"]


def test_owner_endpoints_refuse_without_valid_owner_auth(api, accounts, spare):
    url, dn_id = api["url"], spare["id"]
    owner, stranger = accounts[1], accounts[2]
    for method, suffix in (("GET", "/pending"), ("POST", "/review"), ("POST", "/snapshots")):
        response = httpx.request(method, f"{url}/v1/datanets/{dn_id}{suffix}")
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized" and "X-Owner-Signature" in response.json()["message"]
    wrong_token = httpx.get(f"{url}/v1/datanets/{dn_id}/pending", headers={"Authorization": "Bearer nope"})
    assert wrong_token.status_code == 401 and "admin token" in wrong_token.json()["message"]

    cases = [
        (as_owner(api, stranger, "GET", dn_id, "/pending"), "not the owner"),
        (as_owner(api, owner, "GET", dn_id, "/pending", deadline=int(time.time()) - 5), "expired"),
        (as_owner(api, owner, "GET", dn_id, "/pending", deadline=int(time.time()) + 7200), "more than 3600"),
        # signed for another request: a different path, or a different body
        (as_owner(api, owner, "POST", dn_id, "/snapshots", send_path=f"/v1/datanets/{dn_id}/review"), "not the owner"),
    ]
    for response, needle in cases:
        assert response.status_code == 401, response.text
        assert needle in response.json()["message"], response.json()
    path = f"/v1/datanets/{dn_id}/review"
    signed = owner_headers(owner, dn_id, "POST", path, b'{"rowHashes":[],"accept":true}', int(time.time()) + 600)
    tampered = httpx.post(url + path, content=b'{"rowHashes":[],"accept":false}', headers=signed)
    assert tampered.status_code == 401 and "not the owner" in tampered.json()["message"]
    malformed = httpx.get(f"{url}/v1/datanets/{dn_id}/pending",
                          headers={"X-Owner-Signature": "0x1234", "X-Owner-Deadline": str(int(time.time()) + 60)})
    assert malformed.status_code == 401 and "65 bytes" in malformed.json()["message"]
    half = httpx.get(f"{url}/v1/datanets/{dn_id}/pending", headers={"X-Owner-Deadline": str(int(time.time()) + 60)})
    assert half.status_code == 401 and "both" in half.json()["message"]

    # the admin token works, and a POST owner signature is good for one request only
    assert httpx.get(f"{url}/v1/datanets/{dn_id}/pending", headers=ADMIN).status_code == 200
    body = json.dumps({"rowHashes": ["0x" + "ab" * 32], "accept": True}).encode()
    headers = {**owner_headers(owner, dn_id, "POST", path, body, int(time.time()) + 600),
               "Content-Type": "application/json"}
    first = httpx.post(url + path, content=body, headers=headers)
    assert first.status_code == 400 and "not pending" in first.json()["message"]  # authorised, then refused
    replay = httpx.post(url + path, content=body, headers=headers)
    assert replay.status_code == 401 and "already used" in replay.json()["message"]
    signature = bytes.fromhex(headers["X-Owner-Signature"][2:])
    respelled = {**headers, "X-Owner-Signature": "0x" + (signature[:64] + bytes([signature[64] - 27])).hex()}
    replay = httpx.post(url + path, content=body, headers=respelled)  # v = 0/1: the same signature
    assert replay.status_code == 401 and "already used" in replay.json()["message"]


def test_admin_review_records_the_operator(api, accounts):
    dn = create_datanet(api, accounts, "admin-reviewed")
    row = contribute(api, dn, accounts[5], jsonl(("Admin review?", "Recorded as the operator.")))
    assert row.status_code == 201, row.text
    response = httpx.post(f"{api['url']}/v1/datanets/{dn['id']}/review", headers=ADMIN, timeout=60,
                          json={"rowHashes": row.json()["rowHashes"], "accept": True})
    assert response.status_code == 200, response.text
    assert response.json()["decidedBy"] == accounts[0].address and response.json()["authorizedBy"] == "admin"


def test_contribution_refusals(api, accounts, spare):
    url = api["url"]
    # a duplicate of a pending row: the whole batch is refused, with the per-row report
    nonce_url = f"{url}/v1/datanets/{spare['id']}/nonce/{accounts[3].address}"
    nonce_before = httpx.get(nonce_url).json()["nonce"]
    dup_rows = jsonl(("A fresh question?", "A fresh answer."), ("what is a  SPARE?", "something kept in reserve."))
    duplicate = contribute(api, spare, accounts[3], dup_rows)
    assert duplicate.status_code == 400, duplicate.text
    body = duplicate.json()
    assert body["error"] == "invalid_input" and "batch refused" in body["message"]
    assert [r["row"] for r in body["rows"]] == [2] and body["rows"][0]["reason"].startswith("exact duplicate")
    assert httpx.get(nonce_url).json()["nonce"] == nonce_before  # nothing recorded

    rows = jsonl(("Signed by whom?", "By the wrong key."))
    forged = contribute(api, spare, accounts[3], rows, signer=accounts[6])
    assert forged.status_code == 400 and "not the contributor" in forged.json()["message"]

    bad = contribution_body(api, spare, accounts[3], rows)
    for signature, needle in (("0x1234", "65 bytes"), ("0xzz", "non-hex"), (12, "0x hex string")):
        response = httpx.post(f"{url}/v1/datanets/{spare['id']}/contributions", json={**bad, "signature": signature})
        assert response.status_code == 400 and needle in response.json()["message"], response.text
    for field, value, needle in (
        ("contributor", "0x1234", "contributor"),
        ("nonce", "-1", "nonce"),
        ("deadline", True, "deadline"),
        ("license", "MIT", "not allowed"),
        ("rows", "{not json}\n", "row 1"),
        ("rows", 5, "rows must be a string"),
        ("contentHash", "0x" + "00" * 32, "sign the rows exactly"),
        ("extra", 1, "unknown field"),
    ):
        response = httpx.post(f"{url}/v1/datanets/{spare['id']}/contributions", json={**bad, field: value})
        assert response.status_code == 400 and needle in response.json()["message"], (field, response.text)
    missing = {k: v for k, v in bad.items() if k != "signature"}
    response = httpx.post(f"{url}/v1/datanets/{spare['id']}/contributions", json=missing)
    assert response.status_code == 400 and "signature is required" in response.json()["message"]
    not_json = httpx.post(f"{url}/v1/datanets/{spare['id']}/contributions", content=b"{oops",
                          headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["message"]

    # the good body still goes through once, and its replay is refused
    ok = httpx.post(f"{url}/v1/datanets/{spare['id']}/contributions", json=bad, timeout=60)
    assert ok.status_code == 201, ok.text
    replay = httpx.post(f"{url}/v1/datanets/{spare['id']}/contributions", json=bad, timeout=60)
    assert replay.status_code == 400


@pytest.mark.parametrize(
    "method,path,status,needle",
    [
        ("get", "/v1/datanets/999", 404, "no datanet 999"),
        ("get", "/v1/datanets/999/nonce/0x000000000000000000000000000000000000dEaD", 404, "no datanet"),
        ("get", "/v1/datanets/999/snapshots/1", 404, "no datanet"),
        ("get", "/v1/datanets/999/pending", 404, "no datanet"),
        ("post", "/v1/datanets/999/contributions", 404, "no datanet"),
        ("get", "/v1/datanets/abc", 422, "datanet_id"),
        ("get", "/v1/datanets/-1", 400, "between 0 and"),
        ("get", "/v1/datanets/99999999999999999999999", 400, "between 0 and"),
        ("get", "/v1/datanets/{id}/nonce/0x1234", 400, "address"),
        ("get", "/v1/datanets/{id}/snapshots/0", 400, "start at 1"),
        ("get", "/v1/datanets/{id}/snapshots/7", 404, "no snapshot version 7"),
        ("get", "/v1/datanets/{id}/snapshots/x", 422, "version"),
        ("get", "/v1/datanets/{id}/rows/0x1234/proof", 400, "64 hex digits"),
        ("get", "/v1/datanets/{id}/rows/0x" + "ab" * 32 + "/proof", 404, "no snapshot yet"),
        ("get", "/v1/datanets/{id}/rows/0x" + "ab" * 32 + "/proof?version=abc", 422, "version"),
        ("get", "/v1/datanets/{id}/rows/0x" + "ab" * 32 + "/proof?version=0", 400, "start at 1"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(api, spare, method, path, status, needle):
    response = getattr(httpx, method)(api["url"] + path.replace("{id}", str(spare["id"])))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] and needle in body["message"], body


@pytest.mark.parametrize(
    "change,status,needle",
    [
        ({"owner": "0x1234"}, 400, "address"),
        ({"schema": "poems"}, 400, "unknown row schema"),
        ({"licenses": "MIT"}, 400, "list of SPDX ids"),
        ({"licenses": []}, 400, "at least one"),
        ({"policy": "maybe"}, 400, "policy"),
        ({"nearDuplicatePct": 0}, 400, "1..100"),
        ({"nearDuplicatePct": "80"}, 400, "integer"),
        ({"name": None}, 400, "name is required"),
        ({"colour": "red"}, 400, "unknown field"),
    ],
)
def test_create_refusals(api, accounts, change, status, needle):
    body = {"owner": accounts[1].address, "name": "x", "schema": "text", "licenses": ["MIT"], **change}
    response = httpx.post(f"{api['url']}/v1/datanets", json=body, headers=ADMIN)
    assert response.status_code == status and needle in response.json()["message"], response.text


def test_create_needs_the_admin_token_and_the_operator_key(api, accounts):
    body = {"owner": accounts[1].address, "name": "x", "schema": "text", "licenses": ["MIT"]}
    assert httpx.post(f"{api['url']}/v1/datanets", json=body).status_code == 401
    no_key = dataclasses.replace(api["node"], operator=None)
    url, server, thread = serve(create_app(api["settings"], node=no_key))
    try:
        response = httpx.post(f"{url}/v1/datanets", json=body, headers=ADMIN)
        assert response.status_code == 503 and "no operator key" in response.json()["message"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
