"""LoRA training on tiny real models: every family learns, runs are byte-for-byte
reproducible (also across processes and through a resume), the output is a standard PEFT
directory, and bad settings get clear errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import rfc8785
import torch

from loraledger.datanets.content import row_hash
from loraledger.errors import InputError
from loraledger.training.adapters import ADAPTER_WEIGHTS, adapter_hash, inspect_adapter, normalise_adapter_config
from loraledger.training.config import TrainConfig, validate_adapter_name
from loraledger.training.data import (
    FALLBACK_TEMPLATE,
    IGNORE_INDEX,
    TrainingRow,
    build_examples,
    encode_row,
    in_validation,
    split_rows,
)
from loraledger.training.hf.basemodel import default_target_modules, load_base_model
from loraledger.training.hf.tiny import init_tiny_model
from loraledger.training.hf.trainer import mean_token_loss, train_lora

ROOT = Path(__file__).resolve().parents[1]
CONTRIBUTOR = "0x" + "11" * 20


def make_rows(n: int = 24) -> list[TrainingRow]:
    rows = []
    for i in range(n):
        data = {"prompt": f"Question {i}: what is {i} times three?", "completion": f"{i} times three is {3 * i}."}
        rows.append(TrainingRow("0x" + row_hash(data).hex(), CONTRIBUTOR, data))
    return rows


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bases")
    return {family: init_tiny_model(root / family, family).path for family in ("gpt2", "llama", "qwen2")}


def config(**overrides) -> TrainConfig:
    values = {"rank": 4, "alpha": 8, "learning_rate": 2e-2, "epochs": 3, "batch_size": 4, "max_length": 64,
              "val_fraction": 0.0, "dropout": 0.0, "seed": 3}
    values.update(overrides)
    return TrainConfig.parse(values)


def train(base: Path, work: Path, cfg: TrainConfig | None = None, rows=None, **kwargs):
    loaded = load_base_model(base, device="cpu")
    cfg = (cfg or config()).with_targets(default_target_modules(loaded.info.model_type))
    examples, _ = build_examples(loaded.tokenizer, rows or make_rows(), cfg.max_length)
    outcome = train_lora(loaded.model, examples, [], cfg, pad_id=loaded.tokenizer.pad_token_id, device="cpu",
                         work_dir=work, **kwargs)
    return loaded, examples, outcome


# ---- learning ----------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["gpt2", "llama", "qwen2"])
def test_each_family_learns_and_saves_a_peft_adapter(bases, family, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    loaded, examples, outcome = train(bases[family], tmp_path / "work")
    pad = loaded.tokenizer.pad_token_id
    # Loss on the training rows: after training well below the untrained adapter's (LoRA B
    # starts at zero, so the untrained adapter is the base model itself).
    with outcome.model.disable_adapter():
        before, _ = mean_token_loss(outcome.model, examples, batch_size=8, pad_id=pad, device="cpu")
    after, tokens = mean_token_loss(outcome.model, examples, batch_size=8, pad_id=pad, device="cpu")
    assert tokens > 0 and after < before - 0.2, (before, after)
    assert outcome.steps == outcome.total_steps == 3 * 6
    assert sum(outcome.losses[-3:]) < sum(outcome.losses[:3])

    out = tmp_path / "adapter"
    outcome.model.save_pretrained(str(out))
    normalise_adapter_config(out, base_model=str(bases[family]))
    checked = inspect_adapter(out)
    assert checked.rank == 4 and list(checked.target_modules) == sorted(default_target_modules(family))
    # Plain PEFT loads it onto a fresh base and computes what the trained model computes.
    fresh = AutoModelForCausalLM.from_pretrained(bases[family], local_files_only=True)
    reloaded = PeftModel.from_pretrained(fresh, str(out)).eval()
    ids = torch.tensor([list(examples[0].input_ids)])
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, outcome.model(input_ids=ids).logits, atol=1e-5)
        with reloaded.disable_adapter():
            assert not torch.allclose(reloaded(input_ids=ids).logits, outcome.model(input_ids=ids).logits, atol=1e-3)


# ---- determinism ---------------------------------------------------------------------------
_TRAIN_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_training import config, train
    from loraledger.training.adapters import adapter_hash, normalise_adapter_config
    loaded, _, outcome = train(Path({base!r}), Path(sys.argv[1]) / "work", config(dropout=0.1))
    out = Path(sys.argv[1]) / "adapter"
    outcome.model.save_pretrained(str(out))
    normalise_adapter_config(out)
    print(adapter_hash(out).hash)
""")


def test_training_is_byte_identical_across_processes(bases, tmp_path):
    script = _TRAIN_SCRIPT.format(tests=str(ROOT / "tests"), base=str(bases["llama"]))
    hashes, weights = [], []
    for run in ("a", "b"):
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / run)], capture_output=True, text=True,
                              timeout=300, env={"PYTHONHASHSEED": "random", "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr[-2000:]
        hashes.append(done.stdout.strip().splitlines()[-1])
        weights.append((tmp_path / run / "adapter" / ADAPTER_WEIGHTS).read_bytes())
    assert weights[0] == weights[1]
    assert hashes[0] == hashes[1] and hashes[0].startswith("0x")
    assert (tmp_path / "a/adapter/adapter_config.json").read_bytes() == (tmp_path / "b/adapter/adapter_config.json").read_bytes()


def test_other_seed_gives_another_adapter(bases, tmp_path):
    _, _, one = train(bases["gpt2"], tmp_path / "one", config(seed=1, epochs=1))
    _, _, two = train(bases["gpt2"], tmp_path / "two", config(seed=2, epochs=1))
    one.model.save_pretrained(str(tmp_path / "a"))
    two.model.save_pretrained(str(tmp_path / "b"))
    assert adapter_hash(tmp_path / "a").hash != adapter_hash(tmp_path / "b").hash
    assert not torch.are_deterministic_algorithms_enabled()  # the process's setting is given back


class Stop(Exception):
    pass


def _state_bytes(model) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in model.state_dict().items() if "lora_" in k})


@pytest.mark.parametrize("checkpoint_every", [0, 4])
def test_interrupted_run_resumes_to_the_same_adapter(bases, tmp_path, checkpoint_every):
    cfg = config(dropout=0.1, gradient_accumulation=2, checkpoint_every=checkpoint_every)
    _, _, straight = train(bases["qwen2"], tmp_path / "straight", cfg)

    def stop_at_7(progress):
        if progress.step == 7:
            raise Stop

    with pytest.raises(Stop):
        train(bases["qwen2"], tmp_path / "interrupted", cfg, on_progress=stop_at_7)
    assert list((tmp_path / "interrupted/checkpoints").glob("step-*/state.json"))
    _, _, resumed = train(bases["qwen2"], tmp_path / "interrupted", cfg, resume=True)
    assert resumed.resumed_from == 7 and resumed.steps == straight.steps
    assert resumed.losses == straight.losses
    assert _state_bytes(resumed.model) == _state_bytes(straight.model)


def test_resume_refuses_a_checkpoint_of_other_settings(bases, tmp_path):
    def stop(progress):
        raise Stop

    with pytest.raises(Stop):
        train(bases["gpt2"], tmp_path / "w", config(), on_progress=stop)
    with pytest.raises(InputError, match="other settings"):
        train(bases["gpt2"], tmp_path / "w", config(learning_rate=1e-3), resume=True)
    with pytest.raises(InputError, match="no checkpoint"):
        train(bases["gpt2"], tmp_path / "empty", config(), resume=True)


# ---- data ------------------------------------------------------------------------------
def test_loss_is_on_the_completion_only(bases):
    loaded = load_base_model(bases["llama"], device="cpu")
    tok = loaded.tokenizer
    row = make_rows(1)[0]
    example = encode_row(tok, row, 512)
    answer = [t for t, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX]
    assert tok.decode(answer) == row.data["completion"] + "<|im_end|>\n"
    prompt = [t for t, label in zip(example.input_ids, example.labels) if label == IGNORE_INDEX]
    assert tok.decode(prompt) == tok.apply_chat_template(
        [{"role": "user", "content": row.data["prompt"]}], tokenize=False, add_generation_prompt=True)
    # Chat rows: every assistant turn takes loss, nothing else does.
    chat = TrainingRow("0x" + "22" * 32, CONTRIBUTOR, {"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye."}]})
    example = encode_row(tok, chat, 512)
    answer = [t for t, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX]
    assert tok.decode(answer) == "Hello.<|im_end|>\nGoodbye.<|im_end|>\n"
    # Text rows: every token, and EOS.
    text = TrainingRow("0x" + "33" * 32, CONTRIBUTOR, {"text": "plain text"})
    example = encode_row(tok, text, 512)
    assert list(example.labels) == list(example.input_ids) and example.input_ids[-1] == tok.eos_token_id


def test_a_tokenizer_without_chat_template_gets_the_fallback(bases):
    loaded = load_base_model(bases["gpt2"], device="cpu")
    tok = loaded.tokenizer
    tok.chat_template = None
    row = make_rows(1)[0]
    example = encode_row(tok, row, 512)
    assert tok.decode(example.input_ids).startswith(FALLBACK_TEMPLATE.format(prompt=row.data["prompt"]))
    answer = [t for t, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX]
    assert tok.decode(answer).startswith(row.data["completion"] + tok.eos_token)


def test_rows_whose_answer_does_not_fit_are_dropped(bases):
    loaded = load_base_model(bases["llama"], device="cpu")
    long_prompt = {"prompt": "word " * 200, "completion": "short"}
    rows = [TrainingRow("0x" + row_hash(long_prompt).hex(), CONTRIBUTOR, long_prompt), *make_rows(2)]
    examples, dropped = build_examples(loaded.tokenizer, rows, 32)
    assert dropped == 1 and len(examples) == 2 and all(len(e.input_ids) <= 32 for e in examples)


def test_the_split_is_fixed_by_row_hash():
    rows = make_rows(200)
    train_rows, val_rows = split_rows(rows, 0.25)
    assert 20 < len(val_rows) < 80 and len(train_rows) + len(val_rows) == 200
    # Adding rows or reordering never moves a row to the other side.
    more_train, more_val = split_rows(list(reversed(make_rows(300))), 0.25)
    assert {r.row_hash for r in val_rows} <= {r.row_hash for r in more_val}
    assert {r.row_hash for r in train_rows} <= {r.row_hash for r in more_train}
    assert all(in_validation(r.row_hash, 0.25) for r in val_rows)
    assert split_rows(rows, 0.0)[1] == []


# ---- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize(("values", "message"), [
    ({"rank": 0}, "rank: must be >= 1"),
    ({"alpha": 0}, "alpha: must be > 0"),
    ({"dropout": 1.0}, "dropout"),
    ({"learning_rate": -1}, "learning_rate: must be > 0"),
    ({"epochs": 0}, "epochs: must be >= 1"),
    ({"batch_size": 0}, "batch_size: must be >= 1"),
    ({"max_length": 2}, "max_length: must be >= 8"),
    ({"val_fraction": 0.9}, "val_fraction"),
    ({"target_modules": []}, "at least one target module"),
    ({"target_modules": ["q_proj; rm -rf"]}, "invalid module name"),
    ({"quantize": "3bit"}, "quantize"),
    ({"ranks": 8}, "ranks: unknown setting"),
])
def test_bad_settings_are_named(values, message):
    with pytest.raises(InputError, match="invalid training settings") as caught:
        TrainConfig.parse(values)
    assert message in str(caught.value)


def test_target_modules_missing_from_the_model(bases, tmp_path):
    loaded = load_base_model(bases["llama"], device="cpu")
    cfg = config(target_modules=["nope_proj"])
    examples, _ = build_examples(loaded.tokenizer, make_rows(4), 64)
    with pytest.raises(InputError, match="nope_proj.*do not match the base model.*q_proj"):
        train_lora(loaded.model, examples, [], cfg, pad_id=0, device="cpu", work_dir=tmp_path)


def test_no_training_examples(bases, tmp_path):
    loaded = load_base_model(bases["llama"], device="cpu")
    with pytest.raises(InputError, match="no training examples"):
        train_lora(loaded.model, [], [], config().with_targets(["q_proj"]), pad_id=0, device="cpu", work_dir=tmp_path)


@pytest.mark.parametrize("name", ["", "../x", "a/b", "UPPER", "-dash", "a" * 65, "x..y", "é"])
def test_bad_adapter_names(name):
    with pytest.raises(InputError, match="invalid adapter name"):
        validate_adapter_name(name)


# ---- adapter directories and hash ----------------------------------------------------------
@pytest.fixture(scope="module")
def adapter_dir(bases, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("adapter")
    _, _, outcome = train(bases["gpt2"], root / "work", config(epochs=1))
    outcome.model.save_pretrained(str(root / "adapter"))
    return root / "adapter"


def test_adapter_hash_follows_the_documented_recipe(adapter_dir, tmp_path):
    from loraledger.training.adapters import HASHED_CONFIG_KEYS

    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    c = {k: cfg.get(k) for k in HASHED_CONFIG_KEYS}
    c["target_modules"] = sorted(c["target_modules"])
    w = hashlib.sha256((adapter_dir / ADAPTER_WEIGHTS).read_bytes()).hexdigest()
    expected = "0x" + hashlib.sha256(rfc8785.dumps({"format": "loraledger-adapter-v1", "config": c,
                                                    "weightsSha256": w})).hexdigest()
    assert adapter_hash(adapter_dir).hash == expected
    # A local path or the PEFT version in the config does not change the adapter; alpha does.
    copy = tmp_path / "copy"
    shutil.copytree(adapter_dir, copy)
    cfg2 = dict(cfg, base_model_name_or_path="/elsewhere", peft_version="9.9")
    (copy / "adapter_config.json").write_text(json.dumps(cfg2))
    assert adapter_hash(copy).hash == expected
    (copy / "adapter_config.json").write_text(json.dumps(dict(cfg, lora_alpha=99)))
    assert adapter_hash(copy).hash != expected


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: (d / "adapter_config.json").unlink(), "no adapter_config.json"),
    (lambda d: (d / ADAPTER_WEIGHTS).rename(d / "adapter_model.bin"), "pickle"),
    (lambda d: (d / ADAPTER_WEIGHTS).unlink(), f"no {ADAPTER_WEIGHTS}"),
    (lambda d: (d / "adapter_config.json").write_text("{nope"), "not valid JSON"),
    (lambda d: (d / "adapter_config.json").write_text('{"peft_type": "IA3", "r": 4}'), "only LoRA"),
    (lambda d: (d / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 0, "target_modules": ["c"]}'),
     "rank"),
    (lambda d: (d / ADAPTER_WEIGHTS).write_bytes(b"\x01\x02"), "not a safetensors file"),
])
def test_bad_adapter_directories(adapter_dir, tmp_path, mutate, message):
    copy = tmp_path / "bad"
    shutil.copytree(adapter_dir, copy)
    mutate(copy)
    with pytest.raises(InputError, match=message):
        inspect_adapter(copy)


def test_missing_adapter_directory(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        inspect_adapter(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        inspect_adapter(tmp_path / "file")
