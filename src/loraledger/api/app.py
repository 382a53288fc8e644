"""FastAPI app factory: ``create_app(settings)``.

Read endpoints serve what anyone needs to check the node's books: epoch files, reward
proofs, record inclusion proofs and log consistency proofs. Admin endpoints (append
records, close an epoch) need ``Authorization: Bearer <LORALEDGER_ADMIN_TOKEN>``.
Every error is a JSON body ``{"error", "message", ...}`` with a 4xx status (5xx only
when the chain or the node itself fails), never a traceback.
"""

from __future__ import annotations

import re
import threading
from contextlib import asynccontextmanager
from typing import Annotated, Any

from eth_account.signers.local import LocalAccount
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..claims.service import reward_proof
from ..config import Settings
from ..epochs.machine import describe
from ..errors import ChainError, ConfigError, InputError, LedgerError, LoraLedgerError, NotFoundError
from ..node.context import NodeContext, open_node
from ..records.kinds import record_from_dict
from .auth import AdminUnauthorized, admin_dependency
from .routes.adapters import install_adapters
from .routes.datanets import install_datanets
from .routes.jobs import install_jobs

STATUS_BY_ERROR: list[tuple[type[LoraLedgerError], int]] = [
    (InputError, 400),
    (NotFoundError, 404),
    (LedgerError, 409),
    (ChainError, 502),
    (ConfigError, 503),
]
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
MAX_RECORDS_PER_REQUEST = 10_000


def _current_node(request: Request) -> NodeContext:
    return request.app.state.node


# Module level, so that FastAPI can resolve the (string) annotation of each route.
Node = Annotated[NodeContext, Depends(_current_node)]


def _status(exc: LoraLedgerError) -> int:
    return next((code for cls, code in STATUS_BY_ERROR if isinstance(exc, cls)), 500)


def create_app(settings: Settings, *, operator: LocalAccount | None = None, node: NodeContext | None = None) -> FastAPI:
    """Build the API for one node. ``node`` may be given (tests, the daemon); otherwise it is
    opened from ``settings`` at start-up.

    The app only queues jobs (``/v1/jobs``): running them (``JobWorker``) and failing jobs
    a dead process left running (``JobQueue.recover``) is the daemon's part
    (:func:`loraledger.node.daemon.run_node`), so an app served without the daemon (tests,
    a read-only replica) never runs a job by itself."""
    close_lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.node is None:
            app.state.node = open_node(settings, operator=operator)
        yield

    app = FastAPI(title="loraledger node", version="1", lifespan=lifespan)
    app.state.node = node
    install_datanets(app, settings)  # /v1/datanets; the service is app.state.node.datanets
    install_jobs(app, settings)  # /v1/jobs; the queue is app.state.node.jobs
    install_adapters(app, settings)  # /v1/adapters; the factory is app.state.node.factory
    require_admin = admin_dependency(settings)

    @app.exception_handler(LoraLedgerError)
    async def _ledger_error(_: Request, exc: LoraLedgerError) -> JSONResponse:
        return JSONResponse(status_code=_status(exc), content=_jsonable(exc.to_dict()))

    @app.exception_handler(AdminUnauthorized)
    async def _forbidden(_: Request, exc: AdminUnauthorized) -> JSONResponse:
        return JSONResponse(status_code=401, content={"error": "unauthorized", "message": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse(status_code=422, content={"error": "invalid_input", "message": problems})

    # ---- read endpoints --------------------------------------------------------------
    @app.get("/v1/health")
    def health(node: Node) -> dict[str, Any]:
        latest = node.manager.latest()
        return {
            "status": "ok",
            "chainId": node.contracts.client.chain_id,
            "ledger": node.contracts.ledger.address,
            "logSize": node.records.size(),
            "epoch": latest.number if latest else 0,
        }

    @app.get("/v1/epochs")
    def epochs(node: Node) -> list[dict[str, Any]]:
        return [describe(row) for row in node.manager.epochs()]

    @app.get("/v1/epochs/{number}")
    def epoch_file(node: Node, number: int) -> dict[str, Any]:
        if number < 1:
            raise InputError(f"epoch numbers start at 1, got {number}")
        if all(row.number != number for row in node.manager.epochs()):
            raise NotFoundError(f"epoch {number} is not sealed")
        return node.store.read(number)

    @app.get("/v1/rewards/{address}")
    def rewards(node: Node, address: str) -> dict[str, Any]:
        return reward_proof(node.contracts, node.store, address).to_json()

    @app.get("/v1/log")
    def log_state(node: Node) -> dict[str, Any]:
        node.records.sync()
        return {"size": node.records.size(), "root": "0x" + node.records.root().hex()}

    @app.get("/v1/records/{record_hash}")
    def record(node: Node, record_hash: str, size: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
        if not _HASH.match(record_hash):
            raise InputError(f"record hash must be 0x followed by 64 hex digits, got {record_hash[:80]!r}")
        node.records.sync()
        found = node.records.get_by_hash(record_hash.lower())
        log_size = size or node.records.size()
        proof = node.records.inclusion_proof(found.seq, log_size)
        return {
            "seq": found.seq,
            "hash": record_hash.lower(),
            "record": found.model_dump(mode="json"),
            "logSize": log_size,
            "logRoot": "0x" + node.records.root(log_size).hex(),
            "inclusionProof": proof.to_dict(),
        }

    @app.get("/v1/log/consistency")
    def consistency(
        node: Node,
        first: Annotated[int, Query(ge=0, description="older log size")],
        second: Annotated[int, Query(ge=0, description="newer log size")],
    ) -> dict[str, Any]:
        if first > second:
            raise InputError(f"first ({first}) must not exceed second ({second})")
        node.records.sync()
        proof = node.records.consistency_proof(first, second)
        return {
            "first": first,
            "second": second,
            "firstRoot": "0x" + node.records.root(first).hex(),
            "secondRoot": "0x" + node.records.root(second).hex(),
            "proof": proof.to_dict(),
        }

    # ---- admin endpoints -------------------------------------------------------------
    @app.post("/v1/records", dependencies=[Depends(require_admin)], status_code=201)
    async def append_records(node: Node, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise InputError("request body is not JSON") from None
        items = body if isinstance(body, list) else [body]
        if not items or len(items) > MAX_RECORDS_PER_REQUEST:
            raise InputError(f"send between 1 and {MAX_RECORDS_PER_REQUEST} records")
        parsed = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise InputError(f"records[{index}]: expected a JSON object")
            if item.get("seq") is not None:
                raise InputError(f"records[{index}]: seq is assigned by the ledger; leave it out")
            try:
                parsed.append(record_from_dict(item))
            except InputError as exc:
                raise InputError(f"records[{index}]: {exc}") from None
        appended = node.records.append_many(parsed)
        return {"appended": [{"seq": r.seq, "hash": r.hash_hex} for r in appended], "logSize": node.records.size()}

    @app.post("/v1/epochs/close", dependencies=[Depends(require_admin)])
    def close_epoch(node: Node) -> dict[str, Any]:
        with close_lock:
            row = node.manager.close()
        return {"sealed": describe(row) if row else None}

    return app


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
