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

from ...errors import ConfigError
from ...training.factory import ModelFactory, adapter_to_dict
from ..deps import AdminOnly, current_node
from ..schemas import errors

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
