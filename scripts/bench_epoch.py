#!/usr/bin/env python3
"""Epoch pipeline benchmark: seal and post a 100,000-record epoch, record append rates, log proofs at 1M.

Three sections, one table each, every number measured in this run with its peer beside it:

1. **Epoch of N fee records over K accounts** (default 100,000 over 10,000): the records are
   appended with ``append_many`` (batches of 1,000) to a SQLite ledger, the contracts are
   deployed on a real anvil, ``EpochManager.seal()`` is timed (records read back and
   checked, fee split, cumulative balances, reward tree, epoch file, database commit), then
   ``submit`` + ``confirm``. Peak memory of the seal is the RSS high-water mark
   (``getrusage(RUSAGE_SELF).ru_maxrss`` before and after; the process is fresh, so the
   mark before the seal is what generating and appending the records left). A tiny second
   epoch (10 records, 3 accounts) and a third of N more records show that post gas does
   not depend on records or accounts. With ``--tracemalloc`` the third seal runs under
   ``tracemalloc`` (its Python allocation peak; about 5x slower, so off by default).
2. **Record append rate**, SQLite and PostgreSQL (a private server from ``tests/pg.py``;
   skipped with the reason when none can be started): single ``append`` (one transaction,
   one fsync each) and ``append_many`` in batches of 1,000. Peers: pymerkle 7's
   ``SqliteTree`` (database-backed: ``append_entry``, one commit each, and
   ``append_entries`` per batch) and ``InmemoryTree.append_entry`` (no database), fed the
   same leaves (the record hashes); all roots must agree.
3. **Log proofs at 1M entries**: ``loraledger.crypto.translog.MerkleLog`` against pymerkle's
   ``InmemoryTree`` (sha256, RFC 9162): inclusion proofs (mean over 1,000 random indices),
   consistency proofs (mean over 200 random pairs of sizes) and their verification. With
   ``--ledger-1m``, also ``RecordLedger`` on SQLite with 1M records (appended with
   ``append_many``; takes a few minutes): open time and its proofs.

Records are built with ``FeeRecord.model_construct`` from pre-checksummed addresses (about
10x faster than validating each one; every 100th is also built the validated way and must
be identical). Building them is never inside a timed region.

    .venv/bin/python scripts/bench_epoch.py              # full run (about 4-6 minutes on 2 cores)
    .venv/bin/python scripts/bench_epoch.py --quick      # smoke run: 5k records / 500 accounts, 100k log
    .venv/bin/python scripts/bench_epoch.py --ledger-1m  # also the 1M-record SQLite ledger
    .venv/bin/python scripts/bench_epoch.py --profile    # cProfile seals 1 and 2 (slower; prints the top entries)
    .venv/bin/python scripts/bench_epoch.py --tracemalloc --only epoch   # Python allocation peak of a seal
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchutil import peak_rss_mib, progress, rate, rss_mib, table  # noqa: E402  (scripts/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import start_anvil  # noqa: E402  (the same real-anvil helper the tests use)
from eth_utils import to_checksum_address  # noqa: E402
from pg import PostgresUnavailable, start_postgres  # noqa: E402
from sqlalchemy import text  # noqa: E402

from loraledger.chain.client import ChainClient  # noqa: E402
from loraledger.chain.compile import all_abis, compile_contracts  # noqa: E402
from loraledger.chain.contracts import LedgerContracts  # noqa: E402
from loraledger.chain.deploy import Deployer  # noqa: E402
from loraledger.chain.devnet import dev_accounts  # noqa: E402
from loraledger.crypto.translog import MerkleLog, verify_consistency, verify_inclusion  # noqa: E402
from loraledger.db import create_all, make_engine  # noqa: E402
from loraledger.epochs.machine import EpochManager  # noqa: E402  (also registers the epoch tables)
from loraledger.epochs.store import EpochFileStore  # noqa: E402
from loraledger.epochs.tables import EpochRow  # noqa: E402
from loraledger.records.fields import FrozenDict  # noqa: E402
from loraledger.records.kinds import FeeRecord, canonical_json  # noqa: E402
from loraledger.records.ledger import RecordLedger  # noqa: E402

MiB = 2**20
BATCH = 1_000
_FEE_FIELDS = frozenset(FeeRecord.model_fields)


# ------------------------------------------------------------------------------ helpers




def mean_us(fn: Callable[[Any], Any], args: Sequence[Any]) -> float:
    start = time.perf_counter()
    for a in args:
        fn(a)
    return (time.perf_counter() - start) / max(len(args), 1) * 1e6


def _addresses(rng: random.Random, n: int) -> list[str]:
    return [to_checksum_address("0x" + rng.randbytes(20).hex()) for _ in range(n)]


class Population:
    """K contributor accounts (developers are drawn from them too), payers and the operator."""

    def __init__(self, accounts: int, operator: str, seed: int):
        self.rng = random.Random(seed)
        self.contributors = _addresses(self.rng, accounts)
        self.payers = _addresses(self.rng, max(1, min(1_000, accounts)))
        self.operator = operator
        self.timestamp = 1_700_000_000

    def fee_records(self, n: int, contributors: Sequence[str] | None = None, *, developer: bool = True) -> list[FeeRecord]:
        """``n`` fee records: a payer, a fee, 3-5 weights (fewer if fewer contributors), a developer, the operator."""
        rng = self.rng
        pool = list(contributors if contributors is not None else self.contributors)
        out = []
        for i in range(n):
            weights = {a: rng.randint(1, 1_000_000) for a in rng.sample(pool, min(len(pool), rng.randint(3, 5)))}
            fields = {
                "timestamp": self.timestamp,
                "payer": rng.choice(self.payers),
                "fee": rng.randrange(10**15, 10**17),
                "weights": weights,
                "developer": rng.choice(pool) if developer else None,
                "operator": self.operator,
            }
            self.timestamp += 1
            record = FeeRecord.model_construct(
                _fields_set=set(_FEE_FIELDS), kind="fee", seq=None, version=1, ref=None,
                **{**fields, "weights": FrozenDict(weights)},
            )
            if i % 100 == 0:  # the shortcut must build exactly what validation builds
                validated = FeeRecord(**fields)
                if validated != record or canonical_json(validated) != canonical_json(record):
                    raise AssertionError(f"model_construct record differs from the validated one: {record!r}")
            out.append(record)
        return out


def append_batches(ledger: RecordLedger, records: Sequence[FeeRecord], batch: int = BATCH) -> float:
    start = time.perf_counter()
    for i in range(0, len(records), batch):
        ledger.append_many(records[i : i + batch])
    return time.perf_counter() - start


def sqlite_ledger(directory: Path, name: str) -> tuple[Any, RecordLedger]:
    engine = make_engine(f"sqlite:///{directory / name}")
    create_all(engine)
    return engine, RecordLedger(engine)


def record_hashes(engine: Any) -> list[bytes]:
    """The leaf data of the log (keccak256 of each record's canonical JSON), in seq order."""
    with engine.connect() as conn:
        return [bytes.fromhex(h[2:]) for (h,) in conn.execute(text("SELECT hash FROM records ORDER BY seq"))]


# ------------------------------------------------------------------ 1. epoch seal + post


def post_and_confirm(manager: EpochManager, row: EpochRow, timeout: float = 120.0) -> tuple[EpochRow, float]:
    start = time.perf_counter()
    manager.submit(row)
    deadline = time.monotonic() + timeout
    while not manager.confirm(manager.latest()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"epoch {row.number} not confirmed within {timeout:.0f}s")
        time.sleep(0.05)
    latest = manager.latest()
    if latest.number != row.number or latest.status != "confirmed" or latest.gas_used is None:
        raise RuntimeError(f"epoch {row.number} did not end confirmed: {latest}")
    return latest, time.perf_counter() - start


def section_epoch(args: argparse.Namespace, work: Path) -> None:
    progress(f"section 1: epoch of {args.records:,} records over {args.accounts:,} accounts")
    keys = dev_accounts(1)
    operator = keys[0]
    population = Population(args.accounts, operator.address, args.seed)
    first = population.fee_records(args.records)

    engine, ledger = sqlite_ledger(work, "epoch-ledger.sqlite")
    append_s = append_batches(ledger, first)
    body_bytes = _sum_body_bytes(engine)
    del first
    gc.collect()

    node = start_anvil("--gas-limit", "100000000")
    try:
        artifacts = compile_contracts(ROOT, ROOT / "scripts" / "solc")
        client = ChainClient(node.url, error_abis=all_abis(artifacts))
        deployment = Deployer(client, operator, artifacts, work / "deployment.json").run()
        contracts = LedgerContracts(client, deployment)
        store = EpochFileStore(work / "epochs")
        manager = EpochManager(engine, ledger, store, contracts, operator=operator,
                               lock_path=work / "epochs.lock", confirmations=1, timeout=120)

        # Epoch 1: the big one, timed clean (or under cProfile with --profile).
        gc.collect()
        rss_before, peak_before = rss_mib(), peak_rss_mib()
        profiles: dict[str, cProfile.Profile] = {}
        start = time.perf_counter()
        row1 = _sealed(manager, profiles, "seal epoch 1") if args.profile else manager.seal()
        seal1_s = time.perf_counter() - start
        peak_after = peak_rss_mib()
        file1_mb = store.path(1).stat().st_size / 1e6
        row1, post1_s = post_and_confirm(manager, row1)
        progress(f"epoch 1 sealed in {seal1_s:.1f}s, posted ({row1.gas_used:,} gas)")

        # Epoch 2: 10 records over 3 accounts (2 contributors and the operator).
        tiny = population.fee_records(10, population.contributors[:2], developer=False)
        ledger.append_many(tiny)
        start = time.perf_counter()
        row2 = _sealed(manager, profiles, "seal epoch 2 (10 records)") if args.profile else manager.seal()
        seal2_s = time.perf_counter() - start
        file2_mb = store.path(2).stat().st_size / 1e6
        row2, post2_s = post_and_confirm(manager, row2)

        # Epoch 3: N more records over the same accounts (under tracemalloc with --tracemalloc).
        third = population.fee_records(args.records)
        append3_s = append_batches(ledger, third)
        del third
        gc.collect()
        rss3_before, peak3_before = rss_mib(), peak_rss_mib()
        if args.tracemalloc:
            tracemalloc.start()
        start = time.perf_counter()
        row3 = manager.seal()
        seal3_s = time.perf_counter() - start
        peak3_after = peak_rss_mib()
        traced_peak_mb = tracemalloc.get_traced_memory()[1] / MiB if args.tracemalloc else None
        tracemalloc.stop()
        file3_mb = store.path(3).stat().st_size / 1e6
        row3, post3_s = post_and_confirm(manager, row3)
        progress(f"epochs 2 and 3 posted ({row2.gas_used:,} / {row3.gas_used:,} gas)")
    finally:
        node.process.kill()
        node.process.wait(timeout=10)
        engine.dispose()

    n, k = args.records, args.accounts
    profiled = " [cProfile on]" if args.profile else ""

    def peak_cell(before_rss: float, before_peak: float, after_peak: float) -> tuple[str, str]:
        raised = (f" -> seal raised it by {after_peak - before_peak:,.0f} MiB" if after_peak > before_peak
                  else " (the seal stayed below the earlier mark)")
        return (f"{max(after_peak, before_peak):,.0f} MiB",
                f"RSS before seal {before_rss:,.0f} MiB, high-water before {before_peak:,.0f} MiB{raised}")

    if traced_peak_mb is None:
        traced = ("-", "run with --tracemalloc (slows seal 3 about 5x)")
    else:
        per_record = traced_peak_mb * MiB / max(row3.record_count, 1)
        traced = (f"{traced_peak_mb:,.0f} MiB", f"{per_record:,.0f} B/record sealed; tracemalloc slows the seal ~5x")
    rows = [
        (f"append_many x{BATCH:,} of {n:,} records (SQLite)", f"{append_s:.1f} s",
         f"{rate(n, append_s)}; epoch 3's {n:,}: {append3_s:.1f} s"),
        (f"seal epoch 1 ({n:,} records, {row1.accounts:,} accounts){profiled}", f"{seal1_s:.1f} s",
         f"epoch 3 ({row3.record_count:,} records, {row3.accounts:,} accounts"
         + (", under tracemalloc" if args.tracemalloc else "") + f"): {seal3_s:.1f} s"),
        (f"seal epoch 2 (10 records, 3 accounts touched){profiled}", f"{seal2_s:.2f} s",
         f"tree still holds all {row2.accounts:,} accounts (cumulative)"),
        ("epoch file 1 size", f"{file1_mb:.1f} MB",
         f"records' canonical JSON alone: {body_bytes / 1e6:.1f} MB; file 2: {file2_mb:.1f} MB, file 3: {file3_mb:.1f} MB"),
        ("peak RSS during seal 1 (ru_maxrss after)", *peak_cell(rss_before, peak_before, peak_after)),
        ("peak RSS during seal 3 (ru_maxrss after)", *peak_cell(rss3_before, peak3_before, peak3_after)),
        ("Python allocation peak during seal 3 (tracemalloc)", *traced),
        ("submit + confirm epoch 1 (approve + post tx)", f"{post1_s:.2f} s",
         f"epoch 2: {post2_s:.2f} s, epoch 3: {post3_s:.2f} s"),
        ("post gas, epoch 1 (postEpoch receipt)", f"{row1.gas_used:,}", "first post: fresh storage"),
        ("post gas, epoch 2 (10 records)", f"{row2.gas_used:,}",
         f"epoch 3 ({n:,} records): {row3.gas_used:,} (diff {row3.gas_used - row2.gas_used:+,})"),
    ]
    table(
        f"1. Epoch of {n:,} fee records over {k:,} accounts (SQLite ledger, real anvil)",
        ["measure", "value", "peer / context"],
        rows,
        [
            "seal = records read back and hash-checked, fee split, cumulative balances, reward tree, epoch file "
            "(written atomically), data hash, DB commit (balances, record epochs)",
            f"post gas side by side: epoch 1 {row1.gas_used:,} | epoch 2 {row2.gas_used:,} | epoch 3 {row3.gas_used:,}: "
            "constant in records and accounts (the chain stores roots, sizes, a total and a URI only)",
            "epoch 1 costs more because it turns four slots from zero to non-zero once: the ledger's totalFunded, "
            "the distributor's merkleRoot and epoch, and the distributor's OPEN balance (22,100 gas each instead "
            "of 5,000: 4 x 17,100 = 68,400, less the 2,100 cold read of the previous epoch's logSize that "
            "epochs >= 2 pay); every epoch writes its own fresh EpochInfo slots, so those cost the same each time",
            "epochs 2 and 3 differ only in calldata bytes (logSize, recordCount, epochTotal, roots: 16 gas per "
            "non-zero byte, 4 per zero byte)",
            "peak memory: ru_maxrss is the RSS high-water mark of the whole process; tracemalloc counts Python "
            "allocations only (not SQLite's page cache, not freed-but-kept arenas), and with --tracemalloc its "
            "own bookkeeping inflates seal 3's RSS",
        ],
    )
    for title, profiler in profiles.items():
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        print(f"\n## cProfile of {title} (top 40, cumulative)")
        print(out.getvalue().strip())


def _sealed(manager: EpochManager, profiles: dict[str, cProfile.Profile], title: str) -> EpochRow | None:
    profiler = profiles[title] = cProfile.Profile()
    profiler.enable()
    try:
        return manager.seal()
    finally:
        profiler.disable()


def _sum_body_bytes(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM records")).scalar())


# ------------------------------------------------------------------------ 2. append rate


def _ledger_rates(ledger: RecordLedger, single: Sequence[FeeRecord], many: Sequence[FeeRecord]) -> tuple[float, float]:
    start = time.perf_counter()
    for record in single:
        ledger.append(record)
    single_s = time.perf_counter() - start
    many_s = append_batches(ledger, many)
    return single_s, many_s


def section_append(args: argparse.Namespace, work: Path) -> None:
    progress(f"section 2: append rate ({args.single:,} single, {args.many:,} in batches of {BATCH:,})")
    population = Population(args.accounts, dev_accounts(1)[0].address, args.seed + 1)
    single = population.fee_records(args.single)
    many = population.fee_records(args.many)
    n_single, n_many = len(single), len(many)
    results: dict[str, tuple[float, float] | str] = {}

    engine, ledger = sqlite_ledger(work, "append-ledger.sqlite")
    results["SQLite"] = _ledger_rates(ledger, single, many)
    hashes = record_hashes(engine)
    sqlite_root = ledger.root()
    engine.dispose()

    try:
        url, stop = start_postgres()
    except PostgresUnavailable as exc:
        results["PostgreSQL"] = f"unavailable: {exc}"
    else:
        try:
            pg_engine = make_engine(url)
            create_all(pg_engine)
            pg_ledger = RecordLedger(pg_engine)
            results["PostgreSQL"] = _ledger_rates(pg_ledger, single, many)
            if pg_ledger.root() != sqlite_root:
                raise AssertionError("PostgreSQL and SQLite ledgers disagree on the root")
            pg_engine.dispose()
        finally:
            stop()
    del single, many

    import pymerkle

    # Peer, database-backed: pymerkle's SqliteTree, the same leaves (the record hashes).
    tree_path = work / "pymerkle.sqlite"
    tree = pymerkle.SqliteTree(str(tree_path), algorithm="sha256")
    start = time.perf_counter()
    for h in hashes[:n_single]:
        tree.append_entry(h)
    sq_single_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(n_single, len(hashes), BATCH):
        tree.append_entries(hashes[i : i + BATCH])
    sq_many_s = time.perf_counter() - start
    start = time.perf_counter()
    sq_root = tree.get_root()
    sq_root_s = time.perf_counter() - start
    tree.close()

    # Peer, in memory: InmemoryTree.append_entry over all the leaves (no database; it has no
    # batch append of its own, so one rate serves both rows).
    mem = pymerkle.InmemoryTree(algorithm="sha256")
    start = time.perf_counter()
    for h in hashes:
        mem.append_entry(h)
    mem_s = time.perf_counter() - start
    agree = sq_root == mem.get_root() == sqlite_root

    def cells(result: tuple[float, float] | str) -> tuple[str, str]:
        if isinstance(result, str):
            return ("-", "-")
        return rate(n_single, result[0]), rate(n_many, result[1])

    lite, pg = cells(results["SQLite"]), cells(results.get("PostgreSQL", "skipped"))
    rows = [
        (f"single append ({n_single:,}, a transaction each)", lite[0], pg[0],
         rate(n_single, sq_single_s), rate(len(hashes), mem_s)),
        (f"append_many, batches of {BATCH:,} ({n_many:,})", lite[1], pg[1],
         rate(n_many, sq_many_s), rate(len(hashes), mem_s)),
    ]
    notes = [
        "records/s; FeeRecords (3-5 weights); the pymerkle peers append the same leaves (each record's keccak256) "
        "and do no record work: loraledger also serialises each record (RFC 8785), hashes it, stores its body "
        "and updates log_state, in one transaction per call",
        "SQLite: loraledger runs WAL + synchronous=FULL (an fsync per commit); pymerkle's SqliteTree uses "
        "sqlite3's defaults (rollback journal, synchronous=FULL), one commit per append_entry / append_entries",
        f"pymerkle SqliteTree stores leaves only (no root or frontier kept): its first get_root() afterwards took "
        f"{sq_root_s * 1e3:,.0f} ms; loraledger's root is ready after each append",
        f"pymerkle InmemoryTree has no batch append of its own (append_entries loops append_entry): one rate, "
        f"append_entry over all {len(hashes):,} leaves, shown in both rows",
        f"roots: loraledger SQLite{' = PostgreSQL' if not isinstance(results.get('PostgreSQL'), str) else ''} "
        f"= pymerkle SqliteTree = InmemoryTree: {'agree' if agree else 'DIFFER'} ({sqlite_root.hex()[:16]}...)",
    ]
    if isinstance(results.get("PostgreSQL"), str):
        notes.insert(0, f"PostgreSQL skipped: {results['PostgreSQL']}")
    table(
        "2. Record append rate (records/s)",
        ["operation", "loraledger SQLite", "loraledger PostgreSQL", "pymerkle SqliteTree", "pymerkle InmemoryTree"],
        rows,
        notes,
    )
    if not agree:
        raise AssertionError("roots differ between loraledger and pymerkle")


# ---------------------------------------------------------------------- 3. proofs at 1M


def _pairs(rng: random.Random, n: int, count: int) -> list[tuple[int, int]]:
    out = []
    for _ in range(count):
        a, b = rng.randint(1, n), rng.randint(1, n)
        out.append((min(a, b), max(a, b)))
    return out


def _proofs_loraledger(entries: list[bytes], indices: list[int], pairs: list[tuple[int, int]]) -> dict[str, Any]:
    log = MerkleLog()
    append = log.append
    start = time.perf_counter()
    for e in entries:
        append(e)
    build_s = time.perf_counter() - start
    root = log.root()
    incl_us = mean_us(log.inclusion_proof, indices)
    cons_us = mean_us(lambda p: log.consistency_proof(*p), pairs)
    incl = [log.inclusion_proof(i) for i in indices]
    cons = [log.consistency_proof(*p) for p in pairs]
    roots = {s: log.root(s) for p in pairs for s in p}

    def v_incl(p: Any) -> bool:
        return verify_inclusion(p.leaf_hash, p.index, p.size, p.path, root)

    def v_cons(p: Any) -> bool:
        return verify_consistency(p.old_size, p.new_size, roots[p.old_size], roots[p.new_size], p.path)

    if not all(map(v_incl, incl)) or not all(map(v_cons, cons)):
        raise AssertionError("a loraledger proof does not verify")
    return {
        "build_s": build_s, "incl_us": incl_us, "cons_us": cons_us,
        "v_incl_us": mean_us(v_incl, incl), "v_cons_us": mean_us(v_cons, cons),
        "incl_len": sum(len(p.path) for p in incl) / len(incl), "cons_len": sum(len(p.path) for p in cons) / len(cons),
        "root": root, "roots": roots,
    }


def _proofs_pymerkle(entries: list[bytes], indices: list[int], pairs: list[tuple[int, int]]) -> dict[str, Any]:
    import pymerkle

    tree = pymerkle.InmemoryTree(algorithm="sha256")  # RFC 9162 prefixes are on by default
    append = tree.append_entry
    start = time.perf_counter()
    for e in entries:
        append(e)
    build_s = time.perf_counter() - start
    root = tree.get_root()
    incl_us = mean_us(lambda i: tree.prove_inclusion(i + 1), indices)  # 1-based
    cons_us = mean_us(lambda p: tree.prove_consistency(*p), pairs)
    incl = [(tree.prove_inclusion(i + 1), tree.get_leaf(i + 1)) for i in indices]
    cons = [tree.prove_consistency(*p) for p in pairs]
    roots = {s: tree.get_root(s) for p in pairs for s in p}

    def v_incl(pl: Any) -> None:
        pymerkle.verify_inclusion(pl[1], root, pl[0])  # raises InvalidProof

    def v_cons(p: Any) -> None:
        pymerkle.verify_consistency(roots[p.prior_size], roots[p.size], p)

    return {
        "build_s": build_s, "incl_us": incl_us, "cons_us": cons_us,
        "v_incl_us": mean_us(v_incl, incl), "v_cons_us": mean_us(v_cons, cons),
        "incl_len": sum(len(p.path) for p, _ in incl) / len(incl), "cons_len": sum(len(p.path) for p in cons) / len(cons),
        "root": root, "roots": roots,
    }


def section_proofs(args: argparse.Namespace) -> None:
    n = args.log_size
    progress(f"section 3: log proofs at {n:,} entries")
    rng = random.Random(args.seed + 2)
    entries = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n)]
    indices = [rng.randrange(n) for _ in range(args.inclusion_samples)]
    pairs = _pairs(rng, n, args.consistency_samples)
    ll = _proofs_loraledger(entries, indices, pairs)
    gc.collect()
    pm = _proofs_pymerkle(entries, indices, pairs)
    gc.collect()
    root = ll["root"]
    roots_agree = pm["root"] == root and pm["roots"] == ll["roots"]

    def us(key: str) -> tuple[str, str]:
        return f"{ll[key]:,.1f} µs", f"{pm[key]:,.1f} µs"

    rows = [
        (f"build: append {n:,} entries", *(f"{r['build_s']:.1f} s ({rate(n, r['build_s'])})" for r in (ll, pm))),
        (f"inclusion proof (mean of {len(indices):,})", *us("incl_us")),
        (f"consistency proof m->n (mean of {len(pairs):,} pairs)", *us("cons_us")),
        ("verify inclusion", *us("v_incl_us")),
        ("verify consistency", *us("v_cons_us")),
        ("path length: inclusion / consistency (mean)", *(f"{r['incl_len']:.1f} / {r['cons_len']:.1f}" for r in (ll, pm))),
    ]
    notes = [
        f"roots at N and at every sampled size: {'agree' if roots_agree else 'DIFFER'} ({root.hex()[:16]}...)",
        "pymerkle paths include the leaf itself (its proof format), loraledger's are RFC 9162 PATH/PROOF",
    ]
    if args.ledger_1m:
        ledger_rows, ledger_notes = _ledger_proofs(args, indices, pairs)
        head = ["measure", "loraledger MerkleLog", "pymerkle InmemoryTree", f"RecordLedger (SQLite, {n:,} records)"]
        rows = [(*r, ledger_rows.get(r[0], "")) for r in rows] + [
            (label, "", "", value) for label, value in ledger_rows.items() if label not in {r[0] for r in rows}
        ]
        notes += ledger_notes
    else:
        head = ["measure", "loraledger MerkleLog", "pymerkle InmemoryTree"]
        notes.append("RecordLedger at the same size: run with --ledger-1m")
    table(f"3. Log proofs at {n:,} entries (sha256, RFC 9162)", head, rows, notes)
    if not roots_agree:
        raise AssertionError("MerkleLog and pymerkle roots differ")


def _ledger_proofs(
    args: argparse.Namespace, indices: list[int], pairs: list[tuple[int, int]]
) -> tuple[dict[str, str], list[str]]:
    n = args.log_size
    progress(f"section 3: RecordLedger with {n:,} records (--ledger-1m)")
    work = Path(tempfile.mkdtemp(prefix="bench-epoch-1m-", dir=args.tmp))
    try:
        engine, ledger = sqlite_ledger(work, "ledger-1m.sqlite")
        population = Population(args.accounts, dev_accounts(1)[0].address, args.seed + 3)
        append_s = 0.0
        for chunk in range(0, n, 50_000):  # build and append in chunks: records are not all held at once
            records = population.fee_records(min(50_000, n - chunk))
            append_s += append_batches(ledger, records)
            progress(f"  {ledger.size():,} records appended ({append_s:.0f} s appending)")
        del records
        engine.dispose()
        db_mb = sum(p.stat().st_size for p in work.iterdir()) / 1e6
        gc.collect()
        engine = make_engine(f"sqlite:///{work / 'ledger-1m.sqlite'}")
        start = time.perf_counter()
        ledger = RecordLedger(engine)
        open_s = time.perf_counter() - start
        root = ledger.root()
        incl_us = mean_us(ledger.inclusion_proof, indices)
        cons_us = mean_us(lambda p: ledger.consistency_proof(*p), pairs)
        proofs = [ledger.inclusion_proof(i) for i in indices]
        if not all(p.verify(root) for p in proofs):
            raise AssertionError("RecordLedger inclusion proof does not verify")
        vincl_us = mean_us(lambda p: p.verify(root), proofs)
        cproofs = [ledger.consistency_proof(*p) for p in pairs]
        sizes = {s: ledger.root(s) for p in pairs for s in p}
        if not all(c.verify(sizes[c.old_size], sizes[c.new_size]) for c in cproofs):
            raise AssertionError("RecordLedger consistency proof does not verify")
        vcons_us = mean_us(lambda c: c.verify(sizes[c.old_size], sizes[c.new_size]), cproofs)
        incl_len = sum(len(p.path) for p in proofs) / len(proofs)
        cons_len = sum(len(c.path) for c in cproofs) / len(cproofs)
        get_us = mean_us(ledger.get, indices[:200])
        engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    labels = {
        "build": f"build: append {n:,} entries",
        "incl": f"inclusion proof (mean of {len(indices):,})",
        "cons": f"consistency proof m->n (mean of {len(pairs):,} pairs)",
        "vincl": "verify inclusion",
        "vcons": "verify consistency",
        "len": "path length: inclusion / consistency (mean)",
    }
    rows = {
        labels["build"]: f"{append_s:.0f} s ({rate(n, append_s)}, append_many x{BATCH:,})",
        labels["incl"]: f"{incl_us:,.1f} µs",
        labels["cons"]: f"{cons_us:,.1f} µs",
        labels["vincl"]: f"{vincl_us:,.1f} µs",
        labels["vcons"]: f"{vcons_us:,.1f} µs",
        labels["len"]: f"{incl_len:.1f} / {cons_len:.1f}",
        f"open: load and check {n:,} hashes, rebuild the tree": f"{open_s:.1f} s",
        "get(seq): read + hash-check + parse one record (mean of 200)": f"{get_us:,.0f} µs",
        "database size": f"{db_mb:,.0f} MB",
    }
    return rows, ["RecordLedger answers proofs from its in-memory MerkleLog (rebuilt from the records at open), "
                  "so its proof time is MerkleLog's plus a lock; its leaves are FeeRecord hashes (its own root), "
                  "its build time is append_many of the records (serialise, hash, insert, commit per batch)"]


# ------------------------------------------------------------------------------- main


# ------------------------------------------------------- 4. streaming seal vs in-memory seal


def _seal_child(argv: list[str]) -> int:
    """In a fresh process: seal the ledger's records one way and print ``seconds peak_mib base_mib digest
    log_root rewards_root chunks``.

    ``previous``: the seal as it was before streaming (every record read and parsed into memory,
    ``build_epoch_file``, the whole file written with the compact writer, ``data_hash`` over it);
    no database rows are written. ``streaming``: ``EpochManager.seal()`` as the node runs it, with the
    store told never to split (one file, to compare byte for byte). ``chunked``: ``seal()`` with a store that splits an epoch of ``max_file_mb`` or more into chunks (the node's
    default: 100 MB, chunks of 32 MiB). ``verify``:
    ``verify_epoch_files`` of the chunked epoch from its files alone (manifest + chunks)."""
    import json as _json

    from loraledger.epochs.file import build_epoch_file, cumulative_after, data_hash, verify_epoch_files
    from loraledger.fsutil import atomic_write_json
    from loraledger.rewards.split import FeeSplit

    mode, db_url, out, rpc_url, deployment_path, operator_key, max_file_mb, chunk_mb = argv
    sizes = {"max_file_bytes": int(float(max_file_mb) * 1e6), "chunk_bytes": int(float(chunk_mb) * 2**20)}
    engine = make_engine(db_url)
    ledger = RecordLedger(engine)
    if mode != "verify":
        ledger.sync()
    gc.collect()
    base = rss_mib()
    start = time.perf_counter()
    chunks = 0
    if mode == "previous":
        deployment = _json.loads(Path(deployment_path).read_text())
        end = ledger.size()
        records = ledger.range(0, end)
        split = FeeSplit(7000, 2000, 1000)
        balances = cumulative_after({}, records, split)
        epoch_file = build_epoch_file(
            epoch=1, chain_id=int(deployment["chainId"]), ledger=deployment["contracts"]["AttributionLedger"]["address"],
            distributor=deployment["contracts"]["RewardDistributor"]["address"], records=records, log_size=end,
            log_root=ledger.root(end), consistency_proof=ledger.consistency_proof(0, end).path, previous=None,
            fee_split=split, balances=balances)
        atomic_write_json(Path(out), epoch_file, compact=True)
        digest, log_root, rewards_root = data_hash(epoch_file), epoch_file["log"]["root"], epoch_file["rewards"]["root"]
    elif mode == "verify":
        store = EpochFileStore(Path(out).parent)
        [check] = verify_epoch_files(store.read_all(), store.read_chunk)
        if check.problems:
            raise SystemExit(f"verify found problems: {check.problems[:3]}")
        digest, log_root, rewards_root = check.data_hash, check.log_root, check.rewards_root
    else:
        from eth_account import Account

        from loraledger.chain.deploy import load_deployment

        client = ChainClient(rpc_url)
        contracts = LedgerContracts(client, load_deployment(Path(deployment_path)))
        store = EpochFileStore(Path(out).parent, **({"max_file_bytes": 10**15} if mode == "streaming" else sizes))
        manager = EpochManager(engine, ledger, store, contracts,
                               operator=Account.from_key(operator_key), lock_path=Path(out).parent / "epochs.lock")
        row = manager.seal()
        digest, log_root, rewards_root = row.data_hash, row.log_root, row.rewards_root
    seconds, peak = time.perf_counter() - start, peak_rss_mib()
    if mode in ("chunked", "verify"):  # after the peak is taken: the one-file epoch is not read back
        chunks = len(EpochFileStore(Path(out).parent).read(1)["chunks"])
    print(f"{seconds} {peak} {base} {digest} {log_root} {rewards_root} {chunks}")
    return 0


def section_seal(args: argparse.Namespace, work: Path) -> None:
    n, k = args.seal_records, args.seal_accounts
    progress(f"section 4: streaming seal vs in-memory seal, {n:,} records over {k:,} accounts")
    operator = dev_accounts(1)[0]
    population = Population(k, operator.address, args.seed + 4)
    engine, ledger = sqlite_ledger(work, "seal-ledger.sqlite")
    append_s = 0.0
    made = 0
    while made < n:  # generated and appended in slices, so the parent never holds them all
        part = population.fee_records(min(100_000, n - made))
        append_s += append_batches(ledger, part)
        made += len(part)
        del part
        progress(f"  {made:,} records appended")
    engine.dispose()
    # The streaming seal writes its rows (the epoch, records.epoch): the chunked seal gets its own copy.
    shutil.copyfile(work / "seal-ledger.sqlite", work / "seal-ledger-chunked.sqlite")
    node = start_anvil("--gas-limit", "100000000")
    try:
        artifacts = compile_contracts(ROOT, ROOT / "scripts" / "solc")
        client = ChainClient(node.url, error_abis=all_abis(artifacts))
        Deployer(client, operator, artifacts, work / "seal-deployment.json").run()
        results = {}
        for mode, database, folder in (("previous", "seal-ledger", "seal-previous"),
                                       ("streaming", "seal-ledger", "seal-streaming"),
                                       ("chunked", "seal-ledger-chunked", "seal-chunked"),
                                       ("verify", "seal-ledger-chunked", "seal-chunked")):
            out = work / folder / "1.json"
            out.parent.mkdir(exist_ok=True)
            progress(f"  {mode} in a fresh process")
            done = subprocess.run(
                [sys.executable, __file__, "--seal-child", mode, f"sqlite:///{work / (database + '.sqlite')}", str(out),
                 node.url, str(work / "seal-deployment.json"), "0x" + operator.key.hex(), str(args.seal_max_file_mb),
                 str(args.seal_chunk_mb)],
                capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"the {mode} run failed:\n{done.stderr[-3000:]}")
            seconds, peak, base, digest, log_root, rewards_root, chunks = done.stdout.split()[-7:]
            results[mode] = (float(seconds), float(peak), float(base), digest, out, log_root, rewards_root, int(chunks))
    finally:
        node.process.kill()
        node.process.wait(timeout=10)
    same = results["previous"][4].read_bytes() == results["streaming"][4].read_bytes()
    chunk_dir = work / "seal-chunked" / "chunks"
    chunk_sizes = sorted(path.stat().st_size for path in chunk_dir.iterdir()) if chunk_dir.is_dir() else [0]
    rows = []
    for mode, label in (("previous", "in-memory seal (before): range(), build_epoch_file, one write"),
                        ("streaming", "streaming seal, one file: EpochManager.seal()"),
                        ("chunked", f"streaming seal, chunked (≥ {args.seal_max_file_mb:g} MB split)"),
                        ("verify", "verify the chunked epoch from its files (verify_epoch_files)")):
        seconds, peak, base = results[mode][:3]
        rows.append((label, f"{seconds:.1f} s", f"{seconds / n * 1e6:.1f} µs", f"{peak:,.0f} MiB",
                     f"{peak - base:,.0f} MiB"))
    ratio = results["streaming"][0] / results["previous"][0]
    roots_equal = len({results[m][5:7] for m in results}) == 1
    table(f"4. Sealing one epoch of {n:,} fee records over {k:,} accounts, each seal in a fresh process (SQLite)",
          ["seal", "time", "per record", "peak RSS", "peak above the opened ledger"], rows,
          [f"records appended beforehand ({append_s:.0f} s, not timed here); each seal child opens the ledger (its "
           "in-memory log of every leaf: the 'opened ledger' baseline), then seals; the verify child opens no ledger",
           f"one-file seals byte-identical: {'yes' if same else 'NO'}; data hashes {'equal' if results['previous'][3] == results['streaming'][3] else 'DIFFER'}; "
           f"file {results['streaming'][4].stat().st_size / 1e6:,.0f} MB; streaming / in-memory time: {ratio:.2f}x",
           f"chunked: {results['chunked'][7]} chunks of {chunk_sizes[0] / 1e6:,.1f} to {chunk_sizes[-1] / 1e6:,.1f} MB and a "
           f"{results['chunked'][4].stat().st_size / 1e6:,.1f} MB manifest; log and rewards roots of all four runs "
           f"{'equal' if roots_equal else 'DIFFER'}; verify's data hash {'equals' if results['verify'][3] == results['chunked'][3] else 'DIFFERS from'} the seal's",
           "the streaming seals also write their database rows (the epoch, 'records.epoch' for every record, the "
           "changed balances); the in-memory child writes none"])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--seal-child":
        return _seal_child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="fee records in epochs 1 and 3 (default 100,000)")
    parser.add_argument("--accounts", type=int, default=10_000, help="contributor accounts (default 10,000)")
    parser.add_argument("--single", type=int, default=2_000, help="records for the single-append rate (default 2,000)")
    parser.add_argument("--many", type=int, default=50_000, help="records for the append_many rate (default 50,000)")
    parser.add_argument("--log-size", type=int, default=1_000_000, help="entries of the proof-benchmark log (default 1,000,000)")
    parser.add_argument("--inclusion-samples", type=int, default=1_000)
    parser.add_argument("--consistency-samples", type=int, default=200)
    parser.add_argument("--ledger-1m", action="store_true", help="also a RecordLedger (SQLite) of --log-size records (minutes)")
    parser.add_argument("--profile", action="store_true", help="run seals 1 and 2 under cProfile and print the top entries")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="run the third seal under tracemalloc (its Python allocation peak; ~5x slower)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5k records / 500 accounts, 500 + 5k appends, 100k log")
    parser.add_argument("--only", choices=["epoch", "append", "proofs", "seal"], action="append",
                        help="sections to run (default all)")
    parser.add_argument("--seal-records", type=int, default=1_000_000,
                        help="records of the streaming-seal section (default 1,000,000)")
    parser.add_argument("--seal-accounts", type=int, default=100_000,
                        help="accounts of the streaming-seal section (default 100,000)")
    parser.add_argument("--seal-max-file-mb", type=float, default=100.0,
                        help="the chunked seal splits an epoch of this many MB of records (default 100, the node's)")
    parser.add_argument("--seal-chunk-mb", type=float, default=32.0, help="MiB per chunk (default 32, the node's)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--tmp", default=None, help="directory for the temporary databases (default: the system temp dir)")
    args = parser.parse_args()
    if args.quick:
        args.records, args.accounts = min(args.records, 5_000), min(args.accounts, 500)
        args.single, args.many = min(args.single, 500), min(args.many, 5_000)
        args.log_size = min(args.log_size, 100_000)
        args.inclusion_samples, args.consistency_samples = min(args.inclusion_samples, 200), min(args.consistency_samples, 50)
        args.seal_records, args.seal_accounts = min(args.seal_records, 20_000), min(args.seal_accounts, 2_000)
        args.seal_max_file_mb, args.seal_chunk_mb = min(args.seal_max_file_mb, 2.0), min(args.seal_chunk_mb, 1.0)

    sections = args.only or ["epoch", "append", "proofs", "seal"]
    started = time.perf_counter()
    print(f"# bench_epoch: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, seed {args.seed}"
          + (" (--quick)" if args.quick else ""))
    work = Path(tempfile.mkdtemp(prefix="bench-epoch-", dir=args.tmp))
    try:
        timings = []
        for name, fn in (("epoch", lambda: section_epoch(args, work)), ("append", lambda: section_append(args, work)),
                         ("proofs", lambda: section_proofs(args)), ("seal", lambda: section_seal(args, work))):
            if name in sections:
                t = time.perf_counter()
                fn()
                timings.append(f"{name} {time.perf_counter() - t:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal runtime {time.perf_counter() - started:.0f} s ({', '.join(timings)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
