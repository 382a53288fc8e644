#!/usr/bin/env python3
"""Multi-LoRA op benchmark: the engine's slot-group loop against gather + bmm, and prefill modes.

In the manner of Punica's ``bench_lora_op_impls.py``:

1. **LoRA delta of one layer** (``loraledger.serving.lora_ops``): ``y += (x @ A[s].T) @ B[s].T``
   per row for a batch whose rows use ``adapters`` different slots (rows spread evenly, sorted by
   slot as the engine orders them). ``group``: one pair of matmuls per slot group (slices of the
   batch); ``gather``: index A and B by each row's slot (``[B, r, in]``, ``[B, out, r]``) then two
   ``bmm``. ``base`` is the layer's own ``x @ W.T`` for scale. Decode shapes (one token per row)
   and a prefill shape. Median of ``--repeats`` timed calls after warm-up.
2. **Prefill** of the engine's runner on a tiny llama (hidden 256, 4 layers): prompts of mixed
   lengths, one left-padded forward (``batched``) against one forward per prompt (``single``)
   and batches of similar lengths (``auto``, the engine's default).

Usage: ``.venv/bin/python scripts/bench_lora_ops.py [--device cuda] [--hidden 4096] [--rank 16]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import table  # noqa: E402

from loraledger.serving.lora_ops import LORA_OPS, RowGroups  # noqa: E402


def timed(fn, device: str, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls (after 3 warm-up calls)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_ops(args: argparse.Namespace) -> None:
    dtype = torch.float32 if args.device == "cpu" else torch.bfloat16
    h, r, slots = args.hidden, args.rank, max(args.adapters) + 1
    gen = torch.Generator().manual_seed(0)
    a = (torch.randn(slots, r, h, generator=gen) * 0.02).to(args.device, dtype)
    b = (torch.randn(slots, h, r, generator=gen) * 0.02).to(args.device, dtype)
    a[0].zero_()
    b[0].zero_()
    weight = (torch.randn(h, h, generator=gen) * 0.02).to(args.device, dtype)
    ranks = [0] + [r] * (slots - 1)
    rows_out = []
    shapes = [(n, 1) for n in args.batch] + [(4, 128)]
    for batch, tokens in shapes:
        for adapters in args.adapters:
            if adapters > batch:
                continue
            row_slots = sorted(1 + (i % adapters) for i in range(batch))
            groups = RowGroups.of(row_slots, args.device)
            x = torch.randn(batch, tokens, h, generator=gen).to(args.device, dtype)
            y = torch.zeros(batch, tokens, h, device=args.device, dtype=dtype)
            ref = LORA_OPS["group"](y.clone(), x, a, b, ranks, groups)
            got = LORA_OPS["gather"](y.clone(), x, a, b, ranks, groups)
            assert torch.allclose(ref.float(), got.float(), atol=1e-2 if dtype != torch.float32 else 1e-4)
            base = timed(lambda: x @ weight.T, args.device, args.repeats)
            t = {name: timed(lambda op=op: op(y, x, a, b, ranks, groups), args.device, args.repeats)
                 for name, op in LORA_OPS.items()}
            rows_out.append([f"{batch}×{tokens}", str(adapters), f"{base * 1e6:,.0f}", f"{t['group'] * 1e6:,.0f}",
                             f"{t['gather'] * 1e6:,.0f}", f"{t['gather'] / t['group']:.2f}"])
    table(f"LoRA delta per layer, {args.device} {str(dtype).removeprefix('torch.')}, in = out = {h}, rank {r} "
          f"({torch.get_num_threads()} threads)",
          ["rows×tokens", "adapters", "base x@W µs", "group µs", "gather+bmm µs", "gather / group"], rows_out,
          ["gather / group > 1: the group loop is faster"])


def bench_prefill(args: argparse.Namespace) -> None:
    from transformers import AutoModelForCausalLM

    from loraledger.serving.lora import LoraSlots
    from loraledger.serving.runner import ModelRunner
    from loraledger.training.hf.tiny import init_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        init_tiny_model(Path(tmp) / "m", "llama", hidden_size=256, layers=4, heads=8)
        model = AutoModelForCausalLM.from_pretrained(Path(tmp) / "m", dtype=torch.float32).to(args.device)
    slots = LoraSlots(model, max_loras=4, max_rank=args.rank)
    gen = torch.Generator().manual_seed(1)
    rows_out = []
    for count, (low, high) in [(4, (16, 64)), (8, (16, 64)), (8, (8, 256)), (16, (32, 128))]:
        prompts = [torch.randint(3, 400, (int(torch.randint(low, high + 1, (1,), generator=gen)),),
                                 generator=gen).tolist() for _ in range(count)]
        row_slots = sorted(i % 5 for i in range(count))
        t = {}
        for mode in ("batched", "single", "auto"):
            runner = ModelRunner(model, slots, prefill=mode)
            t[mode] = timed(lambda runner=runner: runner.prefill(prompts, row_slots), args.device,
                            max(3, args.repeats // 10))
        lengths = [len(p) for p in prompts]
        padding = 1 - sum(lengths) / (max(lengths) * len(lengths))
        rows_out.append([str(count), f"{min(lengths)}-{max(lengths)}", f"{padding:.0%}", f"{t['batched'] * 1e3:.1f}",
                         f"{t['single'] * 1e3:.1f}", f"{t['auto'] * 1e3:.1f}", f"{t['single'] / t['batched']:.2f}"])
    table(f"Prefill of the runner, tiny llama (hidden 256, 4 layers), {args.device}",
          ["prompts", "lengths", "padding", "batched ms", "single ms", "auto ms", "single / batched"], rows_out,
          ["single / batched > 1: the left-padded batch is faster"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--adapters", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--skip-prefill", action="store_true")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    bench_ops(args)
    if not args.skip_prefill:
        bench_prefill(args)


if __name__ == "__main__":
    main()
