"""Benchmark metrics: SQuAD normalisation, exact match, ROUGE-L, perplexity, mean."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loraledger.errors import InputError
from loraledger.training.metrics import (
    exact_match,
    lcs_length,
    mean,
    normalize_answer,
    perplexity,
    rouge_l,
    rouge_tokenize,
)

# ----------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Cat's hat!", "cats hat"),
        ("  An apple, a day.  ", "apple day"),
        ("U.S.A.", "usa"),
        ("theatre anthem", "theatre anthem"),  # articles only as whole words
        ("THE", ""),
        ("", ""),
        ("tab\tand\nnewline", "tab and newline"),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match_ignores_case_punctuation_articles_and_spacing() -> None:
    assert exact_match("The Eiffel Tower.", "eiffel   tower") == 1.0
    assert exact_match("Paris!", "paris") == 1.0
    assert exact_match("Paris", "London") == 0.0
    assert exact_match("Paris France", "Paris") == 0.0


def test_exact_match_of_two_empty_answers_is_one() -> None:
    # As in the SQuAD script: both normalise to "" and so are equal.
    assert exact_match("", "") == 1.0
    assert exact_match("The.", "") == 1.0
    assert exact_match("", "x") == 0.0


# ----------------------------------------------------------------- ROUGE-L


def test_rouge_tokenize_matches_rouge_score_default() -> None:
    assert rouge_tokenize("Don't STOP-me now!!") == ["don", "t", "stop", "me", "now"]
    assert rouge_tokenize("café 3.14") == ["caf", "3", "14"]  # non-ASCII letters split tokens
    assert rouge_tokenize("  ...  ") == []


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        # LCS "the cat on the mat" = 5 of 6 tokens each side: P = R = 5/6.
        ("the cat sat on the mat", "the cat is on the mat", 5 / 6),
        # Lin (2004): LCS police/the/gunman = 3 of 4: P = R = 3/4.
        ("police kill the gunman", "police killed the gunman", 0.75),
        # Lin (2004): "the gunman" only = 2 of 4.
        ("the gunman police killed", "police killed the gunman", 0.5),
        # Unequal lengths: P = 2/2, R = 2/6, F = 2PR/(P+R) = 0.5.
        ("the cat", "the cat sat on the mat", 0.5),
        # P = 1/1, R = 1/3: F = 0.5.
        ("testing", "testing one two", 0.5),
        # Subsequence, not substring: LCS w,y (or x,z) = 2 of 4.
        ("w x y z", "x z w y", 0.5),
    ],
)
def test_rouge_l_hand_computed(prediction: str, reference: str, expected: float) -> None:
    assert rouge_l(prediction, reference) == pytest.approx(expected)


def test_rouge_l_cat_mat_value() -> None:
    assert round(rouge_l("the cat sat on the mat", "the cat is on the mat"), 4) == 0.8333


def test_rouge_l_identical_disjoint_and_empty() -> None:
    assert rouge_l("A quick brown fox", "a quick brown fox") == 1.0
    assert rouge_l("alpha beta", "gamma delta") == 0.0
    assert rouge_l("", "something") == 0.0
    assert rouge_l("something", "") == 0.0
    # Both empty: 0.0 by definition (rouge-score does the same), unlike exact match.
    assert rouge_l("", "") == 0.0
    assert rouge_l("!!!", "???") == 0.0


def test_rouge_l_ignores_case_and_punctuation() -> None:
    assert rouge_l("The CAT, sat!", "the cat sat") == 1.0
    assert rouge_l("well-known", "well known") == 1.0


def test_rouge_l_keeps_articles_and_order() -> None:
    # Unlike exact match, ROUGE-L does not drop articles.
    assert rouge_l("the cat", "cat") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert rouge_l("b a", "a b") == pytest.approx(0.5)


def test_lcs_length_basic() -> None:
    assert lcs_length([], []) == 0
    assert lcs_length(["a"], []) == 0
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # CLRS example
    assert lcs_length(list("BDCABA"), list("ABCBDAB")) == 4


def _brute_lcs(a: list[str], b: list[str]) -> int:
    """Longest subsequence of ``a`` that is also a subsequence of ``b`` (exponential)."""

    def is_subsequence(candidate: tuple[str, ...], sequence: list[str]) -> bool:
        it = iter(sequence)
        return all(item in it for item in candidate)

    for size in range(min(len(a), len(b)), 0, -1):
        if any(is_subsequence(c, b) for c in itertools.combinations(a, size)):
            return size
    return 0


small_tokens = st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=7)
texts = st.text(alphabet=st.sampled_from(list("abcAB xyz.,!-0é")), max_size=40)


@given(small_tokens, small_tokens)
def test_lcs_length_matches_brute_force(a: list[str], b: list[str]) -> None:
    assert lcs_length(a, b) == _brute_lcs(a, b)


@given(texts, texts)
def test_rouge_l_is_bounded_and_symmetric(prediction: str, reference: str) -> None:
    score = rouge_l(prediction, reference)
    assert 0.0 <= score <= 1.0
    assert score == rouge_l(reference, prediction)


@given(texts)
def test_rouge_l_of_itself_is_one(text: str) -> None:
    expected = 1.0 if rouge_tokenize(text) else 0.0
    assert rouge_l(text, text) == expected


@given(st.text(max_size=40), st.text(max_size=40))
def test_exact_match_properties(a: str, b: str) -> None:
    assert exact_match(a, a) == 1.0
    assert exact_match(a, b) == exact_match(b, a)
    assert exact_match(a, b) in (0.0, 1.0)
    assert 0.0 <= rouge_l(a, b) <= 1.0


@given(st.text(max_size=40))
def test_normalize_answer_is_idempotent(text: str) -> None:
    once = normalize_answer(text)
    assert normalize_answer(once) == once


# ----------------------------------------------------------------- perplexity, mean


def test_perplexity() -> None:
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(2)) == pytest.approx(2.0)
    assert perplexity(2.5) == pytest.approx(math.exp(2.5))


def test_perplexity_overflow_is_inf() -> None:
    assert perplexity(1000.0) == math.inf
    assert perplexity(math.inf) == math.inf


def test_perplexity_of_nan_is_input_error() -> None:
    with pytest.raises(InputError, match="NaN"):
        perplexity(math.nan)


def test_mean() -> None:
    assert mean([]) is None
    assert mean(iter([])) is None
    assert mean([1.0, 0.0, 0.5]) == 0.5
    assert mean(x for x in [0.25, 0.75]) == 0.5
    assert mean([0.1] * 10) == 0.1  # fsum: no drift
