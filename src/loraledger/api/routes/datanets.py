"""Datanet endpoints of the node API (``/v1/datanets``).

Routes
------
* ``POST /v1/datanets`` (admin token; 201): ``{owner, name, schema, licenses, policy?,
  nearDuplicatePct?, metadataURI?}``; the operator key registers it on chain.
* ``GET /v1/datanets``, ``GET /v1/datanets/{id}`` (public).
* ``GET /v1/datanets/{id}/nonce/{address}`` (public): ``{contributor, nonce}``, the next unused nonce.
* ``POST /v1/datanets/{id}/contributions`` (the contributor's EIP-712 signature; 201):
  ``{seq, rowHashes, status, contentHash}``.
* ``GET /v1/datanets/{id}/pending``, ``POST /v1/datanets/{id}/review`` (``{rowHashes,
  accept, reason?}``), ``POST /v1/datanets/{id}/snapshots`` (201): admin token or owner
  signature (below).
* ``GET /v1/datanets/{id}/snapshots/{version}`` (public): the manifest, as hashed into the
  snapshot record.
* ``GET /v1/datanets/{id}/rows/{rowHash}/proof?version=n`` (public; default the latest
  version): the Merkle proof and ``verifiedOnChain`` (the registry's ``verifyRow``).

A datanet's JSON carries ``domain`` (``name``, ``version``, ``chainId``,
``verifyingContract``), the EIP-712 domain contributors sign in. To contribute, a wallet
reads ``GET .../nonce/{address}``, computes ``contentHash`` of its JSONL rows
(:func:`loraledger.datanets.content.content_hash`), signs the ``Contribution`` typed data
(:func:`loraledger.datanets.contribution.typed_data`) and posts
``{contributor, license, nonce, deadline, signature, rows}`` (``rows``: the JSONL text;
``nonce``/``deadline`` as integers or decimal strings; an optional ``contentHash`` is
checked against the node's own). The node recomputes ``contentHash`` from ``rows``, so a
signature over anything else is refused. A refused batch answers 400 with ``rows``, the
per-row report.

Owner authentication
--------------------
Owner endpoints (pending, review, snapshots) accept EITHER the admin token
(``Authorization: Bearer <LORALEDGER_ADMIN_TOKEN>``) OR a signature by the datanet's
owner, sent as two headers::

    X-Owner-Signature: 0x<65-byte r ‖ s ‖ v signature, 130 hex digits>
    X-Owner-Deadline:  <unix seconds, decimal>

The owner signs with EIP-191 ``personal_sign`` (eth-account:
``encode_defunct(text=message)``; MetaMask ``personal_sign``; ``cast wallet sign``) this
exact text, lines separated by ``\\n``, no trailing newline::

    loraledger owner action
    datanet: {id}
    method: {METHOD}
    path: {path}
    body-sha256: {sha256 of the raw request body, 64 lowercase hex digits, no 0x}
    deadline: {deadline}

``{id}`` is the decimal datanet id, ``{METHOD}`` the upper-case HTTP method, ``{path}``
the request path without query string (e.g. ``/v1/datanets/3/review``), and the body
digest is over the exact bytes sent (an empty body hashes to ``e3b0c442...b855``). Use
:func:`owner_message` to build it. The node refuses (401, with the reason) a deadline
that has passed (valid up to and including ``deadline``), one more than an hour ahead, a
malformed or high-s signature, and a signature that recovers to anyone but the datanet's
on-node owner. A POST signature is accepted once: the node remembers it until its
deadline, so a captured request cannot be replayed (GET signatures may be reused until
their deadline: they change nothing). The memory is per process: a request captured
before a node restart could be replayed after it, until its deadline (at most an hour).
An unknown datanet answers 404 before any authentication (datanets are public anyway).

Review decisions record ``decided_by``: the owner's address when the owner signed; with
the admin token, the node operator's address (the operator acts for the owner), or the
owner's address when the node has no operator key. Snapshots publish on chain with the
operator key whichever way the call is authorised; a node without one answers 503.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi import APIRouter, Depends, Header, Request

from ...datanets.content import content_hash, parse_rows
from ...datanets.contribution import DOMAIN_NAME, DOMAIN_VERSION, Contribution, parse_signature
from ...datanets.service import DatanetService
from ...datanets.tables import DatanetRow
from ...errors import ConfigError, InputError, Unauthorized
from ...node.context import NodeContext
from ...records.fields import parse_address
from ..auth import BearerToken, admin_token_ok
from ..body import CONTRIBUTION_MAX_BYTES, DEFAULT_MAX_BYTES, BodyLimits, JsonBody, read_body
from ..deps import AdminOnly, AppSettings, Node
from ..params import CanonicalInt, OptionalCanonicalInt
from ..schemas import (
    CONTRIBUTION_BODY,
    DATANET_BODY,
    DATANET_EXAMPLE,
    REVIEW_BODY,
    REVIEW_EXAMPLE,
    SNAPSHOT_BODY,
    errors,
    json_body,
)

__all__ = [
    "OWNER_DEADLINE_MAX_AHEAD",
    "SeenSignatures",
    "datanet_json",
    "owner_headers",
    "owner_message",
    "router",
]

#: How far ahead an owner signature's deadline may lie (seconds).
OWNER_DEADLINE_MAX_AHEAD = 3600
MAX_REVIEW_HASHES = 10_000
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_DECIMAL = re.compile(r"[0-9]{1,78}")
_MAX_ID = 2**63 - 1  # what the ledger database stores

router = APIRouter(prefix="/v1/datanets", tags=["datanets"])

# Admin and owner calls carry a few fields (review: up to 10,000 row hashes, ~700 KB).
_OWNER_LIMITS = BodyLimits(max_bytes=DEFAULT_MAX_BYTES, max_values=2 * MAX_REVIEW_HASHES)
_create_body = JsonBody(BodyLimits(max_values=10_000))
_review_body = JsonBody(_OWNER_LIMITS)
_snapshot_body = JsonBody(_OWNER_LIMITS, empty=None)
# The rows travel as one JSON string: the body is one flat object of a few fields.
_contribution_body = JsonBody(BodyLimits(max_bytes=CONTRIBUTION_MAX_BYTES, max_values=1_000))


# ---------------------------------------------------------------------- owner signatures


def owner_message(datanet_id: int, method: str, path: str, body: bytes, deadline: int) -> str:
    """The exact text a datanet owner signs (EIP-191 ``personal_sign``) to authorise one request."""
    return (
        "loraledger owner action\n"
        f"datanet: {datanet_id}\n"
        f"method: {method.upper()}\n"
        f"path: {path}\n"
        f"body-sha256: {hashlib.sha256(body).hexdigest()}\n"
        f"deadline: {deadline}"
    )


def owner_headers(account: Any, datanet_id: int, method: str, path: str, body: bytes, deadline: int) -> dict[str, str]:
    """The ``X-Owner-Signature`` / ``X-Owner-Deadline`` headers for one request, signed by ``account``."""
    signed = account.sign_message(encode_defunct(text=owner_message(datanet_id, method, path, body, deadline)))
    return {"X-Owner-Signature": "0x" + bytes(signed.signature).hex(), "X-Owner-Deadline": str(deadline)}


@dataclass(frozen=True)
class OwnerAuth:
    """Who authorised an owner request, and the raw body the signature covered."""

    via: str  # "admin" | "owner"
    decided_by: str
    datanet: DatanetRow
    body: bytes


class SeenSignatures:
    """POST owner signatures already used, kept until their deadline (replay guard; one per app)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}

    def claim(self, signature: str, deadline: int, now: int) -> bool:
        with self._lock:
            for key in [k for k, until in self._seen.items() if until < now]:
                del self._seen[key]
            if signature in self._seen:
                return False
            self._seen[signature] = deadline
            return True


# ---------------------------------------------------------------------- helpers


def _datanet_id(value: int) -> int:
    if not 0 <= value <= _MAX_ID:
        raise InputError(f"datanet id must be between 0 and {_MAX_ID}, got {value}", field="id")
    return value


def _datanet(node: Node, datanet_id: CanonicalInt) -> DatanetRow:
    """The datanet the path names: 400 for an id out of range, 404 for an unknown one."""
    return node.datanets.get(_datanet_id(datanet_id))


Datanet = Annotated[DatanetRow, Depends(_datanet)]


def _row_hash(value: str) -> str:
    if not _HASH.fullmatch(value):
        raise InputError(f"row hash must be 0x followed by 64 hex digits, got {value[:80]!r}", field="rowHash")
    return value.lower()


def _version(value: int) -> int:
    if not 1 <= value <= _MAX_ID:
        raise InputError(f"snapshot versions start at 1, got {value}", field="version")
    return value


def _operator(node: NodeContext) -> LocalAccount:
    if node.operator is None:
        raise ConfigError("this node has no operator key: start it with one to create datanets or publish snapshots")
    return node.operator


def _json_object(value: Any, *, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"request body must be a JSON object, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        shown = ", ".join(repr(k)[1:-1][:80] for k in unknown[:20])
        raise InputError(f"unknown field(s) {shown}; allowed: {', '.join(sorted(allowed)) or 'none'}")
    return value


def _required(body: dict[str, Any], key: str) -> Any:
    if key not in body or body[key] is None:
        raise InputError(f"{key} is required", field=key)
    return body[key]


def _string(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = _required(body, key) if default is None else body.get(key, default)
    if not isinstance(value, str):
        raise InputError(f"{key} must be a string, got {type(value).__name__}", field=key)
    return value


def _integer(body: dict[str, Any], key: str) -> int:
    """An unsigned integer given as a JSON number or a decimal string (as EIP-712 typed data writes it)."""
    value = _required(body, key)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(f"{key} must be an integer or a decimal string, got {type(value).__name__}", field=key)
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise InputError(f"{key} must be a decimal integer, got {value[:80]!r}", field=key)
        value = int(value)
    return value


def datanet_json(service: DatanetService, row: DatanetRow) -> dict[str, Any]:
    """A datanet as the API shows it (with its EIP-712 domain and row counts)."""
    counts = service.counts(row.id)
    return {
        "id": row.id,
        "owner": row.owner,
        "name": row.name,
        "schema": row.row_schema,
        "licenses": json.loads(row.licenses),
        "policy": row.policy,
        "nearDuplicatePct": row.near_duplicate_pct,
        "metadataURI": row.metadata_uri,
        "latestVersion": row.latest_version,
        "createdAt": row.created_at,
        "rows": {status: counts.get(status, 0) for status in ("pending", "accepted", "rejected")},
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": service.domain.chain_id,
            "verifyingContract": service.domain.registry,
        },
    }


# ---------------------------------------------------------------------- owner or admin


async def owner_or_admin(
    request: Request,
    node: Node,
    settings: AppSettings,
    datanet: Datanet,
    credentials: BearerToken,
    x_owner_signature: Annotated[str | None, Header(description="the owner's EIP-191 signature (see the API docs)")] = None,
    x_owner_deadline: Annotated[str | None, Header(description="unix seconds the signature is good until")] = None,
) -> OwnerAuth:
    """Dependency of the owner endpoints: the admin token or the datanet owner's signature
    over this exact request (:class:`Unauthorized` otherwise). An unknown datanet is 404
    first; the body is read (with its cap) because the signature covers it."""
    body = await read_body(request, _OWNER_LIMITS.max_bytes)
    if admin_token_ok(settings, credentials):
        decided_by = node.operator.address if node.operator is not None else datanet.owner
        return OwnerAuth("admin", decided_by, datanet, body)
    if x_owner_signature is None and x_owner_deadline is None:
        if request.headers.get("authorization"):
            raise Unauthorized("wrong admin token (Authorization: Bearer <token>)")
        raise Unauthorized(
            f"owner endpoint: send the admin token (Authorization: Bearer <token>) or the signature of the "
            f"datanet owner {datanet.owner} (X-Owner-Signature and X-Owner-Deadline headers)"
        )
    if x_owner_signature is None or x_owner_deadline is None:
        raise Unauthorized("send both X-Owner-Signature and X-Owner-Deadline")
    deadline_text = x_owner_deadline.strip()
    if not _DECIMAL.fullmatch(deadline_text):
        raise Unauthorized(f"X-Owner-Deadline must be unix seconds (a decimal integer), got {x_owner_deadline[:40]!r}")
    deadline = int(deadline_text)
    now = int(time.time())
    if deadline < now:
        raise Unauthorized(f"owner signature expired: deadline {deadline} has passed (now {now}); sign again")
    if deadline > now + OWNER_DEADLINE_MAX_AHEAD:
        raise Unauthorized(
            f"owner signature deadline {deadline} is more than {OWNER_DEADLINE_MAX_AHEAD} s ahead (now {now}); "
            "use a deadline within the hour"
        )
    try:
        v, r, s = parse_signature(x_owner_signature.strip())
    except InputError as exc:
        raise Unauthorized(f"X-Owner-Signature: {exc.message}") from None
    message = owner_message(datanet.id, request.method, request.url.path, body, deadline)
    try:
        signer = Account.recover_message(
            encode_defunct(text=message), signature=r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])
        )
    except Exception:  # noqa: BLE001 - eth-account raises several types for unrecoverable signatures
        raise Unauthorized("X-Owner-Signature cannot be recovered; sign again") from None
    if signer != datanet.owner:
        raise Unauthorized(
            f"owner signature recovers to {signer}, not the owner of datanet {datanet.id} ({datanet.owner}): "
            "sign with the owner's key the exact text described in the API docs "
            "(method, path, body-sha256 and deadline must match this request)"
        )
    # Keyed by (r, s): the same signature spelled with v = 0/1 or 27/28 is one signature.
    seen: SeenSignatures = request.app.state.owner_signatures
    if request.method != "GET" and not seen.claim(f"{r:064x}{s:064x}", deadline, now):
        raise Unauthorized("this owner signature was already used; sign the request again")
    return OwnerAuth("owner", datanet.owner, datanet, body)


Owner = Annotated[OwnerAuth, Depends(owner_or_admin)]


def _snapshot_lock(request: Request) -> threading.Lock:
    return request.app.state.snapshot_lock


# ---------------------------------------------------------------------- datanets


@router.post("", status_code=201, dependencies=[AdminOnly], responses=errors(400, 401, 409, 413, 502, 503),
             openapi_extra=json_body(DATANET_BODY, example=DATANET_EXAMPLE))
def create(node: Node, raw: Annotated[Any, Depends(_create_body)]) -> dict[str, Any]:
    body = _json_object(raw, allowed={"owner", "name", "schema", "licenses", "policy", "nearDuplicatePct",
                                      "metadataURI"})
    owner = parse_address(_required(body, "owner"))
    licenses = _required(body, "licenses")
    if not isinstance(licenses, list):
        raise InputError("licenses must be a list of SPDX ids, e.g. [\"CC-BY-4.0\"]", field="licenses")
    pct = body.get("nearDuplicatePct", 85)
    if isinstance(pct, bool) or not isinstance(pct, int):
        raise InputError(f"nearDuplicatePct must be an integer 1..100, got {pct!r:.40}", field="nearDuplicatePct")
    service = node.datanets
    row = service.create(
        _operator(node), owner=owner, name=_string(body, "name"), row_schema=_string(body, "schema"),
        licenses=licenses, policy=_string(body, "policy", "auto"), near_duplicate_pct=pct,
        metadata_uri=_string(body, "metadataURI", ""),
    )
    return datanet_json(service, row)


@router.get("", responses=errors(409, 503))
def list_datanets(node: Node) -> list[dict[str, Any]]:
    return [datanet_json(node.datanets, row) for row in node.datanets.all()]


@router.get("/{datanet_id}", responses=errors(400, 404, 409, 422, 503))
def get_datanet(node: Node, datanet: Datanet) -> dict[str, Any]:
    return datanet_json(node.datanets, datanet)


# ---------------------------------------------------------------------- contributions


@router.get("/{datanet_id}/nonce/{address}", responses=errors(400, 404, 409, 422, 503))
def nonce(node: Node, datanet: Datanet, address: str) -> dict[str, Any]:
    contributor = parse_address(address)
    return {"contributor": contributor, "nonce": node.datanets.next_nonce(contributor)}


@router.post("/{datanet_id}/contributions", status_code=201, responses=errors(400, 404, 409, 413, 422, 503),
             openapi_extra=json_body(CONTRIBUTION_BODY))
def contribute(node: Node, datanet: Datanet, raw: Annotated[Any, Depends(_contribution_body)]) -> dict[str, Any]:
    service = node.datanets
    body = _json_object(raw, allowed={"contributor", "license", "nonce", "deadline", "signature", "rows",
                                      "contentHash"})
    rows_text = _string(body, "rows")
    signature = _required(body, "signature")
    if not isinstance(signature, str):
        raise InputError("signature must be a 0x hex string", field="signature")
    parse_signature(signature)
    computed = "0x" + content_hash(parse_rows(rows_text, datanet.row_schema)).hex()
    claimed = body.get("contentHash")
    if claimed is not None and (not isinstance(claimed, str) or claimed.lower() != computed):
        raise InputError(f"the rows hash to {computed}, not the contentHash sent ({str(claimed)[:80]}): "
                         "sign the rows exactly as uploaded", field="contentHash", contentHash=computed)
    contributor = _required(body, "contributor")
    contribution = Contribution(datanet.id, contributor, computed, _required(body, "license"),
                                _integer(body, "nonce"), _integer(body, "deadline"))
    result = service.contribute(datanet.id, rows_text, contribution, signature)
    return {"seq": result.seq, "rowHashes": result.row_hashes, "status": result.status, "contentHash": computed}


# ---------------------------------------------------------------------- owner endpoints


@router.get("/{datanet_id}/pending", responses=errors(400, 401, 404, 409, 413, 422, 503))
def pending(node: Node, auth: Owner) -> dict[str, Any]:
    entries = node.datanets.pending(auth.datanet.id)
    return {
        "datanetId": auth.datanet.id,
        "pending": [
            {"rowHash": e.row_hash, "contributor": e.contributor, "row": json.loads(e.content),
             "contributionSeq": e.contribution_seq, "createdAt": e.created_at}
            for e in entries
        ],
    }


@router.post("/{datanet_id}/review", responses=errors(400, 401, 404, 409, 413, 422, 503),
             openapi_extra=json_body(REVIEW_BODY, example=REVIEW_EXAMPLE))
def review(node: Node, auth: Owner, raw: Annotated[Any, Depends(_review_body)]) -> dict[str, Any]:
    body = _json_object(raw, allowed={"rowHashes", "accept", "reason"})
    hashes = _required(body, "rowHashes")
    if not isinstance(hashes, list) or not hashes:
        raise InputError("rowHashes must be a non-empty list of row hashes", field="rowHashes")
    if len(hashes) > MAX_REVIEW_HASHES:
        raise InputError(f"review at most {MAX_REVIEW_HASHES} rows per request", field="rowHashes")
    for index, value in enumerate(hashes):
        if not isinstance(value, str) or not _HASH.fullmatch(value):
            raise InputError(f"rowHashes[{index}] must be 0x followed by 64 hex digits", field="rowHashes")
    if len({h.lower() for h in hashes}) != len(hashes):
        raise InputError("rowHashes lists a row twice", field="rowHashes")
    accept = _required(body, "accept")
    if not isinstance(accept, bool):
        raise InputError("accept must be true or false", field="accept")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InputError("reason must be a string", field="reason")
    decided = node.datanets.review(auth.datanet.id, hashes, accept=accept, decided_by=auth.decided_by, reason=reason)
    return {"datanetId": auth.datanet.id, "decided": decided, "decision": "accepted" if accept else "rejected",
            "decidedBy": auth.decided_by, "authorizedBy": auth.via}


@router.post("/{datanet_id}/snapshots", status_code=201, responses=errors(400, 401, 404, 409, 413, 422, 502, 503),
             openapi_extra=json_body(SNAPSHOT_BODY, required=False))
def snapshot(
    node: Node, auth: Owner, raw: Annotated[Any, Depends(_snapshot_body)],
    lock: Annotated[threading.Lock, Depends(_snapshot_lock)],
) -> dict[str, Any]:
    if raw is not None:
        _json_object(raw, allowed=set())
    operator = _operator(node)
    with lock:
        snap = node.datanets.snapshot(auth.datanet.id, operator)
    return {"datanetId": snap.datanet_id, "version": snap.version, "root": snap.root, "rowCount": snap.row_count,
            "parentVersion": snap.parent_version, "txHash": snap.tx_hash, "manifest": json.loads(snap.manifest)}


# ---------------------------------------------------------------------- snapshots and proofs


@router.get("/{datanet_id}/snapshots/{version}", responses=errors(400, 404, 409, 422, 503))
def manifest(node: Node, datanet: Datanet, version: CanonicalInt) -> dict[str, Any]:
    return json.loads(node.datanets.snapshot_row(datanet.id, _version(version)).manifest)


@router.get("/{datanet_id}/rows/{row_hash}/proof", responses=errors(400, 404, 409, 422, 502, 503))
def row_proof(node: Node, datanet: Datanet, row_hash: str, version: OptionalCanonicalInt = None) -> dict[str, Any]:
    wanted = _row_hash(row_hash)
    if version is not None:
        _version(version)
    return node.datanets.row_proof(datanet.id, node.datanets.resolve_version(datanet.id, version), wanted)
