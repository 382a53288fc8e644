"""Training data: rows → token ids with completion-only labels, the split, batches.

No I/O and no torch here; the tokenizer is any Hugging Face tokenizer (duck-typed:
``encode``, ``apply_chat_template``, ``chat_template``, ``eos_token``).

Templates
---------
``instruction`` rows become a two-message chat (``user``: prompt, ``assistant``:
completion) and ``chat`` rows are used as they are. They are rendered with the
tokenizer's own chat template; the text is cut into segments at each assistant turn
(render ``messages[:i]`` with the generation prompt, then ``messages[:i+1]``; each must
extend the previous one) and every segment is tokenised on its own, so the labels line up
with the tokens exactly: loss is taken on the assistant segments only (every other label is
``-100``). A tokenizer without a chat template (a plain GPT-2) gets the Alpaca-style
:data:`FALLBACK_TEMPLATE`. ``text`` rows are trained on whole, with the EOS token appended.

Split
-----
A row is in the validation split iff ``int(row_hash) mod 10_000 < val_fraction * 10_000``:
fixed by the row's hash, so it never changes side when rows are added or the order moves,
and anyone can recompute which rows an adapter was trained on.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

__all__ = [
    "FALLBACK_TEMPLATE",
    "IGNORE_INDEX",
    "Example",
    "TrainingRow",
    "batches",
    "build_examples",
    "encode_row",
    "in_validation",
    "prompt_and_reference",
    "render_chat",
    "split_rows",
]

#: Label of a token that takes no loss (PyTorch's ``cross_entropy`` default ``ignore_index``).
IGNORE_INDEX = -100
#: Used when the tokenizer has no chat template.
FALLBACK_TEMPLATE = "### Instruction:\n{prompt}\n\n### Response:\n"
_SPLIT_BUCKETS = 10_000


@dataclass(frozen=True)
class TrainingRow:
    """One datanet row as frozen in a snapshot."""

    row_hash: str
    contributor: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Example:
    """A tokenised row: ``labels[i]`` is ``input_ids[i]`` or :data:`IGNORE_INDEX`."""

    row_hash: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def target_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def in_validation(row_hash: str, val_fraction: float) -> bool:
    """Whether the row with this hash is held out (see the module docstring)."""
    return int(row_hash, 16) % _SPLIT_BUCKETS < round(val_fraction * _SPLIT_BUCKETS)


def split_rows(rows: Iterable[TrainingRow], val_fraction: float) -> tuple[list[TrainingRow], list[TrainingRow]]:
    """(train, validation), each in the snapshot's order."""
    train: list[TrainingRow] = []
    validation: list[TrainingRow] = []
    for row in rows:
        (validation if in_validation(row.row_hash, val_fraction) else train).append(row)
    return train, validation


def _messages(data: dict[str, Any]) -> list[dict[str, str]]:
    if "messages" in data:
        return [{"role": m["role"], "content": m["content"]} for m in data["messages"]]
    if "prompt" in data and "completion" in data:
        return [{"role": "user", "content": data["prompt"]}, {"role": "assistant", "content": data["completion"]}]
    raise InputError(f"row has neither 'text', 'prompt'/'completion' nor 'messages' (keys: {sorted(data)})")


def render_chat(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool = True) -> str:
    """The text a model sees for ``messages``: its tokenizer's chat template, or the Alpaca-style
    fallback. Training and serving both use this, so an adapter is asked the way it was taught;
    tokenise the result with ``add_special_tokens=False`` (the template holds them)."""
    return _render(tokenizer, messages, generation_prompt=generation_prompt)


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    # No chat template: Alpaca-style prompt, answers end with EOS.
    text = ""
    for message in messages:
        if message["role"] == "assistant":
            text += message["content"] + (tokenizer.eos_token or "") + "\n\n"
        elif message["role"] == "user":
            text += FALLBACK_TEMPLATE.format(prompt=message["content"])
        else:
            text += message["content"] + "\n\n"
    return text  # the user block already ends with the response header: no separate prompt


def _segments(tokenizer: Any, messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """The rendered conversation as (text, is_answer) pieces that concatenate to the whole."""
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], generation_prompt=True) if i else ""
        upto = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not prompt.startswith(done) or not upto.startswith(prompt):
            raise InputError("the tokenizer's chat template does not render turns as prefixes of the whole "
                             "conversation; completion-only loss needs one that does")
        pieces.append((prompt[len(done):], False))
        pieces.append((upto[len(prompt):], True))
        done = upto
    return pieces


def encode_row(tokenizer: Any, row: TrainingRow, max_length: int) -> Example | None:
    """Tokenise one row; ``None`` if nothing to learn is left after cutting to ``max_length``."""
    data = row.data
    ids: list[int] = []
    labels: list[int] = []
    if "text" in data:
        ids = list(tokenizer.encode(data["text"], add_special_tokens=False))
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
        labels = list(ids)
    else:
        for text, is_answer in _segments(tokenizer, _messages(data)):
            if not text:
                continue
            piece = tokenizer.encode(text, add_special_tokens=False)
            ids.extend(piece)
            labels.extend(piece if is_answer else [IGNORE_INDEX] * len(piece))
    ids, labels = ids[:max_length], labels[:max_length]
    # A causal LM predicts token t from tokens < t: the first label never takes loss.
    if len(ids) < 2 or all(label == IGNORE_INDEX for label in labels[1:]):
        return None
    return Example(row.row_hash, tuple(ids), tuple(labels))


def build_examples(tokenizer: Any, rows: Sequence[TrainingRow], max_length: int) -> tuple[list[Example], int]:
    """(examples, number of rows dropped because no answer tokens fit in ``max_length``)."""
    examples = [encode_row(tokenizer, row, max_length) for row in rows]
    kept = [e for e in examples if e is not None]
    return kept, len(examples) - len(kept)


def batches(examples: Sequence[Example], batch_size: int, *, seed: int, epoch: int,
            shuffle: bool = True) -> Iterator[list[Example]]:
    """Batches of one epoch, shuffled by ``(seed, epoch)`` alone, so a resumed run sees the
    same order as an uninterrupted one."""
    order = list(range(len(examples)))
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    for start in range(0, len(order), batch_size):
        yield [examples[i] for i in order[start:start + batch_size]]


def prompt_and_reference(tokenizer: Any, data: dict[str, Any]) -> tuple[str, str] | None:
    """For generation benchmarks: the rendered prompt up to the last assistant turn, and
    that turn's text; ``None`` for ``text`` rows."""
    if "text" in data:
        return None
    messages = _messages(data)
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return _render(tokenizer, messages[:last], generation_prompt=True), messages[last]["content"]
