#!/usr/bin/env python3
"""Check serving's and attribution's CUDA paths on a machine with a GPU (CI has none; run it when one is lent).

On a tiny random Llama with three PEFT adapters of different ranks and targets:

* **serving, in the dtype a node loads** (``load_base_model(device="cuda")``: bfloat16 where the GPU
  has it): the engine's mixed batch (the base and three adapters, different prompt lengths; a
  prefill, then teacher-forced decode steps) against PEFT's single-adapter forward in the same
  dtype on the same GPU. bfloat16 has 8 bits of mantissa, so the two cannot agree bit for bit
  (each rounds its own way: padded batches, a cache of its own, the delta added elsewhere); the
  check is that the engine is at most twice as far from PEFT in float32 as PEFT in bfloat16 is,
  and that the top token agrees with PEFT's on nearly every row.
* **serving in float32 on CUDA** against float32 on the CPU: greedy tokens of the engine.
* **attribution** (``LoraGradientFeatures``, the projected per-example LoRA gradients an index and
  a query are made of): features computed on CUDA in float32 and in bfloat16 against the CPU's
  float32 ones, as cosine similarity per example, the training row each query ranks first, and the
  quantized query vector against the CPU's (``verify inference`` allows ``QUERY_TOLERANCE`` units).
  A node on a GPU scores its queries there against an index that may have been built on a CPU, and
  anyone may verify them on a CPU: attribution runs its model in float32 on every device
  (``attribution.index.MODEL_DTYPE``); bfloat16 is shown for the record.

Prints a table and PASS/FAIL lines; exit status 0 when every check passes. Needs torch with CUDA,
transformers, peft and tokenizers. Usage: ``PYTHONPATH=src python3 scripts/check_cuda_serving.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from loraledger.attribution.attribute import QUERY_TOLERANCE
from loraledger.attribution.features import LoraGradientFeatures
from loraledger.attribution.influence import quantize
from loraledger.serving.engine import Engine
from loraledger.serving.kvcache import BatchKV
from loraledger.serving.lora import LoraSlots
from loraledger.serving.runner import ModelRunner
from loraledger.serving.sampling import SamplingParams
from loraledger.serving.scheduler import StaticSlots
from loraledger.serving.weights import load_adapter_weights
from loraledger.training.data import IGNORE_INDEX, Example
from loraledger.training.hf.basemodel import load_base_model
from loraledger.training.hf.tiny import init_tiny_model

MAX_RANK = 8
#: name -> (rank, alpha, target modules)
ADAPTERS = {"a1": (2, 4, ["q_proj", "v_proj"]), "a2": (4, 8, ["q_proj", "k_proj", "o_proj", "down_proj"]),
            "a3": (8, 8, ["v_proj", "gate_proj", "up_proj"])}


def make_adapters(base: Path, root: Path) -> dict[str, Path]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = {}
    for i, (name, (rank, alpha, targets)) in enumerate(ADAPTERS.items()):
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32),
                               LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets))
        gen = torch.Generator().manual_seed(100 + i)
        with torch.no_grad():
            for pname, param in model.named_parameters():
                if "lora_" in pname:
                    param.copy_(torch.randn(param.shape, generator=gen) * 0.3)
        model.save_pretrained(str(root / name))
        out[name] = root / name
    return out


def peft_of(base: Path, adapters: dict[str, Path], device: str, dtype: torch.dtype):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype).to(device).eval()
    names = list(adapters)
    ref = PeftModel.from_pretrained(model, str(adapters[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        ref.load_adapter(str(adapters[name]), adapter_name=name)
    return ref.eval()


def last_logits(ref, adapter: str | None, ids: list[int], device: str) -> torch.Tensor:
    with torch.no_grad():
        inputs = torch.tensor([ids], device=device)
        if adapter is None:
            with ref.disable_adapter():
                return ref(inputs).logits[0, -1].float()
        ref.set_adapter(adapter)
        return ref(inputs).logits[0, -1].float()


def prompts_of(lengths: list[int], seed: int, vocab: int = 300) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=gen).tolist() for n in lengths]


def serving_in_node_dtype(base: Path, adapters: dict[str, Path], weights: dict) -> tuple[list[str], list[str]]:
    """The engine's logits against PEFT's, both on CUDA in the dtype ``load_base_model`` chooses."""
    loaded = load_base_model(base, device="cuda")
    model = loaded.model.eval()
    dtype = next(model.parameters()).dtype
    ref = peft_of(base, adapters, "cuda", dtype)
    exact = peft_of(base, adapters, "cuda", torch.float32)
    slots = LoraSlots(model, max_loras=3, max_rank=MAX_RANK)
    for slot, name in enumerate(weights, start=1):
        slots.load(slot, weights[name])
    runner = ModelRunner(model, slots)
    plan = [(None, 0), ("a1", 1), ("a2", 2), ("a3", 3), ("a2", 2)]
    seqs = prompts_of([5, 11, 3, 8, 14], seed=1)
    batch = BatchKV(runner.num_layers)
    logits, kvs = runner.prefill([list(s) for s in seqs], [slot for _, slot in plan])
    for kv in kvs:
        batch.add(kv)
    worst, peft_worst, effect, agree, rows = 0.0, 0.0, 0.0, 0, 0
    gen = torch.Generator().manual_seed(7)
    for step in range(9):
        if step:
            forced = torch.randint(3, 300, (len(seqs),), generator=gen).tolist()
            for seq, token in zip(seqs, forced):
                seq.append(token)
            logits = runner.decode(forced, batch, [slot for _, slot in plan])
        for row, (adapter, _) in enumerate(plan):
            expected = last_logits(ref, adapter, seqs[row], "cuda")
            truth = last_logits(exact, adapter, seqs[row], "cuda")
            got = logits[row].float()
            worst = max(worst, (got - truth).abs().max().item())
            peft_worst = max(peft_worst, (expected - truth).abs().max().item())
            agree += int(got.argmax().item() == expected.argmax().item())
            rows += 1
            if adapter is not None:
                effect = max(effect, (truth - last_logits(exact, None, seqs[row], "cuda")).abs().max().item())
    name = str(dtype).removeprefix("torch.")
    lines = [f"serving {name} on CUDA: worst |Δlogit| from PEFT float32: engine {worst:.4f}, PEFT {name} "
             f"{peft_worst:.4f} (an adapter changes logits by up to {effect:.3f}); top token as PEFT {name}'s on "
             f"{agree}/{rows} rows"]
    failures = []
    if worst > 2 * peft_worst + 1e-4:
        failures.append(f"the engine's {name} logits are {worst:.4f} from float32, PEFT's {peft_worst:.4f}")
    if agree < 0.9 * rows:
        failures.append(f"top token agrees on only {agree}/{rows} rows")
    return lines, failures


def greedy_tokens(base: Path, weights: dict, device: str) -> list[list[int]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32).to(device).eval()
    slots = LoraSlots(model, max_loras=3, max_rank=MAX_RANK)
    engine = Engine(model, AutoTokenizer.from_pretrained(str(base)), slots, slot_provider=StaticSlots(slots, weights),
                    max_running=8)
    greedy = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    handles = [engine.submit(p, adapter=a, params=greedy)
               for p, a in zip(prompts_of([6, 13, 4, 9, 7], seed=2), [None, "a1", "a2", "a3", "a2"])]
    while engine.has_work():
        engine.step()
    return [[t for e in list(h.events.queue) for t in e.token_ids] for h in handles]


def feature_examples(count: int, seed: int) -> list[Example]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        n = 8 + i % 9
        ids = torch.randint(3, 300, (n,), generator=gen).tolist()
        out.append(Example(f"0x{seed:032x}{i:032x}", tuple(ids), tuple([IGNORE_INDEX] * 3 + ids[3:])))
    return out


ON_GPU = (("cuda", torch.float32), ("cuda", torch.bfloat16))


def attribution(base: Path, adapters: dict[str, Path], others=ON_GPU) -> tuple[list[str], list[str]]:
    """Features on each of ``others`` (device, dtype) against the CPU's float32 ones."""
    train, queries = feature_examples(48, 1), feature_examples(12, 2)
    # A query that repeats a training row must rank that row first on every device.
    queries[:4] = train[5:9]

    def features_on(device: str, dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray]:
        features = LoraGradientFeatures(peft_of(base, {"a2": adapters["a2"]}, device, dtype), adapter="a2", k=8)
        return features.features(train, pad_id=0), features.features(queries, pad_id=0)

    cpu_train, cpu_query = features_on("cpu", torch.float32)
    cpu_top = (cpu_query @ cpu_train.T).argmax(axis=1)
    lines, failures = [], []
    for device, dtype in others:
        train_f, query_f = features_on(device, dtype)
        norms = np.linalg.norm(train_f, axis=1) * np.linalg.norm(cpu_train, axis=1)
        cos = np.sum(train_f * cpu_train, axis=1) / norms
        # The index from the CPU, the query from this device: what a GPU node does with a CPU-built index.
        top = (query_f @ cpu_train.T).argmax(axis=1)
        same = int((top == cpu_top).sum())
        firsts = [int(i) for i in top[:4]]
        # What ``verify inference`` compares: each query quantized as recorded, in units.
        units = max(int(np.abs(quantize(q.astype(np.float64)).values - quantize(c.astype(np.float64)).values).max())
                    for q, c in zip(query_f, cpu_query))
        name = str(dtype).removeprefix("torch.")
        lines.append(f"attribution features {device} {name} vs cpu float32: cosine min {cos.min():.5f} "
                     f"mean {cos.mean():.5f}; top training row as on the CPU for {same}/{len(top)} queries; "
                     f"repeated rows first: {firsts} (want [5, 6, 7, 8]); quantized query vectors up to {units} units "
                     f"from the CPU's (verify allows {QUERY_TOLERANCE})")
        # float32 must be the CPU's features up to rounding; bfloat16 is reported, and must only
        # keep the ranking (its per-example cosine can dip: 8 bits of mantissa in every product).
        floor = 0.9999 if dtype == torch.float32 else 0.95
        worst = cos.min() if dtype == torch.float32 else cos.mean()
        if worst < floor:
            failures.append(f"{device} {name} features: cosine {worst:.5f} < {floor}")
        if dtype == torch.float32 and units > QUERY_TOLERANCE:
            failures.append(f"{device} {name}: a query vector is {units} units from the CPU's: verify would refuse it")
        if firsts != [5, 6, 7, 8]:
            failures.append(f"{device} {name}: a repeated training row is not ranked first: {firsts}")
        if same < len(top) - (0 if dtype == torch.float32 else 2):
            failures.append(f"{device} {name}: top row differs from the CPU's for {len(top) - same} queries")
    return lines, failures


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 2
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, bf16: {torch.cuda.is_bf16_supported()}")
    lines: list[str] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = init_tiny_model(root / "tiny", "llama").path
        adapters = make_adapters(base, root / "adapters")
        weights = {name: load_adapter_weights(path, name=name, adapter_hash="0" * 64, max_rank=MAX_RANK)
                   for name, path in adapters.items()}
        for part in (lambda: serving_in_node_dtype(base, adapters, weights), lambda: attribution(base, adapters)):
            got, failed = part()
            lines += got
            failures += failed
        cpu, cuda = greedy_tokens(base, weights, "cpu"), greedy_tokens(base, weights, "cuda")
        same = sum(a == b for a, b in zip(cpu, cuda))
        lines.append(f"serving float32 greedy, CUDA vs CPU: {same}/{len(cpu)} requests give the same 12 tokens")
        if same != len(cpu):
            failures.append(f"float32 greedy tokens differ between CUDA and CPU for {len(cpu) - same} requests")
    for line in lines:
        print(line)
    for failure in failures:
        print("FAIL:", failure)
    print("all CUDA serving/attribution checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
