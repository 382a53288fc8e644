"""Re-checking one answer's attribution and fee from public artifacts (``loraledger verify inference``).

:meth:`InferenceVerifier.verify` takes an inference record's hash and checks, each as a named
:class:`Check`:

* **texts**: the stored prompt and output hash to the record's ``prompt_hash`` / ``output_hash``;
* **attribution record**: it cites this inference (hash, seq, adapter);
* **training rows**: the adapter's training rows, rebuilt from its datanet snapshot, have the
  adapter record's ``training_rows_root``, and the index's rows are those rows, each with its
  contributor;
* **index**: the file beside the adapter hashes to the recorded ``index_hash`` and was built for
  this adapter and these rows;
* **query vector**: the vector the node published hashes to the record's ``query_hash``, and
  recomputing it (the base model and the adapter, both checked against their recorded hashes, and
  the stored texts) lands within :data:`~loraledger.attribution.attribute.QUERY_TOLERANCE` units of
  it in every component: the only floating-point step;
* **scores, spans, weights**: recomputed from the published vector and the index, they equal the
  record's bit for bit (integer scoring, the versioned policy);
* **fee**: the inference's ``fee`` record carries the attribution's weights, the inference's fee
  and payer.

A ``fallback`` attribution is checked against the adapter's training-row counts per contributor.
The verifier reads the node's database only to find things (the texts, the published query vector,
the adapter's files); every value it compares is recomputed from the artifacts themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eth_utils import keccak
from sqlmodel import Session

from ..errors import InputError, LoraLedgerError
from ..records.kinds import AttributionRecord, InferenceRecord
from ..records.ledger import RecordLedger
from ..training.factory import ModelFactory
from ..training.provenance import contributor_counts
from .attribute import QUERY_TOLERANCE, answer_tokens, query_hash, query_vector, score_query
from .checkpoints import load_checkpoints
from .index import MODEL_DTYPE, AttributionIndex, read_index
from .influence import Quantized
from .policy import POLICY_VERSION
from .service import AttributionIndexer
from .tables import AttributionTaskRow, InferenceTextRow
from .view import fee_after

__all__ = ["Check", "InferenceReport", "InferenceVerifier"]


@dataclass(frozen=True)
class Check:
    """One named comparison and what it found."""

    name: str
    ok: bool
    detail: str


@dataclass
class InferenceReport:
    """The checks of one inference (module docstring); ``ok`` when every check passed."""

    inference: str
    #: ``done``, ``fallback``, ``pending``, or ``none`` (no attribution: the base model or an adapter without index).
    status: str
    checks: list[Check] = field(default_factory=list)
    #: The largest difference between the recomputed and the published query vector, in units.
    query_difference: int | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def to_json(self) -> dict[str, Any]:
        return {"inference": self.inference, "ok": self.ok, "status": self.status,
                "queryDifference": self.query_difference,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks]}


def _keccak(text: str) -> str:
    return "0x" + keccak(text.encode("utf-8")).hex()


#: ``(base_dir, adapter_dir, index) → (PEFT model, tokenizer, the adapter names of the index's checkpoints)``.
ModelLoader = Callable[[Path, Path, AttributionIndex], tuple[Any, Any, list[str]]]


def load_peft(base_dir: Path, adapter_dir: Path, index: AttributionIndex, *,
              device: str = "cpu") -> tuple[Any, Any, list[str]]:
    """The base model at ``base_dir`` with the adapter at ``adapter_dir`` and the index's checkpoints
    (each checked against its recorded hash) (torch)."""
    import peft

    from ..training.hf.basemodel import load_base_model

    loaded = load_base_model(base_dir, device=device, dtype=MODEL_DTYPE)
    model = peft.PeftModel.from_pretrained(loaded.model, str(adapter_dir)).eval()
    return model, loaded.tokenizer, load_checkpoints(model, adapter_dir, index, adapter="default", prefix="ckpt")


class InferenceVerifier:
    """Recomputes answers' attributions (module docstring)."""

    def __init__(self, records: RecordLedger, factory: ModelFactory, *, load_model: ModelLoader | None = None) -> None:
        self.records = records
        self.factory = factory
        self.indexer = AttributionIndexer(factory, records)
        self.load_model = load_model or load_peft
        self._models: dict[tuple[str, str, str], tuple[Any, Any, list[str]]] = {}

    def verify(self, inference_hash: str, *, base_dir: Path) -> InferenceReport:
        """Every check of the module docstring for the inference whose record hash is ``inference_hash``;
        ``base_dir`` is the base model it was served on (its hash is checked)."""
        inference = self.records.get_by_hash(inference_hash.lower())
        if not isinstance(inference, InferenceRecord):
            raise InputError(f"record {inference_hash} is a {inference.kind} record, not an inference")
        assert inference.seq is not None
        with Session(self.records.engine) as session:
            texts = session.get(InferenceTextRow, inference.seq)
            task = session.get(AttributionTaskRow, inference.seq)
        report = InferenceReport(inference.hash_hex, "none" if task is None else task.status)
        if texts is None:
            report.add("texts", False, "the node no longer holds this answer's texts (retention): nothing to recompute")
            return report
        report.add("texts", _keccak(texts.prompt) == inference.prompt_hash and _keccak(texts.output) == inference.output_hash,
                   "the stored prompt and output hash to the record's prompt_hash and output_hash")
        if task is None:
            self._check_fee(report, inference, inference.seq, None)
            return report
        if task.status == "pending" or task.attribution_seq is None:
            report.add("attribution", False, f"not attributed yet (status {task.status}, {task.attempts} attempts)")
            return report
        record = self.records.get(task.attribution_seq)
        if not report.add("attribution record", isinstance(record, AttributionRecord)
                          and (record.inference, record.inference_seq, record.adapter_hash)
                          == (inference.hash_hex, inference.seq, inference.adapter_hash),
                          f"record {task.attribution_seq} is this inference's attribution"):
            return report
        assert isinstance(record, AttributionRecord)
        adapter = self.factory.by_hash(record.adapter_hash)
        if adapter is None:
            report.add("adapter", False, f"adapter {record.adapter_hash} is not on this node")
            return report
        try:
            rows = self.indexer.training_rows(adapter.name)
        except LoraLedgerError as exc:
            report.add("training rows", False, exc.message)
            return report
        report.add("training rows", True, f"{len(rows)} rows rebuilt from the snapshot have the adapter's "
                                          "training_rows_root")
        if record.status == "fallback":
            counts = contributor_counts(rows)
            report.add("weights", record.weights == counts,
                       f"fallback ({record.reason}): the weights are the training rows per contributor")
        else:
            self._check_done(report, inference, record, texts, task, adapter, rows, base_dir)
        self._check_fee(report, inference, task.attribution_seq, record)
        return report

    # ---- steps --------------------------------------------------------------------

    def _check_done(self, report: InferenceReport, inference: InferenceRecord, record: AttributionRecord,
                    texts: InferenceTextRow, task: AttributionTaskRow, adapter: Any, rows: list[Any],
                    base_dir: Path) -> None:
        try:
            index, _ = read_index(Path(adapter.path), expect_hash=record.index_hash)
        except LoraLedgerError as exc:
            report.add("index", False, exc.message)
            return
        owners = {row.row_hash: row.contributor for row in rows}
        report.add("index", index.adapter_hash == record.adapter_hash
                   and index.training_rows_root == getattr(self.records.get(adapter.record_seq), "training_rows_root", None)
                   and all(owners.get(row.row_hash) == row.contributor for row in index.rows),
                   f"the index file hashes to {record.index_hash}; its {len(index.rows)} rows are the adapter's "
                   "training rows with their contributors")
        if task.query_vector is None or task.query_exponent is None:
            report.add("query vector", False, "the node holds no query vector for this answer")
            return
        published = Quantized(np.frombuffer(task.query_vector, dtype="<i2").astype(np.int64), int(task.query_exponent))
        report.add("query hash", query_hash(published) == record.query_hash,
                   "the published query vector hashes to the record's query_hash")
        try:
            loaded = self._model(report, inference, record, adapter, base_dir, index)
        except LoraLedgerError as exc:  # a checkpoint missing or changed
            report.add("checkpoints", False, exc.message)
            return
        if loaded is None:
            return
        model, tokenizer, names = loaded
        self._recompute_query(report, texts, index, published, model, tokenizer, names)
        self._rescore(report, record, texts, index, published, tokenizer)

    def _model(self, report: InferenceReport, inference: InferenceRecord, record: AttributionRecord, adapter: Any,
               base_dir: Path, index: AttributionIndex) -> tuple[Any, Any, list[str]] | None:
        """The base model, the adapter and the index's checkpoints, each checked against its recorded
        hash (loaded once per base, adapter and index)."""
        from ..training.adapters import adapter_hash

        key = (str(base_dir), adapter.path, str(record.index_hash))
        if key not in self._models:
            base = self.factory.hash_base(base_dir).hash
            if not report.add("base model", base == inference.base_model_hash,
                              f"{base_dir} hashes to the inference's base_model_hash"):
                return None
            if not report.add("adapter", adapter_hash(Path(adapter.path)).hash == record.adapter_hash,
                              "the adapter's files hash to the recorded adapter_hash"):
                return None
            self._models[key] = self.load_model(base_dir, Path(adapter.path), index)
        return self._models[key]

    def _recompute_query(self, report: InferenceReport, texts: InferenceTextRow, index: AttributionIndex,
                         published: Quantized, model: Any, tokenizer: Any, names: list[str]) -> None:
        vector, _, _ = query_vector(index, model, tokenizer, texts.prompt, texts.output, adapters=names)
        if vector.shape != published.values.shape:
            report.add("query vector", False, f"recomputed {vector.shape[0]} values, published {published.values.size}")
            return
        # The recomputed floats in the published vector's units: a float64 times a power of two is exact.
        units = np.rint(np.ldexp(vector.astype(np.float64), published.exponent)).astype(np.int64)
        difference = int(np.max(np.abs(units - published.values))) if units.size else 0
        report.query_difference = difference
        report.add("query vector", difference <= QUERY_TOLERANCE,
                   f"recomputed from the texts, the base model and the adapter's snapshots: within {difference} "
                   f"of the published vector in every component (tolerance {QUERY_TOLERANCE})")

    def _rescore(self, report: InferenceReport, record: AttributionRecord, texts: InferenceTextRow,
                 index: AttributionIndex, published: Quantized, tokenizer: Any) -> None:
        _, output_ids, offsets = answer_tokens(tokenizer, texts.prompt, texts.output)
        top, spans, weights = score_query(index, published, output_ids, offsets)
        recorded_top = [(row.row, row.contributor, row.score) for row in record.top]
        recorded_spans = [(span.start, span.end, tuple(span.rows)) for span in record.spans]
        report.add("scores", record.policy == POLICY_VERSION and top == recorded_top
                   and record.score_exponent == published.exponent + index.features.exponent,
                   f"the {len(top)} top rows and their integer scores, recomputed from the published vector")
        report.add("spans", [(s.start, s.end, s.rows) for s in spans] == recorded_spans,
                   f"{len(spans)} exact spans of the output in the training rows")
        report.add("weights", weights == record.weights,
                   f"{len(weights)} contributor weights under {POLICY_VERSION}")

    def _check_fee(self, report: InferenceReport, inference: InferenceRecord, settled_at: int,
                   attribution: AttributionRecord | None) -> None:
        if inference.fee == 0:
            report.add("fee", True, "the answer was free: no fee record")
            return
        fee = fee_after(self.records, inference, settled_at)
        weights = attribution.weights if attribution is not None else None
        ok = fee is not None and fee.fee == inference.fee and fee.payer == inference.payer \
            and (weights is None or fee.weights == weights)
        report.add("fee", ok, f"fee record {settled_at + 1} pays {inference.fee} wei from {inference.payer}"
                   + (" with the attribution's weights" if weights is not None else ""))
