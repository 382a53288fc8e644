"""What the dashboard's templates show, computed without I/O: amounts, short hashes, times, an
answer cut into highlighted spans, pages of a list, and the geometry of the benchmark chart.

The chart is data (:class:`Chart`: panels of bars with their coordinates); the template draws it as
inline SVG, so every label passes through Jinja's autoescaping like any other text.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...errors import InputError, NotFoundError

__all__ = [
    "Bar",
    "Chart",
    "Pager",
    "Panel",
    "Segment",
    "benchmark_chart",
    "format_open",
    "format_time",
    "format_value",
    "pager",
    "parse_page",
    "segments",
    "short",
]

WEI_PER_OPEN = 10**18
_CANONICAL = re.compile(r"[1-9][0-9]{0,8}")


def format_open(wei: int | str | None) -> str:
    """``1866666666666666667`` → ``1.866666666666666667 OPEN``: exact (integer arithmetic), trailing
    zeros dropped; None → ``–``."""
    if wei is None:
        return "–"
    value = int(wei)
    sign = "-" if value < 0 else ""
    whole, fraction = divmod(abs(value), WEI_PER_OPEN)
    text = f"{whole:,}"
    if fraction:
        text += "." + f"{fraction:018d}".rstrip("0")
    return f"{sign}{text} OPEN"


def short(value: str | None, head: int = 10, tail: int = 6) -> str:
    """``0x1234567890…abcdef`` for a long hash or address; short values as they are."""
    if not value:
        return "–"
    return value if len(value) <= head + tail + 1 else f"{value[:head]}…{value[-tail:]}"


def format_value(value: object) -> str:
    """A provenance value as a person reads it: lists comma-separated, mappings as ``k=v``, None ``–``."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(item) for item in value) or "–"
    if isinstance(value, dict):
        return ", ".join(f"{key}={format_value(item)}" for key, item in value.items()) or "–"
    return str(value)


def format_time(timestamp: int | None) -> str:
    """Unix seconds → ``2025-01-31 12:00:00 UTC``."""
    if timestamp is None:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


# ---------------------------------------------------------------------------- spans


@dataclass(frozen=True)
class Segment:
    """A run of an answer's text: inside an exact span (``rows``: the training rows it repeats) or not."""

    text: str
    rows: tuple[str, ...] = ()

    @property
    def hit(self) -> bool:
        return bool(self.rows)


def segments(text: str, spans: Sequence[tuple[int, int, Sequence[str]]]) -> list[Segment]:
    """``text`` cut at the character offsets of ``spans`` (``(start, end, rows)``, end exclusive):
    overlapping or touching spans merge (their rows joined, in order of first appearance); offsets
    are clipped to the text, and an empty or inverted span is ignored."""
    merged: list[tuple[int, int, list[str]]] = []
    for start, end, rows in sorted((max(0, s), min(len(text), e), list(r)) for s, e, r in spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            last_start, last_end, last_rows = merged[-1]
            merged[-1] = (last_start, max(last_end, end), last_rows + [row for row in rows if row not in last_rows])
        else:
            merged.append((start, end, rows))
    out: list[Segment] = []
    at = 0
    for start, end, rows in merged:
        if start > at:
            out.append(Segment(text[at:start]))
        out.append(Segment(text[start:end], tuple(rows)))
        at = end
    if at < len(text) or not out:
        out.append(Segment(text[at:]))
    return out


# ---------------------------------------------------------------------------- pages


@dataclass(frozen=True)
class Pager:
    """Page ``page`` (from 1) of ``total`` items, ``per_page`` a page."""

    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def previous(self) -> int | None:
        return self.page - 1 if self.page > 1 else None

    @property
    def next(self) -> int | None:
        return self.page + 1 if self.page < self.pages else None


def parse_page(value: str | None) -> int:
    """A ``?page=`` value: a canonical positive integer (default 1); ``InputError`` otherwise."""
    if value is None:
        return 1
    if not _CANONICAL.fullmatch(value):
        raise InputError(f"page must be a positive whole number (1, 2, ...), got {value[:40]!r}", field="page")
    return int(value)


def pager(page: int, per_page: int, total: int) -> Pager:
    """The pager of ``page``; ``NotFoundError`` for a page past the last (naming the last)."""
    found = Pager(page, per_page, total)
    if page > found.pages:
        raise NotFoundError(f"page {page} is past the last page ({found.pages})")
    return found


# ---------------------------------------------------------------------------- chart


@dataclass(frozen=True)
class Bar:
    """One bar: which model (``series``: ``base`` or ``adapter``), its value as shown, and its box."""

    series: str
    label: str
    text: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Panel:
    """One metric: its title, which way is better, and a bar per model."""

    title: str
    note: str
    x: float
    bars: tuple[Bar, ...]
    missing: bool = False


@dataclass(frozen=True)
class Chart:
    """An SVG chart of ``width`` × ``height`` user units: panels side by side, bars on ``baseline``."""

    width: float
    height: float
    baseline: float
    panel_width: float
    top: float
    panels: tuple[Panel, ...] = field(default_factory=tuple)


#: (title, the record field, higher is better, shown as a percentage)
BENCHMARK_METRICS: tuple[tuple[str, str, bool, bool], ...] = (
    ("ROUGE-L", "rouge_l", True, True),
    ("Exact match", "exact_match", True, True),
    ("Perplexity", "perplexity", False, False),
    ("Loss", "loss", False, False),
)

#: Panel width, bar width, gap between bars, top of the plot (below the titles and a value label), plot height.
_PANEL_W, _BAR_W, _GAP, _TOP, _PLOT_H, _HEIGHT = 170.0, 46.0, 14.0, 56.0, 150.0, 240.0


def _shown(value: float, percent: bool) -> str:
    if percent:
        return f"{100 * value:.1f}%"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def benchmark_chart(base: dict[str, float | None], adapter: dict[str, float | None], *,
                    adapter_label: str = "adapter") -> Chart:
    """The base model and the adapter side by side on each metric of :data:`BENCHMARK_METRICS`
    (``base`` / ``adapter``: field → value, None when the eval set has no such score). Each panel has
    its own scale: ratios from 0 to 1 (or to the larger value when above), the others from 0 to the
    larger of the two values."""
    panels = []
    baseline = _TOP + _PLOT_H
    for index, (title, key, higher, percent) in enumerate(BENCHMARK_METRICS):
        values = [("base", "base", base.get(key)), ("adapter", adapter_label, adapter.get(key))]
        known = [v for _, _, v in values if v is not None and math.isfinite(v)]
        top = max([1.0] if percent else [], default=0.0)
        top = max([top, *known]) if known else top
        x0 = index * _PANEL_W
        bars = []
        for position, (series, label, value) in enumerate(values):
            x = x0 + (_PANEL_W - 2 * _BAR_W - _GAP) / 2 + position * (_BAR_W + _GAP)
            if value is None or not math.isfinite(value):
                bars.append(Bar(series, label, "–", x, baseline, _BAR_W, 0.0))
                continue
            height = 0.0 if top <= 0 else max(0.0, value) / top * _PLOT_H
            bars.append(Bar(series, label, _shown(value, percent), x, baseline - height, _BAR_W, height))
        panels.append(Panel(title, "higher is better" if higher else "lower is better", x0, tuple(bars),
                            missing=not known))
    return Chart(len(BENCHMARK_METRICS) * _PANEL_W, _HEIGHT, baseline, _PANEL_W, _TOP, tuple(panels))
