"""``provenance.json``: what went into an adapter (pure core).

Format ``loraledger-provenance-v1`` (camelCase JSON, written next to the adapter weights)::

    {"format", "name", "source": "trained" | "external", "adapterHash", "developer",
     "baseModel": {"hash", "modelType", "architectures", "tiny"},
     "datanet": {"id", "name", "schema", "snapshotVersion", "snapshotRoot", "manifestHash",
                 "chainId", "registry"},                                   (trained only)
     "trainingRows": {"count", "root", "contributors": {address: rows}},   (trained only)
     "validationRows": {"count", "root"},                                  (trained only)
     "hyperparameters": {...TrainConfig, camelCase}, "seed",
     "libraries": {"python", "torch", "transformers", "peft", "loraledger"},
     "device", "metrics": {...}, "createdAt"}

``provenanceHash = keccak256(RFC 8785 JSON of the file's object)``: the value in the
``AdapterRecord`` and in ``AdapterRegistry``. Row roots are OZ StandardMerkleTrees over
``(bytes32 rowHash, address contributor)``, the snapshot's own leaf encoding, so a
contributor proves that their row trained the adapter the same way they prove it is in
the snapshot (the tree dump is ``training_rows.json`` beside it).

An ``external`` adapter (imported, trained elsewhere) has no ``datanet`` or row fields: no
datanet contributor is ever credited for it.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from eth_utils import keccak

from ..crypto.canonical import canonicalize
from ..crypto.merkle import StandardMerkleTree
from .data import TrainingRow

__all__ = ["PROVENANCE_FILE", "PROVENANCE_FORMAT", "TRAINING_ROWS_FILE", "library_versions", "provenance_hash",
           "rows_tree"]

PROVENANCE_FORMAT = "loraledger-provenance-v1"
PROVENANCE_FILE = "provenance.json"
TRAINING_ROWS_FILE = "training_rows.json"
_ROW_LEAF = ("bytes32", "address")


def provenance_hash(provenance: dict[str, Any]) -> str:
    return "0x" + keccak(canonicalize(provenance)).hex()


def rows_tree(rows: Sequence[TrainingRow]) -> StandardMerkleTree | None:
    """The (rowHash, contributor) tree of ``rows``, or ``None`` when there are none."""
    if not rows:
        return None
    return StandardMerkleTree.of([[row.row_hash, row.contributor] for row in rows], list(_ROW_LEAF))


def contributor_counts(rows: Sequence[TrainingRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.contributor] = counts.get(row.contributor, 0) + 1
    return dict(sorted(counts.items()))


def library_versions() -> dict[str, str | None]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"python": platform.python_version(), "torch": version("torch"), "transformers": version("transformers"),
            "peft": version("peft"), "loraledger": version("loraledger")}
