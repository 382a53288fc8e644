"""The adapter states an index is built at, found beside the adapter and loaded into a PEFT model (torch).

Training snapshots the adapter at a few early fractions of its steps
(:data:`~loraledger.training.factory.ATTRIBUTION_TRAJECTORY`, PEFT directories under
``attribution-checkpoints/``, listed with their weights' sha256 in ``provenance.json``): an index
is built at those states, and a query's gradient is taken at the same states. An adapter without
snapshots (trained before them, or imported with its rows) is indexed at its trained state (``"."``).

Why early states: at the trained adapter the rows it has fit have small, noisy gradients, and the
linear picture that influence assumes holds best near the start of training; on the attribution
benchmark the LDS at 2% and 5% of the steps is more than twice the trained adapter's, the two
together about as good as those two and the 10% state (each state costs a backward pass per
answer) and better than either alone (``scripts/bench_attribution.py``; TracIn-CP's checkpoints
and LESS's warm-up gradients are the same idea).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..fsutil import sha256_file
from ..training.adapters import ADAPTER_WEIGHTS
from ..training.provenance import PROVENANCE_FILE
from .index import AttributionIndex, IndexCheckpoint

__all__ = ["CheckpointSource", "checkpoint_sources", "load_checkpoints"]


@dataclass(frozen=True)
class CheckpointSource:
    """A state to index: its directory relative to the adapter's (``"."``: the adapter), step, weights hash."""

    path: str
    step: int | None
    weights_sha256: str


def checkpoint_sources(adapter_dir: Path) -> list[CheckpointSource]:
    """The states to index adapter ``adapter_dir`` at: its trajectory snapshots as its provenance
    lists them (each file's hash checked), else the adapter itself."""
    try:
        provenance = json.loads((adapter_dir / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        provenance = {}
    listed = provenance.get("attributionCheckpoints") or []
    if not listed:
        return [CheckpointSource(".", None, "0x" + sha256_file(adapter_dir / ADAPTER_WEIGHTS).hex())]
    out = []
    for item in listed:
        source = CheckpointSource(str(item["path"]), int(item["step"]), str(item["weightsSha256"]))
        _check(adapter_dir, source.path, source.weights_sha256)
        out.append(source)
    return out


def _check(adapter_dir: Path, path: str, weights_sha256: str) -> Path:
    directory = (adapter_dir / path).resolve()
    if adapter_dir.resolve() not in (directory, *directory.parents):
        raise InputError(f"attribution checkpoint {path!r} is outside the adapter's directory")
    try:
        actual = "0x" + sha256_file(directory / ADAPTER_WEIGHTS).hex()
    except FileNotFoundError:
        raise InputError(f"attribution checkpoint {path} of {adapter_dir} is missing") from None
    if actual != weights_sha256:
        raise InputError(f"attribution checkpoint {path} of {adapter_dir} hashes to {actual}, not the recorded "
                         f"{weights_sha256}")
    return directory


def load_checkpoints(model: Any, adapter_dir: Path, checkpoints: Sequence[CheckpointSource | IndexCheckpoint] |
                     AttributionIndex, *, adapter: str, prefix: str) -> list[str]:
    """Load each checkpoint into the PEFT ``model`` (which holds the adapter itself as ``adapter``)
    under ``<prefix>_<first 12 hex digits of its weights' hash>``, checking that hash; the PEFT adapter
    names, in order (``"."`` is ``adapter``). A name already loaded holds the same weights: reused."""
    items = checkpoints.checkpoints if isinstance(checkpoints, AttributionIndex) else checkpoints
    names = []
    for item in items:
        if item.path == ".":
            names.append(adapter)
            continue
        name = f"{prefix}_{item.weights_sha256.removeprefix('0x')[:12]}"
        if name not in model.peft_config:
            directory = _check(adapter_dir, item.path, item.weights_sha256)
            model.load_adapter(str(directory), adapter_name=name)
        names.append(name)
    return names
