"""From attribution evidence to contributor weights: the documented, versioned policy (pure).

Policy ``loraledger-attribution-v1``, for one inference:

1. **Evidence per training row**: its influence score (an integer, :mod:`loraledger.attribution.influence`;
   the top rows only) and the answer tokens covered by exact spans found in it
   (:mod:`loraledger.attribution.spans`; a token covered by spans of several rows counts for each).
2. **Duplicates count once**: rows with the same row hash are one row (the evidence with the larger
   influence, then more span tokens, then the smaller contributor address, is kept).
3. **Channels**: influence below zero counts as zero; each channel is normalised to sum to one over
   the rows (a channel with nothing in it gives its share to the other; with nothing in either there
   are no weights and the caller falls back to training-row counts).
4. **Mix**: a row's value is ``influence_bps/10,000`` of its influence share plus the rest of its span
   share, computed exactly in rationals.
5. **Integers**: :data:`UNITS` weight units go to the rows by largest remainder (Hamilton), ties to the
   smaller row hash; a contributor's weight is the sum of its rows' units. The weights are exact
   integers that sum to :data:`UNITS`, so the fee split derived from them is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["DEFAULT_INFLUENCE_BPS", "POLICY_VERSION", "UNITS", "RowEvidence", "contributor_weights", "row_units"]

POLICY_VERSION = "loraledger-attribution-v1"
#: Weight units shared out per inference.
UNITS = 1_000_000
#: The influence channel's share of the mix, in basis points (the span channel has the rest).
DEFAULT_INFLUENCE_BPS = 7_000


@dataclass(frozen=True)
class RowEvidence:
    """What one training row contributed to an answer."""

    row_hash: str
    contributor: str
    influence: int = 0
    span_tokens: int = 0


def _deduplicated(rows: Sequence[RowEvidence]) -> list[RowEvidence]:
    kept: dict[str, RowEvidence] = {}
    for row in rows:
        if isinstance(row.influence, bool) or not isinstance(row.influence, int) \
                or isinstance(row.span_tokens, bool) or not isinstance(row.span_tokens, int) or row.span_tokens < 0:
            raise ValueError(f"row {row.row_hash}: influence must be an integer and span_tokens a non-negative one")
        best = kept.get(row.row_hash)
        if best is None or _rank(row) < _rank(best):
            kept[row.row_hash] = row
    return [kept[key] for key in sorted(kept)]


def _rank(row: RowEvidence) -> tuple[int, int, str]:
    """Which of a row's duplicates stands for it: the larger influence, then more span tokens, then
    the smaller contributor address (a total order: the input's order never matters)."""
    return (-row.influence, -row.span_tokens, row.contributor)


def row_units(rows: Sequence[RowEvidence], *, units: int = UNITS,
              influence_bps: int = DEFAULT_INFLUENCE_BPS) -> dict[str, int]:
    """Integer units per row hash (steps 2-5 of the module docstring); empty when no row has evidence."""
    if not 0 <= influence_bps <= 10_000 or units < 1:
        raise ValueError(f"influence_bps must be 0..10000 and units positive, got {influence_bps} and {units}")
    rows = _deduplicated(rows)
    influence = {r.row_hash: max(r.influence, 0) for r in rows}
    spans = {r.row_hash: r.span_tokens for r in rows}
    total_influence, total_spans = sum(influence.values()), sum(spans.values())
    share = Fraction(influence_bps, 10_000)
    if total_influence == 0 and total_spans == 0:
        return {}
    if total_influence == 0:
        share = Fraction(0)
    elif total_spans == 0:
        share = Fraction(1)
    value = {
        key: (share * Fraction(influence[key], total_influence) if total_influence else Fraction(0))
        + ((1 - share) * Fraction(spans[key], total_spans) if total_spans else Fraction(0))
        for key in influence
    }
    exact = {key: v * units for key, v in value.items()}
    out = {key: int(e) for key, e in exact.items()}  # floor: the values are non-negative
    left = units - sum(out.values())
    for key in sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))[:left]:
        out[key] += 1
    return {key: n for key, n in out.items() if n}


def contributor_weights(rows: Sequence[RowEvidence], *, units: int = UNITS,
                        influence_bps: int = DEFAULT_INFLUENCE_BPS) -> dict[str, int]:
    """Integer weight per contributor address (sorted), summing to ``units``; empty when no row has
    evidence (the caller then weights by training-row counts and says so)."""
    by_row = row_units(rows, units=units, influence_bps=influence_bps)
    owner = {r.row_hash: r.contributor for r in _deduplicated(rows)}
    weights: dict[str, int] = {}
    for key, n in by_row.items():
        weights[owner[key]] = weights.get(owner[key], 0) + n
    return dict(sorted(weights.items()))
