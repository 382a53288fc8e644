#!/usr/bin/env python
"""Benchmark loraledger.crypto.merkle against the reference @openzeppelin/merkle-tree (node).

Builds ``(address, uint256)`` trees from the same values in Python and in JS, times only
``StandardMerkleTree.of`` (inside each runtime), then 1,000 ``get_proof`` calls, and
reports the dump size and whether the roots agree::

    .venv/bin/python scripts/bench_merkle.py                 # 100k and 1M leaves
    .venv/bin/python scripts/bench_merkle.py --sizes 10000,100000 --no-js

Exits with status 1 if any Python root differs from the JS root.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loraledger.crypto.merkle import StandardMerkleTree

ROOT = Path(__file__).resolve().parents[1]
JS_BENCH = ROOT / "scripts" / "bench_merkle.cjs"
ENCODING = ["address", "uint256"]


def make_values(n: int, seed: int) -> list[tuple[str, int]]:
    """n random (lowercase address, amount) pairs: amounts up to ~10^24 (1M tokens * 1e18)."""
    rng = random.Random(seed)
    return [("0x" + rng.randbytes(20).hex(), rng.randrange(1, 10**24)) for _ in range(n)]


def bench_python(values: list[tuple[str, int]], indices: list[int]) -> dict[str, object]:
    t0 = time.perf_counter()
    tree = StandardMerkleTree.of(values, ENCODING)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in indices:
        tree.get_proof(i)
    proofs_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    dump = tree.dump()
    text = json.dumps(dump, separators=(",", ":"))  # compact, like JSON.stringify
    dump_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    StandardMerkleTree.load(dump)
    load_s = time.perf_counter() - t0
    return {
        "build_s": build_s,
        "proofs_ms": proofs_ms,
        "root": tree.root,
        "dump_bytes": len(text.encode()),
        "dump_s": dump_s,
        "load_s": load_s,
    }


def bench_js(values: list[tuple[str, int]], indices: list[int], node: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        vfile, ifile = Path(tmp) / "values.json", Path(tmp) / "indices.json"
        vfile.write_text(json.dumps([[a, str(x)] for a, x in values]))
        ifile.write_text(json.dumps(indices))
        proc = subprocess.run(
            [node, "--max-old-space-size=12288", str(JS_BENCH), str(vfile), str(ifile)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    if proc.returncode != 0:
        raise SystemExit(f"node benchmark failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated leaf counts")
    ap.add_argument("--proofs", type=int, default=1000, help="number of proofs to time")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-js", action="store_true", help="skip the JS reference")
    args = ap.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    node = None if args.no_js else shutil.which("node")
    if not args.no_js and node is None:
        print("node not found: running Python only", file=sys.stderr)

    rows: list[tuple[str, int, dict[str, object], str]] = []
    mismatch = False
    for n in sizes:
        values = make_values(n, args.seed)
        indices = random.Random(args.seed + 1).sample(range(n), min(args.proofs, n))
        py = bench_python(values, indices)
        print(
            f"python n={n}: build {py['build_s']:.2f}s, {len(indices)} proofs "
            f"{py['proofs_ms']:.0f}ms, dump {py['dump_s']:.2f}s, load {py['load_s']:.2f}s",
            file=sys.stderr,
            flush=True,
        )
        js = bench_js(values, indices, node) if node else None
        if js is None:
            rows.append(("python", n, py, "n/a"))
            continue
        print(f"js     n={n}: build {js['build_s']:.2f}s", file=sys.stderr, flush=True)
        same = py["root"] == js["root"]
        mismatch |= not same
        rows.append(("python", n, py, "yes" if same else "NO"))
        rows.append(("js (@openzeppelin/merkle-tree)", n, js, "yes" if same else "NO"))

    header = ("implementation", "leaves", "build s", f"{args.proofs // 1000}k proofs ms" if args.proofs % 1000 == 0 else f"{args.proofs} proofs ms", "dump MB", "root matches")
    table = [header] + [
        (impl, f"{n:,}", f"{r['build_s']:.2f}", f"{r['proofs_ms']:.0f}", f"{int(r['dump_bytes']) / 1e6:.1f}", ok)
        for impl, n, r, ok in rows
    ]
    widths = [max(len(row[c]) for row in table) for c in range(len(header))]
    for k, row in enumerate(table):
        print("  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    if any(ok != "n/a" for *_, ok in rows):
        print("roots: all equal (Python == JS)" if not mismatch else "roots: MISMATCH between Python and JS")
    return 1 if mismatch else 0


if __name__ == "__main__":
    sys.exit(main())
