"""Building an adapter's attribution index (``loraledger adapters featurize``, and after training).

:meth:`AttributionIndexer.featurize` takes an adapter the node trained, finds the exact rows it
was trained on (its snapshot, split as the trainer split it; the rows' Merkle root must equal the
adapter record's ``training_rows_root``), tokenises them as the trainer did, and computes:

1. each row's projected gradient under each of the adapter's attribution checkpoints (its early
   training snapshots, else the adapter itself: :mod:`~loraledger.attribution.checkpoints`;
   :mod:`~loraledger.attribution.features`);
2. per checkpoint, the preconditioner fitted on those features and the preconditioned features;
   all checkpoints side by side in fixed point (:mod:`~loraledger.attribution.influence`);
3. the exact-span index over the rows' completion tokens (:mod:`~loraledger.attribution.spans`);

(:func:`build_index`), then writes ``attribution.safetensors`` beside the adapter (:mod:`~loraledger.attribution.index`)
and appends an ``attribution_index`` record with the file's hash, in one transaction with the
node's table row. Running it again with the same parameters finds the index and does nothing;
after a crash between the file and the record it writes both again.

External adapters get no index: nobody's rows are known, so there is nothing to credit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from ..errors import InputError, LedgerError
from ..records.kinds import AttributionIndexRecord, Record
from ..records.ledger import RecordLedger
from ..training.data import IGNORE_INDEX, Example, TrainingRow, build_examples, split_rows
from ..training.factory import ModelFactory
from ..training.provenance import rows_tree
from .checkpoints import CheckpointSource, checkpoint_sources, load_checkpoints
from .index import INDEX_FILE, MODEL_DTYPE, AttributionIndex, IndexCheckpoint, IndexRow, read_index, write_index
from .influence import PRECONDITIONERS, fit_preconditioners, precondition, quantize
from .spans import build_span_index
from .tables import AttributionIndexRow

__all__ = ["AttributionIndexer", "FeaturizeResult"]


@dataclass(frozen=True)
class FeaturizeResult:
    index: AttributionIndex
    index_hash: str
    record: AttributionIndexRecord | None  # None: the index existed already
    seconds: float

    @property
    def created(self) -> bool:
        return self.record is not None


def build_index(model: Any, examples: Sequence[Example], contributors: Sequence[str], *, pad_id: int, k: int,
                seed: int, method: str, damping: float, batch_size: int, adapter_hash: str, base_model_hash: str,
                training_rows_root: str, adapters: Sequence[str] = ("default",),
                checkpoints: Sequence[CheckpointSource] | None = None) -> AttributionIndex:
    """The index over ``examples`` (an adapter's training rows, tokenised as trained; ``contributors[i]``
    owns ``examples[i]``) at each checkpoint: ``adapters[c]`` is the PEFT adapter of ``model`` holding
    ``checkpoints[c]`` (default: the one adapter ``"default"``, as the trained adapter ``"."``).
    Steps 1-3 of the module docstring, per checkpoint; the checkpoints' features side by side."""
    import numpy as np

    from .features import LoraGradientFeatures

    if checkpoints is None:
        checkpoints = [CheckpointSource(".", None, "")]
    if len(adapters) != len(checkpoints) or not adapters:
        raise InputError(f"{len(adapters)} PEFT adapters for {len(checkpoints)} checkpoints")
    parts, shifts, blocks = [], [], None
    for name in adapters:
        features = LoraGradientFeatures(model, adapter=name, k=k, seed=seed)
        if blocks is not None and features.layout != blocks:
            raise InputError(f"checkpoint {name} adapts other layers than the first checkpoint")
        blocks = features.layout
        chunks = [features.features(examples[i:i + batch_size], pad_id=pad_id)
                  for i in range(0, len(examples), batch_size)]
        grads = np.concatenate(chunks).astype(np.float64) if chunks else np.zeros((0, features.dim))
        sizes = [block.size for block in features.blocks]
        rows = precondition(grads, sizes, fit_preconditioners(grads, sizes, method=method, damping=damping))
        # Every checkpoint weighs alike: rows scaled to unit RMS norm here, and a query's gradient
        # by the power of two nearest the training rows' RMS gradient norm there (exact, stored).
        parts.append(rows / max(_rms_norm(rows), np.finfo(np.float64).tiny))
        scale = _rms_norm(grads)
        shifts.append(-int(np.round(np.log2(scale))) if scale > 0 else 0)
    completions = [[t for t, label in zip(e.input_ids, e.labels) if label != IGNORE_INDEX] for e in examples]
    return AttributionIndex(
        adapter_hash=adapter_hash, base_model_hash=base_model_hash, training_rows_root=training_rows_root,
        method=method, k=k, seed=seed, damping=float(damping), blocks=blocks or [],
        checkpoints=[IndexCheckpoint(c.path, c.step, c.weights_sha256, shift) for c, shift in zip(checkpoints, shifts)],
        rows=[IndexRow(e.row_hash, who) for e, who in zip(examples, contributors, strict=True)],
        features=quantize(np.concatenate(parts, axis=1)), spans=build_span_index(completions))


def _rms_norm(matrix: Any) -> float:
    import numpy as np

    return float(np.sqrt(np.mean(np.einsum("ij,ij->i", matrix, matrix)))) if len(matrix) else 0.0


class AttributionIndexer:
    """Builds and finds adapters' attribution indexes (module docstring)."""

    def __init__(self, factory: ModelFactory, records: RecordLedger, *, clock: Callable[[], float] = time.time) -> None:
        self.factory = factory
        self.records = records
        self.clock = clock

    def current(self, adapter_hash: str) -> AttributionIndexRow | None:
        with Session(self.records.engine) as session:
            return session.get(AttributionIndexRow, adapter_hash)

    def load_by_hash(self, adapter_hash: str, *, name: str | None = None) -> tuple[AttributionIndex, str]:
        """The recorded index of the adapter whose hash is ``adapter_hash`` (its file checked against the
        recorded hash)."""
        row = self.current(adapter_hash)
        if row is None:
            raise InputError(f"adapter {name or adapter_hash} has no attribution index (run `loraledger adapters "
                             f"featurize {name or 'NAME'}`)")
        return read_index(Path(row.path).parent, expect_hash=row.index_hash)

    def load(self, name: str) -> tuple[AttributionIndex, str]:
        """The recorded index of adapter ``name`` (its file checked against the recorded hash)."""
        return self.load_by_hash(self.factory.get(name).adapter_hash, name=name)

    def featurize(self, name: str, *, base_dir: Path, k: int = 16, seed: int = 0, method: str = "logra",
                  damping: float = 0.1, batch_size: int = 8, device: str = "auto",
                  on_stage: Callable[[str], None] | None = None) -> FeaturizeResult:
        """Build (or find) the index of adapter ``name`` on the base model at ``base_dir``."""
        from ..training.hf.basemodel import device_errors, load_base_model

        stage = on_stage or (lambda _: None)
        if method not in PRECONDITIONERS:
            raise InputError(f"unknown method {method!r}: use one of {', '.join(PRECONDITIONERS)}")
        if not 1 <= k <= 4096 or not damping > 0 or batch_size < 1:
            raise InputError(f"need 1 <= k <= 4096 (got {k}), damping > 0 (got {damping}), batch_size >= 1")
        started = time.perf_counter()
        adapter = self.factory.get(name)
        if adapter.source != "trained" or adapter.datanet_id is None:
            raise InputError(f"adapter {name} is {adapter.source}: it was not trained on a datanet here, so it has no "
                             "rows to credit and gets no attribution index")
        directory = Path(adapter.path)
        existing = self.current(adapter.adapter_hash)
        params = (method, k, seed, float(damping))
        if existing is not None and (existing.method, existing.projection_k, existing.projection_seed,
                                     existing.damping) == params and (directory / INDEX_FILE).exists():
            index, digest = read_index(directory, expect_hash=existing.index_hash)
            return FeaturizeResult(index, digest, None, time.perf_counter() - started)

        stage("hashing the base model")
        base_hash = self.factory.hash_base(base_dir).hash
        if base_hash != adapter.base_model_hash:
            raise InputError(f"adapter {name} was trained on base model {adapter.base_model_hash}; {base_dir} is "
                             f"{base_hash}")
        hyper = self.factory.provenance(name).get("hyperparameters", {})
        root = getattr(self.records.get(adapter.record_seq), "training_rows_root", None)
        train_rows = self.training_rows(name)
        stage("loading the base model and the adapter")
        loaded = load_base_model(base_dir, device=device, dtype=MODEL_DTYPE)
        import peft

        model = peft.PeftModel.from_pretrained(loaded.model, str(directory)).eval()
        sources = checkpoint_sources(directory)
        names = load_checkpoints(model, directory, sources, adapter="default", prefix="trajectory")
        tokenizer = loaded.tokenizer
        examples, _ = build_examples(tokenizer, train_rows, int(hyper.get("maxLength", 512)))
        by_hash = {row.row_hash: row for row in train_rows}
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if not examples:
            raise InputError(f"adapter {name}: none of its training rows fits max_length: nothing to index")
        stage(f"projected gradients of {len(examples)} training rows")
        with device_errors(f"featurizing {name}"):
            index = build_index(model, examples, [by_hash[e.row_hash].contributor for e in examples], pad_id=pad_id,
                                k=k, seed=seed, method=method, damping=damping, batch_size=batch_size,
                                adapter_hash=adapter.adapter_hash, base_model_hash=adapter.base_model_hash,
                                training_rows_root=str(root), adapters=names, checkpoints=sources)
        digest = write_index(directory, index)
        appended = self._record(name, index, digest, directory / INDEX_FILE)
        return FeaturizeResult(index, digest, appended, time.perf_counter() - started)

    def training_rows(self, name: str) -> list[TrainingRow]:
        """The rows adapter ``name`` was trained on, rebuilt from its snapshot and split as the trainer
        split them; LedgerError unless their Merkle root is the adapter record's ``training_rows_root``."""
        adapter = self.factory.get(name)
        if adapter.datanet_id is None:
            raise InputError(f"adapter {name} was not trained on a datanet here: it has no training rows")
        hyper = self.factory.provenance(name).get("hyperparameters", {})
        root = getattr(self.records.get(adapter.record_seq), "training_rows_root", None)
        _, _, rows = self.factory.snapshot_training_rows(adapter.datanet_id, adapter.snapshot_version)
        train_rows, _ = split_rows(rows, float(hyper.get("valFraction", 0.1)))
        tree = rows_tree(train_rows)
        if tree is None or tree.root != root:
            raise LedgerError(f"the training rows of adapter {name} rebuilt from its snapshot have root "
                              f"{tree.root if tree else None}, not the recorded {root}: refusing to credit other rows")
        return train_rows

    def _record(self, name: str, index: AttributionIndex, digest: str, path: Path) -> AttributionIndexRecord:
        record = AttributionIndexRecord(
            timestamp=int(self.clock()), adapter_name=name, adapter_hash=index.adapter_hash,
            base_model_hash=index.base_model_hash, index_hash=digest, training_rows_root=index.training_rows_root,
            row_count=len(index.rows), method=index.method, projection_k=index.k, projection_seed=index.seed,
            damping=index.damping)

        def store(session: Session, stamped: list[Record]) -> None:
            appended = stamped[0]
            assert isinstance(appended, AttributionIndexRecord) and appended.seq is not None
            old = session.get(AttributionIndexRow, appended.adapter_hash)
            if old is not None:
                session.delete(old)
                session.flush()
            session.add(AttributionIndexRow(
                adapter_hash=appended.adapter_hash, adapter_name=name, index_hash=digest, path=str(path),
                method=appended.method, projection_k=appended.projection_k, projection_seed=appended.projection_seed,
                damping=appended.damping, row_count=appended.row_count, record_seq=appended.seq,
                created_at=appended.timestamp))

        stamped = self.records.append(record, in_transaction=store)
        assert isinstance(stamped, AttributionIndexRecord)
        return stamped
