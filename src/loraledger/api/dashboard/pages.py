"""The dashboard's pages (server-rendered HTML), each read from the node's own services.

Routes, under ``/dashboard``:

* ``/``: counts (datanets, rows, adapters, inferences, epochs, rewards funded) and the latest answers;
* ``/datanets``, ``/datanets/{id or name}``: contributors (rows accepted) and snapshots;
* ``/adapters``, ``/adapters/{name}``: provenance and the benchmark chart (inline SVG);
* ``/inferences?page=N``, ``/inferences/{hash}``: an answer with its exact spans highlighted and the
  contributors it credited, with their share of the fee;
* ``/epochs``, ``/epochs/{n}``: status, roots, data hash, post transaction, block, totals, and the
  chain's copy compared;
* ``/contributors``, ``/contributors/{address}``: earnings per adapter (from the confirmed epochs'
  files, :func:`~loraledger.claims.earnings.account_earnings`), claimed on chain, claimable, the
  account's OPEN balance, and a **Claim** button (``static/claim.js``, any EIP-1193 wallet);
* ``/contributors/{address}/claim.json``: what the button sends (the reward proof against the
  distributor's root, :func:`~loraledger.claims.service.reward_proof`) and the figures it shows.

A malformed id is a 400 page naming what is wrong, an unknown one a 404 page, a chain that does not
answer a 502 page (only where the page needs the chain; elsewhere a note).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from ...attribution.tables import attribution_statuses, inference_texts
from ...attribution.view import answer_attribution, fee_shares
from ...claims.earnings import account_earnings
from ...claims.service import reward_proof
from ...datanets.tables import DatanetRow
from ...epochs.history import post_tx_hashes
from ...epochs.tables import EpochRow, EpochStatus
from ...errors import ChainError, ConfigError, InputError, LedgerError, NotFoundError
from ...node.context import NodeContext
from ...records.fields import parse_address
from ...records.kinds import AdapterRecord, AttributionIndexRecord, BenchmarkRecord, InferenceRecord
from ...rewards.split import FeeSplit
from ...training.config import validate_adapter_name
from ...training.factory import ModelFactory
from ..deps import Node
from .present import benchmark_chart, format_open, pager, parse_page, segments
from .web import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PER_PAGE = 20
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_ID = re.compile(r"[1-9][0-9]{0,17}")
_MAX_NAME = 200


# ---- parsing what the URL names ------------------------------------------------------------


def _factory(node: NodeContext) -> ModelFactory:
    if node.factory is None:
        raise ConfigError("this node has no model factory: it keeps no adapters")
    return node.factory


def _address(value: str) -> str:
    try:
        return parse_address(value)
    except InputError as exc:
        raise InputError(f"not an address: {exc.message}", field="address") from None


def _epoch_number(value: str) -> int:
    if not _ID.fullmatch(value):
        raise InputError(f"an epoch number is a whole number from 1, written plainly (1, 2, ...); got {value[:40]!r}",
                         field="epoch")
    return int(value)


def _datanet(node: NodeContext, ref: str) -> DatanetRow:
    """A datanet by id (digits) or by name."""
    if ref.isdigit():
        if not _ID.fullmatch(ref):
            raise InputError(f"datanet ids are whole numbers from 1, written plainly; got {ref[:40]!r}", field="datanet")
        return node.datanets.get(int(ref))
    if len(ref) > _MAX_NAME:
        raise InputError(f"a datanet name is at most {_MAX_NAME} characters", field="datanet")
    named = [row for row in node.datanets.all() if row.name == ref]
    if not named:
        raise NotFoundError(f"no datanet named {ref!r} on this node")
    if len(named) > 1:
        raise InputError(f"{len(named)} datanets are named {ref!r}: use the id ({', '.join(str(r.id) for r in named)})",
                         field="datanet")
    return named[0]


def _inference(node: NodeContext, value: str) -> InferenceRecord:
    if not _HASH.fullmatch(value):
        raise InputError(f"an inference hash is 0x followed by 64 hex digits; got {value[:80]!r}", field="hash")
    record = node.records.get_by_hash(value.lower())
    if not isinstance(record, InferenceRecord):
        raise NotFoundError(f"record {value.lower()} is a {record.kind} record, not an inference")
    return record


# ---- overview ------------------------------------------------------------------------------


@router.get("/", include_in_schema=False)
def overview(request: Request, node: Node) -> HTMLResponse:
    datanets = node.datanets.all()
    rows: Counter[str] = Counter()
    for datanet in datanets:
        rows.update(node.datanets.counts(datanet.id))
    adapters = _factory(node).all()
    kinds = node.records.kind_counts()
    epochs = node.manager.epochs()
    confirmed = [row for row in epochs if row.status == EpochStatus.CONFIRMED]
    latest = node.records.of_kind("inference", limit=5, newest_first=True)
    return render(
        request, "overview.html", title="Overview", node=_node_facts(node),
        counts={"datanets": len(datanets), "rows": rows.get("accepted", 0), "pending": rows.get("pending", 0),
                "adapters": len(adapters), "inferences": kinds.get("inference", 0), "fees": kinds.get("fee", 0),
                "epochs": len(epochs), "confirmed": len(confirmed), "records": sum(kinds.values())},
        funded=int(confirmed[-1].cumulative_total) if confirmed else 0,
        latest_epoch=epochs[-1] if epochs else None, inferences=latest,
        statuses=attribution_statuses(node.engine, [r.seq for r in latest if r.seq is not None]),
    )


def _node_facts(node: NodeContext) -> dict[str, Any]:
    return {"chainId": node.contracts.client.chain_id, "ledger": node.contracts.ledger.address,
            "distributor": node.contracts.distributor.address, "token": node.contracts.token.address,
            "logSize": node.records.size(), "logRoot": "0x" + node.records.root().hex(),
            "health": node.health.status}


# ---- datanets ------------------------------------------------------------------------------


@router.get("/datanets", include_in_schema=False)
def datanets(request: Request, node: Node) -> HTMLResponse:
    listed = [{"row": row, "counts": node.datanets.counts(row.id), "contributors": len(node.datanets.contributors(row.id))}
              for row in node.datanets.all()]
    return render(request, "datanets.html", title="Datanets", datanets=listed)


@router.get("/datanets/{ref}", include_in_schema=False)
def datanet(request: Request, node: Node, ref: str) -> HTMLResponse:
    row = _datanet(node, ref)
    adapters = [adapter for adapter in _factory(node).all() if adapter.datanet_id == row.id]
    return render(request, "datanet.html", title=f"Datanet {row.name}", datanet=row,
                  licenses=json.loads(row.licenses), counts=node.datanets.counts(row.id),
                  contributors=node.datanets.contributors(row.id), snapshots=node.datanets.snapshots(row.id),
                  adapters=adapters)


# ---- adapters ------------------------------------------------------------------------------


@router.get("/adapters", include_in_schema=False)
def adapters(request: Request, node: Node) -> HTMLResponse:
    names = {row.id: row.name for row in node.datanets.all()}
    return render(request, "adapters.html", title="Adapters", adapters=_factory(node).all(), datanet_names=names)


def _benchmarks(node: NodeContext, adapter_hash: str, base_model_hash: str) -> list[dict[str, Any]]:
    """Per eval set (newest first): the adapter's latest scores and the base model's on the same set."""
    records = [r for r in node.records.of_kind("benchmark") if isinstance(r, BenchmarkRecord)]
    out: dict[str, dict[str, Any]] = {}
    for record in records:  # seq order: later records replace earlier ones
        if record.adapter_hash == adapter_hash:
            out.setdefault(record.eval_set_hash, {"evalSet": record.eval_set_hash, "base": None})["adapter"] = record
    for record in records:
        if record.adapter_hash is None and record.base_model_hash == base_model_hash and record.eval_set_hash in out:
            out[record.eval_set_hash]["base"] = record
    return sorted(out.values(), key=lambda entry: -(entry["adapter"].seq or 0))


def _scores(record: BenchmarkRecord | None) -> dict[str, float | None]:
    if record is None:
        return {}
    return {"loss": record.loss, "perplexity": record.perplexity, "exact_match": record.exact_match,
            "rouge_l": record.rouge_l}


@router.get("/adapters/{name}", include_in_schema=False)
def adapter(request: Request, node: Node, name: str) -> HTMLResponse:
    factory = _factory(node)
    row = factory.get(validate_adapter_name(name))
    record = node.records.get(row.record_seq)
    if not isinstance(record, AdapterRecord):
        raise LedgerError(f"record {row.record_seq} of adapter {name} is a {record.kind} record")
    provenance: dict[str, Any] | None
    provenance_problem = None
    try:
        provenance = factory.provenance(row.name)
    except LedgerError as exc:
        provenance, provenance_problem = None, exc.message
    datanet_row = None
    if row.datanet_id is not None:
        try:
            datanet_row = node.datanets.get(row.datanet_id)
        except NotFoundError:
            datanet_row = None
    benchmarks = _benchmarks(node, row.adapter_hash, row.base_model_hash)
    chart = None
    if benchmarks:
        chart = benchmark_chart(_scores(benchmarks[0]["base"]), _scores(benchmarks[0]["adapter"]),
                                adapter_label=row.name)
    indexes = [r for r in node.records.of_kind("attribution_index")
               if isinstance(r, AttributionIndexRecord) and r.adapter_hash == row.adapter_hash]
    return render(request, "adapter.html", title=f"Adapter {row.name}", adapter=row, record=record,
                  provenance=provenance, provenance_problem=provenance_problem, datanet=datanet_row,
                  hyperparameters=(provenance or {}).get("hyperparameters") or {},
                  metrics=(provenance or {}).get("metrics") or {}, benchmarks=benchmarks, chart=chart,
                  index=indexes[-1] if indexes else None)


# ---- inferences ----------------------------------------------------------------------------


@router.get("/inferences", include_in_schema=False)
def inferences(request: Request, node: Node) -> HTMLResponse:
    page = parse_page(request.query_params.get("page"))
    total = node.records.kind_counts().get("inference", 0)
    pages = pager(page, PER_PAGE, total)
    listed = node.records.of_kind("inference", limit=PER_PAGE, offset=pages.offset, newest_first=True)
    return render(request, "inferences.html", title="Inferences", inferences=listed, pager=pages,
                  statuses=attribution_statuses(node.engine, [r.seq for r in listed if r.seq is not None]))


def _epoch_of(node: NodeContext, seq: int) -> EpochRow | None:
    return next((row for row in node.manager.epochs() if row.start_seq <= seq < row.end_seq), None)


@router.get("/inferences/{inference_hash}", include_in_schema=False)
def inference(request: Request, node: Node, inference_hash: str) -> HTMLResponse:
    record = _inference(node, inference_hash)
    assert record.seq is not None
    answer = answer_attribution(node.records, record)
    status = answer.status["status"] if answer.status else None
    texts = inference_texts(node.engine, record.seq)
    spans = [(span.start, span.end, span.rows) for span in answer.record.spans] if answer.record else []
    pieces = segments(texts.output, spans) if texts is not None else None
    top_contributor = {row.row: row.contributor for row in answer.record.top} if answer.record else {}
    fee = answer.fee
    shares: list[dict[str, Any]] | None = None
    split_source = split_problem = None
    fee_epoch = _epoch_of(node, fee.seq) if fee is not None and fee.seq is not None else None
    if fee is not None:
        try:
            if fee_epoch is not None:
                split = FeeSplit.from_json(node.store.read(fee_epoch.number)["feeSplit"])
                split_source = f"the split epoch {fee_epoch.number} applied"
            else:
                split = FeeSplit.from_tuple(node.contracts.fee_split())
                split_source = "the split in force on chain now (not yet sealed in an epoch)"
            shares = fee_shares(fee, split)
        except ChainError as exc:
            split_problem = exc.message
    amounts = {share["account"]: int(share["amount"]) for share in shares or []}
    weights = dict(fee.weights) if fee is not None else dict(answer.record.weights) if answer.record else {}
    total_weight = sum(weights.values()) or 1
    top_rows: Counter[str] = Counter(row.contributor for row in answer.record.top) if answer.record else Counter()
    credited = [{"account": account, "weight": weight, "percent": 100 * weight / total_weight,
                 "topRows": top_rows.get(account, 0), "amount": amounts.get(account)}
                for account, weight in sorted(weights.items(), key=lambda item: (-item[1], item[0]))]
    others = [share for share in shares or [] if "contributor" not in share["roles"]]
    return render(request, "inference.html", title=f"Inference {record.hash_hex[:10]}…", inference=record,
                  status=status, answer=answer, texts=texts, pieces=pieces, top_contributor=top_contributor,
                  fee=fee, fee_epoch=fee_epoch, credited=credited, others=others, split_source=split_source,
                  split_problem=split_problem, span_count=len(spans))


# ---- epochs --------------------------------------------------------------------------------


@router.get("/epochs", include_in_schema=False)
def epochs(request: Request, node: Node) -> HTMLResponse:
    rows = list(reversed(node.manager.epochs()))
    return render(request, "epochs.html", title="Epochs", epochs=rows, txs=post_tx_hashes(node.engine))


@router.get("/epochs/{number}", include_in_schema=False)
def epoch(request: Request, node: Node, number: str) -> HTMLResponse:
    wanted = _epoch_number(number)
    row = next((r for r in node.manager.epochs() if r.number == wanted), None)
    if row is None:
        raise NotFoundError(f"epoch {wanted} is not sealed on this node")
    epoch_file = node.store.read(wanted)
    kinds = node.records.kind_counts(row.start_seq, row.end_seq)  # the database's index, not the file's records
    accounts = sorted(((entry["value"][0], int(entry["value"][1])) for entry in epoch_file["rewards"]["tree"]["values"]),
                      key=lambda item: (-item[1], item[0]))
    onchain = chain_problem = None
    try:
        if node.contracts.current_epoch() >= wanted:
            posted = node.contracts.epoch(wanted)
            onchain = [("log size", row.end_seq, posted.log_size), ("log root", row.log_root, posted.log_root),
                       ("rewards root", row.rewards_root, posted.rewards_root),
                       ("epoch total", int(row.total), posted.epoch_total),
                       ("record count", row.record_count, posted.record_count),
                       ("data hash", row.data_hash, posted.data_hash)]
    except ChainError as exc:
        chain_problem = exc.message
    return render(request, "epoch.html", title=f"Epoch {wanted}", epoch=row, file=epoch_file, kinds=list(kinds.items()),
                  accounts=accounts[:500], more_accounts=max(0, len(accounts) - 500),
                  tx=post_tx_hashes(node.engine).get(wanted), onchain=onchain, chain_problem=chain_problem)


# ---- contributors --------------------------------------------------------------------------


@router.get("/contributors", include_in_schema=False)
def contributors(request: Request, node: Node) -> HTMLResponse:
    balances = sorted(node.manager.balances().items(), key=lambda item: (-item[1], item[0]))
    latest = node.manager.latest()
    return render(request, "contributors.html", title="Contributors", balances=balances, latest=latest)


def _claim_figures(node: NodeContext, account: str) -> dict[str, Any]:
    """What the Claim button needs and shows: the proof against the distributor's root (empty when
    the account has nothing in it), what is claimed and claimable, and the OPEN balance."""
    try:
        proof = reward_proof(node.contracts, node.store, account)
        cumulative, claimed, path, epoch_number = proof.cumulative_amount, proof.claimed, proof.proof, proof.epoch
    except NotFoundError:
        cumulative, path, claimed, epoch_number = 0, [], node.contracts.claimed(account), node.contracts.current_epoch()
    balance = node.contracts.balance_of(account)
    claimable = max(cumulative - claimed, 0)
    return {
        "account": account, "chainId": node.contracts.client.chain_id, "distributor": node.contracts.distributor.address,
        "token": node.contracts.token.address, "epoch": epoch_number, "cumulativeAmount": str(cumulative),
        "claimed": str(claimed), "claimable": str(claimable), "balance": str(balance), "proof": path,
        "shown": {"cumulativeAmount": format_open(cumulative), "claimed": format_open(claimed),
                  "claimable": format_open(claimable), "balance": format_open(balance)},
    }


@router.get("/contributors/{address}", include_in_schema=False)
def contributor(request: Request, node: Node, address: str) -> HTMLResponse:
    account = _address(address)
    confirmed = [row.number for row in node.manager.epochs() if row.status == EpochStatus.CONFIRMED]
    earnings = account_earnings((node.store.read(number) for number in confirmed), account, node.store.read_chunk)
    names = {row.id: row.name for row in node.datanets.all()}
    rows = [{"datanet": datanet_id, "name": names.get(datanet_id, "?"), **counts}
            for datanet_id, counts in node.datanets.rows_of(account).items()]
    figures = _claim_figures(node, account)  # the chain: a ChainError is the "unreachable" page
    return render(request, "contributor.html", title=f"Contributor {account[:10]}…", account=account,
                  earnings=earnings, rows=rows, figures=figures, confirmed=confirmed)


@router.get("/contributors/{address}/claim.json", include_in_schema=False)
def claim_figures(node: Node, address: str) -> JSONResponse:
    return JSONResponse(_claim_figures(node, _address(address)), headers={"Cache-Control": "no-store"})
