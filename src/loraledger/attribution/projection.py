"""Seeded random projections that anyone can regenerate bit for bit (pure: numpy only).

A projection is a ``[k, n]`` matrix of ±1/√k (Rademacher, as TRAK's and LogIX's projectors
use): it keeps inner products in expectation (Johnson-Lindenstrauss) and costs one bit of
randomness per entry. The bits come from a counter-based generator, SplitMix64 over
``(seed, name, row, column)``, computed in numpy's wrapping uint64 arithmetic, so the matrix
depends on nothing but its seed, its name (the module it projects) and its shape: no library's
random stream, version or platform.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["rademacher", "stream_key"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def stream_key(seed: int, name: str) -> int:
    """The 64-bit key of the projection called ``name`` under ``seed`` (sha256 of both, so any two
    names give unrelated streams)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2^63), got {seed!r}")
    digest = hashlib.sha256(f"loraledger-projection-v1\0{seed}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _splitmix64(counter: np.ndarray) -> np.ndarray:
    """SplitMix64's output function over a uint64 array (wrapping arithmetic, as in C)."""
    z = counter + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def rademacher(seed: int, name: str, rows: int, cols: int, *, dtype: type = np.float32) -> np.ndarray:
    """The ``[rows, cols]`` projection ``name`` under ``seed``: entries ±1/√rows."""
    if rows < 1 or cols < 1:
        raise ValueError(f"a projection needs positive dimensions, got {rows} x {cols}")
    key = np.uint64(stream_key(seed, name))
    index = np.arange(rows * cols, dtype=np.uint64)
    with np.errstate(over="ignore"):  # wrapping is the algorithm
        bits = _splitmix64(index ^ key) >> np.uint64(63)
    signs = 1.0 - 2.0 * bits.astype(np.float64)
    return (signs / np.sqrt(rows)).astype(dtype).reshape(rows, cols)
