#!/usr/bin/env python3
"""Training benchmark: ``loraledger train``'s loop against a plain transformers + peft loop, peak memory, adapter hashing.

Three tables, every number measured in this run with its peer beside it:

1. **Training throughput** (goal: framework / baseline >= 0.95, i.e. the framework costs
   nothing). A tiny random causal LM, made bigger than the default by flags (``--family llama
   --hidden 256 --layers 4 --heads 8``, about 2.6M parameters) so per-step compute dominates,
   is written with ``init_tiny_model`` and trained on ``--rows`` synthetic instruction rows
   (default 1,024: arithmetic with its working, and templated sentences; about 134 tokens
   each; batch 8, one epoch, so 128 steps a run) by two paths:

   * **framework**: exactly what ``loraledger train`` runs: ``load_base_model``,
     ``TrainConfig.parse`` (targets: the family default), ``split_rows`` (``val_fraction``
     0, so both paths see every row), ``build_examples``, then ``train_lora(model, examples,
     [], config, pad_id=..., device=..., work_dir=tmp)``; its ``TrainOutcome`` gives the
     tokens, seconds and peak memory.
   * **baseline**: a hand-written loop: ``AutoModelForCausalLM.from_pretrained`` (same
     dtype), ``peft.get_peft_model`` with the same ``LoraConfig`` after the same
     ``torch.manual_seed``, ``torch.optim.AdamW`` (same lr and weight decay),
     transformers' ``get_linear_schedule_with_warmup`` (the same factors as
     loraledger's linear schedule with no warm-up), the same examples (the tokenizer and
     ``build_examples``), the same batch order (``data.batches``, seeded by seed and epoch)
     and input tensors (``tensors.collate``); per step ``model(**inputs)`` (labels
     included) -> ``backward`` -> ``clip_grad_norm_(1.0)`` -> ``step`` -> scheduler step ->
     ``zero_grad`` -> ``loss.item()``. Tokens are counted the same way (the sum of the
     unpadded lengths).

   Both time the same region: from the first epoch's batch list to the last optimiser step
   (model loading, tokenising, the adapter and optimiser set-up are outside it, as in
   ``train_lora``). Each path runs in its own worker process (``multiprocessing`` spawn);
   after one warm-up run each, the paths alternate (A B A B ..., ``--repeats`` times) and
   the median tokens/s of each is compared (``--order abba`` reverses every other pair, to
   rule out an order effect). Both workers use the same torch thread count (``--threads``,
   default: torch's own default), shown in the header. The loss of every step is compared
   between the paths: the same seed, data and settings must give the same numbers, which
   shows the two loops do the same work. Each run's CPU time is taken too, and the CPU that
   other processes used meanwhile (``/proc/stat``): a run that got
   under 75 % of its threads' worth of CPU was starved by other processes (marked ``*``; on
   a shared machine such a run can be several times slower), and the ratio over the pairs
   with neither starved is shown beside the headline. ``--baseline-deterministic`` makes
   the baseline call ``torch.use_deterministic_algorithms(True, warn_only=True)`` as
   ``train_lora`` does, to isolate what that one global setting costs.
2. **Peak memory**: the framework's ``TrainOutcome.peak_memory_bytes`` (on CPU the process's
   ``ru_maxrss``; on CUDA ``max_memory_allocated``) and the same measure for the baseline,
   taken in each worker after its first (warm-up) run, plus the RSS at worker start, after
   loading and after the loop. ``ru_maxrss`` is a high-water mark of the whole process and
   never goes down, so each path has its own process (the parent stays small: it imports
   no torch); later runs in the same worker can only keep or raise it (the final value is
   shown too).
3. **Adapter hashing** (in a child process): a PEFT-layout adapter directory
   (``adapter_config.json`` + ``adapter_model.safetensors`` of random lora_A / lora_B
   tensors, rank 16 on all seven projections of 4096-wide Llama-7B-shaped layers, as many
   layers as make ``--adapter-mb`` MB, default 100) is hashed with
   ``loraledger.training.adapters.adapter_hash`` (best of ``--hash-repeats``); peers:
   ``hashlib.file_digest`` of the same file, ``hashlib.sha256`` of the bytes already in
   memory and the ``sha256sum`` program when there is one. Also
   ``basemodel.hash_base_model`` of the tiny model (without and with its hash cache). The
   file was just written, so it is read from the page cache (hashing, not disk, is timed).

    .venv/bin/python scripts/bench_training.py                # full run (about 2-3 minutes on 2 cores)
    .venv/bin/python scripts/bench_training.py --quick        # smoke run (under 30 s): tiny model, 8 steps
    .venv/bin/python scripts/bench_training.py --threads 1 --repeats 5 --order abba   # steadier on a busy machine
    .venv/bin/python scripts/bench_training.py --only hash --adapter-mb 1000
    .venv/bin/python scripts/bench_training.py --profile      # also cProfile one run of each path

Nothing is downloaded: the model and its tokenizer are written locally by ``init_tiny_model``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import importlib
import io
import json
import multiprocessing
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from benchutil import MiB, busy_cpu_seconds, peak_rss_mib, progress, rate, rss_mib, table  # noqa: E402

# Nothing heavy is imported at module level: the parent process stays small (no torch), so
# the spawned workers' high-water marks are their own. Each child imports what it needs.

T = TypeVar("T")
Spec = dict[str, Any]

GOAL = 0.95
#: A run whose CPU time is under this share of (threads x wall time) was starved by other processes.
STARVED = 0.75
FRAMEWORK, BASELINE = "framework", "baseline"
LABELS = {FRAMEWORK: "loraledger train_lora", BASELINE: "plain transformers + peft loop"}
# The adapter for the hashing section: Llama-7B-shaped projections (in, out), rank 16.
ADAPTER_RANK = 16
ADAPTER_MODULES: dict[str, tuple[str, int, int]] = {
    "q_proj": ("self_attn", 4096, 4096), "k_proj": ("self_attn", 4096, 4096), "v_proj": ("self_attn", 4096, 4096),
    "o_proj": ("self_attn", 4096, 4096), "gate_proj": ("mlp", 4096, 11008), "up_proj": ("mlp", 4096, 11008),
    "down_proj": ("mlp", 11008, 4096),
}


# ------------------------------------------------------------------------------ helpers




def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def make_rows(n: int, seed: int) -> list[dict[str, str]]:
    """``n`` synthetic instruction rows (prompt / completion): arithmetic with its working, and
    templated sentences. Deterministic in ``(n, seed)``, so every process builds the same rows."""
    rng = random.Random(seed)
    subjects = ["the river", "a small model", "the old library", "the night train", "a careful gardener",
                "the city museum", "a quiet village", "the winter market", "a young engineer", "the harbour"]
    places = ["Berlin", "the valley", "a mountain town", "the north coast", "Paris", "a busy port", "the desert"]
    verbs = ["opens early", "changes slowly", "learns every day", "waits for the rain", "keeps old maps",
             "welcomes visitors", "hums at night"]
    rows: list[dict[str, str]] = []
    for i in range(n):
        if i % 2 == 0:
            a, b = rng.randint(10, 999), rng.randint(10, 999)
            op = rng.choice("+-*")
            result = a + b if op == "+" else a - b if op == "-" else a * b
            name = {"+": "sum", "-": "difference", "*": "product"}[op]
            rows.append({
                "prompt": f"What is {a} {op} {b}? Show the working in one or two sentences.",
                "completion": f"We compute {a} {op} {b} step by step, starting with the hundreds, then the tens "
                              f"and the ones. The {name} of {a} and {b} is {result}, so the answer is {result}.",
            })
        else:
            subject, place, verb = rng.choice(subjects), rng.choice(places), rng.choice(verbs)
            year, count = rng.randint(1900, 2025), rng.randint(2, 90)
            rows.append({
                "prompt": f"Write three short sentences about {subject} in {place}.",
                "completion": f"{subject[0].upper()}{subject[1:]} in {place} {verb}. Since {year} it has seen "
                              f"{count} seasons come and go. People who visit {place} remember {subject} "
                              "for a long time.",
            })
    return rows


def training_rows(n: int, seed: int) -> list[Any]:
    """The rows as ``TrainingRow``s, each with the sha256 of its JSON as its row hash."""
    from loraledger.training.data import TrainingRow

    out = []
    for data in make_rows(n, seed):
        encoded = json.dumps(data, sort_keys=True).encode()
        out.append(TrainingRow("0x" + hashlib.sha256(encoded).hexdigest(),
                               "0x" + hashlib.sha256(b"contributor" + encoded).hexdigest()[:40], data))
    return out


def examples_digest(examples: Sequence[Any]) -> str:
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps([e.row_hash, e.input_ids, e.labels]).encode())
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------------ children


_WORKER: dict[str, Any] = {}


def init_worker(threads: int) -> None:
    """ProcessPoolExecutor initializer: thread count, quiet transformers, the RSS at start."""
    import torch

    from loraledger.training.hf.basemodel import _quiet_transformers

    _quiet_transformers()
    # peft 0.21 calls a transformers 5 method deprecated for v6; nothing to act on here.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    if threads > 0:
        torch.set_num_threads(threads)
    for module in ("transformers", "peft"):  # imported now, so no run pays for the imports
        importlib.import_module(module)

    _WORKER["rss_start"] = rss_mib()
    _WORKER["runs"] = 0


def child_setup(spec: dict[str, Any]) -> dict[str, Any]:
    """Write the tiny model; report its size, the thread count and the library versions."""
    import peft
    import torch
    import transformers

    from loraledger.training.hf.basemodel import default_target_modules
    from loraledger.training.hf.tiny import init_tiny_model

    if spec["threads"] > 0:
        torch.set_num_threads(spec["threads"])
    started = time.perf_counter()
    info = init_tiny_model(spec["model_dir"], spec["family"], seed=spec["seed"], hidden_size=spec["hidden"],
                           layers=spec["layers"], heads=spec["heads"], vocab_size=spec["vocab"],
                           max_positions=max(512, spec["max_length"]))
    marker = json.loads((Path(spec["model_dir"]) / "loraledger-tiny.json").read_text())
    return {
        "seconds": time.perf_counter() - started,
        "parameters": marker["parameters"], "vocab": marker["vocab_size"],
        "weights_bytes": sum(p.stat().st_size for p in info.weight_files),
        "model_type": info.model_type, "targets": default_target_modules(info.model_type),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "cuda": torch.cuda.is_available(),
    }


def _profiled(spec: Spec, fn: Callable[[], T]) -> tuple[T, str | None]:
    """``fn()``, under cProfile when the spec asks (then also the top entries by own time)."""
    if not spec.get("profile"):
        return fn(), None
    profiler = cProfile.Profile()
    result = profiler.runcall(fn)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(spec.get("profile_top", 12))
    return result, out.getvalue()


def run_framework(spec: dict[str, Any]) -> dict[str, Any]:
    """One ``loraledger train`` run, exactly as ``TrainingFactory.train`` does it (minus the ledger)."""
    from loraledger.training.config import TrainConfig
    from loraledger.training.data import build_examples, split_rows
    from loraledger.training.hf.basemodel import default_target_modules, load_base_model
    from loraledger.training.hf.trainer import train_lora

    rows = training_rows(spec["rows"], spec["seed"])
    rss_load = rss_mib()
    loaded = load_base_model(spec["model_dir"], device=spec["device"])
    config = TrainConfig.parse(spec["config"])
    if config.target_modules is None:
        config = config.with_targets(default_target_modules(loaded.info.model_type))
    train_rows, val_rows = split_rows(rows, config.val_fraction)
    assert not val_rows, "val_fraction 0 keeps every row for training"
    examples, dropped = build_examples(loaded.tokenizer, train_rows, config.max_length)
    tok = loaded.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    work = Path(tempfile.mkdtemp(prefix="bench-training-run-"))
    try:
        gc.collect()
        rss_before, load, busy = rss_mib(), os.getloadavg()[0], busy_cpu_seconds()
        cpu, wall = time.process_time(), time.perf_counter()
        outcome, profile = _profiled(spec, lambda: train_lora(loaded.model, examples, [], config, pad_id=pad_id,
                                                              device=loaded.device, work_dir=work))
        cpu, wall, busy = time.process_time() - cpu, time.perf_counter() - wall, busy_cpu_seconds() - busy
        rss_after = rss_mib()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _result(spec, {
        "tokens": outcome.tokens, "seconds": outcome.seconds, "tokens_per_second": outcome.tokens_per_second,
        "steps": outcome.steps, "losses": outcome.losses, "peak_memory_bytes": outcome.peak_memory_bytes,
        "examples": len(examples), "dropped": dropped, "digest": examples_digest(examples),
        "targets": list(config.target_modules or ()), "dtype": str(next(loaded.model.parameters()).dtype),
        "rss_load": rss_load, "rss_before": rss_before, "rss_after": rss_after, "profile": profile,
        "load": load, "call_cpu": cpu, "call_s": wall, "others_cpu": max(0.0, busy - cpu),
    })


def run_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    """One run of the hand-written transformers + peft loop on the same model, data and settings."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_constant_schedule, get_linear_schedule_with_warmup

    from loraledger.training.data import batches, build_examples
    from loraledger.training.hf.tensors import collate, peak_memory_bytes, reset_peak_memory

    cfg = spec["config"]
    device = spec["device"]
    rows = training_rows(spec["rows"], spec["seed"])
    rss_load = rss_mib()
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"], local_files_only=True)
    dtype = getattr(torch, spec["dtype"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], local_files_only=True, dtype=dtype).to(device)
    examples, dropped = build_examples(tokenizer, rows, cfg["max_length"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    if spec.get("baseline_deterministic"):  # diagnostic: the one global setting train_lora makes
        torch.use_deterministic_algorithms(True, warn_only=True)
    # From here to the end of the loop is what train_lora's call covers (the CPU-time scope).
    gc.collect()
    rss_before, load, busy = rss_mib(), os.getloadavg()[0], busy_cpu_seconds()
    cpu, wall = time.process_time(), time.perf_counter()
    torch.manual_seed(cfg["seed"])
    lora = LoraConfig(r=cfg["rank"], lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"],
                      target_modules=sorted(spec["targets"]), bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
    batch_size, epochs = cfg["batch_size"], cfg["epochs"]
    total = -(-len(examples) // batch_size) * epochs
    if cfg.get("max_steps"):
        total = min(total, cfg["max_steps"])
    scheduler = (get_linear_schedule_with_warmup(optimizer, 0, total) if cfg["lr_schedule"] == "linear"
                 else get_constant_schedule(optimizer))

    def loop() -> tuple[int, int, list[float], float]:
        step, tokens, losses = 0, 0, []
        started = time.perf_counter()
        for epoch in range(epochs):
            for chunk in list(batches(examples, batch_size, seed=cfg["seed"], epoch=epoch)):
                inputs = collate(chunk, pad_id, device)
                loss = model(**inputs).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
                tokens += sum(len(e.input_ids) for e in chunk)
                step += 1
                if step >= total:
                    break
            if step >= total:
                break
        return step, tokens, losses, time.perf_counter() - started

    reset_peak_memory(device)
    (steps, tokens, losses, seconds), profile = _profiled(spec, loop)
    cpu, wall, busy = time.process_time() - cpu, time.perf_counter() - wall, busy_cpu_seconds() - busy
    rss_after = rss_mib()
    return _result(spec, {
        "tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
        "steps": steps, "losses": losses, "peak_memory_bytes": peak_memory_bytes(device),
        "examples": len(examples), "dropped": dropped, "digest": examples_digest(examples),
        "targets": sorted(spec["targets"]), "dtype": str(next(model.parameters()).dtype),
        "rss_load": rss_load, "rss_before": rss_before, "rss_after": rss_after, "profile": profile,
        "load": load, "call_cpu": cpu, "call_s": wall, "others_cpu": max(0.0, busy - cpu),
    })


def _result(spec: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    import torch

    _WORKER["runs"] = _WORKER.get("runs", 0) + 1
    return {**result, "path": spec["path"], "run": _WORKER["runs"], "threads": torch.get_num_threads(),
            "deterministic": torch.are_deterministic_algorithms_enabled(), "rss_start": _WORKER.get("rss_start", 0.0),
            "vmhwm": peak_rss_mib(), "pid": os.getpid()}


def worker_ready() -> int:
    return os.getpid()


def run_path(spec: dict[str, Any]) -> dict[str, Any]:
    return run_framework(spec) if spec["path"] == FRAMEWORK else run_baseline(spec)


def adapter_layers(target_bytes: int) -> int:
    per_layer = sum(4 * ADAPTER_RANK * (fan_in + fan_out) for _, fan_in, fan_out in ADAPTER_MODULES.values())
    return max(1, round(target_bytes / per_layer))


def child_hash(spec: dict[str, Any]) -> dict[str, Any]:
    """Write a ~``adapter_mb`` MB PEFT adapter, time adapter_hash and its peers, and hash_base_model."""
    import torch
    from safetensors.torch import save_file

    from loraledger.training.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_hash, inspect_adapter
    from loraledger.training.hf.basemodel import hash_base_model

    repeats = spec["repeats"]
    directory = Path(spec["work"]) / "adapter-100mb"
    directory.mkdir(parents=True, exist_ok=True)
    layers = adapter_layers(int(spec["adapter_mb"] * 1e6))
    generator = torch.Generator().manual_seed(spec["seed"])
    tensors: dict[str, torch.Tensor] = {}
    for layer in range(layers):
        for name, (block, fan_in, fan_out) in ADAPTER_MODULES.items():
            prefix = f"base_model.model.model.layers.{layer}.{block}.{name}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(ADAPTER_RANK, fan_in, generator=generator) * 0.01
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(fan_out, ADAPTER_RANK, generator=generator) * 0.01
    weights = directory / ADAPTER_WEIGHTS
    save_file(tensors, str(weights))
    del tensors
    (directory / ADAPTER_CONFIG).write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": ADAPTER_RANK, "lora_alpha": 2 * ADAPTER_RANK,
        "lora_dropout": 0.05, "target_modules": sorted(ADAPTER_MODULES), "bias": "none", "fan_in_fan_out": False,
        "use_rslora": False, "use_dora": False, "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {},
        "layers_to_transform": None, "layers_pattern": None, "base_model_name_or_path": "bench/llama-7b-shaped",
    }, indent=2, sort_keys=True))
    size = weights.stat().st_size
    checked = inspect_adapter(directory)

    def best(fn: Callable[[], T]) -> tuple[float, T]:
        times: list[float] = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return min(times), out

    best(lambda: hashlib.sha256(weights.read_bytes()).digest())  # warm the page cache
    hash_s, digest = best(lambda: adapter_hash(directory))
    inner_s = min(adapter_hash(checked).seconds for _ in range(repeats))  # its own timer: sha256 + manifest
    inspect_s, _ = best(lambda: inspect_adapter(directory))

    def file_digest() -> str:
        with open(weights, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()

    raw_s, raw_hex = best(file_digest)
    payload = weights.read_bytes()
    mem_s, _ = best(lambda: hashlib.sha256(payload).digest())
    payload = b""
    sha256sum_s: float | None = None
    sha256sum = shutil.which("sha256sum")
    if sha256sum:
        sha256sum_s, out = best(lambda: subprocess.run([sha256sum, str(weights)], capture_output=True, text=True,
                                                       check=True).stdout)
        if out.split()[0] != raw_hex:
            raise AssertionError("sha256sum and hashlib disagree")
    if digest.weights_sha256 != raw_hex:
        raise AssertionError("adapter_hash's weightsSha256 differs from hashlib's sha256 of the file")

    model_dir = Path(spec["model_dir"])
    base_s, base = best(lambda: hash_base_model(model_dir))
    cache = Path(spec["work"]) / "hash-cache.json"
    hash_base_model(model_dir, cache_path=cache)
    cached_s, cached = best(lambda: hash_base_model(model_dir, cache_path=cache))
    if cached.hash != base.hash or not cached.cached:
        raise AssertionError("hash_base_model with a warm cache differs from without")
    shutil.rmtree(directory, ignore_errors=True)
    return {
        "bytes": size, "layers": layers, "tensors": checked.tensor_count, "hash": digest.hash,
        "hash_s": hash_s, "inner_s": inner_s, "inspect_s": inspect_s, "raw_s": raw_s, "mem_s": mem_s,
        "sha256sum_s": sha256sum_s, "base_s": base_s, "base_bytes": base.total_bytes, "base_files": len(base.files),
        "base_hash": base.hash, "cached_s": cached_s, "vmhwm": peak_rss_mib(),
    }


def run_child(ctx: Any, fn: Callable[[Spec], dict[str, Any]], spec: Spec) -> dict[str, Any]:
    """``fn(spec)`` in a fresh spawned process."""
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        result: dict[str, Any] = pool.submit(fn, spec).result()
    return result


# ------------------------------------------------------------------ 1 + 2. training


def start_workers(args: argparse.Namespace, ctx: Any) -> dict[str, ProcessPoolExecutor]:
    """One single-process pool per path, started now (their imports overlap the model set-up)."""
    pools = {path: ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=init_worker,
                                       initargs=(args.threads,)) for path in (FRAMEWORK, BASELINE)}
    for pool in pools.values():
        pool.submit(worker_ready)
    return pools


def section_training(args: argparse.Namespace, pools: dict[str, ProcessPoolExecutor], spec: dict[str, Any],
                     setup: dict[str, Any]) -> None:
    pair = [FRAMEWORK, BASELINE]
    order = [p for i in range(args.repeats) for p in (pair if args.order == "abab" or i % 2 == 0 else pair[::-1])]
    progress(f"section 1: {len(order)} timed runs ({args.order}, {args.repeats} of each) after a warm-up of each, "
             f"{setup['threads']} torch thread(s), device {spec['device']}")
    runs: dict[str, list[dict[str, Any]]] = {FRAMEWORK: [], BASELINE: []}
    warm: dict[str, dict[str, Any]] = {}
    profiles: dict[str, str] = {}
    try:
        for path in (FRAMEWORK, BASELINE):
            warm[path] = pools[path].submit(run_path, {**spec, "path": path}).result()
            if path == FRAMEWORK:  # the baseline loads in the dtype load_base_model chose
                spec = {**spec, "dtype": warm[path]["dtype"].removeprefix("torch.")}
            progress(f"  warm-up {path}: {warm[path]['tokens_per_second']:,.0f} tokens/s "
                     f"({warm[path]['steps']} steps, {warm[path]['seconds']:.1f} s)")
        for i, path in enumerate(order):
            result = pools[path].submit(run_path, {**spec, "path": path}).result()
            runs[path].append(result)
            progress(f"  run {i + 1}/{len(order)} {path}: {result['tokens_per_second']:,.0f} tokens/s")
        final = {path: runs[path][-1] if runs[path] else warm[path] for path in runs}
        if args.profile:
            for path in (FRAMEWORK, BASELINE):
                profiled = pools[path].submit(run_path, {**spec, "path": path, "profile": True,
                                                         "profile_top": args.profile_top}).result()
                profiles[path] = f"{profiled['tokens_per_second']:,.0f} tokens/s under cProfile\n{profiled['profile']}"
    finally:
        for pool in pools.values():
            pool.shutdown()  # the workers exit here, before the hashing section

    fw, bl = runs[FRAMEWORK], runs[BASELINE]
    checks = _check_same_work(warm, fw + bl)
    fw_tps, bl_tps = median([r["tokens_per_second"] for r in fw]), median([r["tokens_per_second"] for r in bl])
    ratio = fw_tps / bl_tps if bl_tps > 0 else 0.0
    verdict = "PASS" if ratio >= GOAL else "MISS"
    ref = fw[0]

    def starved(r: dict[str, Any]) -> bool:
        """The run got under STARVED of its threads' worth of CPU time: other processes had the cores."""
        return r["call_cpu"] < STARVED * r["threads"] * r["call_s"]

    def per_run(results: list[dict[str, Any]]) -> str:
        return ", ".join(f"{r['tokens_per_second']:,.0f}" + ("*" if starved(r) else "") for r in results)

    def ms_step(results: list[dict[str, Any]]) -> str:
        return f"{median([r['seconds'] / max(r['steps'], 1) for r in results]) * 1e3:,.1f} ms"

    def cpu_share(results: list[dict[str, Any]]) -> float:
        return median([r["call_cpu"] / r["call_s"] for r in results if r["call_s"] > 0])

    def per_cpu_second(results: list[dict[str, Any]]) -> float:
        return median([r["tokens"] / r["call_cpu"] for r in results if r["call_cpu"] > 0])

    pairs = [a["tokens_per_second"] / b["tokens_per_second"] for a, b in zip(fw, bl) if b["tokens_per_second"] > 0]
    tps = {p: [r["tokens_per_second"] for r in rs] for p, rs in ((FRAMEWORK, fw), (BASELINE, bl))}
    fw_cpu, bl_cpu = per_cpu_second(fw), per_cpu_second(bl)
    clean = [a["tokens_per_second"] / b["tokens_per_second"] for a, b in zip(fw, bl)
             if not starved(a) and not starved(b) and b["tokens_per_second"] > 0]
    n_starved = sum(starved(r) for r in fw + bl)
    rows = [
        (f"tokens/s, median of {len(fw)}", rate(fw_tps, 1.0), rate(bl_tps, 1.0), f"{ratio:.3f} (goal >= {GOAL}: {verdict})"),
        ("tokens/s of each run, in order (ratio: each A/B pair)", per_run(fw), per_run(bl),
         ", ".join(f"{x:.3f}" for x in pairs)),
        ("tokens/s min / max (ratio: median of the pairs)",
         *(f"{min(tps[p]):,.0f} / {max(tps[p]):,.0f}" for p in (FRAMEWORK, BASELINE)), f"{median(pairs):.3f}"),
        ("warm-up run (not counted)", *(rate(warm[p]["tokens"], warm[p]["seconds"]) for p in (FRAMEWORK, BASELINE)),
         ""),
        ("timed seconds per run (median)", *(f"{median([r['seconds'] for r in rs]):.2f} s" for rs in (fw, bl)), ""),
        ("time per optimiser step (median)", ms_step(fw), ms_step(bl), ""),
        ("steps / tokens per run", *(f"{rs[0]['steps']} / {rs[0]['tokens']:,}" for rs in (fw, bl)), ""),
        ("CPU seconds / wall seconds of the call (median)", *(f"{cpu_share(rs):.2f}" for rs in (fw, bl)),
         f"{ref['threads']} thread(s): below that, other processes had the CPUs"),
        ("other processes' CPU use during the call (cores, median / max)",
         *(f"{median([r['others_cpu'] / r['call_s'] for r in rs]):.2f} / "
           f"{max(r['others_cpu'] / r['call_s'] for r in rs):.2f}" for rs in (fw, bl)),
         "from /proc/stat, minus the worker's own CPU time"),
        (f"runs starved of CPU (*: CPU < {STARVED:.0%} of threads x wall)",
         *(str(sum(starved(r) for r in rs)) for rs in (fw, bl)),
         f"pairs with neither starved: {len(clean)}" + (f", median ratio {median(clean):.3f}" if clean else "")),
        ("tokens per CPU-second of the call (median)", rate(fw_cpu, 1.0), rate(bl_cpu, 1.0),
         f"{fw_cpu / bl_cpu:.3f}" if bl_cpu > 0 else "-"),
        ("loss: first -> last step", *(f"{rs[0]['losses'][0]:.4f} -> {rs[0]['losses'][-1]:.4f}" for rs in (fw, bl)),
         checks["loss"]),
        ("deterministic algorithms on (torch)", *(str(rs[0]["deterministic"]) for rs in (fw, bl)), ""),
    ]
    loads = [r["load"] for r in fw + bl]
    busy = n_starved > 0
    cfg = spec["config"]
    lengths = checks["lengths"]
    notes = [
        f"model: tiny {setup['model_type']} (hidden {args.hidden}, {args.layers} layers, {args.heads} heads, "
        f"vocabulary {setup['vocab']}), {setup['parameters']:,} parameters, {setup['weights_bytes'] / 1e6:.1f} MB "
        f"of weights, {ref['dtype']} on {spec['device']}",
        f"data: {args.rows} synthetic instruction rows -> {ref['examples']} examples ({ref['dropped']} dropped), "
        f"{lengths}; examples identical in both paths: {checks['examples']}",
        f"settings: rank {cfg['rank']}, alpha {cfg['alpha']:g}, dropout {cfg['dropout']:g}, targets "
        f"{','.join(ref['targets'])}, lr {cfg['learning_rate']:g} ({cfg['lr_schedule']}), batch {cfg['batch_size']}, "
        f"{cfg['epochs']} epoch(s)" + (f", max {cfg['max_steps']} steps" if cfg.get("max_steps") else "")
        + f", seed {cfg['seed']}, clip 1.0; {ref['threads']} torch thread(s) in both workers",
        "timed: batch list + collate + forward/backward/clip/step/schedule/zero_grad per step (train_lora's own "
        "region; loading, tokenising and adapter / optimiser set-up are outside it in both)",
        f"order: warm-up A, warm-up B, then {' '.join('A' if p == FRAMEWORK else 'B' for p in order)} "
        "(A = framework, B = baseline), each path in its own spawned worker process",
        "the call: train_lora(...) for the framework; for the baseline the same scope (get_peft_model, optimiser, "
        "schedule, loop); CPU seconds are the worker's (all threads), so tokens per CPU-second is steadier than "
        "tokens/s when other processes compete, as long as the threads do not spin idle",
        f"1-min load average at the start of the timed runs: {min(loads):.1f} - {max(loads):.1f} "
        f"({os.cpu_count()} CPUs; this benchmark's own threads count in it)" + (": other processes competed for the CPUs. With several torch threads a "
                                      "starved run can be several times slower (each parallel region waits for "
                                      "a thread that is not running), so runs are noisy; compare the pairs with neither "
                                      "starved, or use --threads 1 on a shared machine" if busy else ""),
    ]
    if args.quick:
        notes.append("--quick: runs of well under a second (set-up in the call weighs more, so the CPU share and "
                     "'starved' marks are rough too): the ratio is a smoke check, not a measurement")
    notes += checks["problems"]
    table(f"1. Training throughput: {LABELS[FRAMEWORK]} vs {LABELS[BASELINE]}",
          ["measure", f"framework ({LABELS[FRAMEWORK]})", f"baseline ({LABELS[BASELINE]})", "framework / baseline"],
          rows, notes)

    def mem(value: float) -> str:
        return f"{value:,.0f} MiB"

    cuda = spec["device"].startswith("cuda")
    peak_label = "peak memory: TrainOutcome.peak_memory_bytes" + (" (max_memory_allocated)" if cuda
                                                                    else " (ru_maxrss)")
    raised = [mem(warm[p]["peak_memory_bytes"] / MiB - warm[p]["rss_before"]) if not cuda else "-"
              for p in (FRAMEWORK, BASELINE)]
    mem_rows = [
        (f"{peak_label}, after the first run", *(mem(warm[p]["peak_memory_bytes"] / MiB) for p in (FRAMEWORK, BASELINE)),
         f"{warm[FRAMEWORK]['peak_memory_bytes'] / max(warm[BASELINE]['peak_memory_bytes'], 1):.3f}"),
        ("  same, after all runs of the worker", *(mem(final[p]["peak_memory_bytes"] / MiB) for p in (FRAMEWORK, BASELINE)),
         ""),
        ("RSS high-water of the worker (VmHWM), after the first run", *(mem(warm[p]["vmhwm"]) for p in (FRAMEWORK, BASELINE)),
         ""),
        ("RSS at worker start (torch, transformers, peft imported)", *(mem(warm[p]["rss_start"]) for p in (FRAMEWORK, BASELINE)),
         ""),
        ("RSS before loading the model (first run)", *(mem(warm[p]["rss_load"]) for p in (FRAMEWORK, BASELINE)), ""),
        ("RSS before the call (model, examples loaded)", *(mem(warm[p]["rss_before"]) for p in (FRAMEWORK, BASELINE)), ""),
        ("RSS after the loop", *(mem(warm[p]["rss_after"]) for p in (FRAMEWORK, BASELINE)), ""),
        ("peak minus RSS before the call (what training raised it by)", *raised, ""),
    ]
    mem_notes = [
        "on CPU, peak_memory_bytes is getrusage(RUSAGE_SELF).ru_maxrss: the high-water mark of the whole process, "
        "never lowered (max RSS is monotonic in a process); hence one spawned worker per path, and the parent "
        "imports no torch (a spawned child's ru_maxrss starts at its parent's RSS, which is small here)",
        "first-run numbers are a fresh process's: imports, model load, tokenising and one training run; later runs "
        "in the same worker can only keep or raise the mark",
    ]
    if cuda:
        mem_notes.append("on CUDA, peak_memory_bytes is torch.cuda.max_memory_allocated, reset before each loop")
    table("2. Peak memory (first run in a fresh worker process)",
          ["measure", "framework", "baseline", "framework / baseline"], mem_rows, mem_notes)
    for path, text in profiles.items():
        print(f"\n### cProfile of one {path} run ({LABELS[path]}), top {args.profile_top} by own time\n{text}")
    sys.stdout.flush()


def _check_same_work(warm: dict[str, dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Both paths must have trained on the same examples, steps and tokens, on the same threads;
    compare their per-step losses."""
    problems = []
    everything = [*warm.values(), *runs]
    for key in ("digest", "tokens", "steps", "threads", "targets", "dtype"):
        values = {json.dumps(r[key]) for r in everything}
        if len(values) != 1:
            problems.append(f"WARNING: {key} differs between runs: {sorted(values)}")
    fw, bl = warm[FRAMEWORK]["losses"], warm[BASELINE]["losses"]
    diff = max((abs(a - b) for a, b in zip(fw, bl)), default=0.0)
    same_runs = all(r["losses"] == warm[r["path"]]["losses"] for r in runs)
    loss = ("identical, every step" if fw == bl else f"max |difference| {diff:.2e} over {len(fw)} steps")
    if not same_runs:
        loss += "; NOT repeatable between runs"
    return {"problems": problems, "loss": loss, "examples": "yes" if not any("digest" in p for p in problems) else "NO",
            "lengths": f"{warm[FRAMEWORK]['tokens'] / max(warm[FRAMEWORK]['examples'], 1):.0f} tokens per example "
                       f"on average"}


# ------------------------------------------------------------------------------ 3. hashing


def section_hash(args: argparse.Namespace, ctx: Any, model_dir: Path, work: Path) -> None:
    progress(f"section 3: adapter hashing ({args.adapter_mb:g} MB adapter, best of {args.hash_repeats})")
    h = run_child(ctx, child_hash, {"work": str(work), "model_dir": str(model_dir), "adapter_mb": args.adapter_mb,
                                     "repeats": args.hash_repeats, "seed": args.seed})
    mb = h["bytes"] / 1e6

    def row(label: str, seconds: float | None, note: str = "") -> tuple[str, str, str, str]:
        if seconds is None:
            return (label, "-", "-", note)
        return (label, f"{seconds * 1e3:,.1f} ms", rate(mb, seconds), note)

    rows = [
        row("adapter_hash(dir) (inspect + sha256 of the weights + manifest)", h["hash_s"],
            f"{h['hash_s'] / h['raw_s']:.2f}x hashlib.file_digest"),
        row("  its own timer (AdapterHash.seconds: sha256_file + manifest)", h["inner_s"]),
        row("  inspect_adapter(dir) alone (config + safetensors header)", h["inspect_s"]),
        row("hashlib.file_digest(file, 'sha256') (peer)", h["raw_s"]),
        row("hashlib.sha256(bytes already in memory) (the limit)", h["mem_s"]),
        row("sha256sum program (peer; process start included)", h["sha256sum_s"],
            "" if h["sha256sum_s"] is not None else "no sha256sum on PATH"),
    ]
    base_mb = h["base_bytes"] / 1e6
    base_rows = [
        (f"hash_base_model(tiny model: {h['base_files']} file, {base_mb:.1f} MB), no cache",
         f"{h['base_s'] * 1e3:,.1f} ms", rate(base_mb, h["base_s"]), ""),
        ("hash_base_model, warm hash cache (no file read)", f"{h['cached_s'] * 1e3:,.1f} ms", "-",
         f"hash {h['base_hash'][:18]}..."),
    ]
    table(f"3. Adapter hashing: {mb:,.1f} MB adapter_model.safetensors", ["measure", f"best of {args.hash_repeats}",
          "MB/s", "note"], rows + base_rows, [
        f"adapter: {h['tensors']:,} tensors (lora_A / lora_B, rank {ADAPTER_RANK}, q/k/v/o/gate/up/down of "
        f"{h['layers']} Llama-7B-shaped layers, float32); adapter hash {h['hash'][:18]}..., its weightsSha256 "
        "equals hashlib's (checked)",
        "the file was just written and read once before timing: every read comes from the page cache, so this "
        "is hashing speed, not disk speed; MB = 10^6 bytes",
        f"child process high-water mark {h['vmhwm']:,.0f} MiB (the random tensors are built in memory first)",
    ])


# ------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model and data")
    model.add_argument("--family", choices=["llama", "qwen2", "gpt2"], default="llama", help="tiny model family (default llama)")
    model.add_argument("--hidden", type=int, default=256, help="hidden size (default 256)")
    model.add_argument("--layers", type=int, default=4, help="layers (default 4)")
    model.add_argument("--heads", type=int, default=8, help="attention heads (default 8)")
    model.add_argument("--vocab", type=int, default=512, help="tokenizer vocabulary (default 512)")
    model.add_argument("--rows", type=int, default=1024, help="synthetic instruction rows (default 1,024)")
    train = parser.add_argument_group("training settings (both paths)")
    train.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    train.add_argument("--alpha", type=float, default=16.0, help="LoRA alpha (default 16)")
    train.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout (default 0.05)")
    train.add_argument("--lr", type=float, default=2e-4, help="learning rate (default 2e-4)")
    train.add_argument("--lr-schedule", choices=["linear", "constant"], default="linear")
    train.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    train.add_argument("--epochs", type=int, default=1, help="epochs (default 1)")
    train.add_argument("--max-steps", type=int, default=None, help="stop after N optimiser steps (default: all epochs)")
    train.add_argument("--max-length", type=int, default=256, help="max tokens per example (default 256)")
    train.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    train.add_argument("--threads", type=int, default=0, help="torch threads in every child (default 0: torch's default)")
    runs = parser.add_argument_group("runs")
    runs.add_argument("--repeats", type=int, default=3, help="timed runs of each path, alternating (default 3)")
    runs.add_argument("--order", choices=["abab", "abba"], default="abab",
                      help="abab (default): framework first in every pair; abba: every other pair reversed")
    runs.add_argument("--baseline-deterministic", action="store_true",
                      help="diagnostic: the baseline also calls torch.use_deterministic_algorithms(True, warn_only=True) "
                           "as train_lora does, to isolate that setting's cost")
    runs.add_argument("--profile", action="store_true", help="after the timed runs, cProfile one run of each path")
    runs.add_argument("--profile-top", type=int, default=15, help="profile entries to print (default 15)")
    runs.add_argument("--adapter-mb", type=float, default=100.0, help="size of the hashed adapter in MB (default 100)")
    runs.add_argument("--hash-repeats", type=int, default=3, help="hashing: best of N (default 3)")
    runs.add_argument("--quick", action="store_true",
                      help="smoke run (< 30 s): hidden 64, 2 layers, 32 rows, 8 steps, 1 repeat, 20 MB adapter")
    runs.add_argument("--only", choices=["training", "hash"], action="append", help="sections to run (default both)")
    runs.add_argument("--seed", type=int, default=0)
    runs.add_argument("--tmp", default=None, help="directory for the temporary files (default: the system temp dir)")
    args = parser.parse_args()
    if args.quick:
        args.hidden, args.layers, args.heads = min(args.hidden, 64), min(args.layers, 2), min(args.heads, 4)
        args.rows, args.batch_size = min(args.rows, 32), min(args.batch_size, 4)
        args.max_steps = min(args.max_steps or 8, 8)
        args.repeats, args.hash_repeats = min(args.repeats, 1), min(args.hash_repeats, 2)
        args.adapter_mb = min(args.adapter_mb, 20.0)
    if min(args.repeats, args.rows, args.hash_repeats, args.batch_size) < 1 or args.hidden % args.heads:
        parser.error("--repeats, --rows, --hash-repeats and --batch-size must be >= 1; --heads must divide --hidden")

    sections = args.only or ["training", "hash"]
    started = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    work = Path(tempfile.mkdtemp(prefix="bench-training-", dir=args.tmp))
    timings: list[str] = []
    pools = start_workers(args, ctx) if "training" in sections else {}
    try:
        model_dir = work / "tiny-model"
        progress(f"writing the tiny {args.family} model (hidden {args.hidden}, {args.layers} layers, {args.heads} heads)")
        setup = run_child(ctx, child_setup, {
            "model_dir": str(model_dir), "family": args.family, "seed": args.seed, "hidden": args.hidden,
            "layers": args.layers, "heads": args.heads, "vocab": args.vocab, "max_length": args.max_length,
            "threads": args.threads,
        })
        device = args.device
        if device == "auto":
            device = "cuda" if setup["cuda"] else "cpu"
        print(f"# bench_training: python {sys.version.split()[0]}, torch {setup['torch']}, transformers "
              f"{setup['transformers']}, peft {setup['peft']}, {os.cpu_count()} CPUs, torch threads {setup['threads']} "
              f"({'--threads' if args.threads > 0 else 'torch default'}), device {device}, seed {args.seed}"
              + (" (--quick)" if args.quick else ""))
        if "training" in sections:
            t = time.perf_counter()
            config = {
                "rank": args.rank, "alpha": args.alpha, "dropout": args.dropout, "learning_rate": args.lr,
                "lr_schedule": args.lr_schedule, "weight_decay": 0.0, "epochs": args.epochs,
                "max_steps": args.max_steps, "batch_size": args.batch_size, "gradient_accumulation": 1,
                "max_length": args.max_length, "seed": args.seed, "val_fraction": 0.0, "checkpoint_every": 0,
                "max_grad_norm": 1.0,
            }
            spec = {"model_dir": str(model_dir), "rows": args.rows, "seed": args.seed, "device": device,
                    "config": config, "targets": setup["targets"], "dtype": None,
                    "baseline_deterministic": args.baseline_deterministic}
            section_training(args, pools, spec, setup)
            timings.append(f"training {time.perf_counter() - t:.0f} s")
        if "hash" in sections:
            t = time.perf_counter()
            section_hash(args, ctx, model_dir, work)
            timings.append(f"hash {time.perf_counter() - t:.0f} s")
    finally:
        for pool in pools.values():
            pool.shutdown(cancel_futures=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal runtime {time.perf_counter() - started:.0f} s ({', '.join(timings)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
