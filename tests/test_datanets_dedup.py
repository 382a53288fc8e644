"""Exact and near-duplicate detection of datanet rows (MinHash LSH)."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loraledger.datanets.content import parse_rows, row_hash, row_text
from loraledger.datanets.dedup import Deduplicator, Duplicate
from loraledger.errors import InputError

SENTENCE = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch "
    "of the old wooden house at the edge of the green valley near the river"
)
ONE_WORD_CHANGED = SENTENCE.replace("farmer", "teacher")


def _row(text: str) -> tuple[bytes, str]:
    data = {"text": text}
    return row_hash(data), row_text(data)


def test_exact_duplicate_across_contributors():
    dedup = Deduplicator()
    # contributor A's row, accepted
    a = parse_rows(b'{"text": "Water boils at 100 degrees Celsius at sea level."}', "text")[0]
    dedup.add("alice:1", row_hash(a), row_text(a))
    # contributor B sends the same row, differently spaced and cased
    b = parse_rows(b'{"text": "  water boils at 100 degrees CELSIUS  at sea level. "}', "text")[0]
    assert dedup.check(row_hash(b), row_text(b)) == Duplicate(kind="exact", of="alice:1", similarity=1.0)
    # hex row hashes work too
    assert dedup.check("0x" + row_hash(b).hex(), row_text(b)).kind == "exact"


def test_exact_only_for_short_texts():
    dedup = Deduplicator(shingle=5)
    h, t = _row("ok")
    dedup.add(1, h, t)
    assert len(dedup) == 1 and 1 in dedup
    assert dedup.check(h, t) == Duplicate("exact", 1)
    h2, t2 = _row("ok!")
    assert dedup.check(h2, t2) is None  # short: no near check
    dedup.remove(1)
    assert dedup.check(h, t) is None


def test_near_duplicate_found_at_080_not_at_099():
    h, t = _row(SENTENCE)
    h2, t2 = _row(ONE_WORD_CHANGED)
    assert h != h2
    loose = Deduplicator(threshold=0.8)
    loose.add("r1", h, t)
    found = loose.check(h2, t2)
    assert found is not None and found.kind == "near" and found.of == "r1"
    assert 0.8 <= found.similarity < 1.0
    strict = Deduplicator(threshold=0.99)
    strict.add("r1", h, t)
    assert strict.check(h2, t2) is None


def test_near_reports_most_similar():
    dedup = Deduplicator(threshold=0.7)
    dedup.add("far", *_row(SENTENCE.replace("lazy dog", "sleepy cat").replace("porch", "barn")))
    dedup.add("close", *_row(SENTENCE))
    found = dedup.check(*_row(ONE_WORD_CHANGED))
    assert found is not None and found.of == "close"


def test_unrelated_texts_not_flagged():
    dedup = Deduplicator(threshold=0.8)
    texts = [
        "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
        "The Treaty of Westphalia in 1648 ended the Thirty Years' War in the Holy Roman Empire.",
        "To reverse a linked list iteratively, keep three pointers: previous, current and next.",
        "Mount Kilimanjaro is the highest mountain in Africa, rising about 5,895 metres.",
    ]
    for i, text in enumerate(texts):
        assert dedup.check(*_row(text)) is None
        dedup.add(i, *_row(text))
    assert dedup.check(*_row("A sourdough starter needs regular feeding with flour and water.")) is None


def test_remove():
    dedup = Deduplicator(threshold=0.8)
    h, t = _row(SENTENCE)
    dedup.add("r1", h, t)
    dedup.remove("r1")
    assert len(dedup) == 0
    assert dedup.check(h, t) is None
    assert dedup.check(*_row(ONE_WORD_CHANGED)) is None
    dedup.add("r1", h, t)  # the id may be reused after removal
    assert dedup.check(h, t) == Duplicate("exact", "r1")
    with pytest.raises(InputError, match="not in the dedup index"):
        dedup.remove("nope")


def test_remove_keeps_other_exact_copy():
    dedup = Deduplicator()
    h, t = _row(SENTENCE)
    dedup.add(1, h, t)
    dedup.add(2, h, t)  # e.g. rebuilt from rows accepted before dedup existed
    assert dedup.check(h, t).of == 1
    dedup.remove(1)
    assert dedup.check(h, t).of == 2


def test_add_twice_and_bad_arguments():
    dedup = Deduplicator()
    h, t = _row(SENTENCE)
    dedup.add(1, h, t)
    with pytest.raises(InputError, match="already in the dedup index"):
        dedup.add(1, h, t)
    with pytest.raises(InputError, match="row_hash"):
        dedup.check(b"short", t)
    for kwargs in ({"threshold": 0}, {"threshold": 1.5}, {"num_perm": 1}, {"shingle": 0}, {"threshold": True}):
        with pytest.raises(InputError):
            Deduplicator(**kwargs)


def test_deterministic_across_instances():
    results = []
    for _ in range(2):
        dedup = Deduplicator(threshold=0.8)
        dedup.add("r1", *_row(SENTENCE))
        results.append(dedup.check(*_row(ONE_WORD_CHANGED)))
    assert results[0] == results[1]


def test_5000_rows_reasonable_time():
    rng = random.Random(1)
    words = [f"w{i}" for i in range(3000)]
    dedup = Deduplicator()
    start = time.perf_counter()
    for i in range(5000):
        text = " ".join(rng.choice(words) for _ in range(30))
        h, t = _row(text)
        assert dedup.check(h, t) is None
        dedup.add(i, h, t)
    elapsed = time.perf_counter() - start
    print(f"5,000 rows checked and added in {elapsed:.2f}s")
    assert len(dedup) == 5000
    assert elapsed < 30


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=60), st.lists(st.integers(0, 40), max_size=60))
def test_a_level_absorbs_a_run_as_a_stable_sort_of_both_would(first, second):
    """_Level.absorb (binary search and fill, no sort) equals a stable sort of the level then the run:
    equal keys keep the level's slots before the run's."""
    import numpy as np

    from loraledger.datanets.dedup import _Level

    level = _Level()
    runs = [(np.sort(np.array(values, np.uint64)), np.arange(len(values), dtype=np.int32) + offset)
            for values, offset in ((first, 0), (second, 1000))]
    for keys, slots in runs:
        level.absorb(keys, slots)
    all_keys = np.concatenate([runs[0][0], runs[1][0]])
    order = np.argsort(all_keys, kind="stable")
    assert level.keys.tolist() == all_keys[order].tolist()
    assert level.slots.tolist() == np.concatenate([runs[0][1], runs[1][1]])[order].tolist()


def test_candidates_are_found_across_every_level_of_the_band_index(monkeypatch):
    """With tiny levels, thousands of rows go through every merge; each row's candidates are exactly
    the rows that share a band key with it (brute force)."""
    import numpy as np

    from loraledger.datanets import dedup

    monkeypatch.setattr(dedup, "LEVEL_ROWS", (4, 16, 64, 256))
    index = dedup._BandIndex(bands=3)
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 300, size=(2000, 3)).astype(np.uint64)  # small key space: many shared keys
    for start in range(0, 2000, 37):
        index.add(keys[start:start + 37], np.arange(start, min(start + 37, 2000)))
    assert len(index._levels[-1]) > 0  # the last level was reached
    queries = rng.integers(0, 300, size=(50, 3)).astype(np.uint64)
    for query, found in zip(queries, index.candidates(queries), strict=True):
        assert found == {row for row in range(2000) if set(keys[row].tolist()) & set(query.tolist())}


def test_near_duplicates_inside_one_batch_name_the_earlier_row():
    """Screening one batch: each near duplicate of an earlier kept row of the batch names that row,
    whichever band they share (all bands are compared at once)."""
    base = ["the quick brown fox jumps over the lazy dog near the river bank at dawn today",
            "a completely different sentence about mountains, snow and the cold northern winds",
            "seven ships sailed from the harbour before the storm reached the rocky coastline"]
    texts = [base[0], base[1], base[0].replace("today", "again"), base[2],
             base[1].replace("cold", "icy"), base[0].replace("dawn", "dusk")]
    hashes = [f"0x{i:064x}" for i in range(len(texts))]
    found, _ = Deduplicator(0.7).screen(hashes, texts)
    assert [(f.kind, f.of, f.in_batch) if f else None for f in found] == [
        None, None, ("near", 0, True), None, ("near", 1, True), ("near", 0, True)]
