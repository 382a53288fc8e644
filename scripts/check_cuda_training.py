#!/usr/bin/env python3
"""Check training's CUDA path on a machine with a GPU (CI has none; run it when one is lent).

Trains the same LoRA adapter on a tiny llama three times — once on the CPU, twice on CUDA —
and prints a table: loss first → last, validation loss, tokens/s, peak memory, the parameter
dtype the model was loaded in, and the sha256 of each adapter's weights. It checks that

* CUDA training learns (last loss below the first) with the default dtype (bfloat16 where the
  GPU has it),
* two CUDA runs with the same seed give the same adapter bytes (deterministic kernels and
  ``CUBLAS_WORKSPACE_CONFIG``, as the trainer sets them),
* an allocation the GPU cannot hold is a ``ResourceError`` (``device_errors``), not bad input.

Needs torch with CUDA, transformers, peft, tokenizers and pydantic; no chain, no database.
Exit status 0 when every check passes. Usage: ``PYTHONPATH=src python3 scripts/check_cuda_training.py``.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path

import torch

from loraledger.errors import ResourceError
from loraledger.training.config import TrainConfig
from loraledger.training.data import TrainingRow, build_examples
from loraledger.training.hf.basemodel import default_target_modules, device_errors, load_base_model
from loraledger.training.hf.tiny import init_tiny_model
from loraledger.training.hf.trainer import train_lora

CONTRIBUTOR = "0x" + "11" * 20


def rows(n: int) -> list[TrainingRow]:
    out = []
    for i in range(n):
        data = {"prompt": f"Question {i}: what is {i} times three?", "completion": f"{i} times three is {3 * i}."}
        out.append(TrainingRow("0x" + hashlib.sha256(repr(data).encode()).hexdigest(), CONTRIBUTOR, data))
    return out


def run(base: Path, device: str, work: Path) -> dict:
    loaded = load_base_model(base, device=device)
    dtype = str(next(loaded.model.parameters()).dtype).removeprefix("torch.")
    config = TrainConfig.parse({"rank": 8, "alpha": 16, "learning_rate": 2e-2, "epochs": 4, "batch_size": 8,
                                "max_length": 64, "val_fraction": 0.0, "dropout": 0.0, "seed": 7}
                               ).with_targets(default_target_modules(loaded.info.model_type))
    examples, _ = build_examples(loaded.tokenizer, rows(96), config.max_length)
    validation, _ = build_examples(loaded.tokenizer, rows(104)[96:], config.max_length)
    started = time.perf_counter()
    outcome = train_lora(loaded.model, examples, validation, config, pad_id=loaded.tokenizer.pad_token_id,
                         device=loaded.device, work_dir=work)
    seconds = time.perf_counter() - started
    out = work / "adapter"
    outcome.model.save_pretrained(str(out))
    weights = (out / "adapter_model.safetensors").read_bytes()
    return {"device": device, "dtype": dtype, "first": outcome.losses[0], "last": outcome.losses[-1],
            "val": outcome.val_loss, "tok_s": outcome.tokens_per_second, "seconds": seconds,
            "peak_mib": outcome.peak_memory_bytes / 2**20, "sha": hashlib.sha256(weights).hexdigest()[:16]}


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 2
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, bf16: {torch.cuda.is_bf16_supported()}")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = init_tiny_model(root / "tiny", "llama").path
        results = [run(base, device, root / f"run{i}") for i, device in enumerate(("cpu", "cuda", "cuda"))]
    print(f"{'device':7} {'dtype':9} {'loss first→last':>18} {'val':>7} {'tok/s':>9} {'s':>6} {'peak MiB':>9}  adapter sha256")
    for r in results:
        val = f"{r['val']:.4f}" if r["val"] is not None else "-"
        print(f"{r['device']:7} {r['dtype']:9} {r['first']:8.4f} → {r['last']:7.4f} {val:>7} {r['tok_s']:9.0f} "
              f"{r['seconds']:6.1f} {r['peak_mib']:9.1f}  {r['sha']}")
    cpu, cuda_a, cuda_b = results
    if not cuda_a["last"] < cuda_a["first"]:
        failures.append("CUDA training did not lower the loss")
    if torch.cuda.is_bf16_supported() and cuda_a["dtype"] != "bfloat16":
        failures.append(f"CUDA default dtype is {cuda_a['dtype']}, expected bfloat16")
    if cuda_a["sha"] != cuda_b["sha"]:
        failures.append("two CUDA runs with one seed gave different adapters")
    free, _ = torch.cuda.mem_get_info()
    try:
        with device_errors("a deliberately oversized allocation"):
            torch.empty(int(free * 4), dtype=torch.uint8, device="cuda")
        failures.append("an allocation 4x the free GPU memory succeeded")
    except ResourceError as exc:
        print(f"oversized allocation → ResourceError: {exc.message[:100]}")
    for failure in failures:
        print("FAIL:", failure)
    print("all CUDA checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
