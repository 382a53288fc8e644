"""One forward pass for a batch whose rows use different adapters (and the base): prefill and decode.

Prefill runs new prompts and returns each one's own KV cache (:data:`SequenceKV`, no padding);
the engine copies them into the running batch's :class:`~loraledger.serving.kvcache.BatchKV`,
over which a decode step runs the model's own forward on one new token per row, with an
attention mask that hides each row's left padding and ``position_ids`` that count real tokens
only. Padded keys get exactly zero attention weight (the mask adds -inf before the softmax), and
a padded value is finite, so real tokens' logits differ from a row run alone only by
floating-point summation order.

Prefill runs the new prompts as one left-padded batch, one by one, or (``auto``, the default)
as one batch on a GPU and in batches of similar lengths on a CPU (``prefill=``);
``scripts/bench_lora_ops.py`` measures the three: on a CPU a batch beats one forward per
prompt by about 1.5x when lengths are close, and loses by 1.3-2x when one prompt is much
longer (padding is computed too); on an H200 one batch beats one forward per prompt by 4-15x
and splitting by length by 1-3x.
Only the last position's logits are computed.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from ..training.hf.basemodel import device_errors
from .kvcache import BatchKV, SequenceKV
from .lora import LoraSlots

__all__ = ["PREFILL_MODES", "ModelRunner", "prefill_groups"]

PREFILL_MODES = ("auto", "batched", "single")

#: ``auto`` prefill on a CPU: prompts go in one left-padded forward while the padded batch is at most this
#: many times their real tokens (padding is computed too, and attention grows with the square
#: of the width); otherwise they are split into batches of similar lengths.
_AUTO_PADDING_LIMIT = 1.3


def _new_cache(config: Any) -> Any:
    from transformers import DynamicCache

    return DynamicCache(config=config)


def prefill_groups(lengths: Sequence[int], limit: float = _AUTO_PADDING_LIMIT) -> list[list[int]]:
    """Prompt indices in batches of similar lengths: shortest first, a batch closes when adding the
    next prompt would make its padded size exceed ``limit`` × its real tokens."""
    groups: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if current and lengths[i] * (len(current) + 1) > limit * (real + lengths[i]):
            groups.append(current)
            current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        groups.append(current)
    return groups


class ModelRunner:
    """Runs prefill and decode forwards of a Hugging Face causal LM (llama, qwen2, gpt2 families)
    whose rows use the LoRA slots in ``slots`` (``None``: base model only)."""

    def __init__(self, model: nn.Module, slots: LoraSlots | None = None, *, prefill: str = "auto") -> None:
        if prefill not in PREFILL_MODES:
            raise ValueError(f"prefill must be one of {PREFILL_MODES}, got {prefill!r}")
        self.model = model.eval()
        self.slots = slots
        self.prefill_mode = prefill
        self.device = next(model.parameters()).device
        self.num_layers = int(model.config.get_text_config().num_hidden_layers)
        # A sliding-window cache layer drops old positions, so a row's cache could not be cut back
        # out of the padded batch by length: such models are refused rather than served wrongly.
        if any(getattr(layer, "is_sliding", False) for layer in getattr(_new_cache(model.config), "layers", [])):
            raise InputError("the serving engine does not support sliding-window attention layers yet")
        # transformers 5 renamed the forward's cache argument (``past_key_values`` → ``cache``).
        params = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._logits_kwarg = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)

    # ------------------------------------------------------------------ forward
    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any,
                 row_slots: Sequence[int]) -> torch.Tensor:
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": positions,
                                  self._cache_kwarg: cache, "use_cache": True}
        if self._logits_kwarg:
            kwargs[self._logits_kwarg] = 1
        if self.slots is None:
            out = self.model(**kwargs)
        else:
            with self.slots.batch(row_slots):
                out = self.model(**kwargs)
        return out.logits[:, -1, :].float()

    def _split(self, cache: Any, lengths: Sequence[int], width: int) -> list[SequenceKV]:
        """Each row's cache out of a batch cache of ``width`` positions, left padding stripped."""
        layers = [(cache.layers[i].keys, cache.layers[i].values) for i in range(self.num_layers)]
        return [tuple((k[row, :, width - n:], v[row, :, width - n:]) for k, v in layers)
                for row, n in enumerate(lengths)]

    # ------------------------------------------------------------------ prefill
    def prefill(self, prompts: Sequence[Sequence[int]], row_slots: Sequence[int]) -> tuple[torch.Tensor,
                                                                                          list[SequenceKV]]:
        """Last-position logits ``[B, vocab]`` (float32) of each prompt and each prompt's cache.
        ResourceError when the device runs out of memory."""
        with device_errors("the serving prefill"), torch.inference_mode():
            return self._prefill(prompts, row_slots)

    def _prefill(self, prompts: Sequence[Sequence[int]], row_slots: Sequence[int]) -> tuple[torch.Tensor,
                                                                                           list[SequenceKV]]:
        if self.prefill_mode == "batched" or len(prompts) == 1 or (
                self.prefill_mode == "auto" and self.device.type != "cpu"):
            return self._prefill_batch(prompts, row_slots)
        groups = [[i] for i in range(len(prompts))] if self.prefill_mode == "single" \
            else prefill_groups([len(p) for p in prompts])
        logits: list[torch.Tensor | None] = [None] * len(prompts)
        caches: list[SequenceKV | None] = [None] * len(prompts)
        for group in groups:
            group_logits, group_caches = self._prefill_batch([prompts[i] for i in group],
                                                             [row_slots[i] for i in group])
            for row, i in enumerate(group):
                logits[i], caches[i] = group_logits[row], group_caches[row]
        return torch.stack([t for t in logits if t is not None]), [c for c in caches if c is not None]

    def _prefill_batch(self, prompts: Sequence[Sequence[int]], row_slots: Sequence[int]) -> tuple[
            torch.Tensor, list[SequenceKV]]:
        lengths = [len(p) for p in prompts]
        width = max(lengths)
        ids = torch.zeros(len(prompts), width, dtype=torch.long)
        mask = torch.zeros(len(prompts), width, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt):] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, width - len(prompt):] = 1
        # Positions count real tokens only, so a left-padded row sees the positions it would alone.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = _new_cache(self.model.config)
        logits = self._forward(ids.to(self.device), mask.to(self.device), positions.to(self.device), cache,
                               row_slots)
        return logits, self._split(cache, lengths, width)

    # ------------------------------------------------------------------ decode
    def decode(self, tokens: Sequence[int], batch: BatchKV, row_slots: Sequence[int]) -> torch.Tensor:
        """One new token per row of ``batch`` (row ``i`` gets ``tokens[i]``, adapter slot
        ``row_slots[i]``): next-token logits ``[B, vocab]`` (float32); each row's cache grows by its
        token. ResourceError when the device runs out of memory (the batch is then unchanged)."""
        if len(tokens) != batch.rows or len(row_slots) != batch.rows:
            raise ValueError(f"{len(tokens)} tokens and {len(row_slots)} slots for {batch.rows} rows")
        with device_errors("the serving decode step"), torch.inference_mode():
            width = batch.width
            cache = batch.decode_cache(self.model.config)
            positions = torch.tensor(batch.lengths, dtype=torch.long).unsqueeze(1)
            # Row i's tokens are the last lengths[i] columns, then the new one.
            mask = (torch.arange(width + 1).unsqueeze(0) >= width - positions).long()
            ids = torch.tensor(list(tokens), dtype=torch.long).unsqueeze(1)
            logits = self._forward(ids.to(self.device), mask.to(self.device), positions.to(self.device), cache,
                                   row_slots)
            batch.advance()
            return logits
