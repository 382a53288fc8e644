"""Benchmarks: the base model and each adapter on one evaluation set (edge: torch + peft).

Per model: held-out loss (mean per completion token, the same tokens training takes loss
on) and its perplexity; for instruction and chat rows also greedy generation scored by
exact match and ROUGE-L against the reference answer. All adapters are loaded onto ONE
copy of the base model (PEFT named adapters); the base row is measured with the adapters
disabled, so every model sees exactly the same weights, tokens and prompts.

Eval set hash
-------------
``keccak256(RFC 8785 JSON of [rowHash, ...])`` over the eval rows in order: a
``BenchmarkRecord`` cites it, and anyone holding the rows can recompute it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import keccak

from ...crypto.canonical import canonicalize
from ...datanets.content import parse_rows, row_hash
from ...errors import InputError
from ..data import TrainingRow, build_examples, prompt_and_reference
from ..metrics import exact_match, perplexity, rouge_l
from ..report import BenchmarkReport, BenchmarkRow

__all__ = ["BenchAdapter", "EvalSet", "eval_set_from_file", "eval_set_hash", "run_benchmark"]


@dataclass(frozen=True)
class EvalSet:
    """Rows to evaluate on, where they came from, and their hash."""

    rows: tuple[TrainingRow, ...]
    source: str

    @property
    def hash(self) -> str:
        return eval_set_hash(row.row_hash for row in self.rows)


@dataclass(frozen=True)
class BenchAdapter:
    """An adapter to benchmark: its name, directory and adapter hash."""

    name: str
    path: Path
    adapter_hash: str


def eval_set_hash(row_hashes: Any) -> str:
    return "0x" + keccak(canonicalize([h.lower() for h in row_hashes])).hex()


def _detect_schema(raw: bytes, path: Path) -> str:
    for line in raw.splitlines():
        if line.strip():
            try:
                first = json.loads(line)
            except ValueError:
                break  # parse_rows names the bad row below
            if isinstance(first, dict):
                for schema, key in (("chat", "messages"), ("instruction", "prompt"), ("text", "text")):
                    if key in first:
                        return schema
            raise InputError(f"{path}: the first row has none of the keys 'text', 'prompt'/'completion', 'messages'")
    return "text"


def eval_set_from_file(path: str | Path) -> EvalSet:
    """An eval set from a JSONL file of datanet-shaped rows (text, instruction or chat)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"eval file {file} does not exist or is not a file")
    raw = file.read_bytes()
    schema = _detect_schema(raw, file)
    try:
        rows = parse_rows(raw, schema)
    except InputError as exc:
        raise InputError(f"{file}: {exc}") from None
    return EvalSet(tuple(TrainingRow("0x" + row_hash(r).hex(), "", dict(r.data)) for r in rows), str(file))


def _generate(model: Any, tokenizer: Any, prompts: Sequence[str], *, batch_size: int, max_new_tokens: int,
              device: str) -> list[str]:
    import torch

    stop_ids = {tokenizer.eos_token_id}
    for special in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
        token_id = tokenizer.convert_tokens_to_ids(special)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id >= 0:
            stop_ids.add(token_id)
    stop_ids.discard(None)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        encoded = [tokenizer.encode(p, add_special_tokens=False) for p in prompts[start:start + batch_size]]
        width = max(len(e) for e in encoded)
        # Left padding: generation continues from the last real token of every row.
        ids = torch.tensor([[pad_id] * (width - len(e)) + e for e in encoded], device=device)
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=pad_id, eos_token_id=sorted(stop_ids))
        for row in out[:, width:].tolist():
            cut = next((i for i, t in enumerate(row) if t in stop_ids), len(row))
            answers.append(tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
    return answers


def _score(model: Any, tokenizer: Any, examples: Any, generation: list[tuple[str, str]], *,
           name: str, adapter_hash: str | None, batch_size: int, max_new_tokens: int, device: str) -> BenchmarkRow:
    from .trainer import mean_token_loss

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    loss, tokens = mean_token_loss(model, examples, batch_size=batch_size, pad_id=pad_id, device=device)
    em = rl = None
    if generation:
        answers = _generate(model, tokenizer, [p for p, _ in generation], batch_size=batch_size,
                            max_new_tokens=max_new_tokens, device=device)
        em = sum(exact_match(a, ref) for a, (_, ref) in zip(answers, generation)) / len(generation)
        rl = sum(rouge_l(a, ref) for a, (_, ref) in zip(answers, generation)) / len(generation)
    loss = float(loss) if loss is not None else math.nan
    return BenchmarkRow(name=name, adapter_hash=adapter_hash, loss=loss,
                        perplexity=perplexity(loss), exact_match=em, rouge_l=rl,
                        examples=len(examples), tokens=tokens)


def run_benchmark(
    model: Any,
    tokenizer: Any,
    base_model_hash: str,
    adapters: Sequence[BenchAdapter],
    eval_set: EvalSet,
    *,
    device: str,
    max_length: int = 512,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    on_model: Callable[[str], None] | None = None,
) -> BenchmarkReport:
    """Score the base model and every adapter on ``eval_set``; the first row is the base."""
    if not eval_set.rows:
        raise InputError(f"the eval set ({eval_set.source}) has no rows")
    names = [a.name for a in adapters]
    if len(set(names)) != len(names):
        raise InputError(f"adapter names must be distinct, got {names}")
    examples, dropped = build_examples(tokenizer, eval_set.rows, max_length)
    if not examples:
        raise InputError(f"no eval row fits in max_length={max_length} tokens with its answer")
    generation = [pr for pr in (prompt_and_reference(tokenizer, r.data) for r in eval_set.rows) if pr is not None]
    common = {"batch_size": batch_size, "max_new_tokens": max_new_tokens, "device": device}
    model.eval()
    if on_model:
        on_model("base")
    rows = [_score(model, tokenizer, examples, generation, name="base", adapter_hash=None, **common)]
    if adapters:
        from peft import PeftModel

        peft_model = None
        for adapter in adapters:
            if peft_model is None:
                peft_model = PeftModel.from_pretrained(model, str(adapter.path), adapter_name=adapter.name)
            else:
                peft_model.load_adapter(str(adapter.path), adapter_name=adapter.name)
        assert peft_model is not None
        peft_model.eval()
        for adapter in adapters:
            if on_model:
                on_model(adapter.name)
            peft_model.set_adapter(adapter.name)
            rows.append(_score(peft_model, tokenizer, examples, generation, name=adapter.name,
                               adapter_hash=adapter.adapter_hash, **common))
    source = eval_set.source + (f" ({dropped} rows longer than max_length left out)" if dropped else "")
    return BenchmarkReport(eval_set_hash=eval_set.hash, eval_source=source, base_model_hash=base_model_hash,
                           rows=tuple(rows))
