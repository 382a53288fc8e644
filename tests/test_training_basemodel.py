"""Base models: tiny model factory, inspection, hashing (and its cache), loading.

Real files, real torch and transformers, nothing mocked; everything runs offline on a CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loraledger.errors import ConfigError, InputError
from loraledger.fsutil import sha256_file
from loraledger.training.hf.basemodel import (
    MANIFEST_FORMAT,
    default_target_modules,
    hash_base_model,
    inspect_base_model,
    load_base_model,
    require_causal_lm,
    resolve_device,
)
from loraledger.training.hf.tiny import TINY_FAMILIES, init_tiny_model

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny model per family, built once for the module (seed 0, default sizes)."""
    root = tmp_path_factory.mktemp("tiny")
    return {family: init_tiny_model(root / family, family).path for family in TINY_FAMILIES}


def _fake_model_dir(directory: Path, *, config: object = None, weights: bool = True, tokenizer: bool = True) -> Path:
    """A directory that looks like a model to the file checks (its weights are junk)."""
    directory.mkdir(parents=True, exist_ok=True)
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config)
        (directory / "config.json").write_text(text)
    if weights:
        (directory / "model.safetensors").write_bytes(b"not really safetensors")
    if tokenizer:
        (directory / "tokenizer.json").write_text("{}")
    return directory


# --------------------------------------------------------------------------- tiny models


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_tiny_model_inspects_loads_and_runs(tiny_models: dict[str, Path], family: str) -> None:
    info = inspect_base_model(tiny_models[family])
    assert info.model_type == family
    assert info.tiny
    assert info.path.is_absolute()
    assert [p.name for p in info.weight_files] == ["model.safetensors"]
    assert info.weight_files[0].stat().st_size < 1_000_000
    marker = json.loads((info.path / "loraledger-tiny.json").read_text())
    assert marker["format"] == "loraledger-tiny-model-v1" and marker["family"] == family
    assert "toy model" in (info.path / "README.md").read_text()

    loaded = load_base_model(info.path, device="cpu")
    assert loaded.device == "cpu" and loaded.quantized is None
    assert not loaded.model.training
    assert loaded.model.dtype == torch.float32
    tokenizer = loaded.tokenizer
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"

    text = "Hello world! The quick brown fox costs 3.50 €, café ☕."
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert max(ids) < loaded.model.config.vocab_size

    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"

    batch = tokenizer(["a short one", "a somewhat longer sentence here"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = loaded.model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape
    assert logits.shape[2] == len(tokenizer)
    assert torch.isfinite(logits).all()


def test_tiny_model_is_deterministic(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    same = init_tiny_model(tmp_path / "same", "llama", seed=0)
    other = init_tiny_model(tmp_path / "other", "llama", seed=1)
    reference = hash_base_model(tiny_models["llama"]).hash
    assert hash_base_model(same.path).hash == reference
    assert hash_base_model(other.path).hash != reference
    # The tokenizer is trained deterministically too.
    assert (same.path / "tokenizer.json").read_bytes() == (tiny_models["llama"] / "tokenizer.json").read_bytes()


def test_tiny_model_refuses_non_empty_directory_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    (target / "pytorch_model.bin").write_bytes(b"old weights")
    with pytest.raises(InputError, match="not empty") as caught:
        init_tiny_model(target, "gpt2")
    assert str(target) in str(caught.value)

    info = init_tiny_model(target, "gpt2", force=True)
    assert info.model_type == "gpt2"
    assert (target / "notes.txt").read_text() == "mine"  # unrelated files are left alone
    assert not (target / "pytorch_model.bin").exists()  # stale weights are not
    # Forcing again over a tiny model of another family replaces it.
    assert init_tiny_model(target, "qwen2", force=True).model_type == "qwen2"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"family": "bert"}, ["unknown tiny model family", "gpt2, llama, qwen2"]),
        ({"hidden_size": 64, "heads": 5}, ["heads (5) must divide hidden_size (64)"]),
        ({"layers": 0}, ["layers must be a positive integer"]),
        ({"vocab_size": 100}, ["vocab_size must be at least"]),
    ],
)
def test_tiny_model_bad_arguments(tmp_path: Path, kwargs: dict[str, object], words: list[str]) -> None:
    with pytest.raises(InputError) as caught:
        init_tiny_model(tmp_path / "m", **kwargs)  # type: ignore[arg-type]
    for word in words:
        assert word in str(caught.value)
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- hashing


def test_sha256_file_streams_in_chunks(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    path = tmp_path / "blob"
    path.write_bytes(data)
    expected = hashlib.sha256(data).digest()
    for chunk_size in (1, 999, 4096, 10_000, 1 << 20):
        assert sha256_file(path, chunk_size=chunk_size) == expected
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sha256_file(empty) == hashlib.sha256(b"").digest()


def test_hash_matches_documented_recipe(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    # Two weight files, so the order of the manifest's entries matters.
    model = tmp_path / "model"
    shutil.copytree(tiny_models["gpt2"], model)
    (model / "extra.safetensors").write_bytes(b"\x00" * 1000)

    result = hash_base_model(model, chunk_size=4096)
    names = sorted(p.name for p in model.glob("*.safetensors"))
    files = [
        {"name": n, "size": (model / n).stat().st_size, "sha256": hashlib.sha256((model / n).read_bytes()).hexdigest()}
        for n in names
    ]
    manifest = {"format": "loraledger-base-model-v1", "files": files}
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    assert result.hash == "0x" + hashlib.sha256(canonical).hexdigest()
    assert result.manifest() == manifest and MANIFEST_FORMAT == manifest["format"]
    assert [f.name for f in result.files] == names == ["extra.safetensors", "model.safetensors"]
    assert result.total_bytes == sum(f["size"] for f in files)
    assert not result.cached
    # Config and tokenizer are not part of the hash: it identifies the weights.
    (model / "config.json").write_text((model / "config.json").read_text().replace("{", '{"x": 1,', 1))
    assert hash_base_model(model).hash == result.hash


def test_hash_cache_is_reused_and_invalidated(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_models["qwen2"], model)
    cache = tmp_path / "cache" / "hashes.json"

    first = hash_base_model(model, cache_path=cache)
    assert not first.cached
    entries = json.loads(cache.read_text())
    weights = str((model / "model.safetensors").resolve())
    assert set(entries) == {weights}
    assert entries[weights]["sha256"] == first.files[0].sha256

    second = hash_base_model(model, cache_path=cache)
    assert second.cached and second.hash == first.hash

    # Rewrite the weights with different bytes of the same size, and make sure the mtime
    # moves even on a file system with coarse timestamps.
    path = model / "model.safetensors"
    old = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns + 1_000_000_000))
    third = hash_base_model(model, cache_path=cache)
    assert not third.cached
    assert third.hash != first.hash
    assert third.hash == hash_base_model(model).hash  # the same as without a cache
    assert hash_base_model(model, cache_path=cache).cached


def test_corrupt_hash_cache_is_rebuilt(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "hashes.json"
    reference = hash_base_model(tiny_models["llama"]).hash
    for junk in ("not json{", "[1, 2]", json.dumps({"/x": {"size": "big"}})):
        cache.write_text(junk)
        result = hash_base_model(tiny_models["llama"], cache_path=cache)
        assert result.hash == reference and not result.cached
        assert hash_base_model(tiny_models["llama"], cache_path=cache).cached


def test_inspect_and_hash_do_not_import_torch(tiny_models: dict[str, Path]) -> None:
    code = (
        "import sys; import loraledger.training; from loraledger.training.hf.basemodel import "
        "inspect_base_model, hash_base_model; "
        f"inspect_base_model({str(tiny_models['gpt2'])!r}); hash_base_model({str(tiny_models['gpt2'])!r}); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- bad input


def test_inspect_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist") as caught:
        inspect_base_model(tmp_path / "nope")
    assert "nope" in str(caught.value)


def test_inspect_file_instead_of_directory(tmp_path: Path) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"x")
    with pytest.raises(InputError, match="not a directory"):
        inspect_base_model(file)


def test_inspect_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not a Hugging Face model directory: no config.json"):
        inspect_base_model(tmp_path)


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ({"architectures": ["LlamaForCausalLM"]}, "no model_type"),
    ],
)
def test_inspect_bad_config(tmp_path: Path, config: object, words: str) -> None:
    directory = _fake_model_dir(tmp_path / "m", config=config)
    with pytest.raises(InputError, match=words) as caught:
        inspect_base_model(directory)
    assert "config.json" in str(caught.value)


def test_inspect_no_weights(tmp_path: Path) -> None:
    directory = _fake_model_dir(tmp_path / "m", config={"model_type": "llama"}, weights=False)
    with pytest.raises(InputError, match=r"no weight files \(\*\.safetensors or pytorch_model\*\.bin\)"):
        inspect_base_model(directory)


def test_inspect_falls_back_to_pytorch_bin_and_checks_shards(tmp_path: Path) -> None:
    directory = _fake_model_dir(tmp_path / "m", config={"model_type": "llama"}, weights=False)
    for name in ("pytorch_model-00002-of-00002.bin", "pytorch_model-00001-of-00002.bin"):
        (directory / name).write_bytes(b"w")
    info = inspect_base_model(directory)
    assert [p.name for p in info.weight_files] == [
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
    ]
    assert not info.tiny
    (directory / "model-00001-of-00002.safetensors").write_bytes(b"w")
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})
    )
    with pytest.raises(InputError, match="missing weight shards .*model-00002-of-00002.safetensors"):
        inspect_base_model(directory)


def test_inspect_no_tokenizer(tmp_path: Path) -> None:
    directory = _fake_model_dir(tmp_path / "m", config={"model_type": "llama"}, tokenizer=False)
    with pytest.raises(InputError, match="no tokenizer") as caught:
        inspect_base_model(directory)
    assert "tokenizer.json" in str(caught.value)


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ({"model_type": "bert"}, "masked-LM encoder"),
        ({"model_type": "roberta", "is_decoder": False}, "masked-LM encoder"),
        ({"model_type": "whisper", "is_encoder_decoder": True}, "encoder-decoder"),
        ({"model_type": "t5", "is_encoder_decoder": True}, "no AutoModelForCausalLM class"),
        ({"model_type": "vit"}, "no AutoModelForCausalLM class"),
    ],
)
def test_non_causal_model_type_is_refused(tmp_path: Path, config: dict[str, object], why: str) -> None:
    directory = _fake_model_dir(tmp_path / "m", config=config)
    model_type = config["model_type"]
    assert inspect_base_model(directory).model_type == model_type  # the files are fine...
    with pytest.raises(InputError, match=f"model type {model_type} is not a causal language model") as caught:
        load_base_model(directory, device="cpu")  # ...but it is not a causal LM
    assert why in str(caught.value)


def test_causal_model_types_are_accepted() -> None:
    for model_type in ("llama", "gpt2", "qwen2", "mistral"):
        require_causal_lm(model_type, {"model_type": model_type})
    # An encoder architecture trained as a decoder is a causal LM.
    require_causal_lm("bert", {"model_type": "bert", "is_decoder": True})


def test_load_failure_is_one_input_error(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    directory = tmp_path / "broken"
    shutil.copytree(tiny_models["llama"], directory)
    (directory / "model.safetensors").write_bytes(b"definitely not safetensors")
    with pytest.raises(InputError, match="cannot load base model from") as caught:
        load_base_model(directory, device="cpu")
    assert str(directory) in str(caught.value) and "\n" not in str(caught.value)


def test_load_rejects_unknown_options(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="unknown quantization"):
        load_base_model(tiny_models["llama"], quantize="3bit")
    with pytest.raises(InputError, match="unknown dtype"):
        load_base_model(tiny_models["llama"], dtype="int8")


def test_load_with_explicit_dtype(tiny_models: dict[str, Path]) -> None:
    loaded = load_base_model(tiny_models["qwen2"], device="cpu", dtype="bfloat16")
    assert loaded.model.dtype == torch.bfloat16


# --------------------------------------------------------------------------- devices, QLoRA


def test_resolve_device() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "cuda:x", "gpu"):
        with pytest.raises(InputError, match="unknown device"):
            resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_config_error() -> None:
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device(name)


def test_qlora_needs_gpu_and_bitsandbytes(tiny_models: dict[str, Path]) -> None:
    import importlib.util

    if torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("this machine can run QLoRA")
    with pytest.raises(ConfigError) as caught:
        load_base_model(tiny_models["llama"], quantize="4bit")
    message = str(caught.value)
    assert "GPU" in message and "bitsandbytes" in message


# --------------------------------------------------------------------------- LoRA targets


def test_default_target_modules() -> None:
    assert default_target_modules("gpt2") == ["c_attn"]
    assert default_target_modules("llama") == ["q_proj", "v_proj"]
    assert default_target_modules("qwen2") == ["q_proj", "v_proj"]
    assert default_target_modules("mistral") == ["q_proj", "v_proj"]
    assert default_target_modules("bloom") == ["query_key_value"]  # from peft's table
    modules = default_target_modules("gpt2")
    modules.append("mutated")
    assert default_target_modules("gpt2") == ["c_attn"]  # callers get a copy
    with pytest.raises(InputError, match="--target-modules"):
        default_target_modules("no-such-model")
