"""Hostile input to every route of a real node over real HTTP (uvicorn, anvil, SQLite).

A corpus of several hundred requests (deep nesting, bodies over the limit, bad UTF-8,
duplicate keys, path-like and non-canonical ids, wrong methods, missing and wrong tokens,
wrong content types, empty bodies) is sent to every operation the app serves. Every answer
must be a JSON 4xx ``{"error", "message"}``; afterwards the server still answers and the
record log is unchanged. A second test sends the 70,000-deep body to ``loraledger node
run`` in a subprocess: before the body reader, that killed the process (SIGSEGV: py_ecc
raises the recursion limit, so the C JSON parser overflows the C stack).
"""

from __future__ import annotations

import dataclasses
import json
import re
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import cli_environment, deployed_settings, free_port, node_process, serve

from loraledger.api import create_app
from loraledger.api.body import CONTRIBUTION_MAX_BYTES, DEFAULT_MAX_BYTES, RECORDS_MAX_BYTES
from loraledger.api.errors import OPENAI_PATHS
from loraledger.api.routes import adapters, datanets, jobs, ledger, metrics, openai, payers, probes
from loraledger.node.context import open_node

TOKEN = "hostile-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
DEEP_ARRAY = b"[" * 70_000
DEEP_OBJECT = b'{"rows":' * 70_000
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

#: Hostile values for integer path parameters (sent verbatim: already URL-encoded).
BAD_INTS = ["1.0", "+1", "01", "%201", "1%20", "-1", "-0", "1_0", "1e3", "0x1", "99999999999999999999999",
            "9" * 200, "abc", "..%2F..%2Fetc%2Fpasswd", "%00", "%ff%fe", "%E2%80%8B1", "NaN", "Infinity"]
#: Hostile values for string path parameters (addresses, hashes, adapter names).
BAD_STRINGS = ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%2E%2E%2F%2E%2E", "0x" + "g" * 64, "0x" + "ab" * 33, "%00", "%ff%fe",
               "x" * 4000, "'%3B%20DROP%20TABLE%20records%3B--", "%3Cscript%3E", "CON", "0x"]
#: Bodies every JSON route must refuse.
BAD_BODIES: list[tuple[str, bytes]] = [
    ("deep array", DEEP_ARRAY),
    ("deep object", DEEP_OBJECT),
    ("deep mixed", b'{"a":[' * 35_000),
    ("65 levels", b"[" * 65 + b"]" * 65),
    ("bad utf-8", b'{"kind": "\xff\xfe"}'),
    ("utf-16", '{"kind": "fee"}'.encode("utf-16")),
    ("lone surrogate", b'{"kind": "\\ud800"}'),
    ("duplicate keys", b'{"kind": "fee", "kind": "reward_grant"}'),
    ("NaN", b'{"kind": NaN}'),
    ("Infinity", b'[{"fee": -Infinity}]'),
    ("truncated", b'{"kind": "fee"'),
    ("not json", b"kind=fee&params=1"),
    ("empty", b""),
    ("whitespace", b"  \n\t "),
    ("null", b"null"),
    ("string", b'"hello"'),
    ("huge number", b'{"kind": 1e999999}'),
    ("many values", b"[" + b"[]," * 1_100_000 + b"[]]"),
    ("nul bytes", b'{"kind": "fee\x00"}\x00'),
    ("bom", b'\xef\xbb\xbf{"kind": "fee"}'),
]
#: Wrong content types sent with a body that is not acceptable JSON either.
BAD_CONTENT_TYPES = ["text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
                     "application/xml", "application/json; charset=utf-16"]
#: Wrong credentials.
BAD_AUTH: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": "Bearer"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": "Bearer " + "t" * 6000},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
]
BAD_OWNER_HEADERS: list[dict[str, str]] = [
    {"X-Owner-Signature": "0x" + "00" * 65, "X-Owner-Deadline": str(int(time.time()) + 60)},
    {"X-Owner-Signature": "0x1234", "X-Owner-Deadline": "1e10"},
    {"X-Owner-Signature": "0x" + "ff" * 65, "X-Owner-Deadline": "-1"},
    {"X-Owner-Signature": "nope", "X-Owner-Deadline": "9" * 100},
    {"X-Owner-Deadline": str(int(time.time()) + 60)},
]


@dataclass
class Operation:
    method: str
    path: str
    params: list[str] = field(default_factory=list)

    def fill(self, values: dict[str, str]) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], self.path)


@pytest.fixture(scope="module")
def node_api(anvil, accounts, artifacts, tmp_path_factory) -> Iterator[dict[str, Any]]:
    settings = deployed_settings(anvil, accounts[0], artifacts, tmp_path_factory.mktemp("api-hostile"),
                                 admin_token=TOKEN)
    node = open_node(settings, operator=accounts[0])
    app = create_app(settings, node=node)
    url, server, thread = serve(app)
    # A datanet, so that owner routes get past their 404 to authentication and body checks.
    created = httpx.post(f"{url}/v1/datanets", headers=ADMIN, timeout=60, json={
        "owner": accounts[1].address, "name": "hostile", "schema": "text", "licenses": ["CC0-1.0"]})
    assert created.status_code == 201, created.text
    yield {"url": url, "app": app, "server": server, "thread": thread, "datanet": created.json()["id"]}
    server.should_exit = True
    thread.join(timeout=10)


def operations(app) -> list[Operation]:
    """Every operation the app serves, from its OpenAPI document (built from its routes),
    checked against the routers' own route lists so that none is missed."""
    served = {(method, route.path) for module in (ledger, datanets, jobs, adapters, openai, payers, metrics, probes)
              for route in module.router.routes for method in route.methods if method != "HEAD"}
    ops = [Operation(method.upper(), path, re.findall(r"\{(\w+)\}", path))
           for path, item in app.openapi()["paths"].items() for method in item]
    assert {(op.method, op.path) for op in ops} == served
    return ops


INT_PARAMS = {"number", "datanet_id", "job_id", "version"}


def valid_values(datanet: int) -> dict[str, str]:
    return {"number": "1", "datanet_id": str(datanet), "job_id": "1", "version": "1",
            "address": "0x000000000000000000000000000000000000dEaD", "record_hash": "0x" + "ab" * 32,
            "row_hash": "0x" + "ab" * 32, "chunk_hash": "0x" + "ab" * 32, "name": "no-such-adapter"}


def reads_body(op: Operation) -> bool:
    return op.method == "POST" and not op.path.endswith(("/close", "/cancel", "/register"))


def needs_admin(op: Operation) -> bool:
    return op.method == "POST" and not op.path.endswith("/contributions")


def valid_body(op: Operation, accounts) -> bytes:
    """A body the route would accept, to show that credentials are checked first."""
    if op.path == "/v1/records":
        return json.dumps({"kind": "fee", "timestamp": 1, "payer": accounts[5].address, "fee": "1", "weights": {},
                           "operator": accounts[0].address}).encode()
    if op.path == "/v1/jobs":
        return b'{"kind": "train", "params": {}}'
    if op.path == "/v1/datanets":
        return json.dumps({"owner": accounts[1].address, "name": "x", "schema": "text",
                           "licenses": ["MIT"]}).encode()
    return b""


def corpus(node_api, accounts) -> Iterator[tuple[str, str, dict[str, str], bytes]]:
    """(method, path, headers, body) of every hostile request."""
    ops = operations(node_api["app"])
    good = valid_values(node_api["datanet"])
    by_path: dict[str, set[str]] = {}
    for op in ops:
        by_path.setdefault(op.path, set()).add(op.method)
    for op in ops:
        body = DEEP_ARRAY if op.method == "POST" else b""
        # 1. every path parameter, hostile in turn (the others valid), with the admin token
        for param in op.params:
            for value in BAD_INTS if param in INT_PARAMS else BAD_STRINGS:
                yield op.method, op.fill({**good, param: value}), ADMIN, body
        # 2. hostile bodies, and wrong content types, on the routes that read one
        if reads_body(op):
            path = op.fill(good)
            for _, bad in BAD_BODIES:
                yield op.method, path, ADMIN, bad
            for content_type in BAD_CONTENT_TYPES:
                yield op.method, path, {**ADMIN, "Content-Type": content_type}, DEEP_OBJECT
                yield op.method, path, {**ADMIN, "Content-Type": content_type}, b"a=1&b=2"
        # 3. missing and wrong credentials, with an acceptable body: refused before it is read
        if needs_admin(op):
            for headers in BAD_AUTH:
                yield op.method, op.fill(good), headers, valid_body(op, accounts)
                yield op.method, op.fill(good), headers, DEEP_ARRAY
        if "{datanet_id}" in op.path and op.path.endswith(("/pending", "/review", "/snapshots")):
            for headers in BAD_OWNER_HEADERS:
                yield op.method, op.fill(good), headers, b""
    # 4. wrong methods on every path, and routes that do not exist
    for path, allowed in by_path.items():
        for method in METHODS:
            if method not in allowed:
                yield method, re.sub(r"\{\w+\}", "1", path), ADMIN, DEEP_ARRAY
    for path in ("/v1/nope", "/v2/health", "/v1/records/0x" + "ab" * 32 + "/extra", "/v1/jobs/1/2/3",
                 "/v1/datanets/1/%2e%2e/%2e%2e/etc/passwd", "/v1/%00", "/" + "a" * 4000):
        yield "GET", path, {}, b""
        yield "POST", path, ADMIN, DEEP_ARRAY


def log_state(url: str) -> dict:
    response = httpx.get(f"{url}/v1/log")
    assert response.status_code == 200, response.text
    return response.json()


def assert_json_error(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/json"), what
    body = response.json()
    if isinstance(body.get("error"), dict):  # the OpenAI-compatible routes answer OpenAI's shape
        assert response.url.path in OPENAI_PATHS, (what, body)
        assert set(body["error"]) == {"message", "type", "param", "code"}, (what, body)
        body = {"error": body["error"]["code"], "message": body["error"]["message"]}
    assert isinstance(body.get("error"), str) and body["error"], (what, body)
    assert isinstance(body.get("message"), str) and body["message"], (what, body)
    assert "Traceback" not in body["message"], (what, body)


def test_every_route_answers_hostile_input_with_a_json_4xx(node_api, accounts):
    url = node_api["url"]
    before = log_state(url)
    statuses: dict[int, int] = {}
    count = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for method, path, headers, body in corpus(node_api, accounts):
            what = f"{method} {path[:120]} {headers and list(headers)} body={body[:40]!r}"
            response = client.request(method, path, headers=headers, content=body)
            assert_json_error(response, what)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            count += 1
    print(f"{count} hostile requests: {dict(sorted(statuses.items()))}")
    assert count >= 500, count
    # every refusal the API documents shows up in the corpus
    assert {400, 401, 404, 405, 413, 422} <= set(statuses), statuses
    assert node_api["thread"].is_alive()
    assert httpx.get(f"{url}/v1/health").status_code == 200
    assert log_state(url) == before


def raw_exchange(url: str, head: bytes, body_chunks: Iterator[bytes]) -> tuple[int, dict]:
    """Send a request over a plain socket, its body piece by piece while watching for the
    answer (the server may refuse a body without reading it); its status and JSON body."""
    parts = urlsplit(url)
    received = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        pending: bytes | None = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _complete(received):
            readable, writable, _ = select.select([sock], [sock] if pending is not None else [], [], 1.0)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                received += data
            elif writable:
                if not pending:
                    pending = next(body_chunks, None)
                    if pending is None:
                        continue
                try:
                    pending = pending[sock.send(pending):]
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    pending = None  # the server stopped reading: its answer is what is left to read
    head_text, _, payload = received.partition(b"\r\n\r\n")
    assert head_text, "no answer"
    status = int(head_text.split(b" ", 2)[1])
    return status, json.loads(payload)


def _complete(received: bytes) -> bool:
    head, found, payload = received.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return bool(found and match and len(payload) >= int(match.group(1)))


@pytest.mark.parametrize("path,limit", [
    ("/v1/records", RECORDS_MAX_BYTES),
    ("/v1/jobs", DEFAULT_MAX_BYTES),
    ("/v1/datanets", DEFAULT_MAX_BYTES),
    ("/v1/datanets/{id}/contributions", CONTRIBUTION_MAX_BYTES),
    ("/v1/datanets/{id}/review", DEFAULT_MAX_BYTES),
])
def test_bodies_over_the_limit_are_refused_413_declared_or_chunked(node_api, path, limit):
    url = node_api["url"]
    path = path.replace("{id}", str(node_api["datanet"]))
    before = log_state(url)
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    # declared: refused on the header, before a byte of the body is read
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {limit + 1}\r\n").encode() + auth + b"\r\n"
    status, body = raw_exchange(url, head, iter([b"[" * 1024] * 4))
    assert status == 413 and body["error"] == "too_large" and body["limit"] == limit, body
    # chunked (no length): refused as soon as the stream passes the limit
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n".encode() + auth + b"\r\n"
    piece = b" " * (256 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    status, body = raw_exchange(url, head, iter([chunk] * (limit // len(piece) + 8)))
    assert status == 413 and body["error"] == "too_large", body
    assert httpx.get(f"{url}/v1/health").status_code == 200
    assert log_state(url) == before


@pytest.mark.parametrize("value", ["1.0", "+1", "01", "%201", "-0", "1_0"])
@pytest.mark.parametrize("template", ["/v1/datanets/{}", "/v1/epochs/{}", "/v1/jobs/{}",
                                      "/v1/datanets/{}/snapshots/1", "/v1/log/consistency?first={}&second=1"])
def test_integer_parameters_must_be_canonical(node_api, template, value):
    response = httpx.get(node_api["url"] + template.format(value))
    assert response.status_code == 400, response.text
    assert "canonical decimal integer" in response.json()["message"]


def test_duplicate_keys_in_records_are_refused(node_api, accounts):
    url = node_api["url"]
    before = log_state(url)
    record = (f'{{"kind": "fee", "timestamp": 1, "payer": "{accounts[5].address}", "fee": "1", "fee": "2", '
              f'"weights": {{}}, "operator": "{accounts[0].address}"}}').encode()
    response = httpx.post(f"{url}/v1/records", content=record, headers=ADMIN)
    assert response.status_code == 400 and "the key 'fee' twice" in response.json()["message"], response.text
    assert log_state(url) == before


def test_errors_answer_the_error_body_not_fastapi_detail(node_api):
    url = node_api["url"]
    missing = httpx.get(f"{url}/v1/nowhere")
    assert missing.status_code == 404 and missing.json() == {"error": "not_found", "message": "no route GET /v1/nowhere"}
    wrong = httpx.delete(f"{url}/v1/records")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert "POST" in wrong.headers["allow"]
    invalid = httpx.get(f"{url}/v1/epochs/abc")
    assert invalid.status_code == 422 and set(invalid.json()) == {"error", "message"}


def test_an_unexpected_exception_is_a_json_500_and_logged(node_api, caplog):
    """A bug (here: a node whose epoch manager is broken) answers JSON, never a traceback."""
    node = node_api["app"].state.node

    class Broken:
        def epochs(self):
            raise RuntimeError("boom")

    app = create_app(node.settings, node=dataclasses.replace(node, manager=Broken()))
    url, server, thread = serve(app)
    try:
        with caplog.at_level("ERROR", logger="loraledger.api"):
            response = httpx.get(f"{url}/v1/epochs")
        assert response.status_code == 500, response.text
        assert response.json() == {"error": "internal", "message": "internal error (RuntimeError); see the node's log"}
        assert "boom" in caplog.text and "Traceback" in caplog.text
        assert httpx.get(f"{url}/v1/log").status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_node_process_survives_a_deeply_nested_body(anvil, accounts, artifacts, tmp_path):
    """``loraledger node run`` in a subprocess: the 70,000-deep body used to kill it."""
    settings = deployed_settings(anvil, accounts[0], artifacts, tmp_path)
    port = free_port()
    env = cli_environment(anvil.url, tmp_path, operator=accounts[0], deployments=settings.deployments_dir,
                          LORALEDGER_ADMIN_TOKEN=TOKEN)
    with node_process(env, port, tmp_path / "node.log") as node:
        url = node.url
        created = httpx.post(f"{url}/v1/datanets", headers=ADMIN, timeout=60, json={
            "owner": accounts[1].address, "name": "deep", "schema": "text", "licenses": ["CC0-1.0"]})
        assert created.status_code == 201, created.text
        contributions = f"/v1/datanets/{created.json()['id']}/contributions"
        for path in ("/v1/records", "/v1/jobs", contributions, "/v1/datanets"):
            for body in (DEEP_ARRAY, DEEP_OBJECT):
                response = httpx.post(url + path, content=body, headers={**ADMIN, "Content-Type": "application/json"},
                                      timeout=30)
                assert response.status_code == 400, (path, response.text)
                assert "deeper than" in response.json()["message"]
                assert node.alive(), f"the node died on {path}"
        assert httpx.get(f"{url}/v1/health", timeout=5).status_code == 200
