"""Near-duplicate sketches of many texts at once, in numpy (pure core: no I/O).

A text's near-duplicate identity is its set of character ``shingle``-grams (after
:func:`~loraledger.datanets.content.normalise_text`). Each text becomes a one-permutation
MinHash signature (Li, Owen and Zhang 2012) of ``num_perm`` bins, densified by rotation
(Shrivastava and Li 2014), so that two texts' signatures agree in a bin with probability about
their shingle sets' Jaccard similarity:

1. **Shingle hashes**: every window of ``shingle`` code points of every text of the batch is
   hashed at once: a polynomial of the code points with fixed odd 64-bit constants (wrapping),
   then the SplitMix64 finaliser, so each shingle gets one well-mixed 64-bit hash. No Python
   loop runs per shingle (datasketch's MinHash hashes each shingle with SHA-1 in Python, then
   applies 128 permutations to it).
2. **One permutation**: a shingle's top ``log2(num_perm)`` bits choose its bin, its low 32 bits
   are its value; a text's signature keeps each bin's smallest value, so a text costs one sort
   of its shingles rather than ``num_perm`` hashes of each.
3. **Densification**: a bin no shingle fell in (short texts) takes the value of the next
   non-empty bin to its right (circularly) plus a constant times the distance, so every bin is
   defined and the agreement probability stays close to the Jaccard similarity.

:func:`band_keys` hashes each of ``bands`` groups of ``rows`` bins to one 64-bit key for LSH.
Everything is deterministic (fixed constants): a row gets the same signature in every process
and on every node.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["EMPTY", "band_keys", "estimate_similarity", "shingle_hashes", "signatures"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
#: Odd constants per position in a shingle (enough for shingles of up to 64 characters).
_POSITION = (np.arange(1, 65, dtype=np.uint64) * _GOLDEN) | np.uint64(1)
#: Added per bin of distance when a bin borrows a value (densification).
_ROTATION = np.uint32(0x5BD1E995)
#: Marks a text with no shingle at all (shorter than ``shingle``): it has no signature.
EMPTY = np.uint32(0xFFFFFFFF)


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, elementwise (uint64, wrapping)."""
    values = values ^ (values >> np.uint64(30))
    values = values * _MIX1
    values = values ^ (values >> np.uint64(27))
    values = values * _MIX2
    return values ^ (values >> np.uint64(31))


def shingle_hashes(texts: Sequence[str], shingle: int) -> tuple[np.ndarray, np.ndarray]:
    """The 64-bit hashes of every ``shingle``-character window of each text (already normalised),
    as one array, and the offsets of each text's hashes in it (``len(texts) + 1`` of them)."""
    if not texts:
        return np.zeros(0, np.uint64), np.zeros(1, np.int64)
    encoded = [text.encode("utf-32-le") for text in texts]
    lengths = np.fromiter((len(data) // 4 for data in encoded), np.int64, len(encoded))
    points = np.frombuffer(b"".join(encoded), dtype=np.uint32).astype(np.uint64)
    windows = np.maximum(lengths - shingle + 1, 0)
    offsets = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(windows, out=offsets[1:])
    total = int(offsets[-1])
    if total == 0:
        return np.zeros(0, np.uint64), offsets
    # Window start positions in the concatenated code points: each text's own starts.
    text_starts = np.zeros(len(texts), np.int64)
    np.cumsum(lengths[:-1], out=text_starts[1:])
    owner = np.repeat(np.arange(len(texts)), windows)
    starts = np.arange(total, dtype=np.int64) - offsets[owner] + text_starts[owner]
    hashes = np.zeros(total, np.uint64)
    for position in range(shingle):
        hashes += points[starts + position] * _POSITION[position]
    return _mix(hashes + np.uint64(shingle)), offsets


def signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int) -> np.ndarray:
    """One-permutation signatures (``len(offsets) - 1`` × ``num_perm``, uint32) of each text's
    shingle hashes; a text without shingles gets a row of :data:`EMPTY`. ``num_perm`` must be a
    power of two."""
    texts = len(offsets) - 1
    bits = num_perm.bit_length() - 1
    if num_perm != 1 << bits or not 1 <= bits <= 16:
        raise ValueError(f"num_perm must be a power of two from 2 to 65536, got {num_perm}")
    out = np.full((texts, num_perm), EMPTY, np.uint32)
    if texts == 0 or len(hashes) == 0:
        return out
    owner = np.repeat(np.arange(texts, dtype=np.uint64), np.diff(offsets))
    bins = hashes >> np.uint64(64 - bits)
    values = hashes & np.uint64(0xFFFFFFFF)
    # One sort orders (text, bin, value); the first of each (text, bin) is its minimum.
    keyed = np.sort(((owner << np.uint64(bits)) | bins) << np.uint64(32) | values)
    cell = keyed >> np.uint64(32)
    first = np.empty(len(keyed), bool)
    first[0] = True
    np.not_equal(cell[1:], cell[:-1], out=first[1:])
    cells = cell[first].astype(np.int64)
    filled = np.zeros((texts, num_perm), bool)
    out.reshape(-1)[cells] = (keyed[first] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    filled.reshape(-1)[cells] = True
    empty = ~filled
    has_any = filled.any(axis=1)
    if empty[has_any].any():
        _densify(out, filled, has_any)
    out[~has_any] = EMPTY
    return out


def _densify(out: np.ndarray, filled: np.ndarray, has_any: np.ndarray) -> None:
    """Each empty bin takes the next filled bin's value (to the right, circularly) plus
    ``_ROTATION`` times the distance (rows with no filled bin are left alone)."""
    rows, width = out.shape
    position = np.arange(2 * width)
    candidate = np.where(np.concatenate([filled, filled], axis=1), position, 4 * width)
    nearest = np.minimum.accumulate(candidate[:, ::-1], axis=1)[:, ::-1][:, :width]
    distance = (nearest - position[:width]).astype(np.uint32)
    source = np.where(nearest < 4 * width, nearest % width, 0)
    borrowed = np.take_along_axis(out, source, axis=1) + distance * _ROTATION
    take = ~filled & has_any[:, None]
    out[take] = borrowed[take]


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """``len(sigs)`` × ``bands`` 64-bit keys: band ``b`` hashes bins ``b*rows .. b*rows+rows-1``."""
    if bands * rows > sigs.shape[1]:
        raise ValueError(f"{bands} bands of {rows} rows need {bands * rows} bins; the signatures have {sigs.shape[1]}")
    grouped = sigs[:, : bands * rows].reshape(len(sigs), bands, rows).astype(np.uint64)
    keys = np.zeros((len(sigs), bands), np.uint64)
    for row in range(rows):
        keys += grouped[:, :, row] * _POSITION[row]
    return _mix(keys + np.arange(bands, dtype=np.uint64) * _GOLDEN)


def estimate_similarity(one: np.ndarray, others: np.ndarray) -> np.ndarray:
    """The fraction of bins in which ``one`` agrees with each row of ``others`` (the Jaccard estimate)."""
    return (others == one).mean(axis=1)
