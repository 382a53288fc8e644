"""LoRA adapter directories: validation and the adapter hash (no torch).

An adapter directory is the standard PEFT layout: ``adapter_config.json`` and
``adapter_model.safetensors`` (``PeftModel.from_pretrained`` loads it; so do vLLM and
LoRAX). Pickled ``adapter_model.bin`` files are refused: unpickling runs arbitrary code.

Adapter hash
------------
``adapterHash = "0x" + sha256(RFC 8785 JSON of {"format": "loraledger-adapter-v1",
"config": C, "weightsSha256": W})`` where ``W`` is the hex sha256 of
``adapter_model.safetensors`` and ``C`` holds the :data:`HASHED_CONFIG_KEYS` of
``adapter_config.json`` (absent keys as ``null``, ``target_modules`` sorted). Only keys that
change what the adapter computes are hashed: a local ``base_model_name_or_path`` or the
PEFT version that wrote the file does not make a different adapter. Recompute with::

    import hashlib, json, rfc8785
    cfg = json.load(open("adapter_config.json"))
    c = {k: cfg.get(k) for k in HASHED_CONFIG_KEYS}; c["target_modules"] = sorted(c["target_modules"])
    w = hashlib.sha256(open("adapter_model.safetensors", "rb").read()).hexdigest()
    "0x" + hashlib.sha256(rfc8785.dumps({"format": "loraledger-adapter-v1", "config": c, "weightsSha256": w})).hexdigest()
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..crypto.canonical import canonicalize
from ..errors import InputError
from ..fsutil import atomic_write_bytes, sha256_file

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_FORMAT",
    "ADAPTER_WEIGHTS",
    "HASHED_CONFIG_KEYS",
    "AdapterDir",
    "AdapterHash",
    "adapter_hash",
    "inspect_adapter",
    "manifest_hash",
    "normalise_adapter_config",
]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_FORMAT = "loraledger-adapter-v1"
#: adapter_config.json keys that change the function an adapter computes.
HASHED_CONFIG_KEYS: tuple[str, ...] = (
    "peft_type", "task_type", "r", "lora_alpha", "target_modules", "fan_in_fan_out", "bias",
    "use_rslora", "use_dora", "modules_to_save", "rank_pattern", "alpha_pattern",
    "layers_to_transform", "layers_pattern",
)
# A safetensors header is 8 bytes of length then JSON; cap what we are willing to parse.
_MAX_HEADER = 100 << 20


@dataclass(frozen=True)
class AdapterDir:
    """A checked PEFT LoRA adapter directory."""

    path: Path
    config: dict[str, Any]
    rank: int
    target_modules: tuple[str, ...]
    tensor_count: int
    weights_bytes: int


@dataclass(frozen=True)
class AdapterHash:
    hash: str
    weights_sha256: str
    seconds: float


def _safetensors_header(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) != 8:
                raise InputError(f"{path} is not a safetensors file: it is shorter than its header")
            (length,) = struct.unpack("<Q", prefix)
            if length > _MAX_HEADER or length > path.stat().st_size - 8:
                raise InputError(f"{path} is not a safetensors file: bad header length {length}")
            header = json.loads(handle.read(length))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable safetensors file: {exc}") from None
    if not isinstance(header, dict):
        raise InputError(f"{path} is not a safetensors file: its header is not a JSON object")
    header.pop("__metadata__", None)
    return header


def inspect_adapter(path: str | Path) -> AdapterDir:
    """Check that ``path`` is a PEFT LoRA adapter directory; ``InputError`` naming what is wrong."""
    directory = Path(path).expanduser()
    if not directory.exists():
        raise InputError(f"adapter directory {directory} does not exist")
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory (an adapter is a directory with {ADAPTER_CONFIG} "
                         f"and {ADAPTER_WEIGHTS})")
    directory = directory.resolve()
    config_path, weights_path = directory / ADAPTER_CONFIG, directory / ADAPTER_WEIGHTS
    if not config_path.is_file():
        raise InputError(f"{directory} is not a PEFT adapter: no {ADAPTER_CONFIG}")
    if not weights_path.is_file():
        if (directory / "adapter_model.bin").exists():
            raise InputError(f"{directory} has adapter_model.bin (a pickle, which can run code when loaded); "
                             f"convert it to {ADAPTER_WEIGHTS}")
        raise InputError(f"{directory} is not a PEFT adapter: no {ADAPTER_WEIGHTS}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InputError(f"{config_path} is not a JSON object")
    if config.get("peft_type") != "LORA":
        raise InputError(f"{config_path}: peft_type is {config.get('peft_type')!r}; only LoRA adapters are supported")
    rank = config.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise InputError(f"{config_path}: r (the LoRA rank) must be a positive integer, not {rank!r}")
    targets = config.get("target_modules")
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise InputError(f"{config_path}: target_modules must be a non-empty list of module names")
    header = _safetensors_header(weights_path)
    if not any("lora_A" in name for name in header) or not any("lora_B" in name for name in header):
        raise InputError(f"{weights_path} holds no LoRA weights (no lora_A / lora_B tensors)")
    return AdapterDir(directory, config, rank, tuple(sorted(targets)), len(header), weights_path.stat().st_size)


def _hashed_config(config: dict[str, Any]) -> dict[str, Any]:
    hashed = {key: config.get(key) for key in HASHED_CONFIG_KEYS}
    targets = hashed["target_modules"]
    hashed["target_modules"] = sorted([targets] if isinstance(targets, str) else targets or [])
    return hashed


def adapter_hash(adapter: AdapterDir | str | Path) -> AdapterHash:
    """The adapter hash (module docstring); the weights are streamed, never held in memory."""
    checked = adapter if isinstance(adapter, AdapterDir) else inspect_adapter(adapter)
    started = time.perf_counter()
    weights = sha256_file(checked.path / ADAPTER_WEIGHTS).hex()
    return AdapterHash(manifest_hash(checked.config, weights), weights, time.perf_counter() - started)


def manifest_hash(config: dict[str, Any], weights_sha256: str) -> str:
    """The adapter hash of an ``adapter_config.json`` (parsed) and its weights file's hex sha256:
    for a caller that already holds the weights' bytes (the serving store hashes what it parses)."""
    manifest = {"format": ADAPTER_FORMAT, "config": _hashed_config(config), "weightsSha256": weights_sha256}
    return "0x" + hashlib.sha256(canonicalize(manifest)).hexdigest()


def normalise_adapter_config(directory: Path, *, base_model: str | None = None) -> None:
    """Rewrite ``adapter_config.json`` deterministically: keys sorted, ``target_modules``
    sorted (PEFT writes a set, whose order changes from process to process), and
    ``base_model_name_or_path`` set to ``base_model`` when given."""
    path = directory / ADAPTER_CONFIG
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    if base_model is not None:
        config["base_model_name_or_path"] = base_model
    atomic_write_bytes(path, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8"))
