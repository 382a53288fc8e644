"""Device slots for LoRA adapters and the layers that apply them to a mixed batch (torch).

:class:`LoraSlots` wraps every target layer of a base model (``nn.Linear`` and GPT-2's
``Conv1D``) in a :class:`LoraLayer` and gives each one stacked tensors ``A [S, r_max, in]``
and ``B [S, out, r_max]`` (``S = max_loras + 1``) on the model's device and dtype. Slot 0 is
all zeros and stands for the base model, so "no adapter" is an ordinary slot and never a
sentinel such as -1; an adapter of a smaller rank is zero-padded to ``r_max``.

Before a forward the runner says which slot each batch row uses (:meth:`LoraSlots.batch`);
the grouping of rows by slot is computed once there and read by every layer. Outside such a
block the layers are the base model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from .lora_ops import LORA_OPS, RowGroups
from .weights import AdapterWeights

__all__ = ["GATHER_FROM_GROUPS", "GATHER_FROM_GROUPS_CUDA", "LoraLayer", "LoraSlots"]

#: ``op="auto"`` on a CPU: a forward whose rows use this many adapters or more is computed by
#: gather + bmm, fewer by the group loop (the crossover ``scripts/bench_lora_ops.py`` measures
#: at 3-4 adapters for hidden 256-576, rank 8-16, 8-32 rows).
GATHER_FROM_GROUPS = 4
#: The same on CUDA: the group loop only for a forward of one adapter (on an H200, hidden 2048,
#: rank 16, 1-16 rows: 59-62 µs a layer against gather + bmm's 76-79; docs/benchmarks/cuda-h200.txt),
#: gather + bmm from two (each group is two more kernel launches: 4 adapters cost the loop 215 µs,
#: gather 77).
GATHER_FROM_GROUPS_CUDA = 2


def _conv1d_type() -> type | None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is part of the same extra
        return None
    return Conv1D


def _features(module: nn.Module) -> tuple[int, int] | None:
    """(in, out) of a layer the engine can adapt, else None."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    conv1d = _conv1d_type()
    if conv1d is not None and isinstance(module, conv1d):
        # GPT-2's Conv1D stores its weight as [in, out]; PEFT's LoRA pair is still A [r, in], B [out, r].
        return int(module.weight.shape[0]), int(module.weight.shape[1])
    return None


class _Batch:
    """The row → slot assignment of the forward in progress and the op that computes its deltas
    (shared by every LoraLayer)."""

    rows: RowGroups | None = None
    op: str = "group"


class LoraLayer(nn.Module):
    """A base layer plus the LoRA deltas of the slots its batch rows use.

    ``forward`` is the base layer's own forward, then ``y += (x_g @ A[s].T) @ B[s].T`` for each
    group ``g`` of rows in slot ``s != 0``. ``a``, ``b`` and ``ranks`` belong to :class:`LoraSlots`
    (plain attributes, not buffers: the model's ``state_dict`` stays the base model's).
    """

    def __init__(self, base: nn.Module, in_features: int, out_features: int, a: torch.Tensor, b: torch.Tensor,
                 batch: _Batch) -> None:
        super().__init__()
        self.base = base
        self.in_features = in_features
        self.out_features = out_features
        self.a = a
        self.b = b
        #: Rank loaded in each slot for this layer; 0 where the slot's adapter does not adapt it.
        self.ranks = [0] * a.shape[0]
        self._batch = batch

    # Some model code reads the weight of a projection directly (dtype checks, tied weights).
    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return getattr(self.base, "bias", None)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        y = self.base(x, *args, **kwargs)
        rows = self._batch.rows
        if rows is None or not rows.adapted:
            return y
        if x.shape[0] != rows.slots.shape[0]:
            raise RuntimeError(f"LoRA layer got {x.shape[0]} rows, the batch has {rows.slots.shape[0]}")
        return LORA_OPS[self._batch.op](y, x, self.a, self.b, self.ranks, rows)


class LoraSlots:
    """Stacked LoRA weights for ``max_loras`` adapters (+ the base in slot 0) inside ``model``.

    ``target_modules``: leaf names of the layers to wrap (``q_proj``, ``c_attn``...); ``None``
    wraps every Linear / Conv1D except the output head, so that any adapter of the model can be
    loaded (at the cost of ``S × r_max × (in + out)`` values per layer: name the targets for a big
    model). ``op``: ``"group"`` or ``"gather"`` (see :mod:`loraledger.serving.lora_ops`); ``"auto"``
    picks per forward what ``scripts/bench_lora_ops.py`` measured faster: on CUDA the group loop
    for a batch of one adapter (1.2-1.4x faster), gather + bmm from two, where the loop's kernel
    launches per adapter dominate (3-50x slower with 4-64 adapters in a batch on an H200); on a
    CPU the group loop while the batch has fewer than :data:`GATHER_FROM_GROUPS` adapters
    (1.2-2.6x faster with one), gather + bmm from there (1.6x with 4 adapters, 5-10x with 32: each
    group costs a Python call and two small matmuls).
    """

    def __init__(self, model: nn.Module, *, max_loras: int, max_rank: int,
                 target_modules: Iterable[str] | None = None, op: str = "auto") -> None:
        if max_loras < 1 or max_rank < 1:
            raise InputError(f"max_loras and max_rank must be positive, got {max_loras} and {max_rank}")
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        if op != "auto" and op not in LORA_OPS:
            raise InputError(f"unknown LoRA op {op!r}: use auto or one of {', '.join(LORA_OPS)}")
        self.op = op
        self.model = model
        self.max_loras = max_loras
        self.max_rank = max_rank
        self._batch = _Batch()
        self._slot_adapter: list[str | None] = [None] * (max_loras + 1)
        self.layers: dict[str, LoraLayer] = {}
        targets = set(target_modules) if target_modules is not None else None
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        for name, module in list(model.named_modules()):
            features = _features(module)
            if features is None or module is head or isinstance(module, LoraLayer):
                continue
            if targets is not None and name.rsplit(".", 1)[-1] not in targets:
                continue
            self._wrap(name, module, *features)
        if not self.layers:
            raise InputError(f"the model has no layer named {sorted(targets or [])} to adapt")

    def _wrap(self, name: str, module: nn.Module, in_features: int, out_features: int) -> None:
        slots = self.max_loras + 1
        a = torch.zeros(slots, self.max_rank, in_features, device=self.device, dtype=self.dtype)
        b = torch.zeros(slots, out_features, self.max_rank, device=self.device, dtype=self.dtype)
        layer = LoraLayer(module, in_features, out_features, a, b, self._batch)
        parent_name, _, leaf = name.rpartition(".")
        parent = self.model.get_submodule(parent_name) if parent_name else self.model
        setattr(parent, leaf, layer)
        self.layers[name] = layer

    @property
    def num_slots(self) -> int:
        """Slots including the base slot 0."""
        return self.max_loras + 1

    def adapter_in(self, slot: int) -> str | None:
        """Name of the adapter loaded in ``slot`` (None: empty, or the base for slot 0)."""
        return self._slot_adapter[slot]

    def set_op(self, op: str) -> None:
        """Switch to another implementation of the delta (benchmarks, tests)."""
        if op != "auto" and op not in LORA_OPS:
            raise InputError(f"unknown LoRA op {op!r}: use auto or one of {', '.join(LORA_OPS)}")
        self.op = op

    def op_for(self, rows: RowGroups) -> str:
        """The op that computes the deltas of a forward over ``rows``."""
        if self.op != "auto":
            return self.op
        crossover = GATHER_FROM_GROUPS if self.device.type == "cpu" else GATHER_FROM_GROUPS_CUDA
        return "gather" if len(rows.groups) >= crossover else "group"

    def _check_slot(self, slot: int) -> None:
        if isinstance(slot, bool) or not isinstance(slot, int) or not 1 <= slot <= self.max_loras:
            raise InputError(f"slot must be 1..{self.max_loras} (slot 0 is the base), got {slot!r}")

    def load(self, slot: int, weights: AdapterWeights) -> None:
        """Copy ``weights`` into ``slot`` (replacing what was there). Everything is checked first, so a
        refused adapter leaves the slot as it was: InputError for a module the model has no target
        layer named so, a shape that does not match, or a rank above ``max_rank``."""
        self._check_slot(slot)
        if weights.rank > self.max_rank:
            raise InputError(f"adapter {weights.name} has rank {weights.rank}, above the engine's maximum "
                             f"{self.max_rank}")
        for module, pair in weights.modules.items():
            layer = self.layers.get(module)
            if layer is None:
                raise InputError(f"adapter {weights.name} adapts {module}, which this model has no target layer "
                                 "named so (wrong base model, or a layer the engine was not set up to adapt)")
            a, b = pair.a, pair.b
            rank = int(a.shape[0])
            if (pair.in_features, pair.out_features) != (layer.in_features, layer.out_features) \
                    or rank > self.max_rank or b.shape[1] != rank:
                raise InputError(f"adapter {weights.name}: {module} has A {tuple(a.shape)}, B "
                                 f"{tuple(b.shape)}; the model's layer is {layer.in_features} → "
                                 f"{layer.out_features} (rank at most {self.max_rank})")
        self.clear(slot)
        with torch.no_grad():
            for module, pair in weights.modules.items():
                layer = self.layers[module]
                rank = pair.rank
                layer.a[slot, :rank].copy_(pair.a)
                # The adapter's scaling is folded into B here, once per slot load (and any dtype
                # converted by the copies): nothing is left to do per step.
                layer.b[slot, :, :rank].copy_(pair.b).mul_(weights.scaling)
                layer.ranks[slot] = rank
        self._slot_adapter[slot] = weights.name

    def clear(self, slot: int) -> None:
        """Zero ``slot``: rows assigned to it then compute the base model."""
        self._check_slot(slot)
        with torch.no_grad():
            for layer in self.layers.values():
                if layer.ranks[slot]:
                    layer.a[slot].zero_()
                    layer.b[slot].zero_()
                    layer.ranks[slot] = 0
        self._slot_adapter[slot] = None

    @contextmanager
    def batch(self, row_slots: Sequence[int]) -> Iterator[RowGroups]:
        """Within the block, batch row ``i`` of every forward uses slot ``row_slots[i]``."""
        for slot in row_slots:
            if not 0 <= slot <= self.max_loras:
                raise InputError(f"slot {slot} out of range 0..{self.max_loras}")
        rows = RowGroups.of(row_slots, self.device)
        self._batch.rows = rows
        self._batch.op = self.op_for(rows)
        try:
            yield rows
        finally:
            self._batch.rows = None

    def remove(self) -> None:
        """Put the base layers back into the model (the slots become unusable)."""
        for name, layer in self.layers.items():
            parent_name, _, leaf = name.rpartition(".")
            parent = self.model.get_submodule(parent_name) if parent_name else self.model
            setattr(parent, leaf, layer.base)
        self.layers.clear()
