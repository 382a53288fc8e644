"""A registered adapter's files → the tensors the engine serves (the host-memory tier).

:func:`load_adapter_weights` reads a PEFT adapter directory (``adapter_config.json`` +
``adapter_model.safetensors``; safetensors only, never a pickle) into
:class:`AdapterWeights`: for every adapted module of the base model, ``A`` (``[rank, in]``)
and ``B`` (``[out, rank]``) in float32 on the CPU, with the LoRA scaling (``alpha / rank``,
or ``alpha / sqrt(rank)`` for rsLoRA) folded into ``B`` once, so the engine computes
``delta = (x @ A.T) @ B.T`` with nothing per step.

It refuses, with a message that says which, what the engine does not compute: DoRA,
``modules_to_save``, per-module ranks or alphas (``rank_pattern`` / ``alpha_pattern``),
LoRA biases, a rank above the engine's maximum, and weights that do not match the config
(missing ``lora_A``/``lora_B`` pairs, shapes that disagree). The caller checks the adapter
hash against the ledger before serving (:mod:`loraledger.serving.store`).

Module names are the base model's own (``model.layers.0.self_attn.q_proj``): PEFT's
``base_model.model.`` prefix and ``.lora_A.weight`` suffix are stripped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import InputError
from ..training.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS

__all__ = ["AdapterWeights", "LoraModuleWeights", "load_adapter_weights"]

_PEFT_PREFIX = "base_model.model."
_SUFFIXES = {".lora_A.weight": "a", ".lora_B.weight": "b"}


@dataclass(frozen=True)
class LoraModuleWeights:
    """One adapted linear layer: ``a`` is ``[rank, in_features]``, ``b`` is ``[out_features,
    rank]`` with the adapter's scaling already multiplied in."""

    a: torch.Tensor
    b: torch.Tensor

    @property
    def in_features(self) -> int:
        return int(self.a.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.b.shape[0])


@dataclass(frozen=True)
class AdapterWeights:
    """A LoRA adapter in host memory, ready to be copied into an engine slot."""

    name: str
    adapter_hash: str
    rank: int
    #: Base-model module name → its LoRA pair.
    modules: dict[str, LoraModuleWeights]

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data held (what this adapter costs in the host tier)."""
        return sum(m.a.numel() * m.a.element_size() + m.b.numel() * m.b.element_size() for m in self.modules.values())

    @property
    def target_modules(self) -> list[str]:
        """The leaf names of the adapted modules (``q_proj``, ``v_proj``...), sorted."""
        return sorted({name.rsplit(".", 1)[-1] for name in self.modules})


def _config(directory: Path) -> dict[str, Any]:
    path = directory / ADAPTER_CONFIG
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"adapter directory {directory} has no {ADAPTER_CONFIG}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InputError(f"{path} is not a JSON object")
    return config


def _refuse_unsupported(config: dict[str, Any], name: str, max_rank: int) -> tuple[int, float]:
    """(rank, scaling) of a config the engine computes exactly; InputError naming what it cannot."""
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise InputError(f"adapter {name} is a {config.get('peft_type')} adapter; only LoRA adapters are served")
    if config.get("use_dora"):
        raise InputError(f"adapter {name} uses DoRA, which the serving engine does not support")
    if config.get("modules_to_save"):
        raise InputError(f"adapter {name} has modules_to_save {config['modules_to_save']}, which the serving "
                         "engine does not support (it serves LoRA deltas on a shared base only)")
    for key in ("rank_pattern", "alpha_pattern"):
        if config.get(key):
            raise InputError(f"adapter {name} has a per-module {key.split('_')[0]} ({key}), which the serving engine "
                             "does not support")
    if config.get("bias", "none") not in (None, "none") or config.get("lora_bias"):
        raise InputError(f"adapter {name} trains biases (bias={config.get('bias')!r}), which the serving engine "
                         "does not support")
    rank = config.get("r")
    alpha = config.get("lora_alpha", rank)
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise InputError(f"adapter {name}: r must be a positive integer, got {rank!r}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha):
        raise InputError(f"adapter {name}: lora_alpha must be a number, got {alpha!r}")
    if rank > max_rank:
        raise InputError(f"adapter {name} has rank {rank}, above this node's maximum LoRA rank {max_rank} "
                         "(raise serving max_lora_rank to serve it)")
    scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    return rank, float(scaling)


def load_adapter_weights(directory: str | Path, *, name: str, adapter_hash: str, max_rank: int) -> AdapterWeights:
    """Read the adapter at ``directory`` (see the module docstring); ``InputError`` naming the
    problem when the engine cannot serve it exactly."""
    directory = Path(directory)
    config = _config(directory)
    rank, scaling = _refuse_unsupported(config, name, max_rank)
    weights_path = directory / ADAPTER_WEIGHTS
    if not weights_path.is_file():
        if (directory / "adapter_model.bin").exists():
            raise InputError(f"adapter {name} has pickled weights (adapter_model.bin); only safetensors are served")
        raise InputError(f"adapter directory {directory} has no {ADAPTER_WEIGHTS}")
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"cannot read {weights_path}: {exc}") from None
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        suffix = next((s for s in _SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            raise InputError(f"adapter {name} holds a tensor the engine does not use: {key}")
        module = key[: -len(suffix)].removeprefix(_PEFT_PREFIX)
        pairs.setdefault(module, {})[_SUFFIXES[suffix]] = tensor
    if not pairs:
        raise InputError(f"adapter {name} holds no LoRA weights")
    modules: dict[str, LoraModuleWeights] = {}
    for module, pair in sorted(pairs.items()):
        if set(pair) != {"a", "b"}:
            raise InputError(f"adapter {name}: {module} has lora_{'A' if 'a' in pair else 'B'} without its partner")
        a, b = pair["a"], pair["b"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != rank or b.shape[1] != rank:
            raise InputError(f"adapter {name}: {module} has shapes A {tuple(a.shape)}, B {tuple(b.shape)}, "
                             f"which do not match rank {rank}")
        # Copies, never views: safetensors maps the file, and a view would keep the whole mapping
        # resident (and change if the file were rewritten after its hash was checked).
        modules[module] = LoraModuleWeights(a.to(torch.float32, copy=True).contiguous(),
                                            (b.to(torch.float32) * scaling).contiguous())
    return AdapterWeights(name=name, adapter_hash=adapter_hash, rank=rank, modules=modules)
