"""Influence of training rows on an answer, from projected LoRA gradients (pure: numpy only).

The score of training row ``j`` for a query (an answer, with its prompt) is

    score_j = q · H⁻¹ · g_j

with ``q`` and ``g_j`` their projected gradients (:mod:`loraledger.attribution.features`) and
``H⁻¹`` a preconditioner fitted per adapted layer (block) on the training rows' features:

* ``logra`` (the default, as LogIX does): the inverse of the damped covariance
  ``C + λI``, ``C = GᵀG / n``, ``λ = damping · trace(C) / dim``;
* ``datainf``: DataInf's closed form (Kwon et al. 2024), ``(1/(nλ)) Σ_i (I − g_i g_iᵀ / (λ + ‖g_i‖²))``
  with the same ``λ``;
* ``identity``: plain gradient similarity ("grad-dot").

The preconditioned row features ``f_j = H⁻¹ g_j`` are computed once, at index time; a query
then costs one dot product per row.

**Bit-exact scoring.** Row features and query vectors are stored as integers in fixed point,
``round(x · 2^e)`` with one power-of-two exponent per array (:func:`quantize`; at most
:data:`QUANT_BITS` bits of magnitude), and a score is the exact integer dot product of the two
(int64: ``2·15 + log2(dim)`` bits fit). Whoever holds the index and a query vector recomputes
every score bit for bit; the only floating-point step is computing the query's gradient, which
``verify`` redoes and compares at a stated tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PRECONDITIONERS", "QUANT_BITS", "Quantized", "fit_preconditioners", "precondition", "quantize",
           "scores", "top_rows"]

PRECONDITIONERS = ("logra", "datainf", "identity")

#: Magnitude bits of a quantized value (a sign bit besides): int16's range.
QUANT_BITS = 15


def _blocks(dim: int, sizes: Sequence[int]) -> list[slice]:
    if sum(sizes) != dim or any(size < 1 for size in sizes):
        raise ValueError(f"block sizes {list(sizes)} do not cover {dim} feature dimensions")
    slices, start = [], 0
    for size in sizes:
        slices.append(slice(start, start + size))
        start += size
    return slices


def fit_preconditioners(features: np.ndarray, sizes: Sequence[int], *, method: str = "logra",
                        damping: float = 0.1) -> list[np.ndarray]:
    """One ``[size, size]`` float64 matrix per block of ``features`` (``[n, dim]``, the training rows)."""
    if method not in PRECONDITIONERS:
        raise ValueError(f"unknown preconditioner {method!r}: use one of {', '.join(PRECONDITIONERS)}")
    if not damping > 0:
        raise ValueError(f"damping must be positive, got {damping}")
    g = np.asarray(features, dtype=np.float64)
    n = max(g.shape[0], 1)
    out = []
    for block in _blocks(g.shape[1], sizes):
        gb = g[:, block]
        size = gb.shape[1]
        if method == "identity":
            out.append(np.eye(size))
            continue
        cov = gb.T @ gb / n
        # Damping relative to the block's scale (LogIX): the same setting suits every layer.
        lam = damping * max(float(np.trace(cov)) / size, np.finfo(np.float64).tiny)
        if method == "logra":
            out.append(np.linalg.inv(cov + lam * np.eye(size)))
        else:  # DataInf: Σ_i (I - g_i g_iᵀ / (λ + ‖g_i‖²)) / (nλ), as one matrix
            norms = np.einsum("ij,ij->i", gb, gb)
            weighted = gb / np.sqrt(lam + norms)[:, None]
            out.append((np.eye(size) - weighted.T @ weighted / n) / lam)
    return out


def precondition(features: np.ndarray, sizes: Sequence[int], matrices: Sequence[np.ndarray]) -> np.ndarray:
    """``H⁻¹ g`` for every row of ``features``, block by block (float64)."""
    g = np.asarray(features, dtype=np.float64)
    out = np.empty_like(g)
    for block, matrix in zip(_blocks(g.shape[1], sizes), matrices, strict=True):
        out[:, block] = g[:, block] @ matrix.T
    return out


@dataclass(frozen=True)
class Quantized:
    """``values · 2^-exponent`` approximates the array quantized (``values`` int64, ``|v| < 2^QUANT_BITS``)."""

    values: np.ndarray
    exponent: int


def quantize(x: np.ndarray) -> Quantized:
    """Fixed point with one power-of-two scale for the whole array: the largest magnitude uses the
    full :data:`QUANT_BITS` bits. ``rint`` of a float64 times a power of two is exact IEEE
    arithmetic, so every machine gets the same integers from the same floats."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot quantize a non-finite value")
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0.0:
        return Quantized(np.zeros(x.shape, dtype=np.int64), 0)
    # The largest e with peak · 2^e < 2^QUANT_BITS (frexp: peak = m · 2^p, 0.5 <= m < 1).
    _, p = np.frexp(peak)
    exponent = QUANT_BITS - int(p)
    values = np.rint(np.ldexp(x, exponent)).astype(np.int64)
    if int(np.max(np.abs(values))) >= 2**QUANT_BITS:  # the peak rounded up to 2^15: one bit less
        exponent -= 1
        values = np.rint(np.ldexp(x, exponent)).astype(np.int64)
    return Quantized(values, exponent)


def scores(query: Quantized, rows: Quantized) -> np.ndarray:
    """Integer scores (int64) of every row: ``rows.values @ query.values`` exactly. The real-valued
    score is ``score · 2^-(query.exponent + rows.exponent)``."""
    if rows.values.ndim != 2 or query.values.shape != (rows.values.shape[1],):
        raise ValueError(f"a query of shape {query.values.shape} for rows of shape {rows.values.shape}")
    # Exact: |q|, |f| < 2^15, so each product < 2^30 and a sum of up to 2^33 of them fits int64.
    return rows.values @ query.values


def top_rows(row_scores: np.ndarray, k: int, row_keys: Sequence[str]) -> list[tuple[int, int]]:
    """The ``k`` rows of highest positive score as ``(row index, score)``, best first; rows with a
    score of zero or less get nothing. Ties go to the smaller ``row_keys`` value (row hashes)."""
    order = sorted((i for i in range(len(row_scores)) if row_scores[i] > 0),
                   key=lambda i: (-int(row_scores[i]), row_keys[i]))
    return [(i, int(row_scores[i])) for i in order[:k]]
