"""Adapter endpoints of the node API (``/v1/adapters``): what each adapter is and where it came from.

Routes
------
* ``GET /v1/adapters`` (public): every adapter, oldest first.
* ``GET /v1/adapters/{name}`` (public): the adapter (hashes, developer, source, datanet,
  on-chain version) and its ``provenance`` (``provenance.json``). AdapterRegistry's
  ``metadataURI`` points here when the node has a public URL.
* ``GET /v1/adapters/{name}/rows/{rowHash}/proof`` (public): proof that a datanet row
  trained the adapter: an OZ StandardMerkleTree proof over ``(bytes32 rowHash, address
  contributor)`` against ``trainingRowsRoot`` of its ``AdapterRecord``; 404 for a row that
  did not train it or an external adapter.
* ``POST /v1/adapters/{name}/register`` (admin token): register in AdapterRegistry if not
  yet (safe to repeat).

Adapter names are checked (``[a-z0-9][a-z0-9._-]{0,63}``) before any lookup: 400 otherwise.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from ...errors import ConfigError, InputError
from ...serving.pricing import price_message, price_to_dict
from ...training.factory import ModelFactory, adapter_to_dict
from ..auth import BearerToken, admin_token_ok
from ..body import BodyLimits, JsonBody
from ..deps import AdminOnly, AppSettings, Node, current_node
from ..schemas import PRICE_BODY, errors, json_body

__all__ = ["router"]

router = APIRouter(prefix="/v1/adapters", tags=["adapters"])


def _factory(request: Request) -> ModelFactory:
    factory = current_node(request).factory
    if factory is None:
        raise ConfigError("this node has no model factory")
    return factory


Factory = Annotated[ModelFactory, Depends(_factory)]


def _public(row: Any) -> dict[str, Any]:
    data = adapter_to_dict(row)
    data.pop("path")  # a path on the node's disk is nobody else's business
    return data


@router.get("", responses=errors(409, 503))
def list_adapters(factory: Factory) -> list[dict[str, Any]]:
    return [_public(row) for row in factory.all()]


@router.get("/{name}", responses=errors(400, 404, 409, 503))
def get_adapter(factory: Factory, name: str) -> dict[str, Any]:
    return {**_public(factory.get(name)), "provenance": factory.provenance(name)}


@router.get("/{name}/rows/{row_hash}/proof", responses=errors(400, 404, 409, 503))
def row_proof(factory: Factory, name: str, row_hash: str) -> dict[str, Any]:
    return factory.training_row_proof(name, row_hash)


@router.post("/{name}/register", dependencies=[AdminOnly], responses=errors(400, 401, 404, 409, 502, 503))
def register(factory: Factory, name: str) -> dict[str, Any]:
    row, fresh = factory.register(name)
    return {**_public(row), "newlyRegistered": fresh}


# ---- prices ------------------------------------------------------------------------------

_price_body = JsonBody(BodyLimits(max_values=16))


def _price_json(node: Any, name: str, adapter_hash: str) -> dict[str, Any]:
    price = node.prices.current(name)
    return {**price_to_dict(name, price),
            # What the developer signs (EIP-191 personal_sign) for the next change, with the new values in.
            "messageToSign": price_message(name, adapter_hash, "<inputPer1k>", "<outputPer1k>", price.seq)}  # type: ignore[arg-type]


@router.get("/{name}/price", responses=errors(400, 404, 409, 503))
def get_price(node: Node, factory: Factory, name: str) -> dict[str, Any]:
    """The price in force, and what the developer signs to change it."""
    row = factory.get(name)
    return {**_price_json(node, name, row.adapter_hash), "adapterHash": row.adapter_hash, "developer": row.developer}


@router.post("/{name}/price", responses=errors(400, 401, 404, 409, 413, 503),
             openapi_extra=json_body(PRICE_BODY, example={"inputPer1k": "1000000000000000",
                                                          "outputPer1k": "2000000000000000"}))
def set_price(node: Node, settings: AppSettings, factory: Factory, name: str, token: BearerToken,
              body: Annotated[Any, Depends(_price_body)]) -> dict[str, Any]:
    """Set the adapter's price: with the admin token, or signed by the adapter's developer."""
    row = factory.get(name)
    if not isinstance(body, dict) or set(body) - {"inputPer1k", "outputPer1k", "signature"}:
        raise InputError("send {inputPer1k, outputPer1k, signature?}")
    admin = None
    if token is not None and admin_token_ok(settings, token):
        if node.operator is None:
            raise ConfigError("an admin price change is made by the operator: start the node with its key")
        admin = node.operator.address
    record = node.prices.set(name, adapter_hash=row.adapter_hash, developer=row.developer,
                             input_per_1k=body.get("inputPer1k"), output_per_1k=body.get("outputPer1k"), admin=admin,
                             signature=body.get("signature"))
    return {**_price_json(node, name, row.adapter_hash), "record": record.model_dump(mode="json")}
