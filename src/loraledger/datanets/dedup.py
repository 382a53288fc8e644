"""Exact and near-duplicate detection for datanet rows (pure core, in memory).

:class:`Deduplicator` holds the rows a datanet has accepted:

* **exact**: a row whose :func:`~loraledger.datanets.content.row_hash` (the hash of the
  normalised row) is already accepted is a duplicate of the first row accepted with it,
  whoever contributed either;
* **near**: the set of character ``shingle``-grams of the normalised text
  (:func:`~loraledger.datanets.content.row_text`), sketched by :mod:`~loraledger.datanets.sketch`
  (one-permutation MinHash in numpy, a whole batch at once) and indexed by LSH bands. The bands
  only find candidates: they are tuned (datasketch's parameter search) to a threshold
  :data:`LSH_SLACK` below ``threshold``, so a pair at ``threshold`` is a candidate with
  probability above 0.999; each candidate's **exact** Jaccard similarity (of the two shingle sets)
  decides, so nothing below ``threshold`` is ever called a duplicate, and the most similar
  candidate is reported.

A batch is sketched once: :meth:`Deduplicator.screen` checks every row of a batch against the
index and against the batch's earlier rows and returns the sketches, and
:meth:`Deduplicator.add_many` indexes the accepted rows with those same sketches.

The index is compact, so it stays flat in time and modest in memory as it grows: per row one
64-bit key and a 32-bit slot per band in sorted numpy arrays (binary search), log-structured in
levels of :data:`LEVEL_ROWS` (the newest rows in a small level, merged into the next when full), no
Python object per row and band. Candidates' texts come from ``texts_of``
(the datanet service reads them from the database: candidates are rare) or, without it, from a
copy the deduplicator keeps.

Texts shorter than ``shingle`` characters (after normalisation) have no shingles worth
the name: they are checked for exact duplicates only, and not indexed for near ones.

Sketches use fixed constants, so a row gets the same sketch in every process and on every node.

Persistence
-----------
The index lives in memory only. The caller persists accepted rows (their id, row hash
and text) and rebuilds the deduplicator at start with :meth:`Deduplicator.add_many` over the
accepted rows, in acceptance order; it calls :meth:`~Deduplicator.remove` when a row is later
rejected or withdrawn.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import InputError
from .content import normalise_text
from .sketch import band_keys, shingle_hashes, signatures

__all__ = ["Deduplicator", "Duplicate", "Sketches"]

#: LSH weights (false positive, false negative): prefer candidates, each is verified.
_LSH_WEIGHTS = (0.2, 0.8)
#: Capacity in rows of each level of the band index but the last (a full level is merged into the next).
LEVEL_ROWS = (512, 4_096, 32_768, 262_144)
#: The LSH bands are tuned to ``threshold - LSH_SLACK`` (at least 0.5): candidates are checked exactly.
LSH_SLACK = 0.15


@dataclass(frozen=True)
class Duplicate:
    """A row already accepted that a new row duplicates: ``kind`` ``"exact"`` (same row
    hash; ``similarity`` 1.0) or ``"near"`` (estimated Jaccard ``similarity`` of shingles).
    ``in_batch``: the row duplicated is an earlier row of the same batch (:meth:`Deduplicator.screen`)."""

    kind: Literal["exact", "near"]
    of: Hashable
    similarity: float = 1.0
    in_batch: bool = False


@dataclass(frozen=True)
class Sketches:
    """A batch's sketches: signatures (uint32), band keys, which rows have shingles, and the rows'
    normalised texts (for exact similarities)."""

    signatures: np.ndarray
    keys: np.ndarray
    valid: np.ndarray
    texts: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.valid)

    def take(self, rows: Sequence[int]) -> Sketches:
        """The sketches of ``rows`` only."""
        return Sketches(self.signatures[list(rows)], self.keys[list(rows)], self.valid[list(rows)],
                        tuple(self.texts[i] for i in rows))


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
    """LSH bands and rows for ``threshold`` (what datasketch's MinHashLSH would pick with
    ``_LSH_WEIGHTS``), computed once: the search integrates numerically (~9 ms)."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, *_LSH_WEIGHTS)


class _Ids(list):  # type: ignore[type-arg]
    """Several row ids under one row hash (a plain list could be a row id itself)."""


_NONE = object()


class _Level:
    """One sorted run of band keys (uint64; every band's keys in one array: a key hashes its band
    number in, so bands never collide) and their rows' slots (int32)."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, np.uint64)
        self.slots = np.zeros(0, np.int32)

    def __len__(self) -> int:
        return len(self.keys)

    def absorb(self, keys: np.ndarray, slots: np.ndarray) -> None:
        """Merge a sorted run in, after equal keys already here (as a stable sort of the two would):
        each new key's place is found by binary search and the old keys fill the rest, linear in
        the level with no sort (a merge of millions of keys into tens of millions: 0.7 s, against
        1.7 s for a stable argsort of the concatenation)."""
        if not len(self.keys):
            self.keys, self.slots = keys, slots.astype(np.int32, copy=False)
            return
        places = np.searchsorted(self.keys, keys, side="right") + np.arange(len(keys))
        old = np.ones(len(self.keys) + len(keys), bool)
        old[places] = False
        merged_keys = np.empty(len(old), np.uint64)
        merged_keys[places], merged_keys[old] = keys, self.keys
        merged_slots = np.empty(len(old), np.int32)
        merged_slots[places], merged_slots[old] = slots, self.slots
        self.keys, self.slots = merged_keys, merged_slots

    def matches(self, ordered: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``(position in ordered, slots)`` for each of the sorted query keys found (queries sorted:
        binary searches that walk forward stay in cache; found keys are rare, so one search each)."""
        keys = self.keys
        if not len(keys):
            return []
        low = np.searchsorted(keys, ordered, side="left")
        inside = low < len(keys)
        hits = np.flatnonzero(inside)[keys[low[inside]] == ordered[inside]]
        out = []
        for i in hits.tolist():
            high = int(np.searchsorted(keys, ordered[i], side="right"))
            out.append((i, self.slots[low[i]:high]))
        return out


class _BandIndex:
    """Rows by band key in sorted levels (numpy arrays, binary search), log-structured: each batch is
    merged into the smallest level, and a level that outgrows its capacity (``LEVEL_ROWS``) is merged
    into the next, so adding costs a small level's size, not the index's (amortised: a key is
    re-sorted once per level), and no Python object is kept per row."""

    def __init__(self, bands: int) -> None:
        self.bands = bands
        self._levels = [_Level() for _ in range(len(LEVEL_ROWS) + 1)]

    def add(self, keys: np.ndarray, slots: np.ndarray) -> None:
        flat = keys.reshape(-1)
        owners = np.repeat(slots.astype(np.int32), self.bands)
        order = np.argsort(flat, kind="stable")
        self._levels[0].absorb(flat[order], owners[order])
        for level, capacity in enumerate(LEVEL_ROWS):
            if len(self._levels[level]) < capacity * self.bands:
                break
            full = self._levels[level]
            self._levels[level + 1].absorb(full.keys, full.slots)
            self._levels[level] = _Level()

    def candidates(self, keys: np.ndarray) -> list[set[int]]:
        """For each row of ``keys`` (n × bands), the slots sharing at least one band key with it."""
        found: list[set[int]] = [set() for _ in range(len(keys))]
        flat = keys.reshape(-1)
        order = np.argsort(flat)
        ordered = flat[order]
        for level in self._levels:
            for position, slots in level.matches(ordered):
                found[int(order[position]) // self.bands].update(slots.tolist())
        return found


def _batch_collisions(keys: np.ndarray) -> dict[int, set[int]]:
    """For each row of a batch sharing a band key with an earlier row of the batch, those earlier rows.

    All bands at once: a key hashes its band in, so equal keys are the same band's; a stable sort of
    the flat keys puts equal ones in row order (one sort, not one per band)."""
    bands = keys.shape[1]
    flat = keys.reshape(-1)
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    earlier: dict[int, set[int]] = {}
    for position in np.flatnonzero(ordered[1:] == ordered[:-1]).tolist():  # rare: near duplicates in one batch
        start = position
        while start > 0 and ordered[start - 1] == ordered[position]:
            start -= 1
        later = int(order[position + 1]) // bands
        earlier.setdefault(later, set()).update(int(order[i]) // bands for i in range(start, position + 1))
    return {row: {j for j in rows if j < row} for row, rows in earlier.items()}


class Deduplicator:
    """Exact and near-duplicate index of a datanet's accepted rows (see module doc).

    ``threshold`` is the Jaccard similarity (0 < threshold <= 1) at or above which a row
    is a near duplicate; ``num_perm`` the number of signature bins (a power of two); ``shingle``
    the length of the character n-grams.
    """

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, shingle: int = 5, *,
                 texts_of: Callable[[Sequence[Hashable]], Mapping[Hashable, str]] | None = None) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise InputError(f"threshold must be in (0, 1], got {threshold!r}", field="threshold")
        if (isinstance(num_perm, bool) or not isinstance(num_perm, int) or not 2 <= num_perm <= 1024
                or num_perm & (num_perm - 1)):
            raise InputError(f"num_perm must be a power of two in [2, 1024], got {num_perm!r}", field="num_perm")
        if isinstance(shingle, bool) or not isinstance(shingle, int) or not 1 <= shingle <= 64:
            raise InputError(f"shingle must be an integer in [1, 64], got {shingle!r}", field="shingle")
        self.threshold = float(threshold)
        self.num_perm = num_perm
        self.shingle = shingle
        self.bands, self.rows = _lsh_params(max(self.threshold - LSH_SLACK, 0.5), num_perm)
        self._index = _BandIndex(self.bands)
        #: Row texts of candidates, by id (None: keep a copy of each indexed row's normalised text).
        self._texts_of = texts_of
        self._texts: list[str | None] = []
        # row hash -> the row's id, or a list of ids when rows accepted before dedup share it (no
        # list per row: see _BandIndex._recent)
        self._by_hash: dict[bytes, Hashable | list[Hashable]] = {}
        self._slot_of: dict[Hashable, int] = {}
        self._ids: list[Hashable] = []
        self._keys_of: list[bytes] = []
        self._alive = np.zeros(1024, bool)
        self._banded = 0  # rows with shingles, in the band index

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, row_id: object) -> bool:
        return row_id in self._slot_of

    # ---- sketches ---------------------------------------------------------------------
    def sketch_many(self, texts: Sequence[str]) -> Sketches:
        """The sketches of ``texts`` (row texts, normalised here), one numpy pass for all."""
        normal = [normalise_text(text) for text in texts]
        hashes, offsets = shingle_hashes(normal, self.shingle)
        sigs = signatures(hashes, offsets, self.num_perm)
        valid = np.diff(offsets) > 0
        return Sketches(sigs, band_keys(sigs, self.bands, self.rows), valid, tuple(normal))

    def _shingles(self, normal: str) -> frozenset[str]:
        return frozenset(normal[i: i + self.shingle] for i in range(len(normal) - self.shingle + 1))

    # ---- checks -----------------------------------------------------------------------
    def screen(self, row_hashes: Sequence[bytes | str], texts: Sequence[str]
               ) -> tuple[list[Duplicate | None], Sketches]:
        """Each row's duplicate, against the index and then against the batch's earlier rows that
        are not duplicates themselves (``in_batch``); and the batch's sketches, for :meth:`add_many`."""
        sketches = self.sketch_many(texts)
        return self.screen_sketches(row_hashes, sketches), sketches

    def screen_sketches(self, row_hashes: Sequence[bytes | str], sketches: Sketches) -> list[Duplicate | None]:
        """:meth:`screen` of rows already sketched (:meth:`sketch_many` reads only the index's fixed
        parameters, so a caller may sketch outside the lock it screens and adds under)."""
        keys = [_row_hash_key(h) for h in row_hashes]
        found = self._check(keys, sketches)
        batch_hashes: dict[bytes, int] = {}
        valid = sketches.valid.tolist()
        collisions = _batch_collisions(sketches.keys[sketches.valid]) if any(valid) else {}
        rows_of_valid = np.flatnonzero(sketches.valid).tolist()
        earlier_near = {rows_of_valid[row]: {rows_of_valid[j] for j in rows} for row, rows in collisions.items()}
        kept: set[int] = set()  # rows of the batch that are not duplicates themselves
        for i, key in enumerate(keys):
            if found[i] is not None:
                continue
            if key in batch_hashes:
                found[i] = Duplicate("exact", batch_hashes[key], in_batch=True)
                continue
            earlier = earlier_near.get(i, set()) & kept
            if valid[i] and earlier:
                near = self._best(sketches.texts[i], {j: sketches.texts[j] for j in earlier})
                if near is not None:
                    found[i] = Duplicate("near", near[0], near[1], in_batch=True)
                    continue
            batch_hashes[key] = i
            kept.add(i)
        return found

    def check(self, row_hash: bytes | str, text: str) -> Duplicate | None:
        """The accepted row this one duplicates (exact first, then the nearest near
        duplicate), or ``None``."""
        key = _row_hash_key(row_hash)
        return self._check([key], self.sketch_many([text]))[0]

    def _check(self, keys: list[bytes], sketches: Sketches) -> list[Duplicate | None]:
        found: list[Duplicate | None] = [None] * len(keys)
        near_rows = []
        for i, key in enumerate(keys):
            exact = self._first_with(key)
            if exact is not None:
                found[i] = Duplicate(kind="exact", of=exact)
            elif sketches.valid[i]:
                near_rows.append(i)
        if near_rows and self._banded:
            candidates = self._index.candidates(sketches.keys[near_rows])
            wanted = {self._ids[slot]: slot for slots in candidates for slot in slots if self._alive[slot]}
            texts = self._candidate_texts(wanted)
            for i, slots in zip(near_rows, candidates, strict=True):
                live = {self._ids[slot] for slot in slots if self._alive[slot]}
                best = self._best(sketches.texts[i], {row_id: texts[row_id] for row_id in live if row_id in texts})
                if best is not None:
                    found[i] = Duplicate(kind="near", of=best[0], similarity=best[1])
        return found

    def _candidate_texts(self, wanted: dict[Hashable, int]) -> dict[Hashable, str]:
        """Normalised texts of the candidate rows (``id -> slot``)."""
        if not wanted:
            return {}
        if self._texts_of is None:
            return {row_id: self._texts[slot] for row_id, slot in wanted.items()}  # type: ignore[misc]
        return {row_id: normalise_text(text) for row_id, text in self._texts_of(list(wanted)).items()}

    def _best(self, normal: str, candidates: Mapping[Hashable, str]) -> tuple[Hashable, float] | None:
        """The candidate most similar to ``normal`` (exact Jaccard of shingles) at or above the
        threshold (ties: the smallest id as text)."""
        if not candidates:
            return None
        mine = self._shingles(normal)
        best = None
        for candidate, text in candidates.items():
            theirs = self._shingles(text)
            union = len(mine | theirs)
            value = len(mine & theirs) / union if union else 0.0
            if value < self.threshold:
                continue
            if best is None or value > best[1] or (value == best[1] and str(candidate) < str(best[0])):
                best = (candidate, value)
        return best

    # ---- the index --------------------------------------------------------------------
    def add(self, row_id: Hashable, row_hash: bytes | str, text: str) -> None:
        """Record an accepted row. ``row_id`` must be new (:class:`InputError` otherwise)."""
        self.add_many([row_id], [row_hash], self.sketch_many([text]))

    def add_many(self, row_ids: Sequence[Hashable], row_hashes: Sequence[bytes | str], sketches: Sketches) -> None:
        """Record accepted rows with their sketches (from :meth:`screen` or :meth:`sketch_many`)."""
        if not (len(row_ids) == len(row_hashes) == len(sketches)):
            raise InputError("add_many needs one row hash and one sketch per row id")
        keys = [_row_hash_key(h) for h in row_hashes]
        seen = set()
        for row_id in row_ids:
            if row_id in self._slot_of or row_id in seen:
                raise InputError(f"row {row_id!r} is already in the dedup index", row_id=row_id)
            seen.add(row_id)
        first = len(self._ids)
        self._grow(first + len(row_ids))
        slots = np.arange(first, first + len(row_ids))
        self._alive[slots] = True
        if self._texts_of is None:
            self._texts.extend(text if valid else None for text, valid in zip(sketches.texts, sketches.valid.tolist(),
                                                                               strict=True))
        self._banded += int(sketches.valid.sum())
        for row_id, key, slot in zip(row_ids, keys, slots.tolist(), strict=True):
            self._ids.append(row_id)
            self._keys_of.append(key)
            self._slot_of[row_id] = slot
            held = self._by_hash.get(key, _NONE)
            if held is _NONE:
                self._by_hash[key] = row_id
            elif isinstance(held, _Ids):
                held.append(row_id)
            else:
                self._by_hash[key] = _Ids([held, row_id])
        if sketches.valid.any():
            self._index.add(sketches.keys[sketches.valid], slots[sketches.valid])

    def _grow(self, size: int) -> None:
        capacity = len(self._alive)
        if size <= capacity:
            return
        while capacity < size:
            capacity *= 2
        grown = np.zeros(capacity, bool)
        grown[: len(self._alive)] = self._alive
        self._alive = grown

    def remove(self, row_id: Hashable) -> None:
        """Forget a row (rejected or withdrawn). :class:`InputError` if it is not indexed."""
        slot = self._slot_of.pop(row_id, None)
        if slot is None:
            raise InputError(f"row {row_id!r} is not in the dedup index", row_id=row_id)
        self._alive[slot] = False  # its band keys stay; candidates are filtered by liveness
        key = self._keys_of[slot]
        held = self._by_hash[key]
        if isinstance(held, _Ids):
            held.remove(row_id)
            if len(held) == 1:
                self._by_hash[key] = held[0]
        else:
            del self._by_hash[key]

    def _first_with(self, key: bytes) -> Hashable | None:
        """The first accepted row with this row hash, or None."""
        held = self._by_hash.get(key, _NONE)
        if held is _NONE:
            return None
        return held[0] if isinstance(held, _Ids) else held
