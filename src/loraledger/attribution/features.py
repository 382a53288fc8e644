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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..training.data import IGNORE_INDEX, Example
from ..training.hf.tensors import collate
from .projection import rademacher

__all__ = ["FeatureBlock", "LoraGradientFeatures"]

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
            p_in = torch.from_numpy(rademacher(seed, f"{module}:in", k, block.in_features)).to(self.device)
            p_out = torch.from_numpy(rademacher(seed, f"{module}:out", k, block.out_features)).to(self.device)
            self.layers.append(_Layer(block, lora_a, lora_b, p_in, p_out))
        if not self.layers:
            raise InputError(f"the model has no LoRA layers of adapter {adapter!r}")

    @property
    def blocks(self) -> list[FeatureBlock]:
        return [layer.block for layer in self.layers]

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
        if not examples:
            return np.zeros((0, self.dim), dtype=np.float32)
        for example in examples:
            if not any(label != IGNORE_INDEX for label in example.labels[1:]):
                raise InputError(f"example {example.row_hash} has no labelled token to take a gradient of")
        batch = collate(examples, pad_id, self.device)
        was_training = self.model.training
        self.model.eval()  # no dropout: the gradient of the function the adapter computes
        try:
            with self._hooks(), torch.enable_grad():
                logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                labels = batch["labels"][:, 1:]
                nll = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels,
                                                        ignore_index=IGNORE_INDEX, reduction="none")
                counted = (labels != IGNORE_INDEX).sum(dim=1).clamp(min=1)
                # Σ over examples of each one's mean loss: one backward, per-example gradients separable.
                (nll.sum(dim=1) / counted).sum().backward()
                rows = []
                for layer in self.layers:
                    if layer.grad_b_proj is None or layer.grad_a is None:
                        raise RuntimeError(f"no gradient reached {layer.block.module}")
                    # Padding positions carry zero gradient (no loss, nothing attends to them).
                    grad_b = torch.einsum("btk,btr->bkr", layer.grad_b_proj, layer.a_out)
                    grad_a = torch.einsum("btr,btk->brk", layer.grad_a, layer.x_proj)
                    rows.append(torch.cat([grad_b.flatten(1), grad_a.flatten(1)], dim=1))
            return torch.cat(rows, dim=1).float().cpu().numpy()
        finally:
            self.model.zero_grad(set_to_none=True)
            self.model.train(was_training)
