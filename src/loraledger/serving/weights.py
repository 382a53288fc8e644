"""A registered adapter's files → the tensors the engine serves (the host-memory tier).

:func:`load_adapter_weights` reads a PEFT adapter directory (``adapter_config.json`` +
``adapter_model.safetensors``; safetensors only, never a pickle) into
:class:`AdapterWeights`: for every adapted module of the base model, ``A`` (``[rank, in]``)
and ``B`` (``[out, rank]``) on the CPU as the file stores them, and the LoRA scaling
(``alpha / rank``, or ``alpha / sqrt(rank)`` for rsLoRA), which the engine folds into ``B``
when it copies the adapter into a device slot, so it computes ``delta = (x @ A.T) @ B.T`` with
nothing per step.

It refuses, with a message that says which, what the engine does not compute: DoRA,
``modules_to_save``, per-module ranks or alphas (``rank_pattern`` / ``alpha_pattern``),
LoRA biases, a rank above the engine's maximum, and weights that do not match the config
(missing ``lora_A``/``lora_B`` pairs, shapes that disagree). The caller checks the adapter
hash against the ledger before serving (:mod:`loraledger.serving.store`).

Module names are the base model's own (``model.layers.0.self_attn.q_proj``): PEFT's
``base_model.model.`` prefix and ``.lora_A.weight`` suffix are stripped.

The weights file is read once into one buffer (:func:`read_weights_file`), which the caller
may hash before it is parsed (the store checks the ledger's hash on exactly the bytes it
serves), and its tensors are views into that buffer (:func:`parse_safetensors`, no copy). An
adapter therefore costs its file's size in host memory, and one read and one hash to load;
and the loader thread runs no torch kernel (see :mod:`loraledger.serving.loop` for why
that matters on a CPU).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..training.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS

__all__ = ["AdapterWeights", "LoraModuleWeights", "TensorSpan", "load_adapter_weights", "parse_safetensors",
           "read_config", "read_weights_file"]

_PEFT_PREFIX = "base_model.model."
_SUFFIXES = {".lora_A.weight": "a", ".lora_B.weight": "b"}
#: safetensors dtype names of the float tensors an adapter may hold.
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
#: An adapter's safetensors header is a few KB; more is not an adapter.
_MAX_HEADER = 16 << 20


@dataclass(frozen=True)
class TensorSpan:
    """Where one tensor lies in a buffer holding a safetensors file: :meth:`tensor` is a view of it."""

    buffer: bytearray
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def tensor(self) -> torch.Tensor:
        count = math.prod(self.shape)
        if not count:
            return torch.empty(self.shape, dtype=self.dtype)
        return torch.frombuffer(self.buffer, dtype=self.dtype, count=count, offset=self.offset).view(self.shape)


class LoraModuleWeights:
    """One adapted linear layer: ``a`` is ``[rank, in_features]``, ``b`` is ``[out_features,
    rank]``, as the adapter's file holds them (the adapter's ``scaling`` is not in ``b``).

    Given tensors, it holds them; given :class:`TensorSpan` s (what the loader passes), it makes
    ``a`` and ``b`` on each access as views of the buffer the file was read into. A tensor held
    costs about 1.2 KB of objects beside its data, as much as a small adapter's whole pair: the
    host tier keeps bytes and where they lie, and the engine makes the views when it copies an
    adapter into a device slot.
    """

    __slots__ = ("_a", "_b")

    def __init__(self, a: torch.Tensor | TensorSpan, b: torch.Tensor | TensorSpan) -> None:
        self._a = a
        self._b = b

    @property
    def a(self) -> torch.Tensor:
        return self._a if isinstance(self._a, torch.Tensor) else self._a.tensor()

    @property
    def b(self) -> torch.Tensor:
        return self._b if isinstance(self._b, torch.Tensor) else self._b.tensor()

    @property
    def in_features(self) -> int:
        return int(self._a.shape[1])

    @property
    def out_features(self) -> int:
        return int(self._b.shape[0])

    @property
    def rank(self) -> int:
        return int(self._a.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes if isinstance(t, TensorSpan) else t.numel() * t.element_size() for t in (self._a, self._b))


@dataclass(frozen=True)
class AdapterWeights:
    """A LoRA adapter in host memory, ready to be copied into an engine slot."""

    name: str
    adapter_hash: str
    rank: int
    #: Base-model module name → its LoRA pair.
    modules: dict[str, LoraModuleWeights]
    #: What ``B`` is multiplied by in the delta (``alpha / rank``, or ``alpha / sqrt(rank)``).
    scaling: float = 1.0

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data held (what this adapter costs in the host tier)."""
        return sum(m.nbytes for m in self.modules.values())

    @property
    def target_modules(self) -> list[str]:
        """The leaf names of the adapted modules (``q_proj``, ``v_proj``...), sorted."""
        return sorted({name.rsplit(".", 1)[-1] for name in self.modules})


def read_config(directory: Path) -> dict[str, Any]:
    """``adapter_config.json`` of ``directory``, parsed; InputError naming what is wrong."""
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


def read_weights_file(directory: Path) -> bytearray:
    """The bytes of ``directory``'s safetensors weights, in one buffer; InputError when there is
    none, or only a pickle."""
    weights_path = directory / ADAPTER_WEIGHTS
    try:
        with open(weights_path, "rb", buffering=0) as handle:
            size = handle.seek(0, 2)
            handle.seek(0)
            data = bytearray(size)
            view, read = memoryview(data), 0
            while read < size:
                got = handle.readinto(view[read:])
                if not got:
                    raise InputError(f"{weights_path} shrank while it was read")
                read += got
    except FileNotFoundError:
        if (directory / "adapter_model.bin").exists():
            raise InputError(f"adapter directory {directory} has pickled weights (adapter_model.bin); only "
                             "safetensors are served") from None
        raise InputError(f"adapter directory {directory} has no {ADAPTER_WEIGHTS}") from None
    except (IsADirectoryError, PermissionError, OSError) as exc:
        raise InputError(f"cannot read {weights_path}: {exc}") from None
    return data


def parse_safetensors(data: bytearray, origin: str) -> dict[str, TensorSpan]:
    """Where the tensors of a safetensors file held in ``data`` lie in it (views, no copy). Checks what
    safetensors itself checks: the header's length and JSON, known float dtypes, each tensor's
    byte range inside the data, matching its shape, aligned, and no two ranges overlapping.
    InputError naming ``origin`` and the problem."""
    if len(data) < 8:
        raise InputError(f"{origin} is not a safetensors file: it is shorter than its header")
    (length,) = struct.unpack_from("<Q", data, 0)
    if length > min(_MAX_HEADER, len(data) - 8):
        raise InputError(f"{origin} is not a safetensors file: bad header length {length}")
    try:
        header = json.loads(bytes(data[8:8 + length]))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{origin} is not a safetensors file: its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise InputError(f"{origin} is not a safetensors file: its header is not a JSON object")
    header.pop("__metadata__", None)
    base, size = 8 + length, len(data) - 8 - length
    spans: list[tuple[int, int, str]] = []
    tensors: dict[str, TensorSpan] = {}
    for key, info in header.items():
        try:
            dtype = _DTYPES[info["dtype"]]
            shape = [int(n) for n in info["shape"]]
            start, end = (int(n) for n in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{origin}: tensor {key} has a bad header entry {info!r} (float dtypes "
                             f"{', '.join(_DTYPES)} only)") from None
        itemsize = dtype.itemsize
        count = math.prod(shape)
        if any(n < 0 for n in shape) or not 0 <= start <= end <= size or end - start != count * itemsize \
                or (base + start) % itemsize:
            raise InputError(f"{origin}: tensor {key} ({info['dtype']} {shape}) has bytes {start}..{end} that do not "
                             f"fit its shape or the file's {size} data bytes")
        spans.append((start, end, key))
        tensors[key] = TensorSpan(data, dtype, tuple(shape), base + start)
    spans.sort()
    for (_, end, key), (start, _, other) in zip(spans, spans[1:]):
        if start < end:
            raise InputError(f"{origin}: tensors {key} and {other} overlap")
    return tensors


def load_adapter_weights(directory: str | Path, *, name: str, adapter_hash: str, max_rank: int,
                         config: dict[str, Any] | None = None, data: bytearray | None = None) -> AdapterWeights:
    """Read the adapter at ``directory`` (see the module docstring); ``InputError`` naming the
    problem when the engine cannot serve it exactly. ``config`` and ``data``: the directory's
    config and weights bytes when the caller has read them already (the tensors are views of
    ``data``)."""
    directory = Path(directory)
    config = read_config(directory) if config is None else config
    rank, scaling = _refuse_unsupported(config, name, max_rank)
    if data is None:
        data = read_weights_file(directory)
    tensors = parse_safetensors(data, str(directory / ADAPTER_WEIGHTS))
    pairs: dict[str, dict[str, TensorSpan]] = {}
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
        if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[0] != rank or b.shape[1] != rank:
            raise InputError(f"adapter {name}: {module} has shapes A {a.shape}, B {b.shape}, "
                             f"which do not match rank {rank}")
        modules[module] = LoraModuleWeights(a, b)  # spans of the buffer read once, never of a file mapping
    return AdapterWeights(name=name, adapter_hash=adapter_hash, rank=rank, modules=modules, scaling=scaling)
