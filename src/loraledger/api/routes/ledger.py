"""The ledger's endpoints: what anyone needs to check the node's books, and the admin writes.

Routes
------
* ``GET /v1/health``: ``ok`` or ``degraded`` (with the failing parts), chain id, ledger
  address, log size, latest epoch.
* ``GET /v1/epochs``, ``GET /v1/epochs/{number}`` (the epoch file, or a chunked epoch's
  manifest), ``GET /v1/epochs/{number}/chunks/{hash}`` (one of a chunked epoch's chunks: its
  exact bytes, which hash to ``hash``; immutable, so cacheable for ever).
* ``GET /v1/rewards/{address}``: the reward proof against the distributor's current root.
* ``GET /v1/log``, ``GET /v1/log/consistency?first=&second=``: log state and consistency proofs.
* ``GET /v1/records/{hash}?size=``: a record and its inclusion proof.
* ``POST /v1/records`` (admin; 201): one record or a list of 1..10,000, appended atomically.
* ``POST /v1/epochs/close`` (admin): seal, post and confirm an epoch now (``{"sealed": null}``
  when there is nothing to seal).
"""

from __future__ import annotations

import re
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from ...claims.service import reward_proof
from ...epochs.machine import describe
from ...errors import InputError, NotFoundError
from ...records.kinds import record_from_dict
from ..body import RECORDS_MAX_BYTES, BodyLimits, JsonBody
from ..deps import AdminOnly, Node
from ..params import CanonicalInt, OptionalCanonicalInt
from ..schemas import RECORDS_BODY, RECORDS_EXAMPLE, errors, json_body

__all__ = ["MAX_RECORDS_PER_REQUEST", "router"]

MAX_RECORDS_PER_REQUEST = 10_000
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_MAX_SIZE = 2**63 - 1  # no log grows past what the database's seq column holds

router = APIRouter(prefix="/v1", tags=["ledger"])

# Every record is a flat object with at most a few dozen values (weights included).
_records_body = JsonBody(
    BodyLimits(max_bytes=RECORDS_MAX_BYTES, max_values=MAX_RECORDS_PER_REQUEST * 100),
    empty="request body is empty; send a record (JSON object) or a list of records",
)


def _close_lock(request: Request) -> threading.Lock:
    return request.app.state.close_lock


# ---- read endpoints ------------------------------------------------------------------


@router.get("/health", responses=errors(409, 503))
def health(node: Node) -> dict[str, Any]:
    """``ok``, or ``degraded`` with the parts that keep failing (``problems``: the epoch
    loop, the job worker; :class:`loraledger.health.NodeHealth`). Reads no chain state, so
    it answers while the chain is away."""
    latest = node.manager.latest()
    return {
        "status": node.health.status,
        "problems": [problem.to_dict() for problem in node.health.problems()],
        "chainId": node.contracts.client.chain_id,
        "ledger": node.contracts.ledger.address,
        "logSize": node.records.size(),
        "epoch": latest.number if latest else 0,
    }


@router.get("/epochs", responses=errors(409, 503))
def epochs(node: Node) -> list[dict[str, Any]]:
    """Every sealed epoch's state; ``takings``: what its answers paid from deposits, released by the
    PaymentVault to fund it (wei, decimal string)."""
    return [{**describe(row), "takings": str(node.manager.takings(row.number))} for row in node.manager.epochs()]


@router.get("/epochs/{number}", responses=errors(400, 404, 409, 422, 503))
def epoch_file(node: Node, number: CanonicalInt) -> dict[str, Any]:
    if number < 1:
        raise InputError(f"epoch numbers start at 1, got {number}")
    if all(row.number != number for row in node.manager.epochs()):
        raise NotFoundError(f"epoch {number} is not sealed")
    return node.store.read(number)


@router.get("/epochs/{number}/chunks/{chunk_hash}", response_class=Response, responses={
    200: {"content": {"application/json": {"schema": {"type": "object"}}},
          "description": "the chunk's bytes (RFC 8785 JSON), whose keccak256 is the hash"},
    **errors(400, 404, 409, 422, 503)})
def epoch_chunk(node: Node, number: CanonicalInt, chunk_hash: str) -> Response:
    """One chunk of a chunked epoch, exactly as its manifest's hash covers it. Only a chunk the
    epoch's manifest lists is served."""
    if number < 1:
        raise InputError(f"epoch numbers start at 1, got {number}")
    if not _HASH.fullmatch(chunk_hash):
        raise InputError(f"chunk hash must be 0x followed by 64 hex digits, got {chunk_hash[:80]!r}")
    if all(row.number != number for row in node.manager.epochs()):
        raise NotFoundError(f"epoch {number} is not sealed")
    chunk_hash = chunk_hash.lower()
    if not node.store.chunk_path(chunk_hash).is_file():  # before reading a manifest (or a large epoch file)
        raise NotFoundError(f"epoch {number} has no chunk {chunk_hash}")
    listed = node.store.read(number).get("chunks") or []
    if all(entry.get("hash") != chunk_hash for entry in listed):
        raise NotFoundError(f"epoch {number} has no chunk {chunk_hash}"
                            + ("" if listed else ": its records are in the epoch file itself"))
    return Response(node.store.read_chunk(chunk_hash), media_type="application/json",
                    headers={"Cache-Control": "public, max-age=31536000, immutable"})


@router.get("/rewards/{address}", responses=errors(400, 404, 409, 502, 503))
def rewards(node: Node, address: str) -> dict[str, Any]:
    return reward_proof(node.contracts, node.store, address).to_json()


@router.get("/log", responses=errors(409, 503))
def log_state(node: Node) -> dict[str, Any]:
    node.records.sync()
    return {"size": node.records.size(), "root": "0x" + node.records.root().hex()}


@router.get("/records/{record_hash}", responses=errors(400, 404, 409, 422, 503))
def record(
    node: Node, record_hash: str,
    size: Annotated[OptionalCanonicalInt, Query(ge=1, description="log size to prove against (default: current)")] = None,
) -> dict[str, Any]:
    if not _HASH.fullmatch(record_hash):
        raise InputError(f"record hash must be 0x followed by 64 hex digits, got {record_hash[:80]!r}")
    node.records.sync()
    found = node.records.get_by_hash(record_hash.lower())
    log_size = size or node.records.size()
    if log_size > _MAX_SIZE:
        raise NotFoundError(f"log size {log_size} is beyond the log (size {node.records.size()})")
    proof = node.records.inclusion_proof(found.seq, log_size)
    return {
        "seq": found.seq,
        "hash": record_hash.lower(),
        "record": found.model_dump(mode="json"),
        "logSize": log_size,
        "logRoot": "0x" + node.records.root(log_size).hex(),
        "inclusionProof": proof.to_dict(),
    }


@router.get("/log/consistency", responses=errors(400, 404, 409, 422, 503))
def consistency(
    node: Node,
    first: Annotated[CanonicalInt, Query(ge=0, description="older log size")],
    second: Annotated[CanonicalInt, Query(ge=0, description="newer log size")],
) -> dict[str, Any]:
    if first > second:
        raise InputError(f"first ({first}) must not exceed second ({second})")
    if second > _MAX_SIZE:
        raise NotFoundError(f"new size {second} is beyond the log (size {node.records.size()})")
    node.records.sync()
    proof = node.records.consistency_proof(first, second)
    return {
        "first": first,
        "second": second,
        "firstRoot": "0x" + node.records.root(first).hex(),
        "secondRoot": "0x" + node.records.root(second).hex(),
        "proof": proof.to_dict(),
    }


# ---- admin endpoints -----------------------------------------------------------------


#: Kinds only the node writes, each with the state that moves with it: appended here they would say
#: something the node's books do not (a deposit no balance was credited with).
NODE_WRITTEN_KINDS = {
    "deposit": "deposit records are written by the node when it credits a PaymentVault deposit "
               "(deposit with `loraledger payer deposit` or the vault's deposit functions)",
}


@router.post(
    "/records", status_code=201, dependencies=[AdminOnly],
    responses=errors(400, 401, 409, 413, 503), openapi_extra=json_body(RECORDS_BODY, example=RECORDS_EXAMPLE),
)
def append_records(node: Node, body: Annotated[Any, Depends(_records_body)]) -> dict[str, Any]:
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > MAX_RECORDS_PER_REQUEST:
        raise InputError(f"send between 1 and {MAX_RECORDS_PER_REQUEST} records")
    parsed = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"records[{index}]: expected a JSON object")
        if item.get("seq") is not None:
            raise InputError(f"records[{index}]: seq is assigned by the ledger; leave it out")
        if item.get("kind") in NODE_WRITTEN_KINDS:
            raise InputError(f"records[{index}]: {NODE_WRITTEN_KINDS[item['kind']]}")
        try:
            parsed.append(record_from_dict(item))
        except InputError as exc:
            raise InputError(f"records[{index}]: {exc}") from None
    appended = node.records.append_many(parsed)
    return {"appended": [{"seq": r.seq, "hash": r.hash_hex} for r in appended], "logSize": node.records.size()}


@router.post("/epochs/close", dependencies=[AdminOnly], responses=errors(401, 409, 502, 503))
def close_epoch(node: Node, lock: Annotated[threading.Lock, Depends(_close_lock)]) -> dict[str, Any]:
    with lock:
        row = node.manager.close()
    return {"sealed": describe(row) if row else None}
