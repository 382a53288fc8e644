"""Per-example gradients of a LoRA adapter's parameters, projected LoGra-style (torch).

For a LoRA layer ``h = W₀x + s·B·A·x`` the gradient of one example's loss with respect to the
adapter's own parameters is a sum over its tokens:

    ∇B = Σ_t g_t (A x_t)ᵀ            (g_t: the gradient at the output of ``lora_B``, s·δ_t)
    ∇A = Σ_t (Bᵀ g_t) x_tᵀ           (Bᵀ g_t: the gradient at the output of ``lora_A``)

``∇B`` is ``[out, r]`` and ``∇A`` is ``[r, in]``; only their wide side needs projecting (LoGra,
Choe et al. 2024; LogIX's factored LoRA projection). With seeded Rademacher projections
``P_out [k, out]`` and ``P_in [k, in]`` (:mod:`loraledger.attribution.projection`), the feature of
a layer is ``P_out·∇B`` (``[k, r]``) and ``∇A·P_inᵀ`` (``[r, k]``): ``2·k·r`` numbers, computed from
what the forward and backward pass already hold (``x_t``, ``A x_t`` and the two output gradients),
never from a per-example copy of the full gradient.

:class:`LoraGradientFeatures` hooks the ``lora_A`` / ``lora_B`` modules of a PEFT model for one
adapter; :meth:`~LoraGradientFeatures.features` runs a batch (right-padded; the loss of each
example is its mean token loss over its labelled tokens, so examples do not depend on each other
or on the batch they share) and returns one feature row per example, the layers in a fixed order
(:attr:`~LoraGradientFeatures.blocks`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..training.data import IGNORE_INDEX, Example
from ..training.hf.tensors import collate
from .projection import rademacher

__all__ = ["FeatureBlock", "LoraGradientFeatures", "features_under"]

_PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class FeatureBlock:
    """One adapted layer's slice of a feature row: ``[k·r]`` of ``P_out·∇B`` then ``[r·k]`` of ``∇A·P_inᵀ``."""

    module: str  # the base model's module name (``model.layers.0.self_attn.q_proj``)
    in_features: int
    out_features: int
    rank: int
    k: int

    @property
    def size(self) -> int:
        return 2 * self.k * self.rank


@dataclass
class _Layer:
    block: FeatureBlock
    lora_a: nn.Module
    lora_b: nn.Module
    p_in: torch.Tensor  # [k, in]
    p_out: torch.Tensor  # [k, out]
    x_proj: torch.Tensor | None = None  # [B, T, k]
    a_out: torch.Tensor | None = None  # [B, T, r]
    grad_a: torch.Tensor | None = None  # [B, T, r]
    grad_b_proj: torch.Tensor | None = None  # [B, T, k]


@functools.lru_cache(maxsize=4096)
def _projection(seed: int, name: str, k: int, n: int, device: str) -> torch.Tensor:
    """A projection as a tensor on ``device``, made once per process (every query of every adapter
    of a base model uses the same ones; generating them costs more than a small model's backward)."""
    return torch.from_numpy(rademacher(seed, name, k, n)).to(device)


def _lora_layers(model: nn.Module, adapter: str) -> list[tuple[str, nn.Module, nn.Module]]:
    """(base module name, lora_A, lora_B) of every layer that ``adapter`` adapts, in module order."""
    found = []
    for name, module in model.named_modules():
        lora_a = getattr(module, "lora_A", None)
        lora_b = getattr(module, "lora_B", None)
        if isinstance(lora_a, nn.ModuleDict) and isinstance(lora_b, nn.ModuleDict) and adapter in lora_a:
            found.append((name.removeprefix(_PEFT_PREFIX), lora_a[adapter], lora_b[adapter]))
    return found


class LoraGradientFeatures:
    """Projected per-example LoRA gradients of ``adapter`` in a PEFT ``model`` (module docstring).

    ``k``: the projection width per side; ``seed``: the projections' seed (stored with the index,
    so anyone regenerates them).
    """

    def __init__(self, model: nn.Module, *, adapter: str = "default", k: int = 16, seed: int = 0) -> None:
        if k < 1:
            raise InputError(f"the projection width k must be positive, got {k}")
        self.model = model
        self.adapter = adapter
        self.k = k
        self.seed = seed
        param = next(model.parameters())
        self.device = param.device
        self.layers: list[_Layer] = []
        for module, lora_a, lora_b in _lora_layers(model, adapter):
            rank, in_features = lora_a.weight.shape
            out_features = lora_b.weight.shape[0]
            block = FeatureBlock(module, int(in_features), int(out_features), int(rank), k)
            p_in = _projection(seed, f"{module}:in", k, block.in_features, str(self.device))
            p_out = _projection(seed, f"{module}:out", k, block.out_features, str(self.device))
            self.layers.append(_Layer(block, lora_a, lora_b, p_in, p_out))
        if not self.layers:
            raise InputError(f"the model has no LoRA layers of adapter {adapter!r}")

    @property
    def blocks(self) -> list[FeatureBlock]:
        return [layer.block for layer in self.layers]

    @property
    def layout(self) -> list[dict[str, Any]]:
        """The adapted layers as an index records them: ``{"module", "in", "out", "rank"}`` each."""
        return [{"module": b.module, "in": b.in_features, "out": b.out_features, "rank": b.rank} for b in self.blocks]

    @property
    def dim(self) -> int:
        return sum(block.size for block in self.blocks)

    @contextmanager
    def _hooks(self) -> Iterator[None]:
        handles = []
        # The adapter's weights need gradients for the hooks to fire (a PeftModel loaded for
        # inference has them frozen); the flags are put back afterwards.
        params = [p for layer in self.layers for p in (layer.lora_a.weight, layer.lora_b.weight)]
        frozen = [p for p in params if not p.requires_grad]
        for param in frozen:
            param.requires_grad_(True)
        for layer in self.layers:
            handles.append(layer.lora_a.register_forward_hook(self._on_a(layer)))
            handles.append(layer.lora_b.register_forward_hook(self._on_b(layer)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            for param in frozen:
                param.requires_grad_(False)
            for layer in self.layers:
                layer.x_proj = layer.a_out = layer.grad_a = layer.grad_b_proj = None

    @staticmethod
    def _on_a(layer: _Layer) -> Any:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = inputs[0].detach()
            layer.x_proj = x.to(layer.p_in.dtype) @ layer.p_in.T
            layer.a_out = output.detach().to(layer.p_in.dtype)

            def on_grad(grad: torch.Tensor) -> None:
                layer.grad_a = grad.detach().to(layer.p_in.dtype)

            output.register_hook(on_grad)
        return hook

    @staticmethod
    def _on_b(layer: _Layer) -> Any:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            def on_grad(grad: torch.Tensor) -> None:
                layer.grad_b_proj = grad.detach().to(layer.p_out.dtype) @ layer.p_out.T

            output.register_hook(on_grad)
        return hook

    def features(self, examples: Sequence[Example], *, pad_id: int) -> np.ndarray:
        """``[len(examples), dim]`` float32: each example's projected gradient of its mean token loss."""
        return features_under([self], examples, pad_id=pad_id)[0]

    def _collect(self) -> np.ndarray:
        """The captured rows (this adapter's part of the batch, in batch order) as features."""
        rows = []
        for layer in self.layers:
            if layer.grad_b_proj is None or layer.grad_a is None:
                raise RuntimeError(f"no gradient reached {layer.block.module}")
            # Padding positions carry zero gradient (no loss, nothing attends to them).
            grad_b = torch.einsum("btk,btr->bkr", layer.grad_b_proj, layer.a_out)
            grad_a = torch.einsum("btr,btk->brk", layer.grad_a, layer.x_proj)
            rows.append(torch.cat([grad_b.flatten(1), grad_a.flatten(1)], dim=1))
        return torch.cat(rows, dim=1).float().cpu().numpy()


def features_under(extractors: Sequence[LoraGradientFeatures], examples: Sequence[Example], *,
                   pad_id: int) -> list[np.ndarray]:
    """Each example's features under each extractor's adapter (all of one PEFT model), from ONE
    forward and backward pass: the batch holds the examples once per adapter and PEFT routes each
    copy through its own adapter (``adapter_names``, a mixed-adapter batch), so no adapter needs to
    be the active one and a query at several checkpoints costs one pass, not one per checkpoint."""
    model = extractors[0].model
    if any(x.model is not model for x in extractors):
        raise ValueError("the extractors must share one model")
    if not examples:
        return [np.zeros((0, x.dim), dtype=np.float32) for x in extractors]
    for example in examples:
        if not any(label != IGNORE_INDEX for label in example.labels[1:]):
            raise InputError(f"example {example.row_hash} has no labelled token to take a gradient of")
    batch = collate([e for _ in extractors for e in examples], pad_id, extractors[0].device)
    routing = {"adapter_names": [x.adapter for x in extractors for _ in examples]} \
        if hasattr(model, "peft_config") else {}
    was_training = model.training
    if was_training:
        model.eval()  # no dropout: the gradient of the function the adapter computes
    try:
        with ExitStack() as hooks, torch.enable_grad():
            for extractor in extractors:
                hooks.enter_context(extractor._hooks())
            # Logits only where a labelled token is predicted (from the batch's first one on): the
            # vocabulary projection of the prompt's positions would be computed for nothing.
            targets = batch["labels"][:, 1:]
            first = int((targets != IGNORE_INDEX).to(torch.int8).argmax(dim=1).min())
            keep = torch.arange(first, targets.shape[1], device=targets.device)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           logits_to_keep=keep, **routing).logits
            labels = targets[:, first:]
            nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels,
                                                    ignore_index=IGNORE_INDEX, reduction="none")
            counted = (labels != IGNORE_INDEX).sum(dim=1).clamp(min=1)
            # Σ over rows of each one's mean loss: one backward, per-row gradients separable.
            (nll.sum(dim=1) / counted).sum().backward()
            return [extractor._collect() for extractor in extractors]
    finally:
        model.zero_grad(set_to_none=True)
        if was_training:
            model.train()
