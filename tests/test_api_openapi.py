"""The OpenAPI document against a live node: schemathesis sends generated requests to every
operation of a real node over real HTTP (uvicorn, anvil, SQLite), with the admin token so
that the write paths are reached, and checks that no answer is a server error and that
every status, content type and body is the one the document declares.

Generation is bounded and derandomized (a fixed seed per operation), without shrinking, so
the run is repeatable and takes well under a minute on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import deployed_settings, serve
from hypothesis import HealthCheck, Phase, given, settings

from loraledger.api import create_app
from loraledger.api.errors import OPENAI_PATHS
from loraledger.node.context import open_node

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

TOKEN = "openapi-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 25
# Generated fees and grants are capped at 1 OPEN: an epoch's total is pulled from the
# operator's balance on chain, and a total over it is (rightly) answered 502 by the close.
MAX_AMOUNT = 10**18


@pytest.fixture(scope="module")
def live_node(anvil, accounts, artifacts, tmp_path_factory) -> Iterator[dict[str, Any]]:
    settings_ = deployed_settings(anvil, accounts[0], artifacts, tmp_path_factory.mktemp("api-openapi"),
                                  admin_token=TOKEN)
    node = open_node(settings_, operator=accounts[0])
    url, server, thread = serve(create_app(settings_, node=node))
    yield {"url": url, "node": node}
    server.should_exit = True
    thread.join(timeout=10)


def _cap_amounts(value: Any) -> Any:
    """Keep generated fee/grant amounts fundable (see MAX_AMOUNT); the rest as generated."""
    if isinstance(value, list):
        return [_cap_amounts(item) for item in value]
    if isinstance(value, dict):
        return {key: (str(int(item) % MAX_AMOUNT + 1) if key in ("fee", "amount") and isinstance(item, str)
                      and item.isdigit() else _cap_amounts(item)) for key, item in value.items()}
    return value


def test_every_operation_conforms_to_the_openapi_document(live_node):
    url = live_node["url"]
    schema = schemathesis.openapi.from_dict(httpx.get(f"{url}/openapi.json").json())
    failures: dict[str, str] = {}
    examples = 0
    statuses: dict[int, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            nonlocal examples
            examples += 1
            if operation.path == "/v1/records":
                case.body = _cap_amounts(case.body)
            response = case.call_and_validate(base_url=url, headers=ADMIN, checks=CHECKS, timeout=60)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collected, then reported all at once
            failures[f"{operation.method.upper()} {operation.path}"] = f"{type(exc).__name__}: {exc}"[:3000]
    print(f"schemathesis: {len(operations)} operations, {examples} examples, statuses {dict(sorted(statuses.items()))}")
    assert len(operations) == 41  # 30 of the node (epoch chunks included), 7 OpenAI-compatible, inference and attribute routes, GET /metrics, 2 probes, payers
    assert 201 in statuses, "no write went through: the examples in the document should"
    assert not failures, "\n\n".join(f"{name}\n{text}" for name, text in failures.items())


def test_the_document_shows_every_body_and_only_error_bodies(live_node):
    document = httpx.get(f"{live_node['url']}/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["ErrorBody"]["required"] == ["error", "message"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "post":
                assert "requestBody" in operation or path.endswith(("/close", "/cancel", "/register")), path
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    expected = "OpenAIErrorBody" if path in OPENAI_PATHS else "ErrorBody"  # what OpenAI clients parse
                    assert ref == f"#/components/schemas/{expected}", (path, method, status)
