"""Preconditioners, fixed-point scoring and the weights policy (pure), and a planted check on a
real tiny model: a query that repeats a training row ranks that row first."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_peft_adapter
from hypothesis import given, settings
from hypothesis import strategies as st

from loraledger.attribution.influence import (
    QUANT_BITS,
    fit_preconditioners,
    precondition,
    quantize,
    scores,
    top_rows,
)
from loraledger.attribution.policy import UNITS, RowEvidence, contributor_weights, row_units

A, B, C = ("0x" + c * 40 for c in "abc")


def rows_hash(i: int) -> str:
    return f"0x{i:064x}"


# ---- preconditioners ----------------------------------------------------------------------------
def test_logra_preconditioner_is_the_damped_inverse_covariance_per_block():
    gen = np.random.default_rng(1)
    g = gen.normal(size=(50, 7))
    inv = fit_preconditioners(g, [3, 4], method="logra", damping=0.1)
    for block, matrix in zip((slice(0, 3), slice(3, 7)), inv):
        cov = g[:, block].T @ g[:, block] / 50
        lam = 0.1 * np.trace(cov) / cov.shape[0]
        assert np.allclose(matrix @ (cov + lam * np.eye(cov.shape[0])), np.eye(cov.shape[0]))
    f = precondition(g, [3, 4], inv)
    assert np.allclose(f[:, :3], g[:, :3] @ inv[0].T) and np.allclose(f[:, 3:], g[:, 3:] @ inv[1].T)
    assert all(np.array_equal(m, np.eye(m.shape[0])) for m in fit_preconditioners(g, [3, 4], method="identity"))


def test_datainf_matches_its_per_row_formula():
    gen = np.random.default_rng(2)
    g = gen.normal(size=(20, 5))
    (matrix,) = fit_preconditioners(g, [5], method="datainf", damping=0.1)
    cov = g.T @ g / 20
    lam = 0.1 * np.trace(cov) / 5
    q = gen.normal(size=5)
    # DataInf: q · (1/(nλ)) Σ_i (g_j − g_i (g_iᵀ g_j)/(λ + ‖g_i‖²)) for row j.
    for j in range(3):
        expected = sum(q @ (g[j] - g[i] * (g[i] @ g[j]) / (lam + g[i] @ g[i])) for i in range(20)) / (20 * lam)
        assert np.isclose(q @ matrix @ g[j], expected)


def test_preconditioner_refusals():
    with pytest.raises(ValueError, match="unknown preconditioner"):
        fit_preconditioners(np.zeros((2, 2)), [2], method="ekfac")
    with pytest.raises(ValueError, match="do not cover"):
        fit_preconditioners(np.zeros((2, 3)), [2])
    with pytest.raises(ValueError, match="damping"):
        fit_preconditioners(np.zeros((2, 2)), [2], damping=0)


# ---- fixed point ------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=40))
def test_quantize_uses_the_full_range_and_rounds_to_the_grid(values):
    x = np.array(values)
    q = quantize(x)
    assert q.values.dtype == np.int64 and np.all(np.abs(q.values) < 2**QUANT_BITS)
    if np.any(x != 0):
        assert np.max(np.abs(q.values)) >= 2 ** (QUANT_BITS - 1) - 1  # the peak uses the top bit
        assert np.all(np.abs(q.values * 2.0 ** -q.exponent - x) <= 2.0 ** (-q.exponent - 1))
    assert np.array_equal(quantize(x).values, q.values)  # deterministic


def test_quantize_never_rounds_the_peak_out_of_int16():
    q = quantize(np.array([1 - 2.0**-20, -0.25]))
    assert q.values.tolist() == [16384, -4096] and q.exponent == 14
    assert quantize(np.array([0.0, 0.0])).values.tolist() == [0, 0]


def test_integer_scores_are_exact_and_track_the_real_ones():
    gen = np.random.default_rng(3)
    rows, query = gen.normal(size=(30, 64)), gen.normal(size=64)
    fq, qq = quantize(rows), quantize(query)
    got = scores(qq, fq)
    assert got.dtype == np.int64
    assert np.array_equal(got, np.array([sum(int(a) * int(b) for a, b in zip(r, qq.values)) for r in fq.values]))
    real = rows @ query
    assert np.allclose(got * 2.0 ** -(qq.exponent + fq.exponent), real, atol=1e-3 * np.abs(real).max())
    with pytest.raises(ValueError):
        scores(quantize(np.zeros(3)), fq)
    with pytest.raises(ValueError, match="non-finite"):
        quantize(np.array([1.0, np.nan]))


def test_top_rows_keep_positive_scores_best_first_ties_by_hash():
    s = np.array([5, -3, 9, 0, 5, 7])
    keys = [rows_hash(i) for i in (4, 1, 2, 3, 0, 5)]
    assert top_rows(s, 10, keys) == [(2, 9), (5, 7), (4, 5), (0, 5)]
    assert top_rows(s, 2, keys) == [(2, 9), (5, 7)]


# ---- policy ----------------------------------------------------------------------------------------------
def test_weights_mix_both_channels_exactly():
    rows = [RowEvidence(rows_hash(1), A, influence=300, span_tokens=0),
            RowEvidence(rows_hash(2), B, influence=100, span_tokens=6),
            RowEvidence(rows_hash(3), C, influence=-50, span_tokens=2)]
    w = contributor_weights(rows)
    # A: 0.7·3/4; B: 0.7·1/4 + 0.3·6/8; C: 0.3·2/8 (its negative influence counts as zero).
    assert w == {A: 525_000, B: 400_000, C: 75_000} and sum(w.values()) == UNITS
    assert contributor_weights(rows, influence_bps=10_000) == {A: 750_000, B: 250_000}


def test_weights_duplicates_count_once_and_channels_fall_back():
    same = rows_hash(7)
    rows = [RowEvidence(same, B, influence=10), RowEvidence(same, A, influence=10), RowEvidence(rows_hash(8), C, 10)]
    assert contributor_weights(rows) == {A: 500_000, C: 500_000}  # the duplicate row once, to the smaller address
    assert contributor_weights([RowEvidence(rows_hash(1), A, span_tokens=3)]) == {A: UNITS}  # spans only
    assert contributor_weights([RowEvidence(rows_hash(1), A, influence=-4)]) == {}  # nothing: caller falls back


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.sampled_from([A, B, C]), st.integers(-1000, 1000),
                          st.integers(0, 50)), max_size=12),
       st.integers(0, 10_000))
def test_units_are_exact_integers_summing_to_the_total(raw, bps):
    rows = [RowEvidence(rows_hash(h), who, infl, spans) for h, who, infl, spans in raw]
    units = row_units(rows, influence_bps=bps)
    weights = contributor_weights(rows, influence_bps=bps)
    assert sum(weights.values()) in (0, UNITS) and sum(units.values()) == sum(weights.values())
    assert all(isinstance(v, int) and v > 0 for v in weights.values())
    assert contributor_weights(list(reversed(rows)), influence_bps=bps) == weights  # order does not matter


# ---- planted: a query that repeats a training row ranks it first ------------------------------------
def test_a_training_row_asked_again_ranks_itself_first(tmp_path):
    from transformers import AutoModelForCausalLM

    from loraledger.attribution.features import LoraGradientFeatures
    from loraledger.training.data import IGNORE_INDEX, Example
    from loraledger.training.hf.tiny import init_tiny_model

    peft = pytest.importorskip("peft")
    base = init_tiny_model(tmp_path / "tiny", "llama").path
    adapter = make_peft_adapter(base, tmp_path / "a", seed=4, rank=8, alpha=16)
    model = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(adapter)).eval()
    gen = torch.Generator().manual_seed(5)
    train = []
    for i in range(24):
        ids = torch.randint(3, 300, (int(torch.randint(8, 20, (1,), generator=gen)),), generator=gen).tolist()
        train.append(Example(rows_hash(i), tuple(ids), tuple([IGNORE_INDEX] * 4 + ids[4:])))
    features = LoraGradientFeatures(model, k=8, seed=1)
    g = features.features(train, pad_id=0)
    sizes = [b.size for b in features.blocks]
    for method in ("logra", "datainf", "identity"):
        f = quantize(precondition(g, sizes, fit_preconditioners(g, sizes, method=method)))
        firsts = 0
        for j in range(0, 24, 3):
            q = quantize(features.features([train[j]], pad_id=0)[0])
            best = top_rows(scores(q, f), 1, [e.row_hash for e in train])
            firsts += best[0][0] == j
        assert firsts == 8, (method, firsts)


def test_which_duplicate_stands_for_a_row_does_not_depend_on_order():
    a = [RowEvidence(rows_hash(1), A, 0, 0), RowEvidence(rows_hash(1), A, 0, 5)]
    assert contributor_weights(a) == contributor_weights(a[::-1]) == {A: UNITS}
    b = [RowEvidence(rows_hash(1), B, 3, 0), RowEvidence(rows_hash(1), A, 3, 0)]
    assert contributor_weights(b) == contributor_weights(b[::-1]) == {A: UNITS}
