"""The attribution worker: every queued answer gets its ``attribution`` record and its ``fee``.

The recorder queues each answer of an indexed adapter (an ``attribution_tasks`` row, written in
the transaction of its inference record). :meth:`AttributionWorker.run_once` takes the oldest
pending tasks and, for each, attributes the answer from its stored texts
(:func:`~loraledger.attribution.attribute.attribute`), then appends, in ONE transaction that also
moves the task to ``done``:

* the ``attribution`` record (top rows, spans, weights, the query vector's hash; the vector itself
  is kept in the task row, for ``verify``), and
* the answer's ``fee`` record, weighted by the attribution's contributor weights (``ref`` =
  ``inference:<request id>``, as the recorder writes it for other answers).

The task's status is checked inside that transaction, so a crash at any point leaves either
nothing (the task is still pending and is done again) or everything: one attribution and one fee
per answer. A task that fails :data:`MAX_ATTEMPTS` times, or whose answer drew on no training row
(no positive influence, no span), gets an ``attribution`` record with status ``fallback`` and the
reason, and a fee weighted by the adapter's training rows per contributor.

Torch work runs on a short-lived thread per batch: a torch thread that stays alive keeps an OpenMP
pool, which would slow the serving engine's thread (see :mod:`loraledger.serving.loop`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from ..errors import LedgerError, LoraLedgerError
from ..records.kinds import AttributionRecord, FeeRecord, Record
from ..records.ledger import RecordLedger
from .attribute import Attribution, attribute, attribution_record
from .checkpoints import load_checkpoints
from .index import MODEL_DTYPE, AttributionIndex
from .tables import AttributionTaskRow, InferenceTextRow

__all__ = ["MAX_ATTEMPTS", "AdapterModels", "AttributionWorker"]

log = logging.getLogger("loraledger.attribution")

MAX_ATTEMPTS = 3

#: ``adapter hash → (index, index hash)`` and ``(adapter hash, its index) → (PEFT model, tokenizer, the
#: PEFT adapter names holding the index's checkpoints)``.
IndexSource = Callable[[str], tuple[AttributionIndex, str]]
ModelSource = Callable[[str, AttributionIndex], tuple[Any, Any, list[str]]]


class _AlreadySettled(LedgerError):
    """Another run settled this task first: the transaction rolls back and writes nothing."""


class AttributionWorker:
    """Attributes queued answers and writes their records (module docstring); one per node."""

    def __init__(self, records: RecordLedger, *, operator: str, index_for: IndexSource, model_for: ModelSource,
                 max_attempts: int = MAX_ATTEMPTS, batch: int = 16, clock: Callable[[], float] = time.time) -> None:
        self.records = records
        self.operator = operator
        self.index_for = index_for
        self.model_for = model_for
        self.max_attempts = max_attempts
        self.batch = batch
        self.clock = clock
        self.done = 0
        self.fallbacks = 0
        # One answer at a time on the worker's model: the PEFT model's active adapter is shared state.
        self._model_lock = threading.Lock()

    def backlog(self) -> int:
        """Answers waiting for their attribution (a metric)."""
        with Session(self.records.engine) as session:
            return int(session.exec(select(func.count()).select_from(AttributionTaskRow)
                                    .where(AttributionTaskRow.status == "pending")).one())

    def run_once(self) -> int:
        """Attribute up to ``batch`` pending answers (oldest first); how many were settled."""
        with Session(self.records.engine) as session:
            tasks = list(session.exec(select(AttributionTaskRow).where(AttributionTaskRow.status == "pending")
                                      .order_by(AttributionTaskRow.inference_seq).limit(self.batch)))
        if not tasks:
            return 0
        outcome: list[int] = []
        thread = threading.Thread(target=lambda: outcome.append(self._settle_all(tasks)), name="attribution")
        thread.start()
        thread.join()  # a short-lived torch thread (module docstring)
        return outcome[0] if outcome else 0

    def _settle_all(self, tasks: list[AttributionTaskRow]) -> int:
        settled = 0
        for task in tasks:
            try:
                settled += self._settle(task)
            except Exception:  # noqa: BLE001 - writing failed (the database?): the task stays pending
                log.exception("settling the attribution of inference %s failed; it stays queued", task.inference_seq)
        return settled

    def _settle(self, task: AttributionTaskRow) -> int:
        try:
            result = self._attribute(task)
        except Exception as exc:  # noqa: BLE001 - counted; after max_attempts the fee falls back
            message = exc.message if isinstance(exc, LoraLedgerError) else f"{type(exc).__name__}: {exc}"
            return self._failed(task, message)
        task.attempts += 1
        if result.weights:
            self._write(task, attribution_record(result, inference=task.inference_hash, inference_seq=task.inference_seq,
                                                 adapter_hash=task.adapter_hash, timestamp=int(self.clock())),
                        dict(result.weights), result)
        else:
            self._fallback(task, "the answer drew on no training row (no positive influence, no exact span)", result)
        return 1

    def _attribute(self, task: AttributionTaskRow) -> Attribution:
        with Session(self.records.engine) as session:
            texts = session.get(InferenceTextRow, task.inference_seq)
        if texts is None:
            raise LedgerError(f"the texts of inference {task.inference_seq} are gone (retention)")
        return self._attribute_text(task.adapter_hash, texts.prompt, texts.output)

    def _attribute_text(self, adapter_hash: str, prompt: str, output: str) -> Attribution:
        index, digest = self.index_for(adapter_hash)
        with self._model_lock:
            model, tokenizer, names = self.model_for(adapter_hash, index)
            return attribute(index, digest, model, tokenizer, prompt, output, adapters=names)

    def audit(self, adapter_hash: str, prompt: str, output: str) -> Attribution:
        """The attribution of any answer (``POST /v1/attribute``), computed as a served answer's is,
        on a short-lived torch thread; nothing is recorded or paid."""
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(self._attribute_text(adapter_hash, prompt, output))
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                outcome.append(exc)

        thread = threading.Thread(target=run, name="attribution-audit")
        thread.start()
        thread.join()
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def _failed(self, task: AttributionTaskRow, message: str) -> int:
        attempts = task.attempts + 1
        log.warning("attribution of inference %s failed (attempt %s of %s): %s", task.inference_seq, attempts,
                    self.max_attempts, message)
        if attempts >= self.max_attempts:
            task.attempts = attempts
            self._fallback(task, f"attribution failed {attempts} times: {message}", None)
            return 1
        with Session(self.records.engine) as session:
            row = session.get(AttributionTaskRow, task.inference_seq)
            if row is not None and row.status == "pending":
                row.attempts, row.last_error, row.updated_at = attempts, message[:500], int(self.clock())
                session.add(row)
                session.commit()
        return 0

    def _fallback(self, task: AttributionTaskRow, reason: str, result: Attribution | None) -> None:
        weights = {k: int(v) for k, v in json.loads(task.fallback_weights).items()}
        record = AttributionRecord(
            timestamp=int(self.clock()), inference=task.inference_hash, inference_seq=task.inference_seq,
            adapter_hash=task.adapter_hash, index_hash=result.index_hash if result else None, status="fallback",
            query_hash=result.query_hash if result else None, weights=weights, reason=reason[:500])
        self._write(task, record, weights, result)
        self.fallbacks += 1

    def _write(self, task: AttributionTaskRow, record: AttributionRecord, weights: dict[str, int],
               result: Attribution | None) -> None:
        """The attribution record, the fee and the task's new status, in one transaction."""
        fee = int(task.fee)
        records: list[Record] = [record]
        if fee:
            records.append(FeeRecord(timestamp=record.timestamp, payer=task.payer, fee=fee, weights=weights,
                                     developer=task.developer, operator=self.operator,
                                     ref=f"inference:{task.request_id}"))

        def settle(session: Session, stamped: list[Record]) -> None:
            row = session.get(AttributionTaskRow, task.inference_seq, with_for_update=True)
            if row is None or row.status != "pending":
                raise _AlreadySettled(f"inference {task.inference_seq} was attributed already")
            row.status = record.status
            row.attempts = task.attempts
            row.updated_at = record.timestamp
            row.attribution_seq = stamped[0].seq
            if result is not None:
                row.query_vector = result.query.values.astype("<i2").tobytes()
                row.query_exponent = result.query.exponent
            session.add(row)

        try:
            self.records.append_many(records, in_transaction=settle)
        except _AlreadySettled:  # the ledger passes its own errors through after the rollback
            return
        self.done += record.status == "done"


class AdapterModels:
    """The worker's own copy of the base model with the adapters it attributes loaded into one PEFT
    model (by adapter hash, on first use, with their index's checkpoints):
    ``get(adapter_hash, index)`` → (model, tokenizer, the PEFT adapter names of the checkpoints).
    Loaded on the worker's thread; only registered adapters, by their recorded path."""

    def __init__(self, base_dir: Any, adapter_path: Callable[[str], str], *, device: str = "auto") -> None:
        self.base_dir = base_dir
        self.adapter_path = adapter_path
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def get(self, adapter_hash: str, index: AttributionIndex) -> tuple[Any, Any, list[str]]:
        name = "a" + adapter_hash.removeprefix("0x")[:16]  # a PEFT adapter name without dots
        with self._lock:
            path = self.adapter_path(adapter_hash)
            if self._model is None:
                import peft

                from ..training.hf.basemodel import load_base_model

                loaded = load_base_model(self.base_dir, device=self.device, dtype=MODEL_DTYPE)
                self._tokenizer = loaded.tokenizer
                self._model = peft.PeftModel.from_pretrained(loaded.model, path, adapter_name=name).eval()
            elif name not in self._model.peft_config:
                self._model.load_adapter(path, adapter_name=name)
            names = load_checkpoints(self._model, Path(path), index, adapter=name, prefix=name)
            self._model.set_adapter(name)
            return self._model, self._tokenizer, names
