#!/usr/bin/env python3
"""Datanet benchmark: signed-contribution ingest, signature recovery, snapshots at 100k and 1M rows.

Three sections, one table each (plus a per-stage breakdown of a contribution), every number
measured in this run with its peer beside it:

1. **Ingest N rows from K contributors** (default 100,000 rows from 1,000): each contributor
   (a fixed key, ``keccak("bench-datanets/<i>")``) sends batches of ``--batch-rows`` rows
   (default 10) of the ``instruction`` schema, unique random-word texts with no near
   duplicates, signed with ``sign_contribution`` (nonce 0, 1, ...). Contributors take turns
   (round r is everyone's nonce r); each round is signed *before* it is timed, so signing is
   never inside a timed region. ``DatanetService.contribute`` is timed per batch, end to end
   (parse, content hash, signature recovery, nonce check, exact and MinHash dedup against
   the growing index, ledger append of one ContributionRecord and one RowsDecisionRecord per
   batch, row and nonce inserts, commit with fsync), on a SQLite ledger and a datanet created
   on a real anvil (policy ``auto``, near-duplicate threshold 85 %). Reported: rows/s and
   batches/s (one signature recovery per batch), rows/s over the first and the last 10,000
   rows and per tenth of the ingest (does the growing dedup index slow it down?), batch
   latency percentiles, and the RSS the ingest left behind. With ``--clients N`` each round's
   batches are sent by N threads at once (as the node's API threads serve many contributors;
   the service parses, verifies and sketches them in parallel and screens and writes them one
   at a time per datanet), and rows/s is over each round's wall time. A breakdown table times the
   stages of a contribution out of band on a sample of the same batches, and (``--profile``,
   on by default) cProfile runs over extra batches at full index size.
2. **Signature recovery**: the same digests (the EIP-712 digests of the ingested batches,
   default 10,000) recovered through ``recover_signer`` (the node's path: signature
   parsing, EIP-712 digest, eth_keys recovery, checksum address), ``eth_keys``
   ``Signature.recover_public_key_from_msg_hash``, ``Account._recover_hash`` and the
   backend's bare ``ecdsa_recover`` (the limit), under each eth_keys backend available:
   the pure-Python ``NativeECCBackend`` and, when ``coincurve`` can be imported (installed,
   or a directory given with ``--coincurve-path``), ``CoinCurveECCBackend``. The native
   backend is about 4 ms per recovery, so it runs on the first ``--native-recoveries``
   digests (default 1,000) of the same list. Every recovered address is checked.
3. **Snapshots**: ``DatanetService.snapshot`` of the ingested datanet (read the accepted
   rows, StandardMerkleTree of ``(bytes32 rowHash, address contributor)``, manifest,
   ``publishSnapshot`` on anvil, tree dump and record into the ledger) in a fresh child
   process, so its RSS high-water mark is its own; and, also in fresh children, the tree
   and manifest part alone (``StandardMerkleTree.of``, contributor counts + RFC 8785 +
   keccak of the manifest, ``dump()`` + ``json.dumps``) at the ingested size and at
   1,000,000 leaves. ``--rows-1m`` ingests 1,000,000 rows through the service (about 4 minutes
   in batches of 500, with its wall time, rate per tenth and peak RSS in section 1), and then
   snapshots them.
   With ``--tracemalloc`` each child runs once more under ``tracemalloc`` (Python
   allocation peak; several times slower, so off by default).

    .venv/bin/python scripts/bench_datanets.py            # full run (6-7 minutes on 2 cores, ~5 of them ingest)
    .venv/bin/python scripts/bench_datanets.py --quick    # smoke run: 100 contributors, 2,000 rows, 100k tree
    .venv/bin/python scripts/bench_datanets.py --coincurve-path /tmp/coincurve  # also the coincurve backend
    .venv/bin/python scripts/bench_datanets.py --ecc coincurve --coincurve-path /tmp/coincurve  # ingest with it
    .venv/bin/python scripts/bench_datanets.py --tracemalloc --profile 0

``--coincurve-path`` takes a directory holding coincurve (e.g. from
``pip install --target DIR coincurve``), so the benchmark can compare backends without
changing the project's environment. The ingest uses the backend eth_keys picks in the
project's environment unless ``--ecc`` says otherwise.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchutil import peak_rss_mib, progress, rate, rss_mib, table  # noqa: E402  (scripts/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import rfc8785  # noqa: E402
from conftest import start_anvil  # noqa: E402  (the same real-anvil helper the tests use)
from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402
from eth_keys import keys  # noqa: E402
from eth_keys.backends import get_backend_class, get_default_backend_class  # noqa: E402
from eth_utils import keccak, to_checksum_address  # noqa: E402

from loraledger.chain.client import ChainClient  # noqa: E402
from loraledger.chain.compile import all_abis, compile_contracts  # noqa: E402
from loraledger.chain.contracts import DatanetRegistryContract, all_packaged_abis  # noqa: E402
from loraledger.chain.deploy import Deployer  # noqa: E402
from loraledger.chain.devnet import dev_accounts  # noqa: E402
from loraledger.crypto.merkle import StandardMerkleTree  # noqa: E402
from loraledger.datanets import service as service_module  # noqa: E402
from loraledger.datanets.content import ROW_LEAF_ENCODING, content_hash, parse_rows, row_hash_and_text  # noqa: E402
from loraledger.datanets.contribution import (
    Contribution,
    ContributionDomain,
    digest,
    parse_signature,
    recover_signer,
    sign_contribution,
)
from loraledger.datanets.dedup import Deduplicator  # noqa: E402
from loraledger.datanets.service import MANIFEST_FORMAT, DatanetService  # noqa: E402
from loraledger.db import make_engine
from loraledger.errors import InputError  # noqa: E402
from loraledger.node.context import create_tables  # noqa: E402
from loraledger.records.ledger import RecordLedger  # noqa: E402

MiB = 2**20
SCHEMA = "instruction"
LICENSE = "CC-BY-4.0"
DEADLINE = 2**40
NEAR_DUPLICATE_PCT = 85
BACKENDS = {
    "native": "eth_keys.backends.NativeECCBackend",
    "coincurve": "eth_keys.backends.CoinCurveECCBackend",
}


# ------------------------------------------------------------------------------ helpers




def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, ``/proc/self/clear_refs``); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def start_peak() -> tuple[float, float, bool]:
    """Collect garbage, reset the high-water mark; (RSS now, high-water now, was it reset)."""
    gc.collect()
    was_reset = reset_peak()
    return rss_mib(), peak_rss_mib(), was_reset


@contextmanager
def ecc_backend(name: str | None) -> Iterator[None]:
    """Run with eth_keys' backend set to ``name`` ("native"/"coincurve"; None: leave it).

    eth_keys' lazy ``keys`` API (used by ``recover_signer`` and eth-account) looks the backend up
    on every call, from ``ECC_BACKEND_CLASS`` or what is importable, so this switches it for
    the node's code path too."""
    if name is None:
        yield
        return
    before = os.environ.get("ECC_BACKEND_CLASS")
    os.environ["ECC_BACKEND_CLASS"] = BACKENDS[name]
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ECC_BACKEND_CLASS", None)
        else:
            os.environ["ECC_BACKEND_CLASS"] = before


def coincurve_importable() -> bool:
    try:
        import coincurve  # noqa: F401  (only whether it imports)
    except ImportError:
        return False
    return True


def backend_label(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


# ------------------------------------------------------------------------------ rows and batches


class RowMaker:
    """Instruction rows of random words from a fixed vocabulary: unique, no near duplicates
    (two random rows share almost none of their 5-character shingles)."""

    def __init__(self, seed: int, vocabulary: int = 5_000):
        self.rng = random.Random(seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        words: set[str] = set()
        while len(words) < vocabulary:
            words.add("".join(self.rng.choice(letters) for _ in range(self.rng.randint(3, 10))))
        self.words = sorted(words)

    def _sentence(self, low: int, high: int, end: str) -> str:
        text = " ".join(self.rng.choices(self.words, k=self.rng.randint(low, high)))
        return text[0].upper() + text[1:] + end

    def row(self) -> dict[str, str]:
        return {"prompt": self._sentence(8, 14, "?"), "completion": self._sentence(20, 40, ".")}

    def jsonl(self, n: int) -> bytes:
        return "".join(json.dumps(self.row()) + "\n" for _ in range(n)).encode("utf-8")


class Prepared:
    """One signed batch, ready to send."""

    __slots__ = ("account", "data", "contribution", "signature", "rows")

    def __init__(self, account: LocalAccount, data: bytes, contribution: Contribution, signature: str, rows: int):
        self.account, self.data, self.contribution, self.signature, self.rows = account, data, contribution, signature, rows


def contributor_keys(n: int) -> list[LocalAccount]:
    return [Account.from_key(keccak(text=f"bench-datanets/{i}")) for i in range(n)]


def prepare(maker: RowMaker, domain: ContributionDomain, datanet_id: int, account: LocalAccount, nonce: int,
            rows: int) -> Prepared:
    data = maker.jsonl(rows)
    contribution = Contribution(datanet_id, account.address, content_hash(parse_rows(data, SCHEMA)), LICENSE,
                                nonce, DEADLINE)
    return Prepared(account, data, contribution, sign_contribution(account, domain, contribution), rows)


# ------------------------------------------------------------------------------ environment


class Bench:
    """The anvil, the deployment, the ledger and the service the sections share."""

    def __init__(self, args: argparse.Namespace, work: Path):
        self.args = args
        self.work = work
        self.operator = dev_accounts(1)[0]
        self.node = start_anvil()
        try:
            artifacts = compile_contracts(ROOT, ROOT / "scripts" / "solc")
            self.client = ChainClient(self.node.url, error_abis=all_abis(artifacts))
            deployment = Deployer(self.client, self.operator, artifacts, work / "deployment.json").run()
        except BaseException:
            self.node.process.kill()
            raise
        self.registry_address = deployment.address("DatanetRegistry")
        self.registry = DatanetRegistryContract(self.client, self.registry_address)
        self.db_path = work / "ledger.sqlite"
        self.db_url = f"sqlite:///{self.db_path}"
        self.stop_postgres: Callable[[], None] | None = None
        if args.postgres:  # a private, durable server (fsync and synchronous commits on, like SQLite's FULL)
            from pg import start_postgres

            self.db_url, self.stop_postgres = start_postgres(durable=True, socket=args.postgres_socket)
        self.engine = make_engine(self.db_url)
        create_tables(self.engine)
        self.ledger = RecordLedger(self.engine)
        self.service = DatanetService(self.engine, self.ledger, self.registry)
        self.datanet = self.service.create(
            self.operator, owner=self.operator.address, name="bench", row_schema=SCHEMA, licenses=[LICENSE],
            policy="auto", near_duplicate_pct=NEAR_DUPLICATE_PCT,
        )
        self.maker = RowMaker(args.seed)
        self.accounts: list[LocalAccount] = []
        self.sample: list[Prepared] = []  # the first batches sent, kept for sections 1b and 2
        self.next_nonce: dict[str, int] = {}
        self.rows_accepted = 0
        self.rows_accepted_at_snapshot = 0
        self.ingest_rate = 0.0

    def close(self) -> None:
        self.node.process.kill()
        self.node.process.wait(timeout=10)
        self.engine.dispose()
        if self.stop_postgres is not None:
            self.stop_postgres()

    @property
    def db_name(self) -> str:
        if self.stop_postgres is None:
            return "SQLite"
        return "PostgreSQL, fsync on" + (", Unix socket" if self.args.postgres_socket else ", TCP")

    def prepare_round(self, accounts: Sequence[LocalAccount], rows: int) -> list[Prepared]:
        """One batch per account at its next nonce, signed with the fastest backend there is
        (RFC 6979 signatures are the same whichever backend makes them)."""
        with ecc_backend("coincurve" if coincurve_importable() else None):
            out = []
            for account in accounts:
                nonce = self.next_nonce.get(account.address, 0)
                self.next_nonce[account.address] = nonce + 1
                out.append(prepare(self.maker, self.service.domain, self.datanet.id, account, nonce, rows))
        return out


# ------------------------------------------------------------------------------ 1. ingest


def section_ingest(bench: Bench) -> dict[str, Any]:
    args = bench.args
    k, per_batch = args.contributors, args.batch_rows
    rounds = max(1, args.rows // (k * per_batch))
    total_rows = rounds * k * per_batch
    progress(f"section 1: {k:,} contributor keys, {rounds} round(s) of {k:,} batches x {per_batch} rows "
             f"= {total_rows:,} rows (ingest ECC backend: {args.ecc_ingest})")
    started = time.perf_counter()
    with ecc_backend("coincurve" if coincurve_importable() else None):
        bench.accounts = contributor_keys(k)
    keys_s = time.perf_counter() - started

    # In situ, during the timed ingest: the time the garbage collector takes (its callbacks), and
    # the time inside RecordLedger.append_many (an instance attribute wrapping the method).
    gc_stats = {"start": 0.0, "s": 0.0, "n": 0, "full": 0, "full_s": 0.0, "max": 0.0}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_stats["start"] = time.perf_counter()
            return
        pause = time.perf_counter() - gc_stats["start"]
        gc_stats["s"] += pause
        gc_stats["n"] += 1
        gc_stats["max"] = max(gc_stats["max"], pause)
        if info.get("generation") == 2:
            gc_stats["full"] += 1
            gc_stats["full_s"] += pause

    append_s = [0.0]
    append_many = bench.ledger.append_many

    def timed_append_many(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return append_many(*a, **kw)
        finally:
            append_s[0] += time.perf_counter() - t

    rss_before, peak_before, peak_reset = start_peak()
    durations: list[float] = []
    accepted_rows: list[int] = []
    refused: list[str] = []
    sign_s = 0.0
    service, datanet_id = bench.service, bench.datanet.id
    costs: list[float] = []
    pool = ThreadPoolExecutor(args.clients, thread_name_prefix="client") if args.clients > 1 else None

    def contribute_one(p: Prepared) -> tuple[float, Any]:
        t = time.perf_counter()
        try:
            result: Any = service.contribute(datanet_id, p.data, p.contribution, p.signature)
        except InputError as exc:
            result = exc
        return time.perf_counter() - t, result

    wall = time.perf_counter()
    for r in range(rounds):
        t = time.perf_counter()
        batches = bench.prepare_round(bench.accounts, per_batch)
        sign_s += time.perf_counter() - t
        if len(bench.sample) < args.recoveries:
            bench.sample.extend(batches[: args.recoveries - len(bench.sample)])
        bench.ledger.append_many = timed_append_many  # type: ignore[method-assign]
        gc.callbacks.append(on_gc)
        try:
            with ecc_backend(args.ecc_ingest):
                round_started = time.perf_counter()
                if pool is None:
                    outcomes = [contribute_one(p) for p in batches]
                else:  # N clients at once, as the API's threads serve them
                    outcomes = list(pool.map(contribute_one, batches))
                round_s = time.perf_counter() - round_started
                for p, (seconds, result) in zip(batches, outcomes, strict=True):
                    durations.append(seconds)
                    # What the batch cost the ingest: its own time alone, its share of the round's
                    # wall time with several clients (their calls overlap).
                    costs.append(seconds if pool is None else round_s / len(batches))
                    if isinstance(result, InputError):
                        accepted_rows.append(0)
                        refused.append(result.message if hasattr(result, "message") else str(result))
                        continue
                    if result.status != "accepted" or len(result.row_hashes) != p.rows:
                        raise AssertionError(f"unexpected result {result}")
                    accepted_rows.append(p.rows)
        finally:
            gc.callbacks.remove(on_gc)
            del bench.ledger.append_many  # back to the class's method
        bench.rows_accepted += sum(accepted_rows[-len(batches):])
        done = sum(accepted_rows)
        progress(f"  round {r + 1}/{rounds}: {done:,} rows accepted, "
                 f"{rate(done, sum(costs))} so far (last round {rate(sum(accepted_rows[-len(batches):]), sum(costs[-len(batches):]))})")
    wall_s = time.perf_counter() - wall
    if pool is not None:
        pool.shutdown()
    rss_after, peak_after = rss_mib(), peak_rss_mib()

    counts = service.counts(datanet_id)
    if counts.get("accepted", 0) != bench.rows_accepted:
        raise AssertionError(f"datanet counts {counts} != {bench.rows_accepted} accepted rows")
    n_batches = len(durations)
    accepted_batches = n_batches - len(refused)
    expected_records = 1 + 2 * accepted_batches  # the create, then a contribution and a decision per batch
    if bench.ledger.size() != expected_records:
        raise AssertionError(f"ledger holds {bench.ledger.size()} records, expected {expected_records}")
    db_mb = sum(p.stat().st_size for p in bench.work.iterdir() if p.name.startswith("ledger.sqlite")) / 1e6

    ingest_s = sum(costs)
    rows_total = sum(accepted_rows)

    def window(batch_indices: range) -> str:
        rows = sum(accepted_rows[i] for i in batch_indices)
        secs = sum(costs[i] for i in batch_indices)
        return f"{rate(rows, secs)} ({secs / max(len(batch_indices), 1) * 1e3:.1f} ms/batch)"

    w_rows = min(10_000, max(per_batch, rows_total // 5))
    w_batches = max(1, math.ceil(w_rows / per_batch))
    tenths = []
    for i in range(10):
        lo, hi = n_batches * i // 10, n_batches * (i + 1) // 10
        if hi > lo:
            tenths.append(f"{sum(accepted_rows[lo:hi]) / sum(costs[lo:hi]):,.0f}")
    lat = sorted(durations)
    rows = [
        (f"contribute: {rows_total:,} rows in {n_batches:,} batches from {k:,} contributors"
         + (f", {args.clients} clients at once" if pool is not None else ""),
         f"{ingest_s:.1f} s", f"{rate(rows_total, ingest_s)}",
         f"{rate(accepted_batches, ingest_s)} batches = signature recoveries"),
        (f"  first {w_batches * per_batch:,} rows (dedup index nearly empty)", "", window(range(0, w_batches)), ""),
        (f"  last {w_batches * per_batch:,} rows (dedup index at {rows_total - w_batches * per_batch:,}+ rows)", "",
         window(range(max(0, n_batches - w_batches), n_batches)), ""),
        ("  batch latency p50 / p90 / p99 / max", "",
         " / ".join(f"{percentile(lat, q) * 1e3:.1f}" for q in (0.5, 0.9, 0.99)) + f" / {lat[-1] * 1e3:.0f} ms", ""),
        ("wall time of the ingest loop (signing rounds included)", f"{wall_s:.1f} s",
         f"signing {sign_s:.1f} s, untimed", f"{k:,} keys derived in {keys_s:.1f} s"),
        ("ledger after ingest", f"{bench.ledger.size():,} records",
         f"SQLite {db_mb:,.0f} MB" if bench.stop_postgres is None else "PostgreSQL",
         f"{1 + accepted_batches:,} contributions + create, {accepted_batches:,} decisions of "
         f"{bench.rows_accepted:,} rows"),
        ("garbage collector during the timed ingest", f"{gc_stats['s']:.1f} s",
         f"{gc_stats['s'] / ingest_s * 100:.1f} % of ingest",
         f"{gc_stats['full']} full collections ({gc_stats['full_s']:.1f} s), longest pause {gc_stats['max'] * 1e3:,.0f} ms"),
        ("RSS before -> after ingest", f"{rss_before:,.0f} -> {rss_after:,.0f} MiB",
         f"+{(rss_after - rss_before) * MiB / max(rows_total, 1) / 1024:,.1f} KiB/row",
         f"high-water during ingest {peak_after:,.0f} MiB" + ("" if peak_reset else f" (from {peak_before:,.0f})")),
    ]
    notes = [
        f"rows/s per tenth of the ingest (in order): {', '.join(tenths)}",
        f"ECC backend during contribute: {backend_label(BACKENDS[args.ecc_ingest])}"
        f" (project environment default: {backend_label(args.venv_default_backend)})",
        "each batch: one EIP-712 signature, one ContributionRecord + one RowsDecisionRecord, one "
        f"{bench.db_name} transaction (a durable commit per batch)",
    ]
    if refused:
        notes.append(f"{len(refused)} batch(es) REFUSED (first: {refused[0]})")
    table(f"1. Ingest: {rows_total:,} rows from {k:,} contributors, batches of {per_batch} ({bench.db_name}, anvil)",
          ["measure", "time", "rows/s", "other"], rows, notes)
    return {"ingest_s": ingest_s, "rows": rows_total, "batches": accepted_batches, "durations": durations,
            "append_s": append_s[0], "gc_s": gc_stats["s"]}


def section_breakdown(bench: Bench, ingest: dict[str, Any]) -> None:
    """Stages of ``contribute`` timed one by one on a sample of the batches (out of band)."""
    args = bench.args
    sample = bench.sample[: args.breakdown]
    if not sample:
        return
    n = len(sample)
    progress(f"section 1b: stages of contribute on {n:,} sample batches")
    domain = bench.service.domain
    threshold = NEAR_DUPLICATE_PCT / 100
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        gc.collect()  # so no stage is charged for a full collection of the whole heap
        t = time.perf_counter()
        out = fn()
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t
        return out

    parsed = timed("parse", lambda: [parse_rows(p.data, SCHEMA) for p in sample])
    timed("content", lambda: [content_hash(rows) for rows in parsed])
    with ecc_backend(args.ecc_ingest):
        timed("recover", lambda: [recover_signer(domain, p.contribution, p.signature) for p in sample])
    hashed = timed("rowhash", lambda: [[("0x" + h.hex(), t) for h, t in map(row_hash_and_text, rows)] for rows in parsed])
    # The datanet's live index, at full size (private accessor: the service keeps it per datanet).
    live = bench.service._deduplicator(bench.service.get(bench.datanet.id))
    fresh_maker = RowMaker(args.seed + 1)
    fresh = [[("0x" + h.hex(), t) for h, t in (row_hash_and_text(fresh_maker.row()) for _ in range(args.batch_rows))]
             for _ in range(n)]
    # What contribute does: one screen per batch (sketch once; the live index, then the batch's earlier rows).
    screened = timed("dedup_screen", lambda: [live.screen([h for h, _ in rows], [t for _, t in rows]) for rows in fresh])
    hits = sum(found is not None for verdicts, _ in screened for found in verdicts)
    scratch = Deduplicator(threshold=threshold)  # indexing the same rows into a copy, not the datanet's index
    timed("dedup_add", lambda: [scratch.add_many([h for h, _ in rows], [h for h, _ in rows], sketches)
                                for rows, (_, sketches) in zip(fresh, screened, strict=True)])
    per_batch_ms = ingest["ingest_s"] / max(ingest["batches"], 1) * 1e3
    labels = [
        ("parse", "parse_rows (strict JSONL, schema checks)"),
        ("content", "content_hash (RFC 8785 + keccak of the batch)"),
        ("recover", f"recover_signer (EIP-712 digest + ecrecover, {args.ecc_ingest})"),
        ("rowhash", "row_hash_and_text per row (normalise once, RFC 8785, keccak)"),
        ("dedup_screen", f"screen: sketch once, check against the live index ({len(live):,} rows) and the batch"),
        ("dedup_add", "add the batch's sketches to an index"),
    ]
    rows = []
    accounted = 0.0
    for key, label in labels:
        ms = timings[key] / n * 1e3
        accounted += ms
        rows.append((label, f"{ms:.2f} ms", f"{ms / per_batch_ms * 100:.0f} %"))
    batches = max(ingest["batches"], 1)
    for label, seconds in (
        ("records.append_many, in situ (log append, row + nonce inserts, commit + fsync)", ingest["append_s"]),
        ("garbage collector, in situ (all generations)", ingest["gc_s"]),
    ):
        ms = seconds / batches * 1e3
        accounted += ms
        rows.append((label, f"{ms:.2f} ms", f"{ms / per_batch_ms * 100:.0f} %"))
    rest = per_batch_ms - accounted
    rows.append(("rest, by difference (build records, ...)",
                 f"{rest:.2f} ms", f"{rest / per_batch_ms * 100:.0f} %"))
    rows.append(("contribute, mean per batch in section 1", f"{per_batch_ms:.2f} ms", "100 %"))
    notes = [f"stages measured out of band on the first {n:,} batches of section 1 ({args.batch_rows} rows each), "
             f"after a gc.collect(); the live-index check uses {n * args.batch_rows:,} fresh rows ({hits} reported as "
             "duplicates); 'in situ' rows were measured during section 1 itself",
             "each row is sketched once (screen); add_many reuses the sketches"]
    table("1b. Where a contribution's time goes (per batch, stages timed separately)",
          ["stage", "per batch", "share"], rows, notes)


def section_profile(bench: Bench) -> None:
    """cProfile over extra batches sent at full index size; prints the top entries."""
    args = bench.args
    accounts = bench.accounts[: args.profile]
    if not accounts:
        return
    progress(f"profile: cProfile over {len(accounts):,} extra batches at full index size")
    batches = bench.prepare_round(accounts, args.batch_rows)
    profile = cProfile.Profile()
    with ecc_backend(args.ecc_ingest):
        t = time.perf_counter()
        profile.enable()
        for p in batches:
            bench.service.contribute(bench.datanet.id, p.data, p.contribution, p.signature)
        profile.disable()
        elapsed = time.perf_counter() - t
    bench.rows_accepted += sum(p.rows for p in batches)
    stats = pstats.Stats(profile)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]

    def where(key: tuple[str, int, str]) -> str:
        file, line, func = key
        if file == "~":
            return func
        for marker in ("site-packages/", "src/"):
            if marker in file:
                file = file.split(marker, 1)[1]
                break
        return f"{file}:{line}({func})"

    entries = stats.stats.items()  # type: ignore[attr-defined]
    top = sorted(entries, key=lambda kv: kv[1][2], reverse=True)[: args.profile_top]
    rows = [(where(key), f"{nc:,}", f"{tt:.2f} s", f"{tt / total * 100:.0f} %", f"{ct:.2f} s")
            for key, (cc, nc, tt, ct, _) in top]
    cum = sorted((kv for kv in entries if kv[0][0] != "~"), key=lambda kv: kv[1][3], reverse=True)
    cum_rows = [(where(key), f"{nc:,}", f"{tt:.2f} s", f"{tt / total * 100:.0f} %", f"{ct:.2f} s")
                for key, (cc, nc, tt, ct, _) in cum[: args.profile_top + 1]]
    table(f"1c. cProfile of contribute: {len(batches):,} batches at full index size, top {len(rows)} by own time",
          ["function", "calls", "own time", "share", "cumulative"], rows,
          [f"{elapsed:.1f} s under cProfile ({elapsed / len(batches) * 1e3:.1f} ms/batch, profiler overhead included)"])
    table("1c'. same profile, top by cumulative time", ["function", "calls", "own time", "share", "cumulative"],
          cum_rows)


# ------------------------------------------------------------------------------ 2. recovery


def section_recovery(bench: Bench, ingest: dict[str, Any]) -> None:
    args = bench.args
    domain = bench.service.domain
    sample = list(bench.sample[: args.recoveries])
    if len(sample) < args.recoveries:  # fewer batches than wanted digests: sign more contributions
        extra = args.recoveries - len(sample)
        accounts = bench.accounts or contributor_keys(min(args.contributors, 100))
        rng = random.Random(args.seed + 2)
        with ecc_backend("coincurve" if coincurve_importable() else None):
            for i in range(extra):
                account = accounts[i % len(accounts)]
                c = Contribution(bench.datanet.id, account.address, rng.randbytes(32), LICENSE, 10**6 + i, DEADLINE)
                sample.append(Prepared(account, b"", c, sign_contribution(account, domain, c), 0))
    n = len(sample)
    progress(f"section 2: {n:,} signature recoveries per backend")
    contributions = [p.contribution for p in sample]
    signatures = [p.signature for p in sample]
    expected = [c.contributor for c in contributions]
    t = time.perf_counter()
    digests = [digest(domain, c) for c in contributions]
    digest_s = time.perf_counter() - t
    vrs = [parse_signature(s) for s in signatures]
    sig_bytes = [bytes.fromhex(s[2:]) for s in signatures]

    backends = ["native"] + (["coincurve"] if coincurve_importable() else [])
    results: dict[str, dict[str, tuple[int, float]]] = {}
    for name in backends:
        m = min(n, args.native_recoveries) if name == "native" else n
        res: dict[str, tuple[int, float]] = {}
        with ecc_backend(name):
            backend = get_backend_class()()

            def run(label: str, fn: Callable[[int], str]) -> None:
                gc.collect()
                t = time.perf_counter()
                got = [fn(i) for i in range(m)]
                res[label] = (m, time.perf_counter() - t)
                if got != expected[:m]:
                    bad = next(i for i in range(m) if got[i] != expected[i])
                    raise AssertionError(f"{label} ({name}) recovered {got[bad]} for {expected[bad]}")

            run("node", lambda i: recover_signer(domain, contributions[i], signatures[i]))
            run("ethkeys", lambda i: keys.Signature(vrs=(vrs[i][0] - 27, vrs[i][1], vrs[i][2]))
                .recover_public_key_from_msg_hash(digests[i]).to_checksum_address())
            run("account", lambda i: Account._recover_hash(digests[i], signature=sig_bytes[i]))
            sig_objs = [keys.Signature(vrs=(v - 27, r, s)) for v, r, s in vrs[:m]]
            t = time.perf_counter()
            pubs = [backend.ecdsa_recover(digests[i], sig_objs[i]) for i in range(m)]
            res["raw"] = (m, time.perf_counter() - t)
            if [p.to_checksum_address() for p in pubs] != expected[:m]:
                raise AssertionError(f"{name} ecdsa_recover recovered the wrong addresses")
        results[name] = res
        progress(f"  {name}: {m:,} digests, raw {rate(*res['raw'])}")

    def cell(name: str, key: str) -> str:
        m, secs = results[name][key]
        return f"{m / secs:,.0f}/s ({secs / m * 1e6:,.0f} µs)"

    labels = [
        ("node", "recover_signer (node path: parse sig, EIP-712 digest, recover, EIP-55)"),
        ("ethkeys", "eth_keys Signature(vrs).recover_public_key_from_msg_hash + address"),
        ("account", "eth_account Account._recover_hash(digest, signature)"),
        ("raw", "backend.ecdsa_recover(digest, Signature) (the limit)"),
    ]
    rows = [(label, *(cell(b, key) for b in backends)) for key, label in labels]
    rows.append(("recover_signer / limit",
                 *(f"{(results[b]['node'][1] / results[b]['node'][0]) / (results[b]['raw'][1] / results[b]['raw'][0]):.2f}x time"
                   for b in backends)))
    ingest_backend = args.ecc_ingest
    rows.append(("ingest (section 1): batches/s = signature recoveries/s",
                 *(rate(ingest["batches"], ingest["ingest_s"]) if b == ingest_backend else "" for b in backends)))
    for b in backends:
        m, secs = results[b]["node"]
        share = ingest["batches"] * secs / m / ingest["ingest_s"] * 100
        rows.append((f"  share of ingest time recover_signer would take with {b}",
                     *(f"{share:.0f} %" if x == b else "" for x in backends)))
    notes = [
        f"digests: the EIP-712 digests of the first {n:,} contributions"
        + (" of section 1" if bench.sample else "") + f"; digest() alone: {rate(n, digest_s)} "
        f"({digest_s / n * 1e6:,.1f} µs), included in recover_signer only",
        f"native backend measured on the first {min(n, args.native_recoveries):,} of them (~4 ms each); "
        "--native-recoveries to change",
        f"project environment default backend: {backend_label(args.venv_default_backend)}"
        + ("" if "coincurve" in backends else "; coincurve not importable (pip install --target DIR coincurve, "
           "then --coincurve-path DIR, to compare)"),
    ]
    if "coincurve" in backends:
        import coincurve

        notes.append(f"coincurve {getattr(coincurve, '__version__', '?')} from {Path(coincurve.__file__).parent.parent}")
    table(f"2. Signature recovery: {n:,} EIP-712 digests, same run",
          ["measure", *(f"{backend_label(BACKENDS[b])}" for b in backends)], rows, notes)


# ------------------------------------------------------------------------------ 3. snapshots (children)


def child_snapshot(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: open the ledger, snapshot the datanet (timing its parts)."""
    if spec.get("tracemalloc"):
        tracemalloc.start()
    engine = make_engine(spec["db_url"])
    t = time.perf_counter()
    ledger = RecordLedger(engine)
    open_s = time.perf_counter() - t
    ledger_size = ledger.size()
    client = ChainClient(spec["rpc"], error_abis=all_packaged_abis())
    registry = DatanetRegistryContract(client, spec["registry"])
    service = DatanetService(engine, ledger, registry)
    parts: dict[str, float] = {"tree": 0.0, "publish": 0.0, "dump": 0.0}

    class TimedTree(StandardMerkleTree):
        @classmethod
        def of(cls, *a: Any, **kw: Any) -> Any:  # type: ignore[override]
            t = time.perf_counter()
            tree = super().of(*a, **kw)
            parts["tree"] += time.perf_counter() - t
            return tree

        def dump(self) -> dict[str, Any]:
            t = time.perf_counter()
            out = super().dump()
            parts["dump"] += time.perf_counter() - t
            return out

    publish = registry.publish_snapshot

    def timed_publish(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        out = publish(*a, **kw)
        parts["publish"] += time.perf_counter() - t
        return out

    registry.publish_snapshot = timed_publish  # type: ignore[method-assign]
    service_module.StandardMerkleTree = TimedTree  # type: ignore[misc]  (this child process only)
    operator = dev_accounts(1)[0]
    if spec.get("tracemalloc"):
        tracemalloc.reset_peak()
    rss_before, peak_before, peak_reset = start_peak()
    t = time.perf_counter()
    snap = service.snapshot(spec["datanet"], operator)
    total_s = time.perf_counter() - t
    peak_after = peak_rss_mib()
    traced = tracemalloc.get_traced_memory()[1] / MiB if spec.get("tracemalloc") else None
    engine.dispose()
    return {
        "open_s": open_s, "total_s": total_s, **{f"{k}_s": v for k, v in parts.items()},
        "version": snap.version, "root": snap.root, "rows": snap.row_count,
        "tree_mb": len(snap.tree) / 1e6, "manifest_kb": len(snap.manifest) / 1e3,
        "rss_before": rss_before, "peak_before": peak_before, "peak_after": peak_after, "peak_reset": peak_reset,
        "traced": traced,
        "ledger_size": ledger_size,
    }


def child_tree(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: the tree + manifest part of a snapshot of ``leaves`` rows."""
    n, k = spec["leaves"], spec["contributors"]
    rng = random.Random(spec["seed"])
    t = time.perf_counter()
    contributors = [to_checksum_address("0x" + rng.randbytes(20).hex()) for _ in range(k)]
    values = [["0x" + rng.randbytes(32).hex(), contributors[i % k]] for i in range(n)]
    gen_s = time.perf_counter() - t
    if spec.get("tracemalloc"):
        tracemalloc.start()
    rss_before, peak_before, peak_reset = start_peak()
    t0 = time.perf_counter()
    tree = StandardMerkleTree.of(values, list(ROW_LEAF_ENCODING))
    t1 = time.perf_counter()
    counts: dict[str, int] = {}
    for _, contributor in values:
        counts[contributor] = counts.get(contributor, 0) + 1
    manifest = {"format": MANIFEST_FORMAT, "chainId": 31337, "registry": "0x" + "00" * 20, "datanet": 1,
                "name": "bench", "schema": SCHEMA, "licenses": [LICENSE], "version": 1, "parentVersion": None,
                "root": tree.root, "rowCount": n, "contributors": dict(sorted(counts.items()))}
    manifest_hash = keccak(rfc8785.dumps(manifest))
    manifest_json = json.dumps(manifest)
    t2 = time.perf_counter()
    dump = tree.dump()
    t3 = time.perf_counter()
    tree_json = json.dumps(dump)
    t4 = time.perf_counter()
    peak_after = peak_rss_mib()
    traced = tracemalloc.get_traced_memory()[1] / MiB if spec.get("tracemalloc") else None
    return {
        "gen_s": gen_s, "tree_s": t1 - t0, "manifest_s": t2 - t1, "dump_s": t3 - t2, "json_s": t4 - t3,
        "total_s": t4 - t0, "tree_mb": len(tree_json) / 1e6, "manifest_kb": len(manifest_json) / 1e3,
        "rss_before": rss_before, "peak_before": peak_before, "peak_after": peak_after, "peak_reset": peak_reset,
        "traced": traced,
        "root": tree.root, "hash": manifest_hash.hex()[:8],
    }


def run_child(spec: dict[str, Any], timeout: float = 1_800) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child {spec['kind']} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def section_snapshot(bench: Bench, args: argparse.Namespace) -> None:
    columns: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    bench.engine.dispose()  # the child opens the database itself
    spec = {"kind": "snapshot", "db_url": bench.db_url, "rpc": bench.node.url, "registry": bench.registry_address,
            "datanet": bench.datanet.id}
    progress(f"section 3: service.snapshot of {bench.rows_accepted:,} rows (child process)")
    snap = run_child(spec)
    if snap["rows"] != bench.rows_accepted:
        raise AssertionError(f"snapshot has {snap['rows']} rows, {bench.rows_accepted} were accepted")
    on_chain = bench.registry.snapshot_root(bench.datanet.id, snap["version"])
    if on_chain != snap["root"]:
        raise AssertionError(f"snapshot root {snap['root']} but {on_chain} on chain")
    traced = None
    if args.tracemalloc:
        # A new version needs new accepted rows: one more batch, then a second snapshot under tracemalloc.
        extra = bench.prepare_round(bench.accounts[:1], args.batch_rows)[0]
        bench.service.contribute(bench.datanet.id, extra.data, extra.contribution, extra.signature)
        bench.rows_accepted += extra.rows
        bench.engine.dispose()
        progress("  again under tracemalloc")
        traced = run_child({**spec, "tracemalloc": True})
    columns.append((f"service.snapshot, {snap['rows']:,} rows", snap, traced))
    sizes = [bench.rows_accepted_at_snapshot, args.big_tree]
    for n in dict.fromkeys(s for s in sizes if s > 0):
        progress(f"section 3: tree + manifest of {n:,} leaves (child process)")
        spec = {"kind": "tree", "leaves": n, "contributors": args.contributors, "seed": args.seed}
        result = run_child(spec)
        traced = run_child({**spec, "tracemalloc": True}) if args.tracemalloc else None
        columns.append((f"tree + manifest, {n:,}", result, traced))

    def get(col: dict[str, Any], key: str, fmt: str = "{:.2f} s") -> str:
        return fmt.format(col[key]) if key in col and col[key] is not None else "-"

    def mem(col: dict[str, Any]) -> str:
        raised = col["peak_after"] - col["peak_before"]
        return f"+{raised:,.0f} MiB" if raised > 0 else "+0 (below start mark)"

    rows = [
        ("total (timed region)", *(get(c, "total_s") for _, c, _ in columns)),
        ("  StandardMerkleTree.of (bytes32, address)", *(get(c, "tree_s") for _, c, _ in columns)),
        ("  manifest (contributor counts, RFC 8785, keccak)", *("in rest" if "publish_s" in c else get(c, "manifest_s")
                                                              for _, c, _ in columns)),
        ("  tree.dump()", *(get(c, "dump_s") for _, c, _ in columns)),
        ("  json.dumps(dump)", *("in rest" if "publish_s" in c else get(c, "json_s") for _, c, _ in columns)),
        ("  publishSnapshot tx (send + receipt, anvil)", *(get(c, "publish_s") for _, c, _ in columns)),
        ("  rest: read accepted rows, manifest, JSON, ledger record + commit",
         *(f"{c['total_s'] - c['tree_s'] - c['dump_s'] - c['publish_s']:.2f} s" if "publish_s" in c else ""
           for _, c, _ in columns)),
        ("tree dump JSON", *(get(c, "tree_mb", "{:,.1f} MB") for _, c, _ in columns)),
        ("manifest JSON", *(get(c, "manifest_kb", "{:,.1f} kB") for _, c, _ in columns)),
        ("RSS at start of the timed region", *(get(c, "rss_before", "{:,.0f} MiB") for _, c, _ in columns)),
        ("RSS high-water of the timed region (VmHWM)", *(get(c, "peak_after", "{:,.0f} MiB") for _, c, _ in columns)),
        ("  raised by the timed region", *(mem(c) for _, c, _ in columns)),
        ("Python allocation peak (tracemalloc, 2nd run)",
         *((get(t, "traced", "{:,.0f} MiB") if t else "--tracemalloc") for _, _, t in columns)),
    ]
    notes = [
        "each column runs in a fresh child process; its high-water mark (VmHWM) is reset to the current RSS at the "
        "start of the timed region" + ("" if all(c.get("peak_reset") for _, c, _ in columns)
                                       else " where /proc/self/clear_refs allows (not here: the mark includes setup)"),
        f"tree-only columns: random row hashes, leaves spread over {args.contributors:,} contributors; the values "
        "list is built before the timed region (in 'RSS at start')",
    ]
    snap = columns[0][1]
    if args.tracemalloc:
        notes.append(f"the service's tracemalloc run is version 2: the same rows plus one batch of {args.batch_rows}")
    notes.append(f"service child: opening the ledger ({snap['ledger_size']:,} records; rebuilds the log tree) "
                 f"took {snap['open_s']:.1f} s before the timed region; the root was checked on chain")
    if bench.rows_accepted_at_snapshot < args.big_tree:
        notes.append(f"a real {args.big_tree:,}-row datanet through the service would take "
                     f"~{args.big_tree / max(bench.ingest_rate, 1) / 60:,.0f} min of ingest at this run's "
                     f"{bench.ingest_rate:,.0f} rows/s ("
                     + ("--rows-1m" if args.big_tree == 1_000_000 else f"--rows {args.big_tree}")
                     + " does it); the tree-only column measures the "
                     "snapshot's tree + manifest part at that size")
    table("3. Snapshot time and memory", ["measure", *(name for name, _, _ in columns)], rows, notes)


# ------------------------------------------------------------------------------- main


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        spec = json.loads(sys.argv[2])
        result = child_snapshot(spec) if spec["kind"] == "snapshot" else child_tree(spec)
        print(json.dumps(result))
        return 0

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contributors", type=int, default=1_000, help="contributor keys (default 1,000)")
    parser.add_argument("--rows", type=int, default=100_000,
                        help="rows to ingest (default 100,000; rounded down to whole rounds of one batch per contributor)")
    parser.add_argument("--batch-rows", type=int, default=10, help="rows per signed batch (default 10)")
    parser.add_argument("--rows-1m", action="store_true",
                        help="ingest 1,000,000 rows and snapshot them through the service (about 50 minutes)")
    parser.add_argument("--recoveries", type=int, default=10_000, help="digests for section 2 (default 10,000)")
    parser.add_argument("--native-recoveries", type=int, default=1_000,
                        help="of those, how many the pure-Python backend recovers (default 1,000; ~4 ms each)")
    parser.add_argument("--breakdown", type=int, default=200, help="sample batches for the stage breakdown (default 200)")
    parser.add_argument("--profile", type=int, default=100,
                        help="extra batches run under cProfile at full index size (default 100; 0: off)")
    parser.add_argument("--profile-top", type=int, default=8, help="profile entries to print (default 8)")
    parser.add_argument("--big-tree", type=int, default=1_000_000, help="leaves of the tree-only snapshot (default 1,000,000)")
    parser.add_argument("--tracemalloc", action="store_true", help="run each snapshot child again under tracemalloc")
    parser.add_argument("--ecc", choices=["default", "native", "coincurve"], default="default",
                        help="eth_keys backend during the ingest (default: what the project environment picks)")
    parser.add_argument("--coincurve-path", type=Path, default=None,
                        help="directory holding coincurve (pip install --target DIR coincurve) to compare backends")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100 contributors x 2,000 rows, 1,000 digests, 100k-leaf tree")
    parser.add_argument("--only", choices=["ingest", "recovery", "snapshot"], action="append",
                        help="sections to run (default all; recovery and snapshot use the ingested datanet)")
    parser.add_argument("--clients", type=int, default=1,
                        help="threads submitting each round's batches at once, as the API's threads serve many "
                             "contributors (default 1: one batch at a time)")
    parser.add_argument("--postgres", action="store_true",
                        help="ingest into a private PostgreSQL server (fsync on) instead of SQLite")
    parser.add_argument("--postgres-socket", action="store_true",
                        help="with --postgres: connect through the server's Unix socket, not TCP on 127.0.0.1")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--tmp", default=None, help="directory for the temporary database (default: the system temp dir)")
    args = parser.parse_args()
    if args.quick:
        args.contributors, args.rows = min(args.contributors, 100), min(args.rows, 2_000)
        args.recoveries, args.native_recoveries = min(args.recoveries, 1_000), min(args.native_recoveries, 200)
        args.breakdown, args.profile = min(args.breakdown, 50), min(args.profile, 50)
        args.big_tree = min(args.big_tree, 100_000)
    if args.rows_1m:
        args.rows = 1_000_000
    if args.contributors < 1 or args.batch_rows < 1 or args.rows < args.contributors * args.batch_rows:
        parser.error("--rows must be at least --contributors x --batch-rows")

    # The project's own default first, then make a side-installed coincurve importable.
    args.venv_default_backend = get_default_backend_class()
    if args.coincurve_path is not None:
        sys.path.insert(0, str(args.coincurve_path.resolve()))
        if not coincurve_importable():
            parser.error(f"no importable coincurve under {args.coincurve_path}")
    if args.ecc == "coincurve" and not coincurve_importable():
        parser.error("--ecc coincurve needs coincurve (installed, or --coincurve-path)")
    # None: leave eth_keys alone (it picks coincurve if importable), else force the named backend.
    if args.ecc == "default":
        args.ecc_ingest = "coincurve" if "CoinCurve" in args.venv_default_backend else "native"
    else:
        args.ecc_ingest = args.ecc

    sections = args.only or ["ingest", "recovery", "snapshot"]
    started = time.perf_counter()
    print(f"# bench_datanets: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, seed {args.seed}, "
          f"eth_keys backends: {'native + coincurve' if coincurve_importable() else 'native only'}"
          + (" (--quick)" if args.quick else ""))
    work = Path(tempfile.mkdtemp(prefix="bench-datanets-", dir=args.tmp))
    timings: list[str] = []
    bench: Bench | None = None
    try:
        bench = Bench(args, work)
        t = time.perf_counter()
        ingest = section_ingest(bench)  # always: the other sections use the ingested datanet
        bench.ingest_rate = ingest["rows"] / ingest["ingest_s"]
        bench.rows_accepted_at_snapshot = bench.rows_accepted
        if "ingest" in sections:
            section_breakdown(bench, ingest)
        timings.append(f"ingest {time.perf_counter() - t:.0f} s")
        if "recovery" in sections:
            t = time.perf_counter()
            section_recovery(bench, ingest)
            timings.append(f"recovery {time.perf_counter() - t:.0f} s")
        if "snapshot" in sections:
            t = time.perf_counter()
            section_snapshot(bench, args)
            timings.append(f"snapshot {time.perf_counter() - t:.0f} s")
        if "ingest" in sections and args.profile > 0:
            t = time.perf_counter()
            section_profile(bench)
            timings.append(f"profile {time.perf_counter() - t:.0f} s")
    finally:
        if bench is not None:
            bench.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal runtime {time.perf_counter() - started:.0f} s ({', '.join(timings)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
