"""OpenAPI documentation of request bodies and error responses (documentation only).

Bodies are read by :mod:`loraledger.api.body`, never by FastAPI, so the models here only
describe them: a route names its body with ``openapi_extra=json_body(...)`` and its errors
with ``responses=errors(400, 401, ...)``. :func:`install_openapi` puts the schemas into
``components.schemas`` and drops FastAPI's ``HTTPValidationError``: a 422 here is an
:class:`~loraledger.api.errors.ErrorBody` like every other error.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from ..datanets.content import SCHEMAS
from ..records.kinds import RECORD_KINDS
from .errors import OPENAI_PATHS, ErrorBody

__all__ = [
    "CONTRIBUTION_BODY",
    "DATANET_BODY",
    "JOB_BODY",
    "RECORDS_BODY",
    "REVIEW_BODY",
    "SNAPSHOT_BODY",
    "errors",
    "install_openapi",
    "json_body",
]

_REF = "#/components/schemas/{model}"
_ADDRESS = r"^0x[0-9a-fA-F]{40}$"
_HASH = r"^0x[0-9a-fA-F]{64}$"
_DECIMAL = r"^[0-9]{1,78}$"
_ERROR_DESCRIPTIONS = {
    400: "invalid input (the message says what and where)",
    401: "missing or wrong credentials (admin token, or the datanet owner's signature)",
    404: "no such thing (or no such route)",
    405: "method not allowed",
    409: "the ledger refused the operation",
    413: "request body over the endpoint's limit",
    422: "a parameter of the wrong type",
    502: "the chain failed",
    503: "the node cannot do this now (configuration, start-up)",
}

#: Component name → JSON schema, added to ``components.schemas`` by :func:`install_openapi`.
_COMPONENTS: dict[str, dict[str, Any]] = {}


def _component(model: type[BaseModel], *, drop: tuple[str, ...] = (), require: tuple[str, ...] = ()) -> str:
    """Register ``model``'s JSON schema (its ``$defs`` too) as a component; its name.
    ``drop``: properties the API refuses; ``require``: ones it needs though the model has a default."""
    schema = model.model_json_schema(ref_template=_REF, mode="validation")
    for name, definition in schema.pop("$defs", {}).items():
        _COMPONENTS.setdefault(name, definition)
    required = schema.setdefault("required", [])
    for key in drop:
        schema.get("properties", {}).pop(key, None)
        if key in required:
            required.remove(key)
    required.extend(key for key in require if key not in required)
    _COMPONENTS[model.__name__] = schema
    return model.__name__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status answered with an ``ErrorBody``."""
    return {status: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS.get(status, HTTPStatus(status).phrase)}
            for status in statuses}


def json_body(schema_name: str, *, required: bool = True, example: Any = None) -> dict[str, Any]:
    """``openapi_extra=`` documenting a JSON request body of the named component (and an
    example, which clients and schemathesis' explicit phase use)."""
    media: dict[str, Any] = {"schema": _ref(schema_name)}
    if example is not None:
        media["example"] = example
    return {"requestBody": {"required": required, "content": {"application/json": media}}}


# ---------------------------------------------------------------------- request bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DatanetCreate(_Body):
    """``POST /v1/datanets``: a datanet to register on chain (the node's operator key pays)."""

    owner: str = Field(pattern=_ADDRESS, description="the owner's address")
    name: str = Field(min_length=1, pattern=r"\S")
    row_schema: Literal[SCHEMAS] = Field(alias="schema", description="the shape of a row")  # type: ignore[valid-type]
    licenses: list[str] = Field(min_length=1, description="SPDX ids contributions may carry")
    policy: Literal["auto", "review"] = "auto"
    nearDuplicatePct: int = Field(85, ge=1, le=100, description="near-duplicate threshold (Jaccard %)")
    metadataURI: str = ""


class ContributionBody(_Body):
    """``POST /v1/datanets/{id}/contributions``: rows signed by their contributor (EIP-712)."""

    contributor: str = Field(pattern=_ADDRESS)
    license: str = Field(description="one of the datanet's licences")
    nonce: int | str = Field(description="the next unused nonce (GET .../nonce/{address}); integer or decimal string")
    deadline: int | str = Field(description="unix seconds; integer or decimal string")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="EIP-712 signature of the Contribution")
    rows: str = Field(description="the rows, JSON lines, as signed (their content hash)")
    contentHash: str | None = Field(None, pattern=_HASH, description="optional: checked against the node's own")


class ReviewBody(_Body):
    """``POST /v1/datanets/{id}/review``: accept or reject pending rows."""

    rowHashes: list[Annotated[str, Field(pattern=_HASH)]] = Field(min_length=1, max_length=10_000)
    accept: bool
    reason: str | None = None


class SnapshotBody(_Body):
    """``POST /v1/datanets/{id}/snapshots``: no fields (the body may also be empty)."""


class JobSubmit(_Body):
    """``POST /v1/jobs``: a job of a registered kind (``train``, ``bench``, ``pipeline``, ...)."""

    kind: str = Field(min_length=1)
    params: dict[str, Any] | None = Field(None, description="the kind's parameters (default {})")


class PriceBody(_Body):
    """``POST /v1/adapters/{name}/price``: wei of OPEN per 1,000 tokens; ``signature`` is the developer's
    EIP-191 signature of the message ``GET .../price`` shows (not needed with the admin token)."""

    inputPer1k: int | str = Field(description="wei per 1,000 prompt tokens (integer or decimal string)")
    outputPer1k: int | str = Field(description="wei per 1,000 completion tokens")
    signature: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{130}$")


PRICE_BODY = _component(PriceBody)
DATANET_BODY = _component(DatanetCreate)
CONTRIBUTION_BODY = _component(ContributionBody)
REVIEW_BODY = _component(ReviewBody)
SNAPSHOT_BODY = _component(SnapshotBody)
JOB_BODY = _component(JobSubmit)

# A record is any registered kind, without ``seq`` (the ledger assigns it) and with its
# ``kind`` (which says which it is).
_RECORD_NAMES = [_component(cls, drop=("seq",), require=("kind",)) for _, cls in sorted(RECORD_KINDS.items())]
RECORDS_BODY = "RecordsBody"
_COMPONENTS[RECORDS_BODY] = {
    "title": RECORDS_BODY,
    "description": "One record, or a list of 1..10,000 records appended atomically.",
    "anyOf": [
        {"anyOf": [_ref(name) for name in _RECORD_NAMES]},
        {"type": "array", "minItems": 1, "maxItems": 10_000, "items": {"anyOf": [_ref(n) for n in _RECORD_NAMES]}},
    ],
}


# ------------------------------------------------------------- the OpenAI-compatible routes


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """How the OpenAI-compatible routes answer an error (what the ``openai`` client parses)."""

    error: OpenAIError


def openai_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for an OpenAI-compatible route: each status answered with an ``OpenAIErrorBody``."""
    return {status: {"model": OpenAIErrorBody, "description": _ERROR_DESCRIPTIONS.get(status, HTTPStatus(status).phrase)}
            for status in statuses}


class _Message(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]
    name: str | None = None


class _OpenAIBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="an adapter's name, or the base model's (GET /v1/models)")
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    n: Literal[1] = 1
    user: str | None = None


class CompletionBody(_OpenAIBody):
    """``POST /v1/completions`` (OpenAI's fields; what the node does not do is refused by name)."""

    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=20)


class ChatBody(_OpenAIBody):
    """``POST /v1/chat/completions`` (OpenAI's fields; the adapter's chat template renders the messages)."""

    messages: list[_Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=32_768)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class LoraAdapterBody(BaseModel):
    """vLLM's ``/v1/load_lora_adapter`` / ``/v1/unload_lora_adapter`` body. ``lora_path`` is refused:
    only registered adapters load."""

    model_config = ConfigDict(extra="forbid")

    lora_name: str = Field(min_length=1)
    lora_path: str | None = None
    pin: bool = False


class AttributeBody(BaseModel):
    """``POST /v1/attribute``: an answer to attribute without serving it; give exactly one of
    ``prompt`` and ``messages``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="an adapter's name (one with an attribution index)")
    prompt: str | None = Field(None, description="the prompt exactly as the model saw it")
    messages: list[_Message] | None = Field(None, min_length=1, description="a chat, rendered with the model's "
                                            "chat template as a served chat request is")
    completion: str = Field(min_length=1, description="the answer text to attribute")


COMPLETION_BODY = _component(CompletionBody)
ATTRIBUTE_BODY = _component(AttributeBody)
CHAT_BODY = _component(ChatBody)
LORA_ADAPTER_BODY = _component(LoraAdapterBody)
_OPENAI_ERROR_BODY = _component(OpenAIErrorBody)


# ---------------------------------------------------------------------- the document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` document the bodies above and only ``ErrorBody`` errors."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(_COMPONENTS)
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            # FastAPI documents its own 422 body on every operation with parameters; ours
            # is an ErrorBody like any other error.
            error_422 = errors(422)[422]
            for path, item in document.get("paths", {}).items():
                body = _OPENAI_ERROR_BODY if path in OPENAI_PATHS else "ErrorBody"
                for operation in item.values():
                    if "422" in operation.get("responses", {}):
                        operation["responses"]["422"] = {
                            "description": error_422["description"],
                            "content": {"application/json": {"schema": _ref(body)}},
                        }
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# ---------------------------------------------------------------------- examples

_OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
_OPERATOR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
RECORDS_EXAMPLE = [{
    "kind": "fee", "timestamp": 1700000000, "payer": "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    "fee": "1000000000000000000", "weights": {_OWNER: 2, "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC": 1},
    "developer": "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65", "operator": _OPERATOR, "ref": "inference-1",
}]
DATANET_EXAMPLE = {"owner": _OWNER, "name": "med-qa", "schema": "instruction", "licenses": ["CC-BY-4.0"],
                   "policy": "review", "nearDuplicatePct": 85, "metadataURI": "ipfs://example"}
REVIEW_EXAMPLE = {"rowHashes": ["0x" + "ab" * 32], "accept": True, "reason": "on topic"}
JOB_EXAMPLE = {"kind": "bench", "params": {"base": "/models/base", "adapters": ["med-qa-lora"], "datanet": 1}}
