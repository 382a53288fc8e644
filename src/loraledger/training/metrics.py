"""Benchmark metrics: exact match, ROUGE-L, perplexity (pure core: no I/O, no torch).

These score a model's generated answer against the reference answer of an eval row,
and turn a mean token loss into a perplexity. They are plain functions over strings and
floats so the benchmark runner, the report and the tests all agree on one definition.

Exact match
-----------
``exact_match`` compares answers after SQuAD-style normalisation (``normalize_answer``):
lowercase, strip ASCII punctuation, drop the articles *a*, *an*, *the*, collapse
whitespace. Two answers that normalise to the empty string match (as in the SQuAD
evaluation script): ``exact_match("The.", "")`` is ``1.0``.

ROUGE-L
-------
``rouge_l`` is the ROUGE-L F-measure (F1, beta = 1) on the longest common subsequence
of tokens, tokenised as Google's ``rouge-score`` package does by default: lowercase,
replace every run of characters outside ``[a-z0-9]`` with a space, split on whitespace,
no stemming. So ``"Don't"`` is the two tokens ``don`` and ``t``, and non-ASCII letters
separate tokens. When either side has no tokens the score is ``0.0`` (also when both
are empty, matching ``rouge-score``: an empty answer earns nothing). F1 is symmetric,
so the argument order does not change the score.

Perplexity
----------
``perplexity(mean_loss)`` is ``exp(mean_loss)`` for a mean natural-log cross-entropy;
it saturates to ``math.inf`` rather than raising ``OverflowError`` (a diverged model has
infinite perplexity, not a crash), and a NaN loss is an
:class:`~loraledger.errors.InputError`: it means the evaluation itself went wrong.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Sequence

from loraledger.errors import InputError

__all__ = [
    "exact_match",
    "lcs_length",
    "mean",
    "normalize_answer",
    "perplexity",
    "rouge_l",
    "rouge_tokenize",
]

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
# The rouge-score default tokenizer: these two patterns are its NON_ALPHANUM and
# VALID_TOKEN patterns. The second filter matters only for odd inputs, but keeping it
# means our tokens are exactly theirs.
_NON_ALPHANUM_RE = re.compile(r"[^a-z0-9]+")
_VALID_TOKEN_RE = re.compile(r"^[a-z0-9]+$")


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lowercase, drop punctuation and articles, collapse spaces.

    The steps run in the order of the SQuAD v1.1 evaluation script (lowercase, remove
    punctuation, remove articles, fix whitespace), so ``"The  Cat's hat!"`` becomes
    ``"cats hat"``.
    """
    lowered = text.lower()
    # Punctuation is removed, not replaced by a space, exactly like SQuAD: "U.S." -> "us".
    no_punct = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    no_articles = _ARTICLES_RE.sub(" ", no_punct)
    return " ".join(no_articles.split())


def exact_match(prediction: str, reference: str) -> float:
    """``1.0`` when both answers are equal after :func:`normalize_answer`, else ``0.0``."""
    return 1.0 if normalize_answer(prediction) == normalize_answer(reference) else 0.0


def rouge_tokenize(text: str) -> list[str]:
    """Tokens as ``rouge-score``'s default tokenizer makes them (no stemming)."""
    spaced = _NON_ALPHANUM_RE.sub(" ", text.lower())
    return [token for token in spaced.split() if _VALID_TOKEN_RE.match(token)]


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of ``a`` and ``b``.

    The classic O(len(a)·len(b)) dynamic programme, keeping only one row of the table,
    and iterating so that the row spans the shorter sequence: O(min(n, m)) memory, so a
    long generated answer against a short reference costs little.
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    previous = [0] * (len(b) + 1)
    for item in a:
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b, start=1):
            if item == other:
                current[j] = previous[j - 1] + 1
            else:
                current[j] = max(previous[j], current[j - 1])
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of ``prediction`` against ``reference`` (see the module docstring).

    ``precision = LCS / len(prediction tokens)``, ``recall = LCS / len(reference
    tokens)``, F1 their harmonic mean; ``0.0`` when either side has no tokens.
    """
    predicted = rouge_tokenize(prediction)
    referenced = rouge_tokenize(reference)
    if not predicted or not referenced:
        return 0.0
    common = lcs_length(predicted, referenced)
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(referenced)
    return 2 * precision * recall / (precision + recall)


def perplexity(mean_loss: float) -> float:
    """``exp(mean_loss)``; ``math.inf`` when that overflows; ``InputError`` for NaN."""
    if math.isnan(mean_loss):
        raise InputError(
            "cannot compute perplexity of a NaN loss: the evaluation produced NaN "
            "(check for empty batches or a diverged model)",
            loss="nan",
        )
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf


def mean(values: Iterable[float]) -> float | None:
    """Arithmetic mean of ``values``, or ``None`` when there are none.

    ``None`` rather than ``0.0`` or NaN so that "no instruction rows, no exact-match
    score" stays distinguishable from "every answer was wrong". Uses ``math.fsum`` so
    the mean of many per-example scores does not drift with summation order.
    """
    items = list(values)
    if not items:
        return None
    return math.fsum(items) / len(items)
