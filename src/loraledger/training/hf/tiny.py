"""Tiny base models: a small random causal LM and a local tokenizer, for tests and demos (edge: files + torch).

:func:`init_tiny_model` writes a complete Hugging Face model directory (``config.json``,
``model.safetensors``, tokenizer files, a ChatML chat template) without downloading
anything, so training, serving and attribution run offline on a CPU in seconds. The
model is randomly initialised: it produces noise, not text. Its directory holds a
``loraledger-tiny.json`` marker (so :func:`~loraledger.training.hf.basemodel.inspect_base_model`
reports ``tiny=True``) and a README saying so.

Determinism: the tokenizer is a byte-level BPE trained on :data:`CORPUS` (a module
constant), the weights come from ``torch.manual_seed(seed)``; the same arguments give a
byte-identical ``model.safetensors``, hence the same base model hash.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from loraledger.errors import InputError
from loraledger.fsutil import atomic_write_bytes, atomic_write_json
from loraledger.training.hf.basemodel import TINY_MARKER, BaseModelInfo, _quiet_transformers, inspect_base_model

TINY_FAMILIES = ("gpt2", "llama", "qwen2")

#: ``format`` field of the ``loraledger-tiny.json`` marker.
TINY_FORMAT = "loraledger-tiny-model-v1"

EOS_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = [EOS_TOKEN, "<|im_start|>", "<|im_end|>"]

#: ChatML, as Qwen and many instruction-tuned models use it.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_NOTE = "toy model for tests and demos; point --base at a real model for real use"

#: Text the tiny tokenizer's BPE merges are learnt from: varied English, code-ish text,
#: digits and punctuation, so common words become single tokens and anything else
#: still encodes byte by byte.
CORPUS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "A small model can still learn the shape of a sentence.",
    "What is the capital of France? The capital of France is Paris.",
    "Please summarise the following paragraph in one sentence.",
    "The user asked a question and the assistant gave a helpful answer.",
    "Water boils at 100 degrees Celsius at sea level.",
    "She opened the window, and the cold morning air filled the room.",
    "Translate this into French: good morning, how are you today?",
    "In 1969, two astronauts walked on the surface of the Moon.",
    "The recipe needs 2 cups of flour, 3 eggs and a pinch of salt.",
    "def add(a, b):\n    return a + b",
    "for i in range(10): print(i * i)",
    "SELECT name, price FROM products WHERE price > 20 ORDER BY name;",
    "Data contributors are rewarded when their rows influence a model's answers.",
    "A LoRA adapter adds low-rank matrices to the attention layers of a base model.",
    "Fine-tuning on medical notes helps the model answer clinical questions.",
    "The river flows north through the valley before it reaches the sea.",
    "He said, \"I'll be there at 7:30 pm, don't wait for me!\"",
    "Is it true that 17 is a prime number? Yes, 17 is prime.",
    "Our meeting is on Tuesday, 4 March 2025, in room 12B.",
    "Prices rose by 3.5% last year, while wages grew by 2.1%.",
    "Children learn languages quickly when they hear them every day.",
    "The library opens at nine and closes at six on weekdays.",
    "Email support@example.com or call +1 (555) 010-2030 for help.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "Every block in the chain points to the hash of the block before it.",
    "Rewards are paid in tokens at the end of each epoch.",
    "The train to Berlin leaves from platform 3 in ten minutes.",
    "Good evening! Thank you for your question; here is my answer.",
    "Mix the colours red and blue, and you will get purple.",
    "Keep your answers short, clear and polite.",
    "The museum has paintings, sculptures and old maps of the city.",
    "If the test fails, read the error message before you change the code.",
    "Winter is cold, summer is warm, and spring is full of flowers.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000 2024 3.14 -42 1e6",
    "Punctuation: . , ; : ! ? ' \" ( ) [ ] { } < > / \\ | - _ + = * & ^ % $ # @ ~ `",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz",
)

# Bytes (256) + the special tokens: the smallest vocabulary a byte-level BPE can have.
_MIN_VOCAB = 256 + len(SPECIAL_TOKENS)


def init_tiny_model(
    directory: str | Path,
    family: str = "llama",
    *,
    seed: int = 0,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    vocab_size: int = 512,
    max_positions: int = 512,
    force: bool = False,
) -> BaseModelInfo:
    """Write a small randomly initialised causal LM of ``family`` and its tokenizer to ``directory``.

    The defaults give about 150k parameters (under 1 MB of float32 weights). Refuses a
    non-empty ``directory`` unless ``force``, which overwrites the files it writes and
    removes other weight files there (so the directory holds one model). Raises
    InputError for an unknown family or bad sizes. Returns the written model's
    :class:`~loraledger.training.hf.basemodel.BaseModelInfo`.
    """
    if family not in TINY_FAMILIES:
        raise InputError(f"unknown tiny model family {family!r}: use one of {', '.join(TINY_FAMILIES)}", family=family)
    sizes = {
        "hidden_size": hidden_size,
        "layers": layers,
        "heads": heads,
        "vocab_size": vocab_size,
        "max_positions": max_positions,
    }
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise InputError(f"tiny model {name} must be a positive integer, got {value!r}", **{name: value})
    if hidden_size % heads:
        raise InputError(
            f"tiny model heads ({heads}) must divide hidden_size ({hidden_size})", heads=heads, hidden_size=hidden_size
        )
    if vocab_size < _MIN_VOCAB:
        raise InputError(
            f"tiny model vocab_size must be at least {_MIN_VOCAB} (256 bytes + {len(SPECIAL_TOKENS)} special tokens), "
            f"got {vocab_size}",
            vocab_size=vocab_size,
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"tiny model seed must be a non-negative integer, got {seed!r}", seed=seed)

    target = Path(directory).expanduser()
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} exists and is not a directory", path=str(target))
    non_empty = target.is_dir() and any(target.iterdir())
    if non_empty and not force:
        raise InputError(f"directory {target} is not empty; pick an empty one or pass force", path=str(target))

    # Imports torch and transformers: after the cheap checks, so bad input fails fast.
    _quiet_transformers()
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = _build_tokenizer(vocab_size)
    kv_heads = max(heads // 2, 1)
    config = _model_config(family, tokenizer, hidden_size=hidden_size, layers=layers, heads=heads,
                           kv_heads=kv_heads, max_positions=max_positions)

    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a sibling temp directory, then move into place: an interrupted build
    # never leaves a half-written model that inspects as valid.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        # fork_rng: seeding must not change the caller's global RNG state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        marker = {
            "format": TINY_FORMAT,
            "family": family,
            "seed": seed,
            "hidden_size": hidden_size,
            "layers": layers,
            "heads": heads,
            "kv_heads": kv_heads if family != "gpt2" else heads,
            "vocab_size": len(tokenizer),
            "max_positions": max_positions,
            "parameters": sum(p.numel() for p in model.parameters()),
            "note": _NOTE,
        }
        atomic_write_json(staging / TINY_MARKER, marker)
        atomic_write_bytes(staging / "README.md", _readme(family, seed, marker).encode("utf-8"))
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return inspect_base_model(target)


def _build_tokenizer(vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on :data:`CORPUS`, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN, bos_token=EOS_TOKEN
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _model_config(
    family: str, tokenizer: Any, *, hidden_size: int, layers: int, heads: int, kv_heads: int, max_positions: int
) -> Any:
    """The transformers config of a tiny ``family`` model sized to ``tokenizer``."""
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    # Token ids must point into our vocabulary: the configs' defaults (e.g. GPT-2's 50256)
    # are out of range and make transformers warn or index out of bounds.
    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if family == "gpt2":
        # GPT-2 ties the output layer to the token embeddings.
        return GPT2Config(
            n_embd=hidden_size, n_layer=layers, n_head=heads, n_positions=max_positions, tie_word_embeddings=True, **ids
        )
    common = {
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,  # grouped-query attention, as both families use
        "max_position_embeddings": max_positions,
    }
    if family == "llama":
        return LlamaConfig(tie_word_embeddings=False, **common, **ids)
    # The small Qwen2/2.5 models (0.5B-3B), which a tiny stand-in imitates, tie embeddings.
    return Qwen2Config(tie_word_embeddings=True, **common, **ids)


def _readme(family: str, seed: int, marker: dict[str, Any]) -> str:
    return (
        f"# Tiny {family} model (loraledger)\n\n"
        f"A {_NOTE}.\n\n"
        f"Randomly initialised (seed {seed}, {marker['parameters']} parameters, "
        f"hidden size {marker['hidden_size']}, {marker['layers']} layers, {marker['heads']} heads, "
        f"vocabulary {marker['vocab_size']}): it generates noise, not text. Written by "
        "`loraledger.training.hf.tiny.init_tiny_model`; the same arguments give byte-identical weights.\n"
    )


def _move_into_place(staging: Path, target: Path) -> None:
    """Make ``target`` hold what ``staging`` holds (staging is consumed)."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
        return
    # force into a non-empty directory: other weight files would make it a mix of two
    # models (inspect would hash them all), so they go; anything else is left alone.
    for stale in [*target.glob("*.safetensors"), *target.glob("pytorch_model*.bin"), *target.glob("*.index.json")]:
        if stale.is_file() and not (staging / stale.name).exists():
            stale.unlink()
    for item in staging.iterdir():
        destination = target / item.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        os.replace(item, destination)
