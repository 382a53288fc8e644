#!/usr/bin/env python3
"""Serving benchmark: the batched multi-LoRA engine against PEFT, and the adapter residency tiers.

One run prints one table (every number measured in this run, peers side by side), then the
goals as PASS / FAIL lines with the numbers behind them.

**Models.** A tiny random Llama written by ``init_tiny_model`` (4 layers, hidden 256, 4 heads,
2 KV heads, intermediate 512, its 512-token BPE vocabulary; ``--hidden/--layers/--heads``), and,
when a copy exists or ``--smollm fetch`` asks for one, the real SmolLM2-135M-Instruct
(``loraledger.training.hf.fetch.fetch_model``; float32).

**Adapters.** Rank 8 (alpha 16) on ``q_proj k_proj v_proj o_proj``. One PEFT adapter is made
with ``get_peft_model`` + ``save_pretrained`` (its ``adapter_config.json`` and tensor names);
adapter ``i`` is that layout with its own random, non-zero ``lora_A`` / ``lora_B`` drawn from
seed ``i`` and written with ``safetensors`` exactly as PEFT writes them (what PEFT's
``load_adapter`` and the engine read). Creating them (1,000 directories) is timed apart and is
in no row. Each is registered in an :class:`~loraledger.serving.store.AdapterStore` through a
lookup over rows ``{name, path, adapter_hash, base_model_hash}`` with the real hashes
(``training.adapters.adapter_hash``, ``training.hf.basemodel.hash_base_model``): the store
re-hashes the files at every cold load.

**Workload.** ``--requests`` (64) prompts of random token ids, 16-48 tokens long, each asking for
``--max-tokens`` (16) greedy tokens with end-of-sequence ignored (every request makes exactly
16; checked). Adapters are drawn per request uniformly or Zipf (s = 1.1; adapter 0 the most
popular) over the ``N`` adapters, N in ``--adapters`` (1, 10, 100, 1,000). All requests are
submitted at t = 0 (a closed batch); latency and time to first token (TTFT) count from t = 0.
tokens/s = generated tokens / wall time from t = 0 to the last token.

**Systems** (rows):

* ``engine``: :class:`~loraledger.serving.engine.Engine` driven by its
  :class:`~loraledger.serving.loop.EngineLoop` (continuous batching, ``max_running`` 32), slots
  :class:`~loraledger.serving.lora.LoraSlots` (``--max-loras`` 32 device slots, one per row of
  a full batch, so a step is never short of slots with many adapters; 1 MiB of slot tensors
  on the tiny model) fed by an
  ``AdapterStore`` (``--max-cpu-loras`` 128 in host memory). When N <= max_cpu_loras all N are
  loaded into host memory before the clock starts (a node's steady state; none is on a device
  slot); above it the store starts empty and the cold loads are part of the run. The ``tiers``
  column gives the store's counters during the run: cold loads (disk → host), host evictions,
  device evictions. ``batch`` is the mean number of rows per decode step.
* ``engine base``: the same engine (same model, same slots) with requests for no adapter.
* ``peft per-request``: one ``PeftModel`` holding the N adapters (``load_adapter``), each
  request run alone: ``set_adapter`` then ``generate`` (batch 1, KV cache, greedy), one after the
  other. Drawn uniformly (the order of adapters does not matter to it). Not run for N > 100.
* ``peft mixed``: the same model, ``generate(..., adapter_names=[...])`` over batches of
  ``--peft-batch`` (32) in submission order, left-padded; batches one after the other.

Each row is ``--repeats`` passes back to back (full 3, quick 1), each engine pass on a fresh
store in the same starting state; the row shows the best pass (most tokens/s) and the median
tokens/s. ``peak RSS`` is the process's high-water mark during the pass (VmHWM, reset before it
through ``/proc/self/clear_refs``): the whole process, so torch and every model then loaded are
in it. ``others CPU`` is the share of the machine's CPUs that other processes used during the
pass (``/proc/stat`` less this process's CPU time): a neighbour on one of the two cores makes
2-thread torch several times slower (its threads wait for each other), so a pass above 25% is
starved: a row makes up to ``--retries`` extra passes to replace starved ones (none once its
passes took ``--row-seconds``) and is made of its un-starved passes; a row with none is marked
``*`` and its ratios are not to be trusted. Before the timed rows one untimed engine run
and one PEFT ``generate`` warm torch up. ``--op`` picks the engine's LoRA delta (``group`` or
``gather``; ``auto``: what ``LoraSlots`` picks, ``group`` on a CPU).

**Residency checks** (tiny model):

* *memory per resident adapter*: 100 adapters loaded into a fresh store's host tier
  (``host_weights``); ``resident()["hostBytes"]`` and the RSS growth (after ``gc`` and
  ``malloc_trim``) against the sum of the adapters' safetensors tensor bytes.
* *registered adapters*: ``--registered`` (10,000) rows, pointing at the N-max adapter
  directories in turn (names differ, files repeat: the store hashes and loads per name). Requests
  of 2 tokens, each for a new name, in waves of ``--wave``; after each wave the RSS and the tiers'
  sizes. Bounded: the tiers never exceed ``max_loras`` / ``max_cpu_loras``, and over the second half
  of the waves after the host tier filled the RSS grows by at most 10% of the host tier's bound
  (max_cpu_loras x one adapter's bytes). ``cold loads`` above the distinct names touched are
  adapters loaded for a waiting request and evicted from host memory before it was admitted.
* *cold load*: ``AdapterStore.host_weights`` of an adapter not yet loaded (hash check + read +
  scaling folded in, on the store's loader thread) against a raw ``safetensors.torch.load_file`` +
  ``.clone()`` of each tensor of the same file (page cache warm for both), median of
  ``--cold-repeats`` adapters.

**Goals** (tiny model, 2 CPU threads): at N = 100 the engine >= 10x PEFT per-request tokens/s,
>= 2x PEFT mixed batch (same draw), >= 70% of its own base-only tokens/s; memory per resident
adapter within 10% of its tensor bytes; registered adapters bounded; cold load <= 1.5x raw.

    .venv/bin/python scripts/bench_serving.py                    # full run (about 5 minutes on 2 idle cores)
    .venv/bin/python scripts/bench_serving.py --quick            # about 1 minute
    .venv/bin/python scripts/bench_serving.py --smollm fetch     # fetch SmolLM2-135M first (about 20 s)
    .venv/bin/python scripts/bench_serving.py --smollm none --adapters 10 100 --op group --max-loras 16
    python3 scripts/bench_serving.py --quick --device cuda --hidden 1024 --layers 8 --heads 16  # on a GPU

Nothing is downloaded unless ``--smollm fetch`` is given (pip's index and cache, as
``loraledger model fetch`` does); the tiny model and every adapter are written to a temporary
directory (``--keep DIR`` keeps them).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402
import torch  # noqa: E402
from benchutil import (  # noqa: E402
    SMOLLM,
    SMOLLM_CACHE,
    MiB,
    busy_cpu_seconds,
    on_own_thread,
    peak_rss_mib,
    progress,
    rss_mib,
    smollm_dir,
    table,
)

from loraledger.errors import NotFoundError  # noqa: E402

DEFAULT_CACHE = SMOLLM_CACHE
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
ZIPF_S = 1.1
PEFT_MAX_ADAPTERS = 100
#: A pass during which other processes used more than this share of the CPUs is marked starved.
STARVED = 0.25

FULL = {"adapters": [1, 10, 100, 1000], "requests": 64, "repeats": 3, "retries": 3, "registered": 10_000,
        "touch": 10_000, "wave": 500, "cold_repeats": 20, "smollm_requests": 16, "smollm_adapters": 10}
QUICK = {"adapters": [10, 100], "requests": 32, "repeats": 1, "retries": 1, "registered": 10_000, "touch": 1_000,
         "wave": 250, "cold_repeats": 8, "smollm_requests": 8, "smollm_adapters": 10}


# ------------------------------------------------------------------------------ helpers


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0); a no-op elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def trimmed_rss_mib() -> float:
    """RSS after a full ``gc`` and glibc's ``malloc_trim`` (freed memory handed back to the OS)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return rss_mib()


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class Meter:
    """Around one timed pass: resets the RSS high-water mark, then reads it and the share of the
    machine's CPUs that other processes used meanwhile (a busy neighbour slows 2-thread torch a lot)."""

    def __init__(self) -> None:
        gc.collect()
        reset_peak_rss()
        self._start = (time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds())

    def finish(self) -> tuple[float, float]:
        """(peak RSS MiB, others' CPU share 0..1)."""
        wall, busy, own = (b - a for a, b in zip(self._start, (time.perf_counter(), busy_cpu_seconds(),
                                                                 own_cpu_seconds())))
        others = max(busy - own, 0.0) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0
        return peak_rss_mib(), others


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (linear interpolation between closest ranks)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def quiet() -> None:
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


# ------------------------------------------------------------------------------ adapters


@dataclass(frozen=True)
class AdapterRow:
    """What the store's lookup returns (the ledger's adapter row, reduced to what it reads)."""

    name: str
    path: str
    adapter_hash: str
    base_model_hash: str


@dataclass(frozen=True)
class Adapters:
    """Adapter directories of one base model, named ``a0000``, ``a0001``...; ``rows`` by name."""

    rows: dict[str, AdapterRow]
    tensor_bytes: dict[str, int]
    seconds: float

    @property
    def names(self) -> list[str]:
        return list(self.rows)


def make_adapters(base: Path, root: Path, count: int, *, rank: int, base_hash: str) -> Adapters:
    """``count`` rank-``rank`` LoRA adapters of ``base`` on :data:`TARGETS` (see the module docstring)."""
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    from loraledger.training.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_hash

    started = time.perf_counter()
    template = root / "template"
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                                  target_modules=list(TARGETS)))
    peft_model.save_pretrained(str(template))
    del peft_model, model
    layout = {key: (tuple(t.shape), t.dtype) for key, t in load_file(str(template / ADAPTER_WEIGHTS)).items()}
    rows: dict[str, AdapterRow] = {}
    sizes: dict[str, int] = {}
    for i in range(count):
        name = f"a{i:04d}"
        out = root / name
        out.mkdir(parents=True)
        shutil.copyfile(template / ADAPTER_CONFIG, out / ADAPTER_CONFIG)
        gen = torch.Generator().manual_seed(1000 + i)
        tensors: dict[str, torch.Tensor] = {}
        for key, (shape, dtype) in sorted(layout.items()):
            if "lora_A" in key:  # [rank, in]: PEFT's kaiming-uniform scale
                tensors[key] = (torch.rand(shape, generator=gen) * 2 - 1).to(dtype) / shape[1] ** 0.5
            else:  # lora_B [out, rank]: non-zero, so every adapter changes the output
                tensors[key] = (torch.randn(shape, generator=gen) * 0.05).to(dtype)
        save_file(tensors, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        rows[name] = AdapterRow(name, str(out), adapter_hash(out).hash, base_hash)
        sizes[name] = sum(t.numel() * t.element_size() for t in tensors.values())
    return Adapters(rows, sizes, time.perf_counter() - started)


def lookup_of(rows: dict[str, AdapterRow]) -> Callable[[str], AdapterRow]:
    def lookup(name: str) -> AdapterRow:
        row = rows.get(name)
        if row is None:
            raise NotFoundError(f"no adapter {name}")
        return row
    return lookup


class NoSlots:
    """Device slots for a store used only for its host tier (residency checks)."""

    def load(self, slot: int, weights: Any) -> None:
        raise AssertionError("the host-tier checks never load a device slot")

    def clear(self, slot: int) -> None:
        pass


# ------------------------------------------------------------------------------ workload


@dataclass(frozen=True)
class Workload:
    """Prompts (token ids) and the adapter of each request (None: the base model)."""

    prompts: list[list[int]]
    adapters: list[str | None]
    max_tokens: int
    draw: str

    @property
    def distinct(self) -> int:
        return len({a for a in self.adapters if a is not None})


def make_prompts(count: int, vocab: int, special: set[int], *, seed: int, low: int = 16,
                 high: int = 48) -> list[list[int]]:
    rng = random.Random(seed)
    ids = [i for i in range(vocab) if i not in special]
    return [[rng.choice(ids) for _ in range(rng.randint(low, high))] for _ in range(count)]


def draw_adapters(names: Sequence[str], count: int, draw: str, *, seed: int) -> list[str | None]:
    """``count`` adapter names: ``uniform``, ``zipf`` (s = 1.1 by rank in ``names``) or ``base`` (all None)."""
    if draw == "base":
        return [None] * count
    rng = random.Random(seed)
    weights = [1.0] * len(names) if draw == "uniform" else [1 / (k + 1) ** ZIPF_S for k in range(len(names))]
    return list(rng.choices(list(names), weights=weights, k=count))


# ------------------------------------------------------------------------------ results


@dataclass
class Run:
    """One timed pass of a workload through one system."""

    tokens: int
    wall: float
    latencies: list[float]
    ttfts: list[float]
    batch: float
    peak_rss: float
    other_cpu: float
    tiers: str = "-"

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall if self.wall > 0 else 0.0


@dataclass
class Result:
    """A table row: ``--repeats`` passes of one configuration; the best pass is shown."""

    model: str
    system: str
    adapters: int
    draw: str
    distinct: int
    runs: list[Run]

    @property
    def counted(self) -> list[Run]:
        """The passes the row is made of: the un-starved ones, or every pass if all were starved."""
        return [r for r in self.runs if r.other_cpu <= STARVED] or self.runs

    @property
    def best(self) -> Run:
        return max(self.counted, key=lambda r: r.tokens_per_s)

    @property
    def tokens_per_s(self) -> float:
        return self.best.tokens_per_s

    def cells(self) -> list[str]:
        best = self.best
        return [self.model, self.system, f"{self.adapters:,}" if self.adapters else "-", self.draw,
                str(self.distinct) if self.adapters else "-", f"{best.tokens_per_s:,.0f}",
                f"{statistics.median(r.tokens_per_s for r in self.counted):,.0f}",
                f"{percentile(best.latencies, 50) * 1e3:,.0f}", f"{percentile(best.latencies, 99) * 1e3:,.0f}",
                f"{percentile(best.ttfts, 50) * 1e3:,.0f}", f"{best.batch:.1f}", f"{best.peak_rss:,.0f}",
                f"{best.other_cpu:.0%}{' *' if best.other_cpu > STARVED else ''}", best.tiers]


HEAD = ["model", "system", "N", "draw", "distinct", "tok/s", "tok/s med", "p50 lat ms", "p99 lat ms",
        "p50 TTFT ms", "batch", "peak RSS MiB", "others CPU", "tiers cold/host-ev/dev-ev"]


# ------------------------------------------------------------------------------ our engine


@dataclass
class EngineSetup:
    """One base model with its LoRA slots, shared by every engine configuration of that model."""

    label: str
    model: Any
    tokenizer: Any
    slots: Any
    base_hash: str
    max_rank: int


def load_engine_setup(label: str, base: Path, base_hash: str, args: argparse.Namespace) -> EngineSetup:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loraledger.serving.lora import LoraSlots

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32).to(args.device).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    slots = LoraSlots(model, max_loras=args.max_loras, max_rank=args.rank, target_modules=TARGETS, op=args.op)
    return EngineSetup(label, model, tokenizer, slots, base_hash, args.rank)


def clear_slots(setup: EngineSetup) -> None:
    for slot in range(1, setup.slots.max_loras + 1):
        setup.slots.clear(slot)


def new_store(setup: EngineSetup, rows: dict[str, AdapterRow], args: argparse.Namespace) -> Any:
    from loraledger.serving.store import AdapterStore

    on_own_thread(clear_slots, setup)  # a fresh store assumes empty slots
    return AdapterStore(lookup_of(rows), setup.slots, base_model_hash=setup.base_hash, max_loras=args.max_loras,
                        max_cpu_loras=args.max_cpu_loras, max_rank=setup.max_rank)


@dataclass
class Served:
    tokens: list[int]
    latencies: list[float]
    ttfts: list[float]
    wall: float
    steps: int


def serve(setup: EngineSetup, store: Any, workload: Workload, args: argparse.Namespace,
          timeout: float = 600.0) -> Served:
    """Submit every request at t = 0 to a fresh engine on ``store``; wait for all of them."""
    from loraledger.serving.engine import Engine
    from loraledger.serving.loop import EngineLoop
    from loraledger.serving.sampling import SamplingParams

    count = len(workload.prompts)
    first: list[float | None] = [None] * count
    end: list[float | None] = [None] * count
    tokens = [0] * count
    errors: list[str] = []
    remaining = [count]
    lock = threading.Lock()
    done = threading.Event()
    params = SamplingParams(temperature=0.0, max_tokens=workload.max_tokens, ignore_eos=True)

    def on_event(i: int) -> Callable[[Any], None]:
        def record(event: Any) -> None:
            now = time.perf_counter()
            if first[i] is None and event.token_ids:
                first[i] = now
            if event.finished:
                end[i] = now
                tokens[i] = event.completion_tokens
                if event.finish_reason != "length" or event.completion_tokens != workload.max_tokens:
                    errors.append(f"request {i}: {event.finish_reason} after {event.completion_tokens} tokens "
                                  f"({event.error})")
                with lock:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        done.set()
        return record

    def make() -> Any:  # on the engine's thread, which then serves (one OpenMP pool: module docstring)
        torch.set_num_threads(args.threads)
        engine = Engine(setup.model, setup.tokenizer, setup.slots, slot_provider=store, max_running=args.max_running)
        for i, (prompt, adapter) in enumerate(zip(workload.prompts, workload.adapters)):
            engine.submit(prompt, adapter=adapter, params=params, on_event=on_event(i))  # queued: a closed batch
        return engine

    start = time.perf_counter()
    loop = EngineLoop.build(make)
    finished = done.wait(timeout)
    loop.stop()
    if not finished or errors:
        raise RuntimeError(f"engine run incomplete: {errors[:3] or 'timed out'}")
    latencies = [e - start for e in end if e is not None]
    ttfts = [f - start for f in first if f is not None]
    return Served(tokens, latencies, ttfts, max(latencies), loop.engine.steps)


def run_engine(setup: EngineSetup, adapters: Adapters, n: int, workload: Workload,
               args: argparse.Namespace) -> Run:
    """One pass on a fresh store holding the first ``n`` adapters (all in host memory first when they fit)."""
    rows = {name: adapters.rows[name] for name in adapters.names[:n]}
    store = new_store(setup, rows, args)
    try:
        if workload.draw != "base" and n <= args.max_cpu_loras:
            for name in rows:
                store.host_weights(name)
        before = (store.stats.cold_loads, store.stats.host_evictions, store.stats.device_evictions)
        meter = Meter()
        served = serve(setup, store, workload, args)
        peak, others = meter.finish()
        after = (store.stats.cold_loads, store.stats.host_evictions, store.stats.device_evictions)
    finally:
        store.close()
    decoded = sum(served.tokens) - len(served.tokens)  # the first token of each comes from its prefill
    tiers = "/".join(str(b - a) for a, b in zip(before, after)) if workload.draw != "base" else "-"
    return Run(sum(served.tokens), served.wall, served.latencies, served.ttfts, decoded / max(served.steps, 1), peak,
               others, tiers)


# ------------------------------------------------------------------------------ PEFT


class FirstTokenTimes:
    """A ``generate`` streamer that notes when the first new token of the batch came out."""

    def __init__(self) -> None:
        self.puts = 0
        self.first: float | None = None

    def put(self, value: Any) -> None:
        self.puts += 1
        if self.puts == 2 and self.first is None:  # the first put is the prompt
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def load_peft(base: Path, adapters: Adapters, n: int, device: str) -> tuple[Any, float]:
    """A PeftModel on a fresh copy of ``base`` holding the first ``n`` adapters; (model, seconds)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32).to(device).eval()
    names = adapters.names[:n]
    peft_model = PeftModel.from_pretrained(model, adapters.rows[names[0]].path, adapter_name=names[0])
    for name in names[1:]:
        peft_model.load_adapter(adapters.rows[name].path, adapter_name=name)
    return peft_model.eval(), time.perf_counter() - started


def generation_config(tokenizer: Any, max_tokens: int) -> Any:
    from transformers import GenerationConfig

    # No end-of-sequence token: every row makes exactly max_tokens, as the engine's ignore_eos.
    return GenerationConfig(max_new_tokens=max_tokens, do_sample=False, eos_token_id=None,
                            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)


def synchronize(tensor: torch.Tensor) -> None:
    """Wait for the GPU's queued work, so that the clock read next includes it."""
    if tensor.is_cuda:
        torch.cuda.synchronize(tensor.device)


def run_peft_per_request(peft_model: Any, tokenizer: Any, workload: Workload) -> Run:
    config = generation_config(tokenizer, workload.max_tokens)
    latencies: list[float] = []
    ttfts: list[float] = []
    tokens = 0
    meter = Meter()
    start = time.perf_counter()
    with torch.inference_mode():
        for prompt, adapter in zip(workload.prompts, workload.adapters):
            peft_model.set_adapter(adapter)
            streamer = FirstTokenTimes()
            ids = torch.tensor([prompt], device=peft_model.device)
            out = peft_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config,
                                      streamer=streamer)
            synchronize(out)
            now = time.perf_counter()
            new = out.shape[1] - len(prompt)
            if new != workload.max_tokens:
                raise RuntimeError(f"PEFT generated {new} tokens, not {workload.max_tokens}")
            tokens += new
            latencies.append(now - start)
            ttfts.append((streamer.first or now) - start)
    wall = time.perf_counter() - start
    return Run(tokens, wall, latencies, ttfts, 1.0, *meter.finish())


def run_peft_mixed(peft_model: Any, tokenizer: Any, workload: Workload, batch_size: int) -> Run:
    config = generation_config(tokenizer, workload.max_tokens)
    pad = config.pad_token_id
    latencies: list[float] = []
    ttfts: list[float] = []
    tokens = 0
    rows_per_batch: list[int] = []
    meter = Meter()
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(workload.prompts), batch_size):
            prompts = workload.prompts[first:first + batch_size]
            names = [a if a is not None else "__base__" for a in workload.adapters[first:first + batch_size]]
            width = max(len(p) for p in prompts)
            ids = torch.full((len(prompts), width), pad, dtype=torch.long)
            mask = torch.zeros((len(prompts), width), dtype=torch.long)
            for row, prompt in enumerate(prompts):  # left padding
                ids[row, width - len(prompt):] = torch.tensor(prompt)
                mask[row, width - len(prompt):] = 1
            streamer = FirstTokenTimes()
            out = peft_model.generate(input_ids=ids.to(peft_model.device), attention_mask=mask.to(peft_model.device),
                                      generation_config=config, adapter_names=names, streamer=streamer)
            synchronize(out)
            now = time.perf_counter()
            new = out.shape[1] - width
            if new != workload.max_tokens:
                raise RuntimeError(f"PEFT generated {new} tokens, not {workload.max_tokens}")
            tokens += new * len(prompts)
            rows_per_batch.append(len(prompts))
            latencies += [now - start] * len(prompts)
            ttfts += [(streamer.first or now) - start] * len(prompts)
    wall = time.perf_counter() - start
    return Run(tokens, wall, latencies, ttfts, statistics.mean(rows_per_batch), *meter.finish())


# ------------------------------------------------------------------------------ residency checks


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Section:
    """A model's rows plus the notes printed under the table."""

    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def file_mapped_share(tensors: Sequence[torch.Tensor]) -> float:
    """Share of the bytes of ``tensors`` whose storage lies in a file mapping (``/proc/self/maps``): a
    tensor that is a view of a safetensors file keeps the whole file mapped while it lives."""
    regions: list[tuple[int, int]] = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[5].startswith("/"):
                    low, high = (int(x, 16) for x in parts[0].split("-"))
                    regions.append((low, high))
    except OSError:
        return 0.0
    total = mapped = 0
    for tensor in tensors:
        size = tensor.numel() * tensor.element_size()
        total += size
        ptr = tensor.untyped_storage().data_ptr()
        if any(low <= ptr < high for low, high in regions):
            mapped += size
    return mapped / total if total else 0.0


def check_host_memory(adapters: Adapters, base_hash: str, count: int) -> list[Check]:
    """RSS and ``hostBytes`` of ``count`` adapters in a fresh store's host tier vs their tensor bytes;
    then the RSS after ``unload`` of every one of them."""
    from loraledger.serving.store import AdapterStore

    names = adapters.names[:count]
    rows = {name: adapters.rows[name] for name in names}
    store = AdapterStore(lookup_of(rows), NoSlots(), base_model_hash=base_hash, max_loras=1,
                         max_cpu_loras=max(count, 1), max_rank=64)
    try:
        store.host_weights(names[0])  # the loader thread and its allocator arena exist before the first reading
        store.unload(names[0])
        before = trimmed_rss_mib()
        for name in names:
            store.host_weights(name)
        after = trimmed_rss_mib()
        host_bytes = store.resident()["hostBytes"]
        held = [t for name in names for pair in store.host_weights(name).modules.values() for t in (pair.a, pair.b)]
        mapped = file_mapped_share(held)
        del held
        unloaded = sum(store.unload(name) for name in names)
        gc.collect()
        freed_to = trimmed_rss_mib()
    finally:
        store.close()
    tensor = sum(adapters.tensor_bytes[name] for name in names)
    rss_growth = (after - before) * MiB
    host_ratio, rss_ratio = host_bytes / tensor, rss_growth / tensor
    passed = abs(host_ratio - 1) <= 0.10 and abs(rss_ratio - 1) <= 0.10
    left = (freed_to - before) * MiB
    return [Check(f"memory per resident adapter ({count} in host memory) within 10% of its tensor bytes", passed,
                  f"tensors {tensor / count / 1024:,.1f} KiB/adapter; hostBytes {host_bytes / count / 1024:,.1f} KiB "
                  f"({host_ratio:.3f}x); RSS growth {rss_growth / count / 1024:,.1f} KiB ({rss_ratio:.3f}x); "
                  f"{mapped:.0%} of the held tensor bytes are views of the mmapped safetensors file (each such "
                  "tensor keeps its whole file mapped)"),
            Check(f"unload frees the memory: after unloading the {count}, RSS within 10% of their tensor bytes of "
                  "where it was before they loaded", unloaded == count and left <= 0.10 * tensor,
                  f"{unloaded} unloaded; RSS {before:,.1f} MiB before loading, {after:,.1f} MiB loaded, "
                  f"{freed_to:,.1f} MiB after unloading ({left / MiB:+.2f} MiB left, "
                  f"{left / tensor:.1%} of the {tensor / MiB:.1f} MiB loaded)")]


def check_cold_load(adapters: Adapters, base_hash: str, repeats: int) -> Check:
    """``host_weights`` of a not-yet-loaded adapter vs a raw ``load_file`` + ``.clone()`` of the same file;
    with the parts of a cold load timed alone on the same files for the detail."""
    from safetensors.torch import load_file

    from loraledger.serving.store import AdapterStore
    from loraledger.serving.weights import load_adapter_weights
    from loraledger.training.adapters import ADAPTER_WEIGHTS, adapter_hash

    names = adapters.names[-repeats - 1:]  # adapters the host-memory check did not load
    rows = {name: adapters.rows[name] for name in names}
    store = AdapterStore(lookup_of(rows), NoSlots(), base_model_hash=base_hash, max_loras=1,
                         max_cpu_loras=len(names), max_rank=64)
    times: dict[str, list[float]] = {"raw": [], "store": [], "hash": [], "read": []}

    def timed(what: str, fn: Callable[[], Any]) -> None:
        started = time.perf_counter()
        fn()
        times[what].append(time.perf_counter() - started)

    try:
        store.host_weights(names[0])  # warm the loader thread
        for name in names[1:]:
            path = Path(adapters.rows[name].path)
            file = str(path / ADAPTER_WEIGHTS)
            timed("raw", lambda f=file: {key: t.clone() for key, t in load_file(f).items()})
            timed("store", lambda n=name: store.host_weights(n))
            timed("hash", lambda p=path: adapter_hash(p))
            timed("read", lambda p=path, n=name: load_adapter_weights(p, name=n, adapter_hash="-", max_rank=64))
    finally:
        store.close()
    ms = {what: statistics.median(values) * 1e3 for what, values in times.items()}
    return Check("cold load (AdapterStore.host_weights) <= 1.5x raw load_file + clone", ms["store"] <= 1.5 * ms["raw"],
                 f"median of {len(times['raw'])}: host_weights {ms['store']:.2f} ms, raw {ms['raw']:.2f} ms "
                 f"({ms['store'] / ms['raw']:.2f}x); alone: adapter_hash {ms['hash']:.2f} ms, load_adapter_weights "
                 f"{ms['read']:.2f} ms, so the rest (lookup, name check, loader thread hand-off) about "
                 f"{max(ms['store'] - ms['hash'] - ms['read'], 0.0):.2f} ms")


def check_registered(setup: EngineSetup, adapters: Adapters, args: argparse.Namespace,
                     vocab: int, special: set[int]) -> tuple[Check, str]:
    """``--registered`` rows over the adapter directories, requests for ``--touch`` distinct names in
    waves; the tiers' sizes and the RSS after each wave."""
    from loraledger.serving.store import AdapterStore

    dirs = adapters.names
    rows = {f"r{i:05d}": AdapterRow(f"r{i:05d}", adapters.rows[dirs[i % len(dirs)]].path,
                                    adapters.rows[dirs[i % len(dirs)]].adapter_hash, setup.base_hash)
            for i in range(args.registered)}
    names = list(rows)
    random.Random(7).shuffle(names)
    touched_names = names[:min(args.touch, len(names))]
    one_adapter = max(adapters.tensor_bytes.values())
    bound = args.max_cpu_loras * one_adapter
    on_own_thread(clear_slots, setup)
    store = AdapterStore(lookup_of(rows), setup.slots, base_model_hash=setup.base_hash, max_loras=args.max_loras,
                         max_cpu_loras=args.max_cpu_loras, max_rank=setup.max_rank)
    samples: list[tuple[int, float, int, int, int]] = []  # touched, RSS MiB, host, host bytes, device
    started = time.perf_counter()
    try:
        rss_start = trimmed_rss_mib()
        for first in range(0, len(touched_names), args.wave):
            wave = touched_names[first:first + args.wave]
            prompts = make_prompts(len(wave), vocab, special, seed=first, low=16, high=16)
            serve(setup, store, Workload(prompts, list(wave), 2, "registered"), args)
            gc.collect()
            resident = store.resident()
            samples.append((first + len(wave), rss_mib(), len(resident["host"]), resident["hostBytes"],
                            len(resident["device"])))
        stats = store.stats
    finally:
        store.close()
    seconds = time.perf_counter() - started
    full = next((i for i, s in enumerate(samples) if s[2] >= args.max_cpu_loras), None)
    tiers_ok = all(s[2] <= args.max_cpu_loras and s[4] <= args.max_loras for s in samples)
    # Bounded: once the host tier is full, touching more adapters must not grow the RSS. Measured over the
    # second half of the samples after it filled, so one-off growth while the process settles is not counted.
    mid = None if full is None else full + (len(samples) - full) // 2
    growth = (samples[-1][1] - samples[mid][1]) * MiB if mid is not None else 0.0
    rss_ok = mid is not None and mid < len(samples) - 1 and growth <= 0.10 * bound
    curve = ", ".join(f"{t:,}: {r:,.0f}" for t, r, *_ in samples)
    detail = (f"{args.registered:,} registered, {len(touched_names):,} distinct touched in {seconds:.0f} s "
              f"({stats.cold_loads:,} cold loads, {stats.host_evictions:,} host / {stats.device_evictions:,} device "
              f"evictions); host tier max {max(s[2] for s in samples)} (bound {args.max_cpu_loras}), "
              f"{max(s[3] for s in samples) / MiB:.1f} MiB (bound {bound / MiB:.1f}); device max "
              f"{max(s[4] for s in samples)} (bound {args.max_loras}); RSS {rss_start:,.0f} MiB before, "
              f"{samples[-1][1]:,.0f} MiB at the end")
    if mid is None or mid == len(samples) - 1:
        detail += "; too few waves after the host tier filled to tell (raise --touch)"
    else:
        per_touch = growth / (samples[-1][0] - samples[mid][0])
        detail += (f"; RSS growth from {samples[mid][0]:,} to {samples[-1][0]:,} touched {growth / MiB:+.1f} MiB, "
                   f"{per_touch / 1024:+.1f} KiB per adapter touched (allowed 10% of the host tier's bound: "
                   f"{0.10 * bound / MiB:.1f} MiB)")
    return (Check(f"{args.registered:,} registered adapters: tiers within max_loras / max_cpu_loras and RSS "
                  "bounded as more distinct adapters are touched", tiers_ok and rss_ok, detail),
            f"RSS MiB after n distinct adapters touched: {curve}")


# ------------------------------------------------------------------------------ one model


Recorder = Callable[[str, int, "Workload", Callable[[], Run]], None]


def engine_rows(label: str, base: Path, base_hash: str, adapters: Adapters, prompts: list[list[int]],
                workloads: dict[tuple[int, str], Workload], record: Recorder, args: argparse.Namespace) -> None:
    """The engine's rows: base-only, then each (N, draw); one model and its slots for all of them."""
    progress(f"{label}: loading the engine")
    setup = on_own_thread(load_engine_setup, label, base, base_hash, args)
    warm = Workload(prompts[:16], draw_adapters(adapters.names[:10], len(prompts[:16]), "uniform", seed=99), 4,
                    "uniform")
    run_engine(setup, adapters, min(10, len(adapters.names)), warm, args)  # warm-up (untimed)
    base_workload = Workload(prompts, [None] * len(prompts), args.max_tokens, "base")
    record("engine base", 0, base_workload, lambda: run_engine(setup, adapters, 0, base_workload, args))
    for (n, _draw), workload in workloads.items():
        record("engine", n, workload, lambda n=n, w=workload: run_engine(setup, adapters, n, w, args))
    on_own_thread(setup.slots.remove)


def bench_model(label: str, base: Path, adapters: Adapters, base_hash: str, counts: Sequence[int],
                requests: int, draws: Sequence[str], args: argparse.Namespace) -> Section:
    """Engine rows (each draw, and base-only) and PEFT rows for each N in ``counts``; each row is
    ``--repeats`` passes back to back. The engine's model is freed before PEFT's is loaded."""
    from transformers import AutoTokenizer

    section = Section()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    prompts = make_prompts(requests, len(tokenizer), set(tokenizer.all_special_ids), seed=1)
    workloads = {(n, draw): Workload(prompts, draw_adapters(adapters.names[:n], requests, draw, seed=10 + n),
                                     args.max_tokens, draw) for n in counts for draw in draws}
    results: dict[tuple[str, int, str], Result] = {}

    def record(system: str, n: int, workload: Workload, one_pass: Callable[[], Run]) -> None:
        runs: list[Run] = []
        started = time.perf_counter()
        while (sum(r.other_cpu <= STARVED for r in runs) < args.repeats and len(runs) < args.repeats + args.retries
               and (not runs or time.perf_counter() - started < args.row_seconds)):
            if runs and runs[-1].other_cpu > STARVED:
                time.sleep(2.0)  # a starved pass: give the neighbour's burst a moment before the next
            runs.append(one_pass())
        result = Result(label, system, n, workload.draw, workload.distinct, runs)
        results[(system, n, workload.draw)] = result
        passes = ", ".join(f"{r.tokens_per_s:,.0f}{'*' if r.other_cpu > STARVED else ''}" for r in runs)
        progress(f"{label}: {system} N={n} {workload.draw}: {passes} tok/s (best pass: others' CPU "
                 f"{result.best.other_cpu:.0%}, tiers {result.best.tiers})")

    engine_rows(label, base, base_hash, adapters, prompts, workloads, record, args)
    gc.collect()  # the engine's model is gone before PEFT's is loaded

    for n in counts:
        if n > PEFT_MAX_ADAPTERS:
            section.notes.append(f"{label}: no PEFT rows for N = {n:,}: more than {PEFT_MAX_ADAPTERS} adapters in one "
                                 "PeftModel is not a configuration PEFT serves (load_adapter of each into every layer)")
            continue
        progress(f"{label}: PEFT with {n} adapters: loading")
        peft_model, seconds = on_own_thread(load_peft, base, adapters, n, args.device)
        section.notes.append(f"{label}: PeftModel with {n} adapter(s) loaded in {seconds:.1f} s (in no row)")

        def warm(m: Any = peft_model) -> None:  # untimed
            with torch.inference_mode():
                ids = torch.tensor([prompts[0]], device=m.device)
                m.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                           generation_config=generation_config(tokenizer, 2))

        on_own_thread(warm)
        uniform = workloads[(n, draws[0])]
        record("peft per-request", n, uniform,
               lambda m=peft_model, w=uniform: on_own_thread(run_peft_per_request, m, tokenizer, w))
        for draw in draws:
            workload = workloads[(n, draw)]
            record("peft mixed", n, workload,
                   lambda m=peft_model, w=workload: on_own_thread(run_peft_mixed, m, tokenizer, w, args.peft_batch))
        del peft_model
        gc.collect()

    # Printed: base first, then per N the engine rows and PEFT's.
    section.results.append(results[("engine base", 0, "base")])
    for n in counts:
        for system in ("engine", "peft per-request", "peft mixed"):
            for draw in draws:
                if (system, n, draw) in results:
                    section.results.append(results[(system, n, draw)])
    return section


def ratio_lines(section: Section, label: str, n: int, draws: Sequence[str], *, goals: bool) -> list[Check]:
    """The throughput goals at ``n`` adapters, per draw: engine / PEFT per-request (>= 10x), engine /
    PEFT mixed of the same draw (>= 2x), engine / its base-only (>= 70%). PASS/FAIL when ``goals``."""
    by = {(r.system, r.adapters, r.draw): r for r in section.results if r.model == label}
    base = by.get(("engine base", 0, "base"))
    checks = []
    for draw in draws:
        ours = by.get(("engine", n, draw))
        if ours is None:
            continue
        peers = [(f"{n} {draw}: engine >= 10x PEFT per-request", by.get(("peft per-request", n, draws[0])), 10.0),
                 (f"{n} {draw}: engine >= 2x PEFT mixed batch", by.get(("peft mixed", n, draw)), 2.0),
                 (f"{n} {draw}: engine >= 70% of its base-only", base, 0.70)]
        for what, peer, goal in peers:
            if peer is None:
                continue
            ratio = ours.tokens_per_s / peer.tokens_per_s
            shown = f"{ratio:.0%}" if goal < 1 else f"{ratio:.2f}x"
            starved = max(ours.best.other_cpu, peer.best.other_cpu)
            warning = f" [starved: other processes used {starved:.0%} of the CPUs]" if starved > STARVED else ""
            checks.append(Check(f"{label}, N = {what}" + ("" if goals else " (info, not a goal)"), ratio >= goal,
                                f"{ours.tokens_per_s:,.0f} vs {peer.tokens_per_s:,.0f} tok/s = {shown}{warning}"))
    return checks


# ------------------------------------------------------------------------------ SmolLM2


# ------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 2 minutes)")
    parser.add_argument("--adapters", type=int, nargs="+", help="adapter counts N (full: 1 10 100 1000)")
    parser.add_argument("--requests", type=int, help="requests per configuration (full: 64)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, help="timed passes per row, best shown (full 3, quick 1)")
    parser.add_argument("--retries", type=int,
                        help="extra passes a row may make to replace starved ones (full 3, quick 1)")
    parser.add_argument("--row-seconds", type=float, default=60.0,
                        help="no further pass of a row once its passes have taken this long")
    parser.add_argument("--draws", nargs="+", default=["uniform", "zipf"], choices=["uniform", "zipf"])
    parser.add_argument("--max-running", type=int, default=32)
    parser.add_argument("--max-loras", type=int, default=32, help="engine device slots")
    parser.add_argument("--max-cpu-loras", type=int, default=128, help="adapters held in host memory")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--op", default="auto", choices=["auto", "group", "gather"],
                        help="the engine's LoRA delta implementation (LoraSlots op)")
    parser.add_argument("--peft-batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--device", default="cpu",
                        help="where the engine's and PEFT's models run: cpu, cuda or cuda:N (the residency checks "
                             "and the host tier stay on the CPU)")
    parser.add_argument("--registered", type=int, help="rows registered for the bounded-memory check (10000)")
    parser.add_argument("--touch", type=int, help="distinct registered adapters requested (full 10000, quick 1000)")
    parser.add_argument("--wave", type=int, help="requests per wave of that check")
    parser.add_argument("--cold-repeats", type=int, help="adapters timed for the cold-load check")
    parser.add_argument("--smollm", default="auto",
                        help=f"'auto' (use {DEFAULT_CACHE / SMOLLM} if there), 'fetch', 'none' or a model directory")
    parser.add_argument("--smollm-cache", type=Path, default=DEFAULT_CACHE, help="where --smollm fetch writes")
    parser.add_argument("--smollm-requests", type=int)
    parser.add_argument("--smollm-adapters", type=int)
    parser.add_argument("--keep", type=Path, help="write the models and adapters here (kept) instead of a temp dir")
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.max_cpu_loras < max(args.max_loras, 1):
        parser.error("--max-cpu-loras must be >= --max-loras")

    quiet()
    benchutil.TORCH_THREADS = args.threads
    from loraledger.training.hf.basemodel import TINY_MARKER, hash_base_model
    from loraledger.training.hf.tiny import init_tiny_model

    run_started = time.perf_counter()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-serving-"))
    root.mkdir(parents=True, exist_ok=True)
    checks: list[Check] = []
    notes: list[str] = []
    results: list[Result] = []
    try:
        # ---- tiny llama ----
        label = f"tiny llama h{args.hidden} L{args.layers}"
        base = root / "tiny-llama"
        if not (base / "config.json").exists():
            on_own_thread(lambda: init_tiny_model(base, "llama", hidden_size=args.hidden, layers=args.layers,
                                                  heads=args.heads))
        base_hash = hash_base_model(base).hash
        count = max(max(args.adapters), 100 + args.cold_repeats + 1)  # the checks need 100 + cold_repeats + 1
        progress(f"{label}: writing {count:,} adapters")
        adapters = on_own_thread(lambda: make_adapters(base, root / "tiny-adapters", count, rank=args.rank,
                                                       base_hash=base_hash))
        params = json.loads((base / TINY_MARKER).read_text())["parameters"]
        notes.append(f"{label}: {params / 1e6:.1f}M parameters; {count:,} adapters of "
                     f"{statistics.mean(adapters.tensor_bytes.values()) / 1024:.0f} KiB written in "
                     f"{adapters.seconds:.1f} s (setup, in no row)")

        progress("residency checks: host memory, cold load")
        checks += on_own_thread(check_host_memory, adapters, base_hash, 100)
        checks.append(on_own_thread(check_cold_load, adapters, base_hash, args.cold_repeats))

        section = bench_model(label, base, adapters, base_hash, args.adapters, args.requests, args.draws, args)
        results += section.results
        notes += section.notes
        if 100 in args.adapters:
            checks += ratio_lines(section, label, 100, args.draws, goals=True)
        else:
            notes.append("no N = 100 row: the throughput goals were not checked (add 100 to --adapters)")

        progress(f"registered adapters: {args.registered:,} rows, touching {args.touch:,}")
        from transformers import AutoTokenizer

        setup = on_own_thread(load_engine_setup, label, base, base_hash, args)
        tokenizer = AutoTokenizer.from_pretrained(str(base))
        check, curve = check_registered(setup, adapters, args, len(tokenizer), set(tokenizer.all_special_ids))
        checks.append(check)
        notes.append(curve)
        del setup

        # ---- SmolLM2-135M ----
        smol, why = smollm_dir(args.smollm, args.smollm_cache)
        notes.append(why)
        if smol is not None:
            slabel = "SmolLM2-135M"
            progress(f"{slabel}: hashing the base model and writing {args.smollm_adapters} adapters")
            smol_hash = hash_base_model(smol).hash
            smol_adapters = on_own_thread(lambda: make_adapters(smol, root / "smollm-adapters", args.smollm_adapters,
                                                                rank=args.rank, base_hash=smol_hash))
            smol_section = bench_model(slabel, smol, smol_adapters, smol_hash, [args.smollm_adapters],
                                       args.smollm_requests, args.draws, args)
            results += smol_section.results
            notes += smol_section.notes
            checks += ratio_lines(smol_section, slabel, args.smollm_adapters, args.draws, goals=False)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    table(f"Serving: engine vs PEFT, {args.requests} requests x {args.max_tokens} tokens (SmolLM2: "
          f"{args.smollm_requests}), closed batch, max_running {args.max_running}, max_loras {args.max_loras}, "
          f"max_cpu_loras {args.max_cpu_loras}, rank {args.rank} q/k/v/o, "
          f"{'CPU' if args.device == 'cpu' else args.device + ' (' + torch.cuda.get_device_name(args.device) + ')'}, "
          f"{args.threads} threads",
          HEAD, [r.cells() for r in results],
          [*notes,
           (f"tok/s: generated tokens / wall, best of {args.repeats} un-starved passes (tok/s med: their median); "
            "latency, TTFT, batch, RSS, others CPU and tiers are the best pass's; latency and TTFT count from t = 0"),
           "batch: mean rows per decode step (engine) or per generate call (PEFT)",
           (f"others CPU: share of the machine's CPUs used by other processes during the pass; * above "
            f"{STARVED:.0%}: starved, the row's speed says more about the neighbour than about the system"),
           ("tiers: the store's cold loads / host evictions / device evictions during the pass; N <= max_cpu_loras: "
            "all N in host memory before the clock starts"),
           f"whole run {time.perf_counter() - run_started:.0f} s"])
    print()
    for check in checks:
        status = "INFO" if "(info" in check.name else "PASS" if check.passed else "FAIL"
        print(f"{status}  {check.name}: {check.detail}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
