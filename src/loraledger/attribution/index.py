"""An adapter's attribution index: one safetensors file beside the adapter (numpy, no torch).

``attribution.safetensors`` holds, as integer arrays:

* ``features``: ``[rows, dim]`` int16, each training row's preconditioned projected gradient in
  fixed point (:func:`loraledger.attribution.influence.quantize`; the exponent in the metadata);
* ``preconditioner.<i>``: float64, each block's preconditioner (to precondition a query the same way
  is not needed: the rows are preconditioned; kept so the index can be audited and refitted);
* ``spans.<name>``: the exact-span index over the rows' completion tokens
  (:func:`loraledger.attribution.spans.to_arrays`);

and, as JSON in the safetensors metadata (``index``): the format, the adapter and base model
hashes, the training rows' Merkle root, the method and its parameters (projection seed and
width, preconditioner, damping), the feature blocks, and the rows (hash and contributor, in
feature order). The index hash is the sha256 of the file's bytes; an ``attribution_index``
record carries it, so anyone holding the file checks it against the ledger.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..fsutil import atomic_write_bytes
from .influence import Quantized
from .spans import SpanIndex, from_arrays, to_arrays

__all__ = ["INDEX_FILE", "INDEX_FORMAT", "AttributionIndex", "IndexRow", "read_index", "write_index"]

INDEX_FILE = "attribution.safetensors"
INDEX_FORMAT = "loraledger-attribution-index-v1"


@dataclass(frozen=True)
class IndexRow:
    row_hash: str
    contributor: str


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
    rows: list[IndexRow]
    features: Quantized
    preconditioners: list[np.ndarray]
    spans: SpanIndex

    @property
    def block_sizes(self) -> list[int]:
        return [2 * self.k * int(block["rank"]) for block in self.blocks]

    def metadata(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT, "adapterHash": self.adapter_hash, "baseModelHash": self.base_model_hash,
            "trainingRowsRoot": self.training_rows_root, "method": self.method, "k": self.k, "seed": self.seed,
            "damping": self.damping, "featureExponent": self.features.exponent, "blocks": self.blocks,
            "rows": [[row.row_hash, row.contributor] for row in self.rows],
        }


def _serialize(index: AttributionIndex) -> bytes:
    from safetensors.numpy import save

    if index.features.values.shape != (len(index.rows), sum(index.block_sizes)):
        raise ValueError(f"features of shape {index.features.values.shape} for {len(index.rows)} rows and "
                         f"blocks of {sum(index.block_sizes)} dimensions")
    arrays: dict[str, np.ndarray] = {"features": index.features.values.astype(np.int16)}
    for i, matrix in enumerate(index.preconditioners):
        arrays[f"preconditioner.{i}"] = np.ascontiguousarray(matrix, dtype=np.float64)
    for name, array in to_arrays(index.spans).items():
        arrays[f"spans.{name}"] = np.ascontiguousarray(array)
    meta = json.dumps(index.metadata(), sort_keys=True, separators=(",", ":"))
    return save(arrays, metadata={"index": meta})


def write_index(directory: Path, index: AttributionIndex) -> str:
    """Write ``directory/attribution.safetensors`` atomically; its hash (``0x`` + sha256 hex)."""
    data = _serialize(index)
    atomic_write_bytes(directory / INDEX_FILE, data)
    return "0x" + hashlib.sha256(data).hexdigest()


def read_index(directory: Path, *, expect_hash: str | None = None) -> tuple[AttributionIndex, str]:
    """The index beside an adapter and its hash; InputError when it is missing, malformed, or
    (``expect_hash``) not the file the ledger recorded."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = directory / INDEX_FILE
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
        preconditioners = [arrays[f"preconditioner.{i}"] for i in range(len(blocks))]
        spans = from_arrays({key.removeprefix("spans."): value for key, value in arrays.items()
                             if key.startswith("spans.")})
        index = AttributionIndex(
            adapter_hash=meta["adapterHash"], base_model_hash=meta["baseModelHash"],
            training_rows_root=meta["trainingRowsRoot"], method=meta["method"], k=int(meta["k"]),
            seed=int(meta["seed"]), damping=float(meta["damping"]), blocks=blocks,
            rows=[IndexRow(str(h), str(c)) for h, c in meta["rows"]],
            features=Quantized(arrays["features"].astype(np.int64), int(meta["featureExponent"])),
            preconditioners=preconditioners, spans=spans)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path} is not a consistent attribution index: {exc!r}") from None
    if index.features.values.shape != (len(index.rows), sum(index.block_sizes)):
        raise InputError(f"{path}: features of shape {index.features.values.shape} for {len(index.rows)} rows")
    return index, digest
