"""Base models: find, check, hash and load a local Hugging Face causal LM (edge: files + torch).

A base model is a local directory in the Hugging Face layout: ``config.json`` (with a
``model_type``), weight files (``*.safetensors``, or ``pytorch_model*.bin`` when there are
none) and a tokenizer (``tokenizer.json``, ``tokenizer_config.json`` or
``tokenizer.model``). Nothing is ever downloaded: every transformers call passes
``local_files_only=True`` and ``HF_HUB_OFFLINE`` defaults to ``1``.

:func:`inspect_base_model` and :func:`hash_base_model` only read files; they do not import
torch or transformers, so provenance tools can hash a model on a machine without them.
:func:`load_base_model` imports torch and transformers when called.

Base model hash
---------------
The hash identifies the *weights*: only the weight files are hashed (``config.json``
and the tokenizer are not). The manifest is::

    {"format": "loraledger-base-model-v1",
     "files": [{"name": <path relative to the model directory, "/"-separated>,
                "size": <bytes>, "sha256": <64 lowercase hex digits>}, ...]}

with ``files`` sorted by ``name``. The hash is ``"0x"`` + the hex SHA-256 of the
RFC 8785 (JSON Canonicalization Scheme) encoding of the manifest. To recompute it
elsewhere::

    files = [{"name": n, "size": os.path.getsize(n), "sha256": sha256(open(n, "rb").read()).hexdigest()}
             for n in sorted(weight_file_names)]
    hash = "0x" + sha256(rfc8785.dumps({"format": "loraledger-base-model-v1", "files": files})).hexdigest()

(For ASCII file names, RFC 8785 here equals ``json.dumps(manifest, sort_keys=True,
separators=(",", ":"))``.)

Hash cache
----------
Hashing a multi-GB model takes a while, so :func:`hash_base_model` can keep a cache: a
JSON object mapping each weight file's absolute path to ``{"size": n, "mtime_ns": n,
"sha256": hex}``. An entry is reused only when the file's current size and
``st_mtime_ns`` both match; otherwise the file is hashed again and the entry replaced.
The cache is written atomically and may hold entries for several models. A cache file
that cannot be read or parsed is ignored and rebuilt: it is a cache, not a record.
Like ``make`` and git, it trusts mtimes: a file rewritten with the same size whose mtime
is then put back (or that lands in the same timestamp tick) is not re-read; hash without
a cache when the hash must be authoritative.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraledger.errors import ConfigError, InputError, LoraLedgerError, ResourceError
from loraledger.fsutil import atomic_write_json, sha256_file

#: ``format`` field of the base model manifest (see the module docstring).
MANIFEST_FORMAT = "loraledger-base-model-v1"

#: Marker file written by :func:`loraledger.training.hf.tiny.init_tiny_model`.
TINY_MARKER = "loraledger-tiny.json"

#: Any one of these makes a directory's tokenizer loadable by ``AutoTokenizer``.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")

QUANTIZE_CHOICES = ("4bit",)
DTYPE_CHOICES = ("float32", "bfloat16", "float16")

# LoRA targets for the families we know well: the attention query/value projections
# (the original LoRA paper's choice; GPT-2 fuses q, k and v into one c_attn).
_TARGET_MODULES: dict[str, list[str]] = {
    "gpt2": ["c_attn"],
    "llama": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
}

_CUDA_INDEX = re.compile(r"cuda:(\d+)")


@dataclass(frozen=True)
class WeightFile:
    """One hashed weight file: ``name`` relative to the model directory ("/"-separated),
    ``size`` in bytes, ``sha256`` as 64 lowercase hex digits (no ``0x``)."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class BaseModelInfo:
    """What :func:`inspect_base_model` found in a model directory."""

    #: Resolved absolute model directory.
    path: Path
    #: ``model_type`` from ``config.json`` (e.g. ``"llama"``).
    model_type: str
    #: ``architectures`` from ``config.json`` (may be empty).
    architectures: tuple[str, ...]
    #: Sorted weight files: ``*.safetensors`` if any, else ``pytorch_model*.bin``.
    weight_files: tuple[Path, ...]
    #: Written by ``init_tiny_model`` (its marker file is present): a toy model.
    tiny: bool


@dataclass(frozen=True)
class BaseModelHash:
    """The result of :func:`hash_base_model`."""

    #: ``"0x"`` + 64 hex digits: SHA-256 of the RFC 8785 manifest (module docstring).
    hash: str
    files: tuple[WeightFile, ...]
    total_bytes: int
    #: Wall-clock seconds spent (reading the cache included).
    seconds: float
    #: Every file's hash came from the cache (nothing was read).
    cached: bool

    def manifest(self) -> dict[str, Any]:
        """The manifest whose canonical JSON :attr:`hash` is the SHA-256 of."""
        return _manifest(self.files)


@dataclass
class LoadedBaseModel:
    """A base model in memory, ready for inference or LoRA training."""

    #: A transformers ``PreTrainedModel`` in eval mode, on :attr:`device`.
    model: Any
    #: A transformers tokenizer with a pad token (eos when the model has none).
    tokenizer: Any
    info: BaseModelInfo
    device: str
    #: ``"4bit"`` for QLoRA, ``None`` for full precision.
    quantized: str | None


# --------------------------------------------------------------------------- inspect


def inspect_base_model(path: str | Path) -> BaseModelInfo:
    """Check that ``path`` is a local Hugging Face model directory and describe it.

    Reads only ``config.json`` and the file listing (no torch). Raises
    :class:`~loraledger.errors.InputError` naming the directory and what is missing: the
    directory itself, ``config.json`` or its ``model_type``, weight files, a tokenizer.
    Whether transformers has a causal-LM class for the model type is checked by
    :func:`require_causal_lm` (it imports torch), which :func:`load_base_model` calls.
    """
    raw = Path(path).expanduser()
    if not raw.exists():
        raise InputError(f"base model directory {raw} does not exist", path=str(raw))
    if not raw.is_dir():
        raise InputError(f"base model path {raw} is not a directory", path=str(raw))
    directory = raw.resolve()

    config_path = directory / "config.json"
    if not config_path.is_file():
        raise InputError(
            f"{directory} is not a Hugging Face model directory: no config.json", path=str(directory)
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{config_path} is not valid JSON: {exc}", path=str(config_path)) from None
    if not isinstance(config, dict):
        raise InputError(f"{config_path} is not a JSON object", path=str(config_path))
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise InputError(f"{config_path} has no model_type", path=str(config_path))
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
        raise InputError(f"{config_path}: architectures is not a list of names", path=str(config_path))

    weight_files = _weight_files(directory)
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise InputError(
            f"{directory} has no tokenizer (none of {', '.join(TOKENIZER_FILES)})", path=str(directory)
        )
    return BaseModelInfo(
        path=directory,
        model_type=model_type,
        architectures=tuple(architectures),
        weight_files=weight_files,
        tiny=(directory / TINY_MARKER).is_file(),
    )


def _read_config(directory: Path) -> dict[str, Any]:
    """``config.json`` of a directory :func:`inspect_base_model` has accepted."""
    config: dict[str, Any] = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    return config


def _weight_files(directory: Path) -> tuple[Path, ...]:
    """Sorted weight files of ``directory``; InputError when there are none or a shard
    named by a sharded checkpoint's index is missing."""
    files = sorted(p for p in directory.glob("*.safetensors") if p.is_file())
    index_name = "model.safetensors.index.json"
    if not files:
        # Legacy PyTorch checkpoints only count when there is no safetensors file:
        # repositories often ship both, and from_pretrained prefers safetensors.
        files = sorted(p for p in directory.glob("pytorch_model*.bin") if p.is_file())
        index_name = "pytorch_model.bin.index.json"
    if not files:
        raise InputError(
            f"{directory} has no weight files (*.safetensors or pytorch_model*.bin)", path=str(directory)
        )
    # A sharded checkpoint with a shard missing would hash fine and fail to load later
    # (or, worse, be hashed as a different model): catch it here.
    index_path = directory / index_name
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            shards = set(index["weight_map"].values())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{index_path} is not a valid shard index: {exc}", path=str(index_path)) from None
        missing = sorted(str(s) for s in shards if not (directory / str(s)).is_file())
        if missing:
            raise InputError(
                f"{directory} is missing weight shards named in {index_name}: {', '.join(missing)}",
                path=str(directory),
                missing=missing,
            )
    return tuple(files)


def require_causal_lm(model_type: str, config: Mapping[str, Any] | None = None) -> None:
    """InputError unless ``model_type`` (with its ``config.json`` dict, when given) is a
    causal language model transformers can load.

    transformers lists a causal-LM class for some encoders too (``BertLMHeadModel``,
    ``RobertaForCausalLM``, ...) and for the decoder half of encoder-decoder models
    (Whisper, BART): those are only causal LMs when trained as one, i.e. when the config
    says ``"is_decoder": true``; an encoder-decoder checkpoint never is. Imports
    transformers' auto-model tables, which import torch (about a second), so this is not
    part of :func:`inspect_base_model`.
    """
    _quiet_transformers()
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    def refuse(why: str) -> InputError:
        return InputError(f"model type {model_type} is not a causal language model ({why})", model_type=model_type)

    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise refuse("transformers has no AutoModelForCausalLM class for it")
    if config is None:
        return
    if config.get("is_encoder_decoder") is True:
        raise refuse("it is an encoder-decoder model")
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and config.get("is_decoder") is not True:
        raise refuse('it is a masked-LM encoder; only checkpoints trained as decoders, with "is_decoder": true, are')


# --------------------------------------------------------------------------- hash


def hash_base_model(
    path: str | Path, *, cache_path: Path | None = None, chunk_size: int = 8 << 20
) -> BaseModelHash:
    """Hash a base model's weight files into one ``0x`` hash (format: module docstring).

    Each file is streamed with :func:`~loraledger.fsutil.sha256_file` (``chunk_size``
    bytes at a time). With ``cache_path``, a file whose size and mtime match its cache
    entry is not read again; the cache is updated atomically afterwards.
    """
    started = time.perf_counter()
    info = inspect_base_model(path)
    cache = _read_cache(cache_path) if cache_path is not None else {}
    updated = dict(cache)
    files: list[WeightFile] = []
    hits = 0
    for file in info.weight_files:
        key = str(file)
        before = file.stat()
        entry = cache.get(key)
        if entry is not None and entry["size"] == before.st_size and entry["mtime_ns"] == before.st_mtime_ns:
            digest = entry["sha256"]
            hits += 1
        else:
            digest = sha256_file(file, chunk_size=chunk_size).hex()
            after = file.stat()
            # A file rewritten while we read it has no single hash: refuse rather than
            # record a digest of half of each version.
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                raise InputError(f"{file} changed while it was being hashed; try again", path=key)
            updated[key] = {"size": before.st_size, "mtime_ns": before.st_mtime_ns, "sha256": digest}
        files.append(WeightFile(name=file.relative_to(info.path).as_posix(), size=before.st_size, sha256=digest))
    files.sort(key=lambda f: f.name)
    if cache_path is not None and updated != cache:
        atomic_write_json(Path(cache_path), updated)
    return BaseModelHash(
        hash=_manifest_hash(files),
        files=tuple(files),
        total_bytes=sum(f.size for f in files),
        seconds=time.perf_counter() - started,
        cached=cache_path is not None and hits == len(files),
    )


def _manifest(files: list[WeightFile] | tuple[WeightFile, ...]) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "files": [
            {"name": f.name, "size": f.size, "sha256": f.sha256} for f in sorted(files, key=lambda f: f.name)
        ],
    }


def _manifest_hash(files: list[WeightFile] | tuple[WeightFile, ...]) -> str:
    import hashlib

    # records pulls in pydantic and eth_utils; imported here so inspecting a model does not.
    from loraledger.crypto.canonical import canonicalize

    return "0x" + hashlib.sha256(canonicalize(_manifest(files))).hexdigest()


def _read_cache(cache_path: Path) -> dict[str, dict[str, Any]]:
    """Valid entries of the cache file; {} when it is missing or unreadable (rebuilt)."""
    try:
        raw = json.loads(Path(cache_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(raw, dict):
        return {}
    # Keep only well-formed entries: a hand-edited or truncated entry is re-hashed, not trusted.
    return {key: value for key, value in raw.items() if _valid_cache_entry(value)}


def _valid_cache_entry(value: Any) -> bool:
    if not isinstance(value, Mapping):
        return False
    size, mtime_ns, digest = value.get("size"), value.get("mtime_ns"), value.get("sha256")
    return (
        isinstance(size, int)
        and not isinstance(size, bool)
        and isinstance(mtime_ns, int)
        and not isinstance(mtime_ns, bool)
        and isinstance(digest, str)
        and re.fullmatch(r"[0-9a-f]{64}", digest) is not None
    )


# --------------------------------------------------------------------------- LoRA targets


def default_target_modules(model_type: str) -> list[str]:
    """The module names LoRA adapts by default for ``model_type``.

    gpt2: ``c_attn``; llama, qwen2, mistral: ``q_proj``, ``v_proj``; other types: peft's
    own default table. InputError when neither knows the type.
    """
    if model_type in _TARGET_MODULES:
        return list(_TARGET_MODULES[model_type])
    # peft's table imports torch; only consulted for families we do not list ourselves.
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    targets = PEFT_TARGETS.get(model_type)
    if not targets:
        raise InputError(
            f"no default LoRA target modules for model type {model_type}; "
            "name them with --target-modules (e.g. --target-modules q_proj,v_proj)",
            model_type=model_type,
        )
    return list(targets)


# --------------------------------------------------------------------------- load


def resolve_device(requested: str = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when CUDA is available, else ``"cpu"``; ``"cpu"``,
    ``"cuda"`` and ``"cuda:N"`` pass through after checking the device exists.

    ConfigError when CUDA is asked for and absent (or N is out of range); InputError for
    any other name.
    """
    name = requested.strip().lower()
    if name == "cpu":
        return "cpu"
    index_match = _CUDA_INDEX.fullmatch(name)
    if name not in ("auto", "cuda") and index_match is None:
        raise InputError(f"unknown device {requested!r}: use auto, cpu, cuda or cuda:N", device=requested)
    import torch

    available = torch.cuda.is_available()
    if name == "auto":
        return "cuda" if available else "cpu"
    if not available:
        raise ConfigError(f"device {name} was requested but this machine has no CUDA device", device=name)
    if index_match is not None:
        count = torch.cuda.device_count()
        if int(index_match.group(1)) >= count:
            raise ConfigError(f"device {name} does not exist: this machine has {count} CUDA device(s)", device=name)
    return name


def is_resource_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the machine failing (out of host or GPU memory, a CUDA fault) rather
    than bad input."""
    if isinstance(exc, MemoryError):
        return True
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("CUDA" in text or "out of memory" in text.lower())


def resource_error(exc: BaseException, what: str) -> ResourceError:
    cause = (str(exc).strip().splitlines() or [""])[0]
    return ResourceError(f"{what} failed: out of memory or a device fault ({type(exc).__name__}: {cause}); "
                         "try a smaller batch size or max length, or another device")


@contextmanager
def device_errors(what: str) -> Iterator[None]:
    """Raise out-of-memory and CUDA failures inside the block as :class:`ResourceError`."""
    try:
        yield
    except Exception as exc:
        if is_resource_error(exc):
            raise resource_error(exc, what) from None
        raise


def load_base_model(
    path: str | Path, *, device: str = "auto", quantize: str | None = None, dtype: str | None = None
) -> LoadedBaseModel:
    """Load a local base model and its tokenizer (never downloads).

    ``device``: see :func:`resolve_device`. ``quantize="4bit"`` loads it NF4-quantised
    for QLoRA (needs CUDA and bitsandbytes; ConfigError otherwise). ``dtype``: ``None``
    means float32 on CPU and bfloat16 on CUDA (float32 where the GPU lacks bfloat16);
    ``"float32"``, ``"bfloat16"`` and ``"float16"`` force one. A failure inside
    transformers becomes one InputError line naming the directory and the cause.
    """
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise InputError(
            f"unknown quantization {quantize!r}: use {' or '.join(QUANTIZE_CHOICES)} (or none)", quantize=quantize
        )
    if dtype is not None and dtype not in DTYPE_CHOICES:
        raise InputError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPE_CHOICES)}", dtype=dtype)
    info = inspect_base_model(path)
    _quiet_transformers()
    require_causal_lm(info.model_type, _read_config(info.path))
    resolved = resolve_device(device)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if quantize == "4bit":
        _require_qlora(resolved)
    torch_dtype = _torch_dtype(dtype, resolved)
    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": torch_dtype}
    if quantize == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
        # Quantised weights are placed while loading; they cannot be moved with .to().
        kwargs["device_map"] = {"": int(resolved.partition(":")[2] or 0)}

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(info.path), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(info.path), **kwargs)
        if quantize == "4bit":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model)
        else:
            model = model.to(resolved)
    except LoraLedgerError:
        raise
    except Exception as exc:  # transformers raises anything from OSError to KeyError
        if is_resource_error(exc):
            raise resource_error(exc, f"loading the base model from {info.path}") from None
        cause = (str(exc).strip().splitlines() or [""])[0]
        raise InputError(
            f"cannot load base model from {info.path}: {type(exc).__name__}: {cause}", path=str(info.path)
        ) from None

    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        # Batched training and generation need padding; eos is the usual stand-in.
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return LoadedBaseModel(model=model, tokenizer=tokenizer, info=info, device=resolved, quantized=quantize)


def _require_qlora(device: str) -> None:
    """ConfigError unless 4-bit loading can work here: a CUDA device and bitsandbytes."""
    import importlib.util

    import torch

    need = "QLoRA (--quantize 4bit) needs a CUDA GPU and the bitsandbytes package"
    if not torch.cuda.is_available():
        raise ConfigError(f"{need}; this machine has no CUDA device", device=device)
    if not device.startswith("cuda"):
        raise ConfigError(f"{need}; device {device} is not a CUDA device (use --device cuda)", device=device)
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"{need}; bitsandbytes is not installed (pip install bitsandbytes)", device=device)


def _torch_dtype(name: str | None, device: str) -> Any:
    import torch

    if name is not None:
        return getattr(torch, name)
    if device.startswith("cuda"):
        # Half precision halves memory and is what GPUs train in; bfloat16 keeps float32's
        # range, so no loss scaling is needed. Older GPUs without it stay in float32.
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    # CPUs are slow and often inexact in half precision: float32.
    return torch.float32


def _quiet_transformers() -> None:
    """Offline by default, no progress bars, errors only (no generation-config chatter)."""
    # Read by huggingface_hub when it is first imported: set before transformers is.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import transformers.utils.logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    # peft still calls a transformers method deprecated for v6; the warning is theirs, not the user's.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
