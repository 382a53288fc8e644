#!/usr/bin/env python
"""Benchmark loraledger's RFC 9162 log (loraledger.crypto.translog.MerkleLog) against pymerkle 7.

Each implementation runs in its own child process (so peak memory is its own):
append N entries, then time the root, inclusion proofs at size N (mean over SAMPLES
random indices), consistency proofs from random old sizes to N, and the verifiers.
Both must agree on the root; the table is printed at the end.

    .venv/bin/python scripts/bench_recordlog.py            # N = 1,000,000, 1,000 samples
    .venv/bin/python scripts/bench_recordlog.py -n 100000 --samples 200

pymerkle is a test-only dependency (``pip install -e '.[test]'``); without it only
loraledger is measured.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from benchutil import peak_rss_mib, rss_mib  # noqa: E402  (scripts/ is on sys.path)


def _mean_us(fn: Callable[[Any], Any], args: list[Any]) -> float:
    start = time.perf_counter()
    for a in args:
        fn(a)
    return (time.perf_counter() - start) / max(len(args), 1) * 1e6


def _entry(i: int) -> bytes:
    return i.to_bytes(8, "big")


def bench_loraledger(n: int, samples: int, seed: int) -> dict[str, Any]:
    from loraledger.crypto.translog import MerkleLog, verify_consistency, verify_inclusion

    rng = random.Random(seed)
    base = rss_mib()
    log = MerkleLog()
    append = log.append
    start = time.perf_counter()
    for i in range(n):
        append(_entry(i))
    append_s = time.perf_counter() - start
    built = rss_mib()

    root = log.root()
    root_us = _mean_us(lambda _: log.root(), list(range(samples)))
    old_sizes = [rng.randint(1, n) for _ in range(samples)]
    root_old_us = _mean_us(log.root, old_sizes)
    indices = [rng.randrange(n) for _ in range(samples)]
    incl_us = _mean_us(log.inclusion_proof, indices)
    cons_us = _mean_us(log.consistency_proof, old_sizes)

    incl = [log.inclusion_proof(i) for i in indices]
    cons = [log.consistency_proof(m) for m in old_sizes]
    old_roots = {m: log.root(m) for m in old_sizes}
    assert all(verify_inclusion(p.leaf_hash, p.index, p.size, p.path, root) for p in incl)
    assert all(verify_consistency(p.old_size, p.new_size, old_roots[p.old_size], root, p.path) for p in cons)
    v_incl_us = _mean_us(lambda p: verify_inclusion(p.leaf_hash, p.index, p.size, p.path, root), incl)
    v_cons_us = _mean_us(
        lambda p: verify_consistency(p.old_size, p.new_size, old_roots[p.old_size], root, p.path), cons
    )

    peak_mb = peak_rss_mib() - base

    # Rebuild from stored leaf hashes (what the ledger does at start-up): time, then the
    # memory it allocates on top of its input (tracemalloc, in a second run).
    leaves = list(log.leaf_hashes())
    del log
    start = time.perf_counter()
    rebuilt = MerkleLog.from_leaf_hashes(leaves)
    rebuild_s = time.perf_counter() - start
    assert rebuilt.root() == root
    del rebuilt
    tracemalloc.start()
    MerkleLog.from_leaf_hashes(leaves)
    rebuild_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {
        "impl": "loraledger",
        "n": n,
        "root": root.hex(),
        "append_s": append_s,
        "root_us": root_us,
        "root_old_us": root_old_us,
        "incl_us": incl_us,
        "cons_us": cons_us,
        "v_incl_us": v_incl_us,
        "v_cons_us": v_cons_us,
        "rebuild_s": rebuild_s,
        "rebuild_peak_mb": rebuild_peak_mb,
        "mem_mb": built - base,
        "peak_mb": peak_mb,
        "proof_len": sum(len(p.path) for p in incl) / len(incl),
    }


def bench_pymerkle(n: int, samples: int, seed: int) -> dict[str, Any]:
    import pymerkle

    rng = random.Random(seed)
    base = rss_mib()
    tree = pymerkle.InmemoryTree(algorithm="sha256")  # RFC 9162 prefixes are on by default
    append = tree.append_entry
    start = time.perf_counter()
    for i in range(n):
        append(_entry(i))
    append_s = time.perf_counter() - start
    built = rss_mib()

    root = tree.get_root()
    root_us = _mean_us(lambda _: tree.get_root(), list(range(samples)))
    old_sizes = [rng.randint(1, n) for _ in range(samples)]
    root_old_us = _mean_us(tree.get_root, old_sizes)
    indices = [rng.randrange(n) for _ in range(samples)]
    incl_us = _mean_us(lambda i: tree.prove_inclusion(i + 1), indices)  # 1-based
    cons_us = _mean_us(tree.prove_consistency, old_sizes)

    incl = [(tree.prove_inclusion(i + 1), tree.get_leaf(i + 1)) for i in indices]
    cons = [tree.prove_consistency(m) for m in old_sizes]
    old_roots = {m: tree.get_root(m) for m in old_sizes}
    v_incl_us = _mean_us(lambda pl: pymerkle.verify_inclusion(pl[1], root, pl[0]), incl)
    v_cons_us = _mean_us(lambda p: pymerkle.verify_consistency(old_roots[p.prior_size], root, p), cons)
    return {
        "impl": "pymerkle 7 InmemoryTree",
        "n": n,
        "root": root.hex(),
        "append_s": append_s,
        "root_us": root_us,
        "root_old_us": root_old_us,
        "incl_us": incl_us,
        "cons_us": cons_us,
        "v_incl_us": v_incl_us,
        "v_cons_us": v_cons_us,
        "rebuild_s": None,
        "rebuild_peak_mb": None,
        "mem_mb": built - base,
        "peak_mb": peak_rss_mib() - base,
        "proof_len": sum(len(p.path) for p, _ in incl) / len(incl),
    }


IMPLS = {"loraledger": bench_loraledger, "pymerkle": bench_pymerkle}


def _run_child(impl: str, n: int, samples: int, seed: int) -> dict[str, Any] | None:
    proc = subprocess.run(
        [sys.executable, __file__, "--impl", impl, "-n", str(n), "--samples", str(samples), "--seed", str(seed)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(f"{impl}: failed\n{proc.stderr.strip()}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "us":
        return f"{value:,.1f} µs"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    return f"{value:,.0f}"


def _table(results: list[dict[str, Any]], n: int, samples: int) -> str:
    rows = [
        ("append (total)", "append_s", "s"),
        ("append rate (entries/s)", None, "rate"),
        ("root at N", "root_us", "us"),
        ("root at random earlier size", "root_old_us", "us"),
        (f"inclusion proof at N (mean of {samples})", "incl_us", "us"),
        (f"consistency proof m->N (mean of {samples})", "cons_us", "us"),
        ("verify inclusion", "v_incl_us", "us"),
        ("verify consistency", "v_cons_us", "us"),
        ("rebuild from N leaf hashes", "rebuild_s", "s"),
        ("rebuild peak allocation (tracemalloc)", "rebuild_peak_mb", "MiB"),
        ("memory after appends (RSS delta)", "mem_mb", "MiB"),
        ("peak memory, appends + proofs (max RSS delta)", "peak_mb", "MiB"),
        ("bytes per leaf (RSS delta / N)", None, "bpl"),
        ("inclusion path length (mean)", "proof_len", "len"),
    ]
    head = ["metric", *[r["impl"] for r in results]]
    body = []
    for label, key, unit in rows:
        cells = [label]
        for r in results:
            if unit == "rate":
                cells.append(f"{r['n'] / r['append_s']:,.0f}")
            elif unit == "bpl":
                cells.append(f"{r['mem_mb'] * 2**20 / r['n']:,.0f}")
            elif unit == "len":
                cells.append(f"{r[key]:.1f}")
            else:
                cells.append(_fmt(r[key], unit))
        body.append(cells)
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"N = {n:,} entries", line(head), sep, *(line(r) for r in body)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1_000_000, help="entries to append (default 1,000,000)")
    parser.add_argument("--samples", type=int, default=1000, help="random indices/sizes per measurement")
    parser.add_argument("--seed", type=int, default=9162)
    parser.add_argument("--impl", choices=sorted(IMPLS), help="run one implementation and print JSON (internal)")
    parser.add_argument("--only", choices=sorted(IMPLS), action="append", help="implementations to compare")
    args = parser.parse_args()

    if args.impl:
        print(json.dumps(IMPLS[args.impl](args.n, args.samples, args.seed)))
        return 0

    results = []
    for impl in args.only or ["loraledger", "pymerkle"]:
        print(f"running {impl} ...", file=sys.stderr, flush=True)
        result = _run_child(impl, args.n, args.samples, args.seed)
        if result is not None:
            results.append(result)
    if not results:
        return 1
    print(_table(results, args.n, args.samples))
    roots = {r["root"] for r in results}
    if len(roots) == 1:
        print(f"roots agree: {roots.pop()}")
    else:
        print("ROOTS DIFFER: " + ", ".join(f"{r['impl']}={r['root']}" for r in results))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
