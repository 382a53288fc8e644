#!/usr/bin/env python3
"""Open-loop load on a serving node through HTTP: Poisson arrivals at a few rates, 32 clients.

A real node (real anvil with the contracts, SQLite ledger, uvicorn on loopback) serves a tiny
llama (4 layers, hidden 256) with 10 rank-8 adapters. For each rate, requests arrive as a Poisson
process for ``--seconds`` seconds (open loop: an arrival does not wait for earlier answers; at
most 32 are in flight, like 32 concurrent clients, and an arrival that finds them all busy waits
for one, counted in its latency). Each asks a random adapter (uniform) for 16 greedy tokens with
the ``openai`` client. Latency is measured from the scheduled arrival. Afterwards every answer's
``inference`` hash is looked up in the ledger: each must be there exactly once, with its fee.

Usage: ``python scripts/bench_serving_load.py [--rates 2,4,8,16,32,64] [--seconds 10]`` (loopback only;
every loop is bounded in count and time).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

from benchutil import on_own_thread, progress, table  # noqa: E402
from conftest import deployed_settings, make_peft_adapter, serve, start_anvil  # noqa: E402

CLIENTS = 32
MAX_TOKENS = 16


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="2,8,32,64", help="arrival rates, requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="arrivals per rate for this long")
    parser.add_argument("--adapters", type=int, default=10)
    args = parser.parse_args()

    import openai
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from loraledger.api import create_app
    from loraledger.chain.compile import compile_contracts
    from loraledger.chain.devnet import dev_accounts
    from loraledger.node.context import open_node
    from loraledger.records.kinds import FeeRecord, InferenceRecord, record_hash
    from loraledger.serving.recorder import InferenceRecorder
    from loraledger.serving.service import ServingService
    from loraledger.training.hf.tiny import init_tiny_model

    anvil = start_anvil()
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        accounts = dev_accounts(6)
        operator = accounts[0]
        artifacts = compile_contracts(ROOT, ROOT / "scripts" / "solc")
        settings = deployed_settings(anvil, operator, artifacts, work, price_input_per_1k=1000, price_output_per_1k=1000)
        node = open_node(settings, operator=operator)
        base = work / "tiny-llama"
        names = [f"a{i:02d}" for i in range(args.adapters)]

        def write_models() -> None:  # torch off the main thread: see benchutil.on_own_thread
            tiny = init_tiny_model(work / "tiny", "llama").path
            config = LlamaConfig(vocab_size=AutoTokenizer.from_pretrained(str(tiny)).vocab_size, hidden_size=256,
                                 intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                                 num_key_value_heads=4, max_position_embeddings=512)
            torch.manual_seed(0)
            LlamaForCausalLM(config).save_pretrained(str(base))
            AutoTokenizer.from_pretrained(str(tiny)).save_pretrained(str(base))
            for i, name in enumerate(names):
                make_peft_adapter(base, work / "src" / name, seed=i, rank=8, alpha=16,
                                  targets=("q_proj", "k_proj", "v_proj", "o_proj"))

        on_own_thread(write_models)
        for name in names:
            node.factory.import_adapter(work / "src" / name, name=name, base_dir=base, register=False)
        recorder = InferenceRecorder(node.records, operator=operator.address)
        node.serving = ServingService.open(base, factory=node.factory, prices=node.prices, recorder=recorder,
                                           max_loras=len(names), max_cpu_loras=len(names), max_rank=8,
                                           max_running=CLIENTS)
        for name in names:
            node.serving.store.preload(name)
        _, key = node.payers.create(accounts[5].address)
        url, server, thread = serve(create_app(settings, node=node))
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)
        client.completions.create(model=names[0], prompt="warm up", max_tokens=2, temperature=0)

        rows = []
        all_digests: list[str] = []
        for rate in [float(r) for r in args.rates.split(",")]:
            rng = random.Random(int(rate * 1000))
            arrivals, t = [], 0.0
            while True:
                t += rng.expovariate(rate)
                if t > args.seconds:
                    break
                arrivals.append((t, rng.choice(names), rng.randrange(10_000)))
            latencies: list[float] = []
            tokens = 0
            errors = 0
            lock = threading.Lock()
            start = time.perf_counter()

            def one(at: float, model: str, n: int) -> None:
                nonlocal tokens, errors
                delay = start + at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                try:
                    answer = client.completions.create(model=model, prompt=f"Request {n}: tell me about {model}",
                                                       max_tokens=MAX_TOKENS, temperature=0)
                except openai.APIError:
                    with lock:
                        errors += 1
                    return
                done = time.perf_counter()
                with lock:
                    latencies.append(done - (start + at))
                    tokens += answer.usage.completion_tokens
                    all_digests.append(answer.model_extra["inference"])

            progress(f"rate {rate}/s: {len(arrivals)} arrivals over {args.seconds:.0f} s")
            with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
                for arrival in arrivals:
                    pool.submit(one, *arrival)
            wall = time.perf_counter() - start
            rows.append([f"{rate:g}/s", str(len(arrivals)), str(len(latencies)), str(errors),
                         f"{len(latencies) / wall:.2f}", f"{tokens / wall:,.0f}",
                         f"{statistics.median(latencies) * 1000:,.0f}" if latencies else "-",
                         f"{percentile(latencies, 0.99) * 1000:,.0f}" if latencies else "-"])

        # Every answer recorded exactly once, each followed by its fee.
        records = node.records.range(0, node.records.size())
        by_hash: dict[str, int] = {}
        fees = {r.ref for r in records if isinstance(r, FeeRecord)}
        for record in records:
            if isinstance(record, InferenceRecord):
                digest = "0x" + record_hash(record).hex()
                by_hash[digest] = by_hash.get(digest, 0) + 1
        once = all(by_hash.get(d) == 1 for d in all_digests) and len(set(all_digests)) == len(all_digests)
        paid = all(f"inference:{r.request_id}" in fees for r in records if isinstance(r, InferenceRecord))
        table(f"Open-loop HTTP load: tiny llama (4 layers, hidden 256), {len(names)} rank-8 adapters, {CLIENTS} "
              f"clients, {MAX_TOKENS} tokens per request, openai client over loopback",
              ["arrival rate", "sent", "answered", "errors", "answers/s", "tokens/s", "p50 ms", "p99 ms"], rows,
              [f"every answer recorded exactly once: {'yes' if once else 'NO'} ({len(all_digests)} answers, "
               f"{sum(by_hash.values())} inference records incl. the warm-up); every inference has its fee record: "
               f"{'yes' if paid else 'NO'}",
               "latency is from the scheduled arrival (queueing for a free client included)"])
        server.should_exit = True
        thread.join(timeout=10)
        node.serving.close()
    finally:
        anvil.process.kill()


if __name__ == "__main__":
    main()
