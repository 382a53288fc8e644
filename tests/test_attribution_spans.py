"""Exact-span matching of Proof of Attribution (OLMoTrace rules) against a brute-force reference."""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loraledger.attribution import spans as spans_module
from loraledger.attribution.spans import (
    Span,
    SpanIndex,
    build_span_index,
    from_arrays,
    longest_match_lengths,
    match_spans,
    to_arrays,
)
from loraledger.errors import InputError

# ------------------------------------------------------------------------------ brute-force reference


def _contains(row: list[int], seq: list[int]) -> bool:
    """``seq`` is a contiguous sublist of ``row``."""
    return any(row[k : k + len(seq)] == seq for k in range(len(row) - len(seq) + 1))


def brute_longest(rows: list[list[int]], answer: list[int]) -> list[int]:
    """For each i, the largest L with answer[i:i+L] inside one row (checked for every j)."""
    lengths = []
    for i in range(len(answer)):
        best = 0
        for j in range(i + 1, len(answer) + 1):
            if any(_contains(row, answer[i:j]) for row in rows):
                best = j - i
        lengths.append(best)
    return lengths


def brute_spans(
    rows: list[list[int]], answer: list[int], min_tokens: int, keep_fraction: float, cap: int
) -> list[tuple[int, int, tuple[int, ...], float, bool]]:
    """The whole OLMoTrace pipeline, written the slow and obvious way."""
    counts = Counter(t for row in rows for t in row)
    total, vocab = sum(counts.values()), len(counts)
    if not answer or total == 0:
        return []
    candidates = [(i, i + n) for i, n in enumerate(brute_longest(rows, answer)) if n >= min_tokens]
    maximal = [
        (s, e) for s, e in candidates if not any((s2, e2) != (s, e) and s2 <= s and e <= e2 for s2, e2 in candidates)
    ]

    def surprisal(s: int, e: int) -> float:
        return math.fsum(math.log(total + vocab) - math.log(counts[t] + 1) for t in answer[s:e])

    keep = max(1, math.ceil(Decimal(str(keep_fraction)) * len(answer)))
    ranked = sorted(maximal, key=lambda se: (-surprisal(*se), se[0], se[1]))[:keep]
    result = []
    for s, e in sorted(ranked):
        holding = [r for r, row in enumerate(rows) if _contains(row, answer[s:e])]
        result.append((s, e, tuple(holding[:cap]), surprisal(s, e), len(holding) > cap))
    return result


def as_tuples(spans: list[Span]) -> list[tuple[int, int, tuple[int, ...], float, bool]]:
    return [(s.start, s.end, s.rows, s.surprisal, s.rows_capped) for s in spans]


def brute_suffix_array(tokens: np.ndarray) -> list[int]:
    values = tokens.tolist()
    return sorted(range(len(values)), key=lambda p: values[p:])  # list order: a prefix sorts first


@st.composite
def corpus(draw, max_id: int | None = None):
    vocab = draw(st.integers(5, 20))
    low = 0 if max_id is None else max_id - vocab
    token = st.integers(low, low + vocab - 1)
    rows = draw(st.lists(st.lists(token, max_size=30), min_size=1, max_size=6))
    # answers built partly from row pieces, so long matches are common, not just chance
    pieces = [token.map(lambda t: [t])]
    for row in rows:
        if row:
            pieces.append(
                st.tuples(st.integers(0, len(row)), st.integers(0, len(row))).map(lambda ab, r=row: r[ab[0] : ab[1]])
            )
    answer = [t for piece in draw(st.lists(st.one_of(pieces), max_size=12)) for t in piece][:40]
    return rows, answer


# ------------------------------------------------------------------------------ properties


@settings(max_examples=200, deadline=None)
@given(corpus())
def test_longest_match_per_position_equals_brute_force(case):
    rows, answer = case
    assert longest_match_lengths(build_span_index(rows), answer) == brute_longest(rows, answer)


@settings(max_examples=200, deadline=None)
@given(
    corpus(),
    st.integers(1, 4),
    st.sampled_from([0.0, 0.05, 0.1, 0.3, 1.0]),
    st.integers(1, 3),
)
def test_match_spans_equals_brute_force(case, min_tokens, keep_fraction, cap):
    rows, answer = case
    got = match_spans(
        build_span_index(rows), answer, min_tokens=min_tokens, keep_fraction=keep_fraction, max_rows_per_span=cap
    )
    assert as_tuples(got) == brute_spans(rows, answer, min_tokens, keep_fraction, cap)


@settings(max_examples=120, deadline=None)
@given(corpus(max_id=2**40))
def test_both_suffix_array_backends_agree_with_sorting(case):
    rows, _ = case
    index = build_span_index(rows)
    numpy_sa = spans_module._suffix_array_numpy(index.tokens)
    assert numpy_sa.tolist() == brute_suffix_array(index.tokens)
    if spans_module._divsufsort is not None:
        assert spans_module._suffix_array_native(index.tokens).tolist() == numpy_sa.tolist()
    assert index.suffix_array.tolist() == numpy_sa.tolist()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-3, 3), max_size=40), st.sampled_from([0, 70_000, 2**40]))
def test_suffix_array_backends_on_raw_arrays(values, shift):
    # no unique separator at the end here, so a suffix that runs out must sort before its extensions
    tokens = np.array(values, dtype=np.int64) + shift
    numpy_sa = spans_module._suffix_array_numpy(tokens)
    assert numpy_sa.tolist() == brute_suffix_array(tokens)
    if spans_module._divsufsort is not None:
        assert spans_module._suffix_array_native(tokens).tolist() == numpy_sa.tolist()


def test_numpy_fallback_builds_the_identical_index(monkeypatch):
    rng = np.random.default_rng(7)
    rows = [rng.integers(0, 150_000, size=int(rng.integers(0, 300))) for _ in range(40)]
    native = to_arrays(build_span_index(rows))
    monkeypatch.setattr(spans_module, "_divsufsort", None)
    fallback = to_arrays(build_span_index(rows))
    assert native.keys() == fallback.keys()
    for name in native:
        assert np.array_equal(native[name], fallback[name]), name


def test_pydivsufsort_is_used_when_installed():
    pytest.importorskip("pydivsufsort")
    assert spans_module._divsufsort is not None


# ------------------------------------------------------------------------------ rules


def test_spans_never_cross_row_boundaries():
    index = build_span_index([[1, 2, 3], [4, 5, 6]])
    answer = [1, 2, 3, 4, 5, 6]
    # [2, 3, 4, 5] = end of row 0 + start of row 1: not a match
    assert longest_match_lengths(index, answer) == [3, 2, 1, 3, 2, 1]
    assert as_tuples(match_spans(index, answer, min_tokens=2, keep_fraction=1.0)) == [
        (0, 3, (0,), pytest.approx(3 * math.log(12 / 2)), False),
        (3, 6, (1,), pytest.approx(3 * math.log(12 / 2)), False),
    ]
    assert match_spans(index, answer, min_tokens=4) == []
    # the same tokens as one row match whole
    assert [(s.start, s.end) for s in match_spans(build_span_index([answer]), answer, min_tokens=4)] == [(0, 6)]


def test_contained_spans_are_dropped():
    index = build_span_index([[1, 2, 3, 4, 5, 6, 7], [3, 4, 5, 6]])
    spans = match_spans(index, [1, 2, 3, 4, 5, 6, 7], min_tokens=2, keep_fraction=1.0)
    # [3, 4, 5, 6] (row 1) and every suffix of the full match lie inside (0, 7)
    assert [(s.start, s.end, s.rows) for s in spans] == [(0, 7, (0,))]
    spans = match_spans(index, [3, 4, 5, 6], min_tokens=2, keep_fraction=1.0)
    assert [(s.start, s.end, s.rows) for s in spans] == [(0, 4, (0, 1))]


def test_overlapping_spans_are_both_kept():
    index = build_span_index([[1, 2, 3, 4], [3, 4, 5, 6]])
    spans = match_spans(index, [1, 2, 3, 4, 5, 6], min_tokens=3, keep_fraction=1.0)
    assert [(s.start, s.end, s.rows) for s in spans] == [(0, 4, (0,)), (2, 6, (1,))]


def test_min_tokens_is_respected():
    index = build_span_index([[1, 2, 3]])
    assert match_spans(index, [1, 2, 3], min_tokens=4) == []
    assert [(s.start, s.end) for s in match_spans(index, [1, 2, 3], min_tokens=3)] == [(0, 3)]
    assert [(s.start, s.end) for s in match_spans(index, [9, 1, 2, 3, 9], min_tokens=3)] == [(1, 4)]


def test_top_k_by_surprisal():
    # tokens 1-4 occur 3 times each, 5-8 once: total 16, V = 8
    index = build_span_index([[1, 2, 3, 4] * 3, [5, 6, 7, 8]])
    answer = [1, 2, 3, 4, 99, 5, 6, 7, 8, 99]
    [span] = match_spans(index, answer, keep_fraction=0.1)  # K = 1
    assert (span.start, span.end, span.rows, span.rows_capped) == (5, 9, (1,), False)
    assert span.surprisal == pytest.approx(4 * math.log(24 / 2), rel=1e-12)
    both = match_spans(index, answer, keep_fraction=0.2)  # K = 2, sorted by start
    assert [(s.start, s.end, s.rows) for s in both] == [(0, 4, (0,)), (5, 9, (1,))]
    assert both[0].surprisal == pytest.approx(4 * math.log(24 / 4), rel=1e-12)
    assert both[0].surprisal < both[1].surprisal


def test_ties_go_to_the_earlier_start():
    index = build_span_index([[1, 2, 3, 4], [5, 6, 7, 8]])
    for answer, expected in (
        ([5, 6, 7, 8, 99, 1, 2, 3, 4], (0, 4, (1,))),
        ([1, 2, 3, 4, 99, 5, 6, 7, 8], (0, 4, (0,))),
    ):
        [span] = match_spans(index, answer)
        assert (span.start, span.end, span.rows) == expected


def test_keep_count_reads_the_fraction_as_written():
    # 15 disjoint equal-surprisal spans in 60 tokens: K = ceil(0.05 * 60) = 3, not 4 (float 3.0000000000000004)
    index = build_span_index([list(range(200))])
    answer = [t for k in range(15) for t in range(8 * k, 8 * k + 4)]
    assert len(answer) == 60
    spans = match_spans(index, answer)
    assert [(s.start, s.end) for s in spans] == [(0, 4), (4, 8), (8, 12)]
    assert len(match_spans(index, answer, keep_fraction=0.0)) == 1
    assert len(match_spans(index, answer, keep_fraction=1.0)) == 15


def test_rows_are_deduplicated_sorted_and_capped():
    span = [10, 11, 12, 13]
    rows = []
    for r in range(30):
        if r % 3 == 0:
            rows.append([r + 100] + span + [r + 200] + span)  # twice in one row: counted once
        else:
            rows.append([r + 100, 10, 11, 12, r + 200])  # only a prefix
    index = build_span_index(rows)
    holding = tuple(range(0, 30, 3))
    [capped] = match_spans(index, span, max_rows_per_span=4)
    assert (capped.start, capped.end, capped.rows, capped.rows_capped) == (0, 4, holding[:4], True)
    [full] = match_spans(index, span, max_rows_per_span=16)
    assert (full.rows, full.rows_capped) == (holding, False)
    [exact] = match_spans(index, span, max_rows_per_span=len(holding))
    assert (exact.rows, exact.rows_capped) == (holding, False)


def test_token_ids_above_65535():
    big = [70_000, 150_000, 2**31 + 5, 2**40, 65_536, 65_535, 0, 1]
    rows = [big[:5], big[3:], [2**40, 65_536, 70_000]]
    index = build_span_index(rows)
    assert index.suffix_array.tolist() == brute_suffix_array(index.tokens)
    answer = [9, 70_000, 150_000, 2**31 + 5, 2**40, 65_536, 65_535, 0, 1]
    assert longest_match_lengths(index, answer) == brute_longest(rows, answer)
    spans = match_spans(index, answer, min_tokens=3, keep_fraction=1.0)
    assert [(s.start, s.end, s.rows) for s in spans] == [(1, 6, (0,)), (4, 9, (1,))]
    # 65_536 and 0 must not alias (as a 16-bit truncation would make them)
    assert longest_match_lengths(index, [2**40, 0]) == [1, 1]


def test_empty_answer_or_index_gives_nothing():
    assert match_spans(build_span_index([[1, 2, 3, 4]]), []) == []
    assert match_spans(build_span_index([]), [1, 2, 3, 4]) == []
    assert match_spans(build_span_index([[], []]), [1, 2, 3, 4]) == []
    assert longest_match_lengths(build_span_index([]), [1, 2]) == [0, 0]
    empty = build_span_index([])
    assert (empty.row_count, empty.total_tokens, empty.tokens.size, empty.suffix_array.size) == (0, 0, 0, 0)


def test_index_layout():
    index = build_span_index([[5, 6], [], [6, 7, 7]])
    assert index.tokens.tolist() == [5, 6, -1, -2, 6, 7, 7, -3]
    assert index.row_starts.tolist() == [0, 3, 4]
    assert (index.row_count, index.total_tokens, index.vocab_size) == (3, 5, 3)
    assert (index.vocab.tolist(), index.unigram_counts.tolist()) == ([5, 6, 7], [1, 2, 2])
    with pytest.raises(ValueError):
        index.tokens[0] = 9  # arrays are read-only


def test_deterministic_and_input_form_independent():
    rows = [[3, 1, 4, 1, 5, 9, 2, 6], [5, 3, 5, 8, 9, 7, 9], [3, 1, 4, 1, 5]]
    answer = [3, 1, 4, 1, 5, 9, 7, 9, 3, 1, 4, 1, 5]
    a = build_span_index(rows)
    b = build_span_index(tuple(np.array(r, dtype=np.uint32) for r in rows))
    for name, value in to_arrays(a).items():
        assert np.array_equal(value, to_arrays(b)[name]) and value.dtype == np.int64
    first = match_spans(a, answer, min_tokens=2, keep_fraction=1.0)
    assert first == match_spans(b, np.array(answer), min_tokens=2, keep_fraction=1.0)
    assert [(s.start, s.end, s.rows) for s in first] == [(0, 6, (0,)), (5, 8, (1,)), (8, 13, (0, 2))]


# ------------------------------------------------------------------------------ storage


def test_arrays_round_trip_gives_identical_matches(tmp_path):
    rng = np.random.default_rng(3)
    rows = [rng.integers(0, 30, size=int(rng.integers(0, 60))).tolist() for _ in range(25)]
    answer = rows[4][5:30] + [99] + rows[17][:20] + rng.integers(0, 30, size=20).tolist()
    index = build_span_index(rows)
    arrays = to_arrays(index)
    assert sorted(arrays) == ["meta", "row_starts", "suffix_array", "tokens", "unigram_counts", "vocab"]
    assert all(a.ndim == 1 and a.dtype == np.int64 for a in arrays.values())
    restored = from_arrays(arrays)
    assert isinstance(restored, SpanIndex)
    expected = match_spans(index, answer, keep_fraction=0.2)
    assert expected and match_spans(restored, answer, keep_fraction=0.2) == expected

    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "spans.safetensors"
    safetensors_numpy.save_file(arrays, str(path))
    from_disk = from_arrays(safetensors_numpy.load_file(str(path)))
    assert match_spans(from_disk, answer, keep_fraction=0.2) == expected


def _swap_ends(sa: np.ndarray) -> np.ndarray:
    sa = sa.copy()
    sa[[0, -1]] = sa[[-1, 0]]
    return sa


def _mutated(arrays: dict[str, np.ndarray], name: str, change) -> dict[str, np.ndarray]:
    copy = {k: v.copy() for k, v in arrays.items()}
    if change is None:
        del copy[name]
    else:
        copy[name] = change(copy.get(name))
    return copy


@pytest.mark.parametrize(
    ("name", "change", "words"),
    [
        ("tokens", None, "missing"),
        ("extra", lambda _: np.zeros(1, dtype=np.int64), "unknown"),
        ("tokens", lambda a: a.reshape(1, -1), "1-D"),
        ("tokens", lambda a: a.astype(np.float32), "integers"),
        ("meta", lambda a: np.array([2, a[1], a[2]]), "meta"),
        ("meta", lambda a: np.array([a[0], a[1] + 1, a[2]]), "separators"),
        ("meta", lambda a: np.array([a[0], a[1], a[2] - 1]), "tokens"),
        ("tokens", lambda a: np.where(a == -2, -5, a), "separators"),
        ("tokens", lambda a: a[:-1], "separator"),
        ("row_starts", lambda a: a + 1, "row_starts"),
        ("suffix_array", lambda a: np.where(a == 0, 1, a), "permutation"),
        ("suffix_array", lambda a: a[:-1], "entries"),
        ("suffix_array", _swap_ends, "sorted"),
        ("unigram_counts", lambda a: a + np.eye(1, a.size, dtype=np.int64)[0], "unigram"),
        ("vocab", lambda a: a[:-1], "vocab"),
    ],
)
def test_from_arrays_refuses_inconsistent_arrays(name, change, words):
    arrays = to_arrays(build_span_index([[1, 2, 3], [2, 3, 4, 4], [5]]))
    with pytest.raises(InputError, match=words):
        from_arrays(_mutated(arrays, name, change))


# ------------------------------------------------------------------------------ input errors


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ([1, 2, -3], "negative token id -3 at position 2"),
        ([1, 2.0], "float 2.0 at position 1"),
        ([1, True], "bool True at position 1"),
        ("abc", "sequence of token ids"),
        ([1, [2]], "list"),
        (np.array([1.0, 2.0]), "dtype float64"),
        (np.array([[1, 2]]), "1-D"),
        ([2**64], "64-bit"),
    ],
)
def test_invalid_answer_is_an_input_error(answer, words):
    index = build_span_index([[1, 2, 3, 4]])
    with pytest.raises(InputError, match=words.replace("(", r"\(")) as caught:
        match_spans(index, answer)
    assert "answer" in str(caught.value)


def test_invalid_rows_and_options_are_input_errors():
    with pytest.raises(InputError, match="training row 1 has a negative token id -1 at position 0"):
        build_span_index([[1], [-1]])
    with pytest.raises(InputError, match="training row 0"):
        build_span_index([[1, "2"]])
    index = build_span_index([[1, 2, 3, 4]])
    for options, words in (
        ({"min_tokens": 0}, "min_tokens"),
        ({"keep_fraction": 1.5}, "keep_fraction"),
        ({"keep_fraction": float("nan")}, "keep_fraction"),
        ({"max_rows_per_span": 0}, "max_rows_per_span"),
    ):
        with pytest.raises(InputError, match=words):
            match_spans(index, [1, 2, 3, 4], **options)
