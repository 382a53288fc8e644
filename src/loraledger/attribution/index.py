"""An adapter's attribution index: one safetensors file beside the adapter (numpy, no torch).

``attribution.safetensors`` holds, as integer arrays:

* ``features``: ``[rows, checkpoints · dim]`` int16, each training row's preconditioned projected
  gradient at each checkpoint, side by side, in fixed point
  (:func:`loraledger.attribution.influence.quantize`; the exponent in the metadata);
* ``spans.<name>``: the exact-span index over the rows' completion tokens
  (:func:`loraledger.attribution.spans.to_arrays`);

and, as JSON in the safetensors metadata (``index``): the format, the adapter and base model
hashes, the training rows' Merkle root, the method and its parameters (projection seed and
width, preconditioner, damping), the feature blocks, the checkpoints (each a PEFT directory
relative to the adapter's, ``"."`` for the adapter itself, its training step, its weights'
sha256, and the power of two a query's gradient there is scaled by), and the rows (hash and
contributor, in feature order). The preconditioners are not kept: the rows are stored
preconditioned, and a query is not preconditioned.

The index hash is the sha256 of the file's bytes; an ``attribution_index`` record carries it, so
anyone holding the file checks it against the ledger. Rebuilding an index keeps the one it
replaces under ``attribution-indexes/<sha256>.safetensors``: answers attributed with it cite its
hash and still verify.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..fsutil import atomic_write_bytes
from .influence import Quantized
from .spans import SpanIndex, from_arrays, to_arrays

__all__ = ["INDEX_FILE", "INDEX_FORMAT", "MODEL_DTYPE", "AttributionIndex", "IndexCheckpoint", "IndexRow",
           "read_index", "write_index"]

INDEX_FILE = "attribution.safetensors"
INDEX_FORMAT = "loraledger-attribution-index-v2"
#: The dtype the base model is loaded in to build an index, attribute a query and verify one, on
#: any device. Float32 everywhere, so that a query recomputed on a CPU lands within
#: ``QUERY_TOLERANCE`` of one a GPU node recorded: on an H200 the CUDA float32 features equal the
#: CPU's (cosine 1.00000), bfloat16 ones do not (cosine down to 0.85 on single rows;
#: ``scripts/check_cuda_serving.py``). Serving keeps its own dtype (bfloat16 on a GPU).
MODEL_DTYPE = "float32"
#: Where indexes replaced by a rebuild are kept, by hash (beside the adapter).
ARCHIVE_DIR = "attribution-indexes"


@dataclass(frozen=True)
class IndexRow:
    row_hash: str
    contributor: str


@dataclass(frozen=True)
class IndexCheckpoint:
    """A state of the adapter the index was built at: a PEFT directory ``path`` relative to the
    adapter's (``"."``: the adapter itself), its training ``step`` (None: the trained adapter), the
    sha256 of its weights file, and ``query_shift``: a query's projected gradient there is
    multiplied by ``2^query_shift`` (exact) so that every checkpoint weighs alike in a score."""

    path: str
    step: int | None
    weights_sha256: str
    query_shift: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "step": self.step, "weightsSha256": self.weights_sha256,
                "queryShift": self.query_shift}


@dataclass(frozen=True)
class AttributionIndex:
    """See the module docstring. ``blocks``: per adapted layer ``{"module", "in", "out", "rank"}``."""

    adapter_hash: str
    base_model_hash: str
    training_rows_root: str
    method: str
    k: int
    seed: int
    damping: float
    blocks: list[dict[str, Any]]
    checkpoints: list[IndexCheckpoint]
    rows: list[IndexRow]
    features: Quantized
    spans: SpanIndex

    @property
    def block_sizes(self) -> list[int]:
        """The feature size of each adapted layer at one checkpoint."""
        return [2 * self.k * int(block["rank"]) for block in self.blocks]

    @property
    def dim(self) -> int:
        """A row's feature size: every checkpoint's blocks."""
        return len(self.checkpoints) * sum(self.block_sizes)

    def metadata(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT, "adapterHash": self.adapter_hash, "baseModelHash": self.base_model_hash,
            "trainingRowsRoot": self.training_rows_root, "method": self.method, "k": self.k, "seed": self.seed,
            "damping": self.damping, "featureExponent": self.features.exponent, "blocks": self.blocks,
            "checkpoints": [c.to_json() for c in self.checkpoints], "rows": [[row.row_hash, row.contributor] for row in self.rows],
        }


def _relative(path: str) -> bool:
    """A checkpoint path stays inside the adapter's directory: relative, no ``..``, no backslash."""
    parts = path.split("/")
    return path == "." or (not path.startswith("/") and "\\" not in path and all(p not in ("", ".", "..") for p in parts))


def _serialize(index: AttributionIndex) -> bytes:
    from safetensors.numpy import save

    if index.features.values.shape != (len(index.rows), index.dim) or not index.checkpoints:
        raise ValueError(f"features of shape {index.features.values.shape} for {len(index.rows)} rows and "
                         f"{len(index.checkpoints)} checkpoints of {sum(index.block_sizes)} dimensions")
    arrays: dict[str, np.ndarray] = {"features": index.features.values.astype(np.int16)}
    for name, array in to_arrays(index.spans).items():
        arrays[f"spans.{name}"] = np.ascontiguousarray(array)
    meta = json.dumps(index.metadata(), sort_keys=True, separators=(",", ":"))
    return save(arrays, metadata={"index": meta})


def _archived(directory: Path, digest: str) -> Path:
    return directory / ARCHIVE_DIR / f"{digest.removeprefix('0x')}.safetensors"


def write_index(directory: Path, index: AttributionIndex) -> str:
    """Write ``directory/attribution.safetensors`` atomically; its hash (``0x`` + sha256 hex). An
    index it replaces moves to ``attribution-indexes/<its sha256>.safetensors`` first: answers
    attributed with it cite its hash, and ``verify`` still finds it there."""
    data = _serialize(index)
    digest = "0x" + hashlib.sha256(data).hexdigest()
    current = directory / INDEX_FILE
    try:
        old = "0x" + hashlib.sha256(current.read_bytes()).hexdigest()
    except FileNotFoundError:
        old = None
    if old is not None and old != digest:
        _archived(directory, old).parent.mkdir(exist_ok=True)
        os.replace(current, _archived(directory, old))  # a crash after this: featurize writes the new one again
    atomic_write_bytes(current, data)
    return digest


def read_index(directory: Path, *, expect_hash: str | None = None) -> tuple[AttributionIndex, str]:
    """The index beside an adapter and its hash; InputError when it is missing, malformed, or
    (``expect_hash``) not the file the ledger recorded."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = directory / INDEX_FILE
    if expect_hash is not None and _archived(directory, expect_hash).is_file():
        path = _archived(directory, expect_hash)  # an index a rebuild replaced
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no attribution index at {path} (run `loraledger adapters featurize`)") from None
    digest = "0x" + hashlib.sha256(data).hexdigest()
    if expect_hash is not None and digest != expect_hash:
        raise InputError(f"{path} hashes to {digest}, not the recorded {expect_hash}")
    try:
        arrays = load(data)
        # The metadata from the same bytes that were hashed (safetensors' header: length, JSON).
        length = int.from_bytes(data[:8], "little")
        meta = json.loads(json.loads(data[8:8 + length])["__metadata__"]["index"])
    except (SafetensorError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path} is not an attribution index: {exc}") from None
    if meta.get("format") != INDEX_FORMAT:
        raise InputError(f"{path} has format {meta.get('format')!r}, not {INDEX_FORMAT}")
    try:
        blocks = meta["blocks"]
        checkpoints = [IndexCheckpoint(str(c["path"]), None if c["step"] is None else int(c["step"]),
                                       str(c["weightsSha256"]), int(c["queryShift"])) for c in meta["checkpoints"]]
        if not checkpoints or any(not _relative(c.path) for c in checkpoints):
            raise ValueError("checkpoints must be paths inside the adapter's directory")
        spans = from_arrays({key.removeprefix("spans."): value for key, value in arrays.items()
                             if key.startswith("spans.")})
        index = AttributionIndex(
            adapter_hash=meta["adapterHash"], base_model_hash=meta["baseModelHash"],
            training_rows_root=meta["trainingRowsRoot"], method=meta["method"], k=int(meta["k"]),
            seed=int(meta["seed"]), damping=float(meta["damping"]), blocks=blocks, checkpoints=checkpoints,
            rows=[IndexRow(str(h), str(c)) for h, c in meta["rows"]],
            features=Quantized(arrays["features"].astype(np.int64), int(meta["featureExponent"])),
            spans=spans)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path} is not a consistent attribution index: {exc!r}") from None
    if index.features.values.shape != (len(index.rows), index.dim):
        raise InputError(f"{path}: features of shape {index.features.values.shape} for {len(index.rows)} rows")
    return index, digest
