"""Every answer on the ledger: an ``inference`` record and its ``fee`` record, committed before
the answer ends, with group commit.

Requests finish on many threads at once; one transaction (and, on SQLite, one fsync) per
answer would cap the node at a few hundred answers a second. :class:`InferenceRecorder`
hands each finished request to one committer thread, which takes everything that is waiting
(up to ``max_batch``) and appends it in ONE transaction: per request its inference record,
its fee record right after it, and its texts (the ``inference_texts`` table, read by
attribution, dropped after the retention period). :meth:`InferenceRecorder.record` returns
only once that transaction committed, so the API sends its last byte after the record exists.

With payer deposits (:mod:`loraledger.payments`), the same transaction debits the fee from the
payer's balance, so a balance never disagrees with the log.

An answer of an adapter with an attribution index (``Answered.attribute``) gets no fee record
here: the same transaction queues it for the attribution worker (an ``attribution_tasks`` row,
:mod:`loraledger.attribution.worker`), which appends its ``attribution`` record and its fee,
weighted by what the answer drew on. An epoch therefore never seals a fee whose attribution is
pending: the fee does not exist yet. Other answers get their fee here, weighted by the adapter's
training rows per contributor (its ``provenance.json``); an external adapter, or the base model,
has no weights, and :func:`~loraledger.rewards.split.split_fee` then pays the developer and the
operator only.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak
from sqlalchemy import delete

from ..attribution.tables import AttributionTaskRow, InferenceTextRow
from ..errors import LedgerError, LoraLedgerError
from ..payments.balances import PayerBalances
from ..records.kinds import FeeRecord, InferenceRecord, Record
from ..records.ledger import RecordLedger
from .pricing import Price, fee_for

__all__ = ["Answered", "InferenceRecorder"]

log = logging.getLogger("loraledger.serving")


@dataclass(frozen=True)
class Answered:
    """What the node knows when a request ends: enough for its two records."""

    model: str
    adapter_hash: str | None
    base_model_hash: str
    prompt: str
    output: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    sampling: Mapping[str, float | int | bool | None]
    payer: str
    price: Price
    queue_ms: int
    first_token_ms: int | None
    total_ms: int
    backend: str
    api: str
    #: Who developed the adapter (None: the base model).
    developer: str | None = None
    #: Contributor → weight (training rows) for the fee split.
    weights: Mapping[str, int] = field(default_factory=dict)
    #: The adapter has an attribution index: the fee waits for the answer's attribution.
    attribute: bool = False

    @property
    def fee(self) -> int:
        return fee_for(self.price, self.prompt_tokens, self.completion_tokens)


def _hash(text: str) -> str:
    return "0x" + keccak(text.encode("utf-8")).hex()


class InferenceRecorder:
    """Commits answered requests in groups (see the module docstring); one per node."""

    def __init__(self, records: RecordLedger, *, operator: str, retention_days: int = 30, max_batch: int = 256,
                 balances: PayerBalances | None = None, clock: Callable[[], float] = time.time) -> None:
        self.records = records
        #: Debits each answer's fee from its payer's deposit, in the answer's transaction (None: nobody is debited).
        self.balances = balances
        self.operator = operator
        self.retention_days = retention_days
        self.max_batch = max_batch
        self.clock = clock
        self.committed = 0
        self.batches = 0
        self._queue: queue.Queue[tuple[Answered, Future[InferenceRecord]] | None] = queue.Queue()
        self._last_purge = 0.0
        self._thread = threading.Thread(target=self._run, name="inference-recorder", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Answers waiting for their commit (a metric)."""
        return self._queue.qsize()

    def record(self, answered: Answered, *, timeout: float | None = 60.0) -> InferenceRecord:
        """Append ``answered``'s records; returns its inference record (with seq) once committed."""
        future: Future[InferenceRecord] = Future()
        self._queue.put((answered, future))
        return future.result(timeout=timeout)

    def _records_for(self, answered: Answered, now: int) -> list[Record]:
        request_id = uuid.uuid4().hex
        inference = InferenceRecord(
            timestamp=now, request_id=request_id, model=answered.model, adapter_hash=answered.adapter_hash,
            base_model_hash=answered.base_model_hash, prompt_hash=_hash(answered.prompt),
            output_hash=_hash(answered.output), prompt_tokens=answered.prompt_tokens,
            completion_tokens=answered.completion_tokens, finish_reason=answered.finish_reason,
            sampling=dict(answered.sampling), payer=answered.payer, price_seq=answered.price.seq,
            input_per_1k=answered.price.input_per_1k, output_per_1k=answered.price.output_per_1k, fee=answered.fee,
            queue_ms=answered.queue_ms, first_token_ms=answered.first_token_ms, total_ms=answered.total_ms,
            backend=answered.backend, api=answered.api)
        if answered.fee == 0 or answered.attribute:
            return [inference]
        fee = FeeRecord(timestamp=now, payer=answered.payer, fee=answered.fee, weights=dict(answered.weights),
                        developer=answered.developer, operator=self.operator, ref=f"inference:{request_id}")
        return [inference, fee]

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[tuple[Answered, Future[InferenceRecord]]]) -> None:
        now = int(self.clock())
        planned: list[tuple[Answered, Future[InferenceRecord], list[Record]]] = []
        for answered, future in batch:
            try:
                planned.append((answered, future, self._records_for(answered, now)))
            except LoraLedgerError as exc:  # this request's fields are bad; the others still commit
                future.set_exception(exc)
        if not planned:
            return
        records = [record for _, _, own in planned for record in own]

        def store_texts(session: Any, stamped: list[Record]) -> None:
            position = 0
            for answered, _, own in planned:
                inference = stamped[position]
                assert isinstance(inference, InferenceRecord) and inference.seq is not None
                session.add(InferenceTextRow(seq=inference.seq, prompt=answered.prompt, output=answered.output,
                                             created_at=now))
                if self.balances is not None and answered.fee:
                    self.balances.debit(session, payer=inference.payer, inference_seq=inference.seq,
                                        model=answered.model, adapter_hash=answered.adapter_hash, amount=answered.fee,
                                        prompt_tokens=answered.prompt_tokens,
                                        completion_tokens=answered.completion_tokens)
                if answered.attribute:
                    session.add(AttributionTaskRow(
                        inference_seq=inference.seq, inference_hash=inference.hash_hex,
                        request_id=inference.request_id, adapter_hash=answered.adapter_hash or "",
                        payer=inference.payer, fee=str(answered.fee), developer=answered.developer,
                        fallback_weights=json.dumps(dict(answered.weights), sort_keys=True), created_at=now,
                        updated_at=now))
                position += len(own)
            self._purge(session, now)

        try:
            stamped = self.records.append_many(records, in_transaction=store_texts)
        except Exception as exc:  # noqa: BLE001 - every waiting request learns why; nothing was written
            error = exc if isinstance(exc, LoraLedgerError) else LedgerError(f"recording answers failed: {exc}")
            log.error("recording %s answers failed: %s", len(planned), error)
            for _, future, _ in planned:
                future.set_exception(error)
            return
        self.committed += len(planned)
        self.batches += 1
        position = 0
        for _, future, own in planned:
            future.set_result(stamped[position])  # type: ignore[arg-type]
            position += len(own)

    def _purge(self, session: Any, now: int) -> None:
        """Drop texts past the retention period (at most once a minute, inside a commit)."""
        if not self.retention_days or now - self._last_purge < 60:
            return
        self._last_purge = now
        session.exec(delete(InferenceTextRow).where(InferenceTextRow.created_at < now - self.retention_days * 86400))

    def close(self) -> None:
        """Commit what is waiting, then stop the committer thread."""
        self._queue.put(None)
        self._thread.join(timeout=30)
