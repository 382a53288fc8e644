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

from fastapi import APIRouter, Depends, FastAPI, Request

from ...config import Settings
from ...training.factory import ModelFactory, adapter_to_dict
from ..auth import admin_dependency

__all__ = ["install_adapters"]


def _factory(request: Request) -> ModelFactory:
    return request.app.state.node.factory


# Module level, so that FastAPI can resolve the (string) annotations of the routes.
Factory = Annotated[ModelFactory, Depends(_factory)]


def _public(row: Any) -> dict[str, Any]:
    data = adapter_to_dict(row)
    data.pop("path")  # a path on the node's disk is nobody else's business
    return data


def install_adapters(app: FastAPI, settings: Settings) -> None:
    router = APIRouter(prefix="/v1/adapters", tags=["adapters"])
    require_admin = admin_dependency(settings)

    @router.get("")
    def list_adapters(factory: Factory) -> list[dict[str, Any]]:
        return [_public(row) for row in factory.all()]

    @router.get("/{name}")
    def get_adapter(factory: Factory, name: str) -> dict[str, Any]:
        return {**_public(factory.get(name)), "provenance": factory.provenance(name)}

    @router.get("/{name}/rows/{row_hash}/proof")
    def row_proof(factory: Factory, name: str, row_hash: str) -> dict[str, Any]:
        return factory.training_row_proof(name, row_hash)

    @router.post("/{name}/register", dependencies=[Depends(require_admin)])
    def register(factory: Factory, name: str) -> dict[str, Any]:
        row, fresh = factory.register(name)
        return {**_public(row), "newlyRegistered": fresh}

    app.include_router(router)
