"""A request's output text as its tokens arrive: incremental decoding and stop strings.

The generated tokens are decoded together with a few tokens of the prompt before them and the
prompt's part is cut off, so a tokenizer that drops a word's leading space at the start of a
text (SentencePiece) still gives the right first word. Text is released only when it is final:
a trailing incomplete UTF-8 character (decoded as U+FFFD) and a trailing piece that could be the
start of a stop string are held back until the next token settles them, so no text that a stop
string later claims is ever sent.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["TextTracker"]

#: Prompt tokens decoded before the output (enough for any tokenizer's word-boundary context).
_PREFIX_TOKENS = 6


class TextTracker:
    """Decoded text of one request's output, cut at the first stop string."""

    def __init__(self, tokenizer: Any, prompt_ids: Sequence[int], stop: Sequence[str],
                 lock: threading.Lock | None = None) -> None:
        self._tokenizer = tokenizer
        self._lock = lock or threading.Lock()
        self._prefix = list(prompt_ids[-_PREFIX_TOKENS:])
        self._prefix_text = self._decode(self._prefix)
        self._stop = tuple(stop)
        self._ids: list[int] = []
        #: The output so far (cut before the stop string once one is seen).
        self.text = ""
        self._sent = 0
        self.stopped_by: str | None = None

    def _decode(self, ids: list[int]) -> str:
        with self._lock:  # fast tokenizers are not safe to call from two threads at once
            return str(self._tokenizer.decode(ids, skip_special_tokens=True))

    def push(self, token_id: int) -> bool:
        """Add a generated token; True when the text now contains a stop string (then cut before it)."""
        self._ids.append(token_id)
        full = self._decode(self._prefix + self._ids)
        text = full[len(self._prefix_text):] if full.startswith(self._prefix_text) else self._decode(self._ids)
        hits = [(text.find(s), s) for s in self._stop if s in text]
        if hits:
            index, self.stopped_by = min(hits)
            self.text = text[:index]
            return True
        self.text = text
        return False

    def take(self, final: bool) -> str:
        """Text not sent yet that is settled (all of it when ``final``)."""
        end = len(self.text)
        if not final:
            while end > self._sent and self.text[end - 1] == "\ufffd":
                end -= 1
            end -= self._stop_prefix_len(self.text[self._sent:end])
        if end <= self._sent:
            return ""
        piece = self.text[self._sent:end]
        self._sent = end
        return piece

    def _stop_prefix_len(self, tail: str) -> int:
        """Length of the longest suffix of ``tail`` that starts some stop string."""
        best = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(tail)), best, -1):
                if tail.endswith(stop[:n]):
                    best = n
                    break
        return best
