"""Exact and near-duplicate detection for datanet rows (pure core, in memory).

:class:`Deduplicator` holds the rows a datanet has accepted:

* **exact**: a row whose :func:`~loraledger.datanets.content.row_hash` (the hash of the
  normalised row) is already accepted is a duplicate of the first row accepted with it,
  whoever contributed either;
* **near**: MinHash over the set of character ``shingle``-grams of the normalised text
  (:func:`~loraledger.datanets.content.row_text`), indexed with MinHash LSH; a candidate
  whose estimated Jaccard similarity is at least ``threshold`` is a near duplicate. The
  LSH banding is tuned to ``threshold`` and weighted against false negatives, then each
  candidate's similarity is estimated from the two MinHashes and compared with
  ``threshold``; the most similar one is reported.

Texts shorter than ``shingle`` characters (after normalisation) have no shingles worth
the name: they are checked for exact duplicates only, and not indexed for near ones.

MinHash seeds are fixed (``seed=1``, datasketch's hash of UTF-8 shingles), so a row
gets the same sketch in every process and the same answers on every node running the
same datasketch version.

Persistence
-----------
The index lives in memory only. The caller persists accepted rows (their id, row hash
and text) and rebuilds the deduplicator at start by calling :meth:`Deduplicator.add`
for each accepted row, in acceptance order; it calls :meth:`~Deduplicator.remove` when
a row is later rejected or withdrawn. Rebuilding (rather than pickling sketches) keeps
the index consistent with the stored rows across datasketch upgrades.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

from datasketch import MinHash, MinHashLSH

from ..errors import InputError
from .content import normalise_text

__all__ = ["Deduplicator", "Duplicate"]

#: Fixed MinHash seed: sketches must be the same in every process.
MINHASH_SEED = 1
#: LSH weights (false positive, false negative): prefer candidates, each is verified.
_LSH_WEIGHTS = (0.2, 0.8)


@dataclass(frozen=True)
class Duplicate:
    """A row already accepted that a new row duplicates: ``kind`` ``"exact"`` (same row
    hash; ``similarity`` 1.0) or ``"near"`` (estimated Jaccard ``similarity`` of shingles)."""

    kind: Literal["exact", "near"]
    of: Hashable
    similarity: float = 1.0


def _row_hash_key(row_hash: bytes | str) -> bytes:
    if isinstance(row_hash, (bytes, bytearray)) and len(row_hash) == 32:
        return bytes(row_hash)
    if isinstance(row_hash, str):
        body = row_hash[2:] if row_hash.startswith("0x") else row_hash
        if len(body) == 64:
            try:
                return bytes.fromhex(body)
            except ValueError:
                pass
    raise InputError("row_hash must be 32 bytes (or 0x followed by 64 hex digits)", field="row_hash")


@functools.lru_cache(maxsize=64)
def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """LSH bands and rows for ``threshold`` (what MinHashLSH would pick with ``_LSH_WEIGHTS``),
    computed once: datasketch's search integrates numerically (~9 ms), once per index."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, *_LSH_WEIGHTS)


class Deduplicator:
    """Exact and near-duplicate index of a datanet's accepted rows (see module doc).

    ``threshold`` is the Jaccard similarity (0 < threshold <= 1) at or above which a row
    is a near duplicate; ``num_perm`` the number of MinHash permutations; ``shingle`` the
    length of the character n-grams.
    """

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, shingle: int = 5) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise InputError(f"threshold must be in (0, 1], got {threshold!r}", field="threshold")
        if isinstance(num_perm, bool) or not isinstance(num_perm, int) or not 2 <= num_perm <= 1024:
            raise InputError(f"num_perm must be an integer in [2, 1024], got {num_perm!r}", field="num_perm")
        if isinstance(shingle, bool) or not isinstance(shingle, int) or not 1 <= shingle <= 64:
            raise InputError(f"shingle must be an integer in [1, 64], got {shingle!r}", field="shingle")
        self.threshold = float(threshold)
        self.num_perm = num_perm
        self.shingle = shingle
        self._lsh = MinHashLSH(threshold=self.threshold, num_perm=num_perm,
                               params=_lsh_params(self.threshold, num_perm))
        # An empty sketch; copies of it skip regenerating the permutations for each row.
        self._template = MinHash(num_perm=num_perm, seed=MINHASH_SEED)
        self._by_hash: dict[bytes, list[Hashable]] = {}
        self._rows: dict[Hashable, tuple[bytes, MinHash | None]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, row_id: object) -> bool:
        return row_id in self._rows

    def _sketch(self, text: str) -> MinHash | None:
        normal = normalise_text(text)
        if len(normal) < self.shingle:
            return None
        grams = {normal[i : i + self.shingle] for i in range(len(normal) - self.shingle + 1)}
        sketch = self._template.copy()
        sketch.update_batch([gram.encode("utf-8") for gram in grams])
        return sketch

    def check(self, row_hash: bytes | str, text: str) -> Duplicate | None:
        """The accepted row this one duplicates (exact first, then the nearest near
        duplicate), or ``None``."""
        exact = self._by_hash.get(_row_hash_key(row_hash))
        if exact:
            return Duplicate(kind="exact", of=exact[0])
        sketch = self._sketch(text)
        if sketch is None or self._lsh.is_empty():
            return None
        best: Duplicate | None = None
        for candidate in self._lsh.query(sketch):
            other = self._rows[candidate][1]
            assert other is not None
            similarity = float(sketch.jaccard(other))
            if similarity >= self.threshold and (
                best is None
                or similarity > best.similarity
                or (similarity == best.similarity and str(candidate) < str(best.of))
            ):
                best = Duplicate(kind="near", of=candidate, similarity=similarity)
        return best

    def add(self, row_id: Hashable, row_hash: bytes | str, text: str) -> None:
        """Record an accepted row. ``row_id`` must be new (:class:`InputError` otherwise)."""
        if row_id in self._rows:
            raise InputError(f"row {row_id!r} is already in the dedup index", row_id=row_id)
        key = _row_hash_key(row_hash)
        sketch = self._sketch(text)
        if sketch is not None:
            self._lsh.insert(row_id, sketch, check_duplication=False)
        self._rows[row_id] = (key, sketch)
        self._by_hash.setdefault(key, []).append(row_id)

    def remove(self, row_id: Hashable) -> None:
        """Forget a row (rejected or withdrawn). :class:`InputError` if it is not indexed."""
        entry = self._rows.pop(row_id, None)
        if entry is None:
            raise InputError(f"row {row_id!r} is not in the dedup index", row_id=row_id)
        key, sketch = entry
        if sketch is not None:
            self._lsh.remove(row_id)
        ids = self._by_hash[key]
        ids.remove(row_id)
        if not ids:
            del self._by_hash[key]
