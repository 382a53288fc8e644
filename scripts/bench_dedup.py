#!/usr/bin/env python3
"""Near-duplicate sketchers and the duplicate index, with their peers measured in the same run.

1. **Sketch cost**: the same rows (random-word texts of 20 to 60 words, normalised as datanets
   normalise them, 5-character shingles, 128 permutations or bins) sketched by
   * datasketch ``MinHash`` (SHA-1 of each shingle, 128 universal hashes in numpy): the sketcher
     the node used before;
   * rensa ``RMinHash`` (Rust);
   * numpy universal hashing over 64-bit xxhash (``xxh3_64``) shingle hashes: 128 ``(a·h + b) >> 32``
     minimums per row;
   * ours: :mod:`loraledger.datanets.sketch`, one-permutation MinHash over shingle hashes computed
     in numpy for a whole batch (500 rows a call).
2. **Quality on a planted set** against exact Jaccard: base rows, each with variants (1 to 6 words
   replaced, a span of words reordered, whitespace and case changed, words appended) and unrelated
   rows. The truth is ``exact Jaccard of the shingle sets >= threshold`` (0.85, the datanets'
   default). Each sketcher's estimate decides every pair (estimate >= threshold); then both
   indexes decide the same way a contribution is screened: datasketch ``MinHashLSH`` over
   datasketch sketches (the old ``Deduplicator``), and the node's ``Deduplicator`` (LSH bands over
   our sketches). Recall and precision of "is a near duplicate".
3. **The index as it grows**: the node's ``Deduplicator`` fed batches of 500 fresh rows (screen +
   add, what a contribution does) up to ``--index-rows`` (default 200,000; ``--full``: 1,000,000),
   time per row at each size, and the process's RSS.

    .venv/bin/python scripts/bench_dedup.py            # about a minute on 2 cores
    .venv/bin/python scripts/bench_dedup.py --full     # the index to 1,000,000 rows
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

import numpy as np
from benchutil import peak_rss_mib, progress, rss_mib, table  # noqa: E402  (scripts/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
SHINGLE, PERM, THRESHOLD = 5, 128, 0.85


def words(rng: random.Random, n: int = 20_000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(n)]


def texts(rng: random.Random, vocabulary: list[str], n: int) -> list[str]:
    return [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(20, 60))) for _ in range(n)]


def shingles(text: str) -> set[str]:
    from loraledger.datanets.content import normalise_text

    normal = normalise_text(text)
    return {normal[i: i + SHINGLE] for i in range(len(normal) - SHINGLE + 1)}


# ---- sketchers: each takes a list of texts and returns a (rows x 128) array of minimums ----------


def datasketch_sketches(batch: list[str]) -> list:
    from datasketch import MinHash

    template = MinHash(num_perm=PERM, seed=1)
    out = []
    for text in batch:
        sketch = template.copy()
        sketch.update_batch([gram.encode("utf-8") for gram in shingles(text)])
        out.append(sketch)
    return out


def rensa_sketches(batch: list[str]) -> list:
    from rensa import RMinHash

    out = []
    for text in batch:
        sketch = RMinHash(num_perm=PERM, seed=1)
        sketch.update(list(shingles(text)))
        out.append(sketch)
    return out


_RNG = np.random.default_rng(1)
_A = _RNG.integers(1, 2**63, PERM, dtype=np.uint64) | np.uint64(1)
_B = _RNG.integers(0, 2**63, PERM, dtype=np.uint64)


def xxhash_sketches(batch: list[str]) -> np.ndarray:
    from xxhash import xxh3_64_intdigest

    out = np.empty((len(batch), PERM), np.uint32)
    for row, text in enumerate(batch):
        hashes = np.fromiter((xxh3_64_intdigest(gram.encode("utf-8")) for gram in shingles(text)), np.uint64)
        out[row] = ((hashes[:, None] * _A + _B) >> np.uint64(32)).min(axis=0).astype(np.uint32)
    return out


def our_sketches(batch: list[str]) -> np.ndarray:
    from loraledger.datanets.dedup import Deduplicator

    dedup = Deduplicator(threshold=THRESHOLD, num_perm=PERM, shingle=SHINGLE)
    return np.concatenate([dedup.sketch_many(batch[i: i + 500]).signatures for i in range(0, len(batch), 500)])


SKETCHERS = {
    "datasketch MinHash (before)": (datasketch_sketches, lambda a, b: float(a.jaccard(b))),
    "rensa RMinHash (Rust)": (rensa_sketches, lambda a, b: float(a.jaccard(b))),
    "numpy universal hashing over xxhash": (xxhash_sketches, lambda a, b: float((a == b).mean())),
    "ours: one-permutation MinHash, numpy batch": (our_sketches, lambda a, b: float((a == b).mean())),
}


def sketch_costs(rows: list[str]) -> list[list[str]]:
    out = []
    for name, (sketch, _) in SKETCHERS.items():
        sketch(rows[:200])  # warm-up (imports, first numpy calls)
        gc.collect()
        start = time.perf_counter()
        sketch(rows)
        seconds = time.perf_counter() - start
        out.append([name, f"{seconds / len(rows) * 1e6:.1f} µs", f"{len(rows) / seconds:,.0f}/s"])
    return out


# ---- the planted set ----------------------------------------------------------------------------


def variant(rng: random.Random, text: str, vocabulary: list[str]) -> tuple[str, str]:
    tokens = text.split()
    how = rng.choice(["edit", "edit", "reorder", "case+space", "append"])
    if how == "edit":
        for _ in range(rng.randint(1, 6)):
            tokens[rng.randrange(len(tokens))] = rng.choice(vocabulary)
        return " ".join(tokens), "words replaced"
    if how == "reorder":
        start = rng.randrange(len(tokens) - 4)
        span = tokens[start: start + rng.randint(2, 4)]
        rng.shuffle(span)
        tokens[start: start + len(span)] = span
        return " ".join(tokens), "words reordered"
    if how == "case+space":
        return "  ".join(t.upper() if rng.random() < 0.3 else t for t in tokens) + " \n", "case and whitespace"
    return " ".join(tokens + [rng.choice(vocabulary) for _ in range(rng.randint(1, 5))]), "words appended"


def quality(rng: random.Random, vocabulary: list[str], bases: int) -> tuple[list[list[str]], list[str]]:
    base = texts(rng, vocabulary, bases)
    pairs = [(b, *variant(rng, b, vocabulary)) for b in base]
    unrelated = texts(rng, vocabulary, bases)
    truth = [len(shingles(b) & shingles(v)) / len(shingles(b) | shingles(v)) for b, v, _ in pairs]
    dup = [j >= THRESHOLD for j in truth]
    rows = []
    for name, (sketch, similarity) in SKETCHERS.items():
        left, right = sketch(base), sketch([v for _, v, _ in pairs])
        said = [similarity(left[i], right[i]) >= THRESHOLD for i in range(len(pairs))]
        rows.append([name, *_scores(dup, said)])
    # The indexes, screening every variant and unrelated row against the base rows.
    for name, index in (("index: datasketch MinHashLSH (before)", _old_index), ("index: ours (Deduplicator)", _new_index)):
        found = index(base, [v for _, v, _ in pairs] + unrelated)
        said_pairs, said_unrelated = found[: len(pairs)], found[len(pairs):]
        false_unrelated = sum(said_unrelated)
        tp = sum(d and s for d, s in zip(dup, said_pairs, strict=True))
        fp = sum(s and not d for d, s in zip(dup, said_pairs, strict=True)) + false_unrelated
        fn = sum(d and not s for d, s in zip(dup, said_pairs, strict=True))
        rows.append([name, f"{tp / max(tp + fn, 1):.4f}", f"{tp / max(tp + fp, 1):.4f}", f"{tp}/{fp}/{fn}"])
    kinds = {}
    for (_, _, kind), is_dup in zip(pairs, dup, strict=True):
        kinds.setdefault(kind, [0, 0])[is_dup] += 1
    notes = [f"{bases:,} base rows, {bases:,} variants ({', '.join(f'{k}: {v[1]} of {v[0] + v[1]} at or above {THRESHOLD}' for k, v in sorted(kinds.items()))}), "
             f"{bases:,} unrelated rows screened as well (indexes only); truth: exact Jaccard of 5-shingle sets",
             "sketcher rows decide each (base, variant) pair by the sketches' estimate; index rows screen each row "
             "against an index of the base rows (LSH candidates, then the estimate for the old index and the exact Jaccard of the two shingle sets for ours), as a contribution is screened; our index keeps the texts in memory here (the node reads candidates' texts from its database)"]
    return rows, notes


def _scores(truth: list[bool], said: list[bool]) -> list[str]:
    tp = sum(t and s for t, s in zip(truth, said, strict=True))
    fp = sum(s and not t for t, s in zip(truth, said, strict=True))
    fn = sum(t and not s for t, s in zip(truth, said, strict=True))
    return [f"{tp / max(tp + fn, 1):.4f}", f"{tp / max(tp + fp, 1):.4f}", f"{tp}/{fp}/{fn}"]


def _old_index(base: list[str], queries: list[str]) -> list[bool]:
    from datasketch import MinHashLSH

    from loraledger.datanets.dedup import _lsh_params

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=PERM, params=_lsh_params(THRESHOLD, PERM))
    sketches = datasketch_sketches(base)
    for i, sketch in enumerate(sketches):
        lsh.insert(i, sketch)
    out = []
    for sketch in datasketch_sketches(queries):
        out.append(any(float(sketch.jaccard(sketches[c])) >= THRESHOLD for c in lsh.query(sketch)))
    return out


def _new_index(base: list[str], queries: list[str]) -> list[bool]:
    from loraledger.datanets.dedup import Deduplicator

    dedup = Deduplicator(threshold=THRESHOLD, num_perm=PERM, shingle=SHINGLE)
    dedup.add_many([f"b{i}" for i in range(len(base))], [i.to_bytes(32, "big") for i in range(len(base))],
                   dedup.sketch_many(base))
    out = []
    for start in range(0, len(queries), 500):
        chunk = queries[start: start + 500]
        hashes = [(10**9 + start + i).to_bytes(32, "big") for i in range(len(chunk))]
        found, _ = dedup.screen(hashes, chunk)
        out.extend(d is not None and not d.in_batch and d.kind == "near" for d in found)
    return out


# ---- the index as it grows ----------------------------------------------------------------------


def growth(rng: random.Random, vocabulary: list[str], total: int) -> tuple[list[list[str]], list[str]]:
    from loraledger.datanets.dedup import Deduplicator

    dedup = Deduplicator(threshold=THRESHOLD, num_perm=PERM, shingle=SHINGLE)
    marks = sorted({m for m in (10_000, 100_000, 250_000, 500_000, 1_000_000) if m <= total} | {total})
    rss_before = rss_mib()
    rows, done, window, window_rows, started = [], 0, 0.0, 0, time.perf_counter()
    serial = 0
    while done < total:
        batch = texts(rng, vocabulary, 500)
        hashes = [(serial + i).to_bytes(32, "big") for i in range(len(batch))]
        serial += len(batch)
        start = time.perf_counter()
        found, sketches = dedup.screen(hashes, batch)
        keep = [i for i, f in enumerate(found) if f is None]
        dedup.add_many([hashes[i] for i in keep], [hashes[i] for i in keep],
                       sketches.take(keep))
        window += time.perf_counter() - start
        window_rows += len(batch)
        done += len(batch)
        if marks and done >= marks[0]:
            rows.append([f"{marks[0]:,} rows indexed", f"{window / window_rows * 1e6:.1f} µs",
                         f"{window_rows / window:,.0f}/s", f"{rss_mib() - rss_before:,.0f} MiB"])
            progress(f"index at {done:,} rows")
            marks.pop(0)
            window, window_rows = 0.0, 0
    notes = [f"{total:,} rows in batches of 500 (screen + add, as a contribution), in {time.perf_counter() - started:.0f} s "
             f"including text generation; each line: the rows since the previous line",
             f"RSS is the process's growth since the index was empty (texts are generated per batch and dropped); "
             f"peak RSS of the run {peak_rss_mib():,.0f} MiB"]
    return rows, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows for the sketch cost (default 20,000)")
    parser.add_argument("--planted", type=int, default=4_000, help="base rows of the planted set (default 4,000)")
    parser.add_argument("--index-rows", type=int, default=200_000)
    parser.add_argument("--full", action="store_true", help="the index to 1,000,000 rows")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    vocabulary = words(rng)
    print(f"# bench_dedup: python {sys.version.split()[0]}, seed {args.seed}, threshold {THRESHOLD}, "
          f"{PERM} permutations / bins, {SHINGLE}-character shingles")
    progress("sketch cost")
    table(f"1. Sketch cost: {args.rows:,} rows of 20-60 words", ["sketcher", "per row", "rows/s"],
          sketch_costs(texts(rng, vocabulary, args.rows)),
          ["one process, one thread; shingling (normalise + set of 5-grams) is inside every sketcher's time"])
    progress("quality on the planted set")
    rows, notes = quality(rng, vocabulary, args.planted)
    table("2. Near duplicates found, against exact Jaccard", ["decided by", "recall", "precision", "TP/FP/FN"],
          rows, notes)
    total = 1_000_000 if args.full else args.index_rows
    progress(f"the index to {total:,} rows")
    rows, notes = growth(rng, vocabulary, total)
    table("3. The node's Deduplicator as it grows (screen + add per row)",
          ["index size", "per row", "rows/s", "RSS growth"], rows, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
