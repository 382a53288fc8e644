"""Exact-span matching (pure): which spans of an answer occur verbatim in an adapter's training rows.

This follows OLMoTrace (Liu et al., "OLMoTrace: Tracing Language Model Outputs Back to Trillions of
Training Tokens", AllenAI, 2025, arXiv:2504.07096), scaled down from a pretraining corpus to the
training rows of one adapter, and working on token ids only.

Index
-----
The rows are concatenated into one int64 array, each row followed by its own separator
``-(row + 1)``. Answer tokens are non-negative, so no match can run over a separator: a span
never crosses a row boundary. A suffix array (the start positions of all suffixes, sorted
lexicographically, a shorter suffix before a longer one it is a prefix of) is built with
libdivsufsort (``pydivsufsort``) when it is installed, else with numpy prefix doubling; both
give the same array, because all suffixes are distinct the order is unique.

Matching
--------
1. For each start ``i`` of the answer, the longest prefix of ``answer[i:]`` that occurs in the
   index: binary-search the insertion point of ``answer[i:]`` among the sorted suffixes (as
   infini-gram does); the longest match is the longer common prefix with the two suffixes next to
   that point. The search skips the prefix it already knows to match (Manber-Myers' lcp bounds).
2. Keep the spans of at least ``min_tokens`` tokens that are not inside another kept span
   (OLMoTrace's "maximal spans").
3. Rank them by span unigram surprisal ``-sum(log p(t))`` with the add-one smoothed unigram
   ``p(t) = (count(t) + 1) / (total_tokens + V)`` of the training rows; keep the top
   ``K = max(1, ceil(keep_fraction * len(answer)))`` (OLMoTrace keeps about 5% of the output
   length), ties by start then end.
4. Map each kept span to the training rows holding it (the suffix-array range of the span).

OLMoTrace also drops spans that cross a newline or cut a word; that needs the text, which this
module never sees, so a caller with a tokenizer may filter the returned spans further.

Everything is deterministic: integer arithmetic, sorted numpy arrays, ``math.fsum`` of ``math.log``
terms, and explicit tie-breaking; no dict or set iteration order reaches the output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import InputError

try:  # libdivsufsort is much faster; the numpy fallback gives the identical array (tested)
    from pydivsufsort import divsufsort as _divsufsort
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    _divsufsort = None

__all__ = [
    "SPAN_INDEX_FORMAT",
    "Span",
    "SpanIndex",
    "build_span_index",
    "from_arrays",
    "longest_match_lengths",
    "match_spans",
    "to_arrays",
]

#: Version of the array layout written by :func:`to_arrays` (stored in ``meta[0]``).
SPAN_INDEX_FORMAT = 1

_ARRAY_NAMES = ("tokens", "suffix_array", "row_starts", "vocab", "unigram_counts", "meta")
_INT64_MAX = np.iinfo(np.int64).max


# ------------------------------------------------------------------------------ index


@dataclass(frozen=True, eq=False)
class SpanIndex:
    """A suffix array over the concatenated token ids of the training rows, rows separated so no match
    crosses a row boundary.

    ``tokens`` is row 0, ``-1``, row 1, ``-2``, ...: each row followed by its own negative separator.
    ``suffix_array`` holds the positions of ``tokens`` sorted by the suffix starting there.
    ``row_starts[r]`` is the offset of row ``r`` in ``tokens``. The unigram statistics of the rows are
    two aligned arrays: ``vocab`` (the distinct token ids, ascending) and ``unigram_counts`` (how often
    each occurs); ``total_tokens`` is the number of row tokens (separators excluded). All arrays are
    int64 and read-only. Build one with :func:`build_span_index`; store it with :func:`to_arrays`.
    """

    tokens: np.ndarray
    suffix_array: np.ndarray
    row_starts: np.ndarray
    row_count: int
    vocab: np.ndarray
    unigram_counts: np.ndarray
    total_tokens: int

    @property
    def vocab_size(self) -> int:
        """``V``: the number of distinct token ids in the rows."""
        return int(self.vocab.size)


def _readonly(array: np.ndarray) -> np.ndarray:
    # The index is shared between matches; freezing its arrays keeps the frozen dataclass honest.
    array.setflags(write=False)
    return array


def _token_array(values: Any, what: str) -> np.ndarray:
    """``values`` as a 1-D int64 array of non-negative token ids, or :class:`InputError` naming ``what``."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise InputError(f"{what} must be a 1-D sequence of token ids, got an array of shape {values.shape}")
        if values.dtype.kind not in "iu":  # "b" (bool) and floats are refused
            raise InputError(f"{what} must hold integer token ids, got dtype {values.dtype}")
        if values.dtype.kind == "u" and values.size and int(values.max()) > _INT64_MAX:
            raise InputError(f"{what} has a token id above {_INT64_MAX}")
        array = values.astype(np.int64)
    else:
        if isinstance(values, (str, bytes, bytearray)) or not isinstance(values, Sequence):
            raise InputError(f"{what} must be a sequence of token ids, got {type(values).__name__}")
        for position, value in enumerate(values):
            # bool is an int subclass but never a token id
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InputError(
                    f"{what} must hold integer token ids, got {type(value).__name__} {value!r} at position {position}"
                )
        try:
            array = np.array(values, dtype=np.int64).reshape(-1)
        except OverflowError:
            raise InputError(f"{what} has a token id outside the 64-bit range") from None
    negative = np.flatnonzero(array < 0)
    if negative.size:
        first = int(negative[0])
        raise InputError(f"{what} has a negative token id {int(array[first])} at position {first}")
    return array


def _suffix_array_numpy(tokens: np.ndarray) -> np.ndarray:
    """Suffix array by prefix doubling (O(n log^2 n), vectorised): the fallback without pydivsufsort.

    After round ``k`` every suffix has a rank by its first ``2^k`` tokens; sorting by the pair
    (rank of the first half, rank of the second half) doubles that. A suffix running out of tokens
    gets the second key -1, so it sorts before the longer suffixes it is a prefix of.
    """
    n = int(tokens.size)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rank = np.unique(tokens, return_inverse=True)[1].astype(np.int64).reshape(-1)
    order = np.argsort(rank, kind="stable").astype(np.int64)
    width = 1
    while int(rank.max()) < n - 1:  # ranks all distinct: the order is final
        second = np.full(n, -1, dtype=np.int64)
        second[: n - width] = rank[width:]
        order = np.lexsort((second, rank)).astype(np.int64)
        first_sorted, second_sorted = rank[order], second[order]
        changed = (first_sorted[1:] != first_sorted[:-1]) | (second_sorted[1:] != second_sorted[:-1])
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.concatenate(([0], np.cumsum(changed, dtype=np.int64)))
        width *= 2
    return order


def _suffix_array_native(tokens: np.ndarray) -> np.ndarray:
    """Suffix array by libdivsufsort: pydivsufsort maps the ids order-preservingly to big-endian
    fixed-width words and sorts their bytes (the infini-gram trick), so negative separators and
    ids above 255 or 65535 are fine."""
    if tokens.size == 0:  # pydivsufsort fails on an empty array
        return np.zeros(0, dtype=np.int64)
    assert _divsufsort is not None
    return np.asarray(_divsufsort(np.ascontiguousarray(tokens, dtype=np.int64)), dtype=np.int64)


def _suffix_array(tokens: np.ndarray) -> np.ndarray:
    return _suffix_array_native(tokens) if _divsufsort is not None else _suffix_array_numpy(tokens)


def build_span_index(rows: Sequence[Sequence[int]]) -> SpanIndex:
    """Index the token ids of the training rows for :func:`match_spans`.

    ``rows[r]`` is the token ids of training row ``r`` (non-negative ints; numpy integer arrays are
    fine). Rows may be empty. Raises :class:`InputError` for a negative or non-integer token id.
    """
    if isinstance(rows, (str, bytes, bytearray)) or not isinstance(rows, (Sequence, np.ndarray)):
        raise InputError(f"rows must be a sequence of token-id sequences, got {type(rows).__name__}")
    pieces: list[np.ndarray] = []
    starts: list[int] = []
    offset = 0
    for r, row in enumerate(rows):
        array = _token_array(row, f"training row {r}")
        starts.append(offset)
        pieces.append(array)
        pieces.append(np.array([-(r + 1)], dtype=np.int64))  # unique separator: matches never run past it
        offset += int(array.size) + 1
    tokens = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    vocab, counts = np.unique(tokens[tokens >= 0], return_counts=True)
    return SpanIndex(
        tokens=_readonly(tokens),
        suffix_array=_readonly(_suffix_array(tokens)),
        row_starts=_readonly(np.array(starts, dtype=np.int64)),
        row_count=len(starts),
        vocab=_readonly(vocab.astype(np.int64)),
        unigram_counts=_readonly(counts.astype(np.int64)),
        total_tokens=int(counts.sum()),
    )


def to_arrays(index: SpanIndex) -> dict[str, np.ndarray]:
    """The index as named 1-D int64 arrays (for safetensors); :func:`from_arrays` is the inverse.

    Names: ``tokens``, ``suffix_array``, ``row_starts``, ``vocab``, ``unigram_counts`` and ``meta``
    (``[format version, row_count, total_tokens]``). The result is the same for the same index, and
    independent of the suffix-array backend.
    """
    return {
        "tokens": np.array(index.tokens, dtype=np.int64),
        "suffix_array": np.array(index.suffix_array, dtype=np.int64),
        "row_starts": np.array(index.row_starts, dtype=np.int64),
        "vocab": np.array(index.vocab, dtype=np.int64),
        "unigram_counts": np.array(index.unigram_counts, dtype=np.int64),
        "meta": np.array([SPAN_INDEX_FORMAT, index.row_count, index.total_tokens], dtype=np.int64),
    }


def _stored_array(arrays: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    array = np.asarray(arrays[name])
    if array.ndim != 1:
        raise InputError(f"span index array {name!r} must be 1-D, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise InputError(f"span index array {name!r} must hold integers, got dtype {array.dtype}")
    return array.astype(np.int64)


def _check_layout(tokens: np.ndarray, row_starts: np.ndarray, row_count: int) -> None:
    """The separators are ``-1, -2, ...`` in order, one after each row, and ``row_starts`` matches them."""
    separators = np.flatnonzero(tokens < 0)
    if separators.size != row_count:
        raise InputError(f"span index has {separators.size} row separators but meta says {row_count} rows")
    if row_count and separators[-1] != tokens.size - 1:
        raise InputError("span index tokens must end with a row separator")
    if not np.array_equal(tokens[separators], -np.arange(1, row_count + 1, dtype=np.int64)):
        raise InputError("span index row separators must be -1, -2, ... in row order")
    expected_starts = np.concatenate(([0], separators[:-1] + 1)) if row_count else np.zeros(0, dtype=np.int64)
    if row_starts.size != row_count or not np.array_equal(row_starts, expected_starts):
        raise InputError("span index row_starts do not match the row separators in tokens")


def _check_suffix_array(tokens: np.ndarray, suffix_array: np.ndarray) -> None:
    """A cheap consistency check (not a proof): a permutation of the positions, ordered by first token."""
    n = tokens.size
    if suffix_array.size != n:
        raise InputError(f"span index suffix_array has {suffix_array.size} entries for {n} tokens")
    if not np.array_equal(np.sort(suffix_array), np.arange(n, dtype=np.int64)):
        raise InputError("span index suffix_array is not a permutation of the token positions")
    if n and np.any(np.diff(tokens[suffix_array]) < 0):
        raise InputError("span index suffix_array is not sorted by token")


def from_arrays(arrays: Mapping[str, np.ndarray]) -> SpanIndex:
    """Rebuild a :class:`SpanIndex` from :func:`to_arrays`'s output, checking it is consistent.

    Raises :class:`InputError` for a missing or unknown array, a wrong shape or format version,
    separators or row starts that disagree, a suffix array that is not a sorted permutation, or
    unigram counts that are not those of the tokens.
    """
    missing = [name for name in _ARRAY_NAMES if name not in arrays]
    unknown = sorted(str(name) for name in arrays if name not in _ARRAY_NAMES)
    if missing or unknown:
        raise InputError(f"span index arrays: missing {missing}, unknown {unknown}; expected {list(_ARRAY_NAMES)}")
    stored = {name: _stored_array(arrays, name) for name in _ARRAY_NAMES}
    meta = stored["meta"]
    if meta.size != 3 or int(meta[0]) != SPAN_INDEX_FORMAT:
        raise InputError(f"span index meta must be [{SPAN_INDEX_FORMAT}, row_count, total_tokens], got {meta.tolist()}")
    row_count, total_tokens = int(meta[1]), int(meta[2])
    tokens = stored["tokens"]
    _check_layout(tokens, stored["row_starts"], row_count)
    if total_tokens != tokens.size - row_count:
        raise InputError(f"span index meta says {total_tokens} tokens, tokens hold {tokens.size - row_count}")
    _check_suffix_array(tokens, stored["suffix_array"])
    vocab, counts = np.unique(tokens[tokens >= 0], return_counts=True)
    if not (np.array_equal(stored["vocab"], vocab) and np.array_equal(stored["unigram_counts"], counts)):
        raise InputError("span index vocab/unigram_counts are not the token counts of its rows")
    return SpanIndex(
        tokens=_readonly(tokens),
        suffix_array=_readonly(stored["suffix_array"]),
        row_starts=_readonly(stored["row_starts"]),
        row_count=row_count,
        vocab=_readonly(stored["vocab"]),
        unigram_counts=_readonly(stored["unigram_counts"]),
        total_tokens=total_tokens,
    )


# ------------------------------------------------------------------------------ suffix-array search


def _common_prefix(tokens: np.ndarray, position: int, pattern: np.ndarray, known: int) -> int:
    """Length of the common prefix of ``tokens[position:]`` and ``pattern``, given the first ``known`` agree.

    Compares in chunks that double in size, so a short mismatch costs one small numpy comparison and
    a long match costs O(log) of them.
    """
    n, m = int(tokens.size), int(pattern.size)
    k, chunk = known, 16
    while k < m and position + k < n:
        width = min(chunk, m - k, n - position - k)
        differ = np.flatnonzero(tokens[position + k : position + k + width] != pattern[k : k + width])
        if differ.size:
            return k + int(differ[0])
        k += width
        chunk *= 2
    return k


def _bisect(index: SpanIndex, pattern: np.ndarray, *, after_matches: bool) -> tuple[int, int, int]:
    """Binary search of ``pattern`` among the sorted suffixes.

    Returns ``(point, left_lcp, right_lcp)``: ``point`` is the number of suffixes ordered before the
    pattern (``after_matches=False``: the first suffix starting with ``pattern``) or before-or-starting-with
    it (``after_matches=True``: one past the last such suffix); ``left_lcp`` and ``right_lcp`` are the
    common-prefix lengths of the pattern with the suffixes at ``point - 1`` and ``point`` (0 if none).
    Every suffix between two bounds shares the smaller of their common prefixes with the pattern, so
    each comparison starts there (Manber & Myers).
    """
    tokens, suffixes = index.tokens, index.suffix_array
    m, n = int(pattern.size), int(tokens.size)
    low, high = 0, int(suffixes.size)
    left_lcp = right_lcp = 0
    while low < high:
        middle = (low + high) // 2
        position = int(suffixes[middle])
        lcp = _common_prefix(tokens, position, pattern, min(left_lcp, right_lcp))
        if lcp == m:  # the suffix starts with the pattern
            goes_left = after_matches
        else:  # it differs at lcp (a shorter suffix, or a separator, is smaller than any token)
            goes_left = position + lcp >= n or int(tokens[position + lcp]) < int(pattern[lcp])
        if goes_left:
            low, left_lcp = middle + 1, lcp
        else:
            high, right_lcp = middle, lcp
    return low, left_lcp, right_lcp


def _longest_match_at(index: SpanIndex, suffix: np.ndarray) -> int:
    """The length of the longest prefix of ``suffix`` that occurs in the index."""
    # The suffixes sharing the longest prefix with the pattern sit next to its insertion point.
    _, left_lcp, right_lcp = _bisect(index, suffix, after_matches=False)
    return max(left_lcp, right_lcp)


def longest_match_lengths(index: SpanIndex, answer: Sequence[int]) -> list[int]:
    """For each start ``i`` of ``answer``, the length of the longest ``answer[i:j]`` in some training row."""
    tokens = _token_array(answer, "answer")
    if index.total_tokens == 0:
        return [0] * int(tokens.size)
    return [_longest_match_at(index, tokens[i:]) for i in range(int(tokens.size))]


def _rows_containing(index: SpanIndex, span: np.ndarray, cap: int) -> tuple[tuple[int, ...], bool]:
    """The first ``cap`` training rows (ascending) holding ``span``, and whether more were left out."""
    first, _, _ = _bisect(index, span, after_matches=False)
    last, _, _ = _bisect(index, span, after_matches=True)
    positions = index.suffix_array[first:last]
    # row of a position: the last row start at or before it
    rows = np.unique(np.searchsorted(index.row_starts, positions, side="right") - 1)
    return tuple(int(r) for r in rows[:cap]), bool(rows.size > cap)


# ------------------------------------------------------------------------------ spans


@dataclass(frozen=True, slots=True)
class Span:
    """A span ``answer[start:end]`` that occurs verbatim in training rows.

    ``rows`` are the indices of the training rows holding it, ascending, capped at
    ``max_rows_per_span`` of :func:`match_spans` (the lowest indices are kept); ``rows_capped``
    says whether rows were left out. ``surprisal`` is the span's unigram surprisal in nats,
    ``-sum(log p(t))`` over its tokens (higher: rarer, more specific).
    """

    start: int
    end: int
    rows: tuple[int, ...]
    surprisal: float
    rows_capped: bool = False

    @property
    def length(self) -> int:
        """Number of tokens in the span."""
        return self.end - self.start


def _check_options(min_tokens: Any, keep_fraction: Any, max_rows_per_span: Any) -> None:
    if isinstance(min_tokens, bool) or not isinstance(min_tokens, int) or min_tokens < 1:
        raise InputError(f"min_tokens must be an integer >= 1, got {min_tokens!r}")
    if (
        isinstance(keep_fraction, bool)
        or not isinstance(keep_fraction, (int, float))
        or not 0 <= keep_fraction <= 1  # also refuses NaN
    ):
        raise InputError(f"keep_fraction must be a number between 0 and 1, got {keep_fraction!r}")
    if isinstance(max_rows_per_span, bool) or not isinstance(max_rows_per_span, int) or max_rows_per_span < 1:
        raise InputError(f"max_rows_per_span must be an integer >= 1, got {max_rows_per_span!r}")


def _keep_count(keep_fraction: float, answer_length: int) -> int:
    """``K = max(1, ceil(keep_fraction * answer_length))``, with the fraction read as written.

    ``0.05 * 60`` is 3.0000000000000004 in floats, whose ceiling is 4; reading ``0.05`` as the
    decimal it prints as gives exactly 3.
    """
    return max(1, math.ceil(Fraction(repr(float(keep_fraction))) * answer_length))


def _maximal_spans(ends: list[int], min_tokens: int) -> list[tuple[int, int]]:
    """``(start, end)`` of the per-start longest matches that are long enough and inside no other.

    ``ends[i]`` (end of the longest match at ``i``) never decreases: a suffix of a match is a match.
    So the span at ``i`` lies inside an earlier one exactly when ``ends[i] == ends[i - 1]``, and then
    the span at ``i - 1`` is one token longer, hence also long enough and kept.
    """
    spans = []
    for i, end in enumerate(ends):
        if end - i >= min_tokens and (i == 0 or ends[i - 1] < end):
            spans.append((i, end))
    return spans


def _token_surprisals(index: SpanIndex, tokens: np.ndarray) -> list[float]:
    """``-log p(t)`` per answer token, ``p(t) = (count(t) + 1) / (total_tokens + V)``."""
    slots = np.searchsorted(index.vocab, tokens)
    found = (slots < index.vocab.size) & (index.vocab[np.minimum(slots, index.vocab.size - 1)] == tokens)
    counts = np.where(found, index.unigram_counts[np.minimum(slots, index.vocab.size - 1)], 0)
    log_total = math.log(index.total_tokens + index.vocab_size)
    return [log_total - math.log(int(c) + 1) for c in counts]


def match_spans(
    index: SpanIndex,
    answer: Sequence[int],
    *,
    min_tokens: int = 4,
    keep_fraction: float = 0.05,
    max_rows_per_span: int = 16,
) -> list[Span]:
    """The OLMoTrace spans of ``answer`` found verbatim in the training rows, sorted by start.

    Maximal matches of at least ``min_tokens`` tokens, inside no other kept match, the top
    ``max(1, ceil(keep_fraction * len(answer)))`` by unigram surprisal (ties: earlier start, then
    earlier end), each with the training rows holding it (at most ``max_rows_per_span``). An empty
    answer or index gives ``[]``. Raises :class:`InputError` for a negative or non-integer token id
    or a bad option.
    """
    _check_options(min_tokens, keep_fraction, max_rows_per_span)
    tokens = _token_array(answer, "answer")
    if tokens.size == 0 or index.total_tokens == 0:
        return []
    ends = [i + _longest_match_at(index, tokens[i:]) for i in range(int(tokens.size))]
    candidates = _maximal_spans(ends, min_tokens)
    if not candidates:
        return []
    per_token = _token_surprisals(index, tokens)
    # fsum is exactly rounded, so a span's surprisal does not depend on summation order
    scored = [(math.fsum(per_token[start:end]), start, end) for start, end in candidates]
    scored.sort(key=lambda item: (-item[0], item[1], item[2]))
    kept = sorted(scored[: _keep_count(keep_fraction, int(tokens.size))], key=lambda item: (item[1], item[2]))
    spans = []
    for surprisal, start, end in kept:
        rows, capped = _rows_containing(index, tokens[start:end], max_rows_per_span)
        spans.append(Span(start=start, end=end, rows=rows, surprisal=surprisal, rows_capped=capped))
    return spans
