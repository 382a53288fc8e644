"""Benchmark reports: the base model and its adapters on one eval set, as JSON, text and PNG.

A :class:`BenchmarkReport` holds one :class:`BenchmarkRow` per model evaluated on the
same eval set; the first row is always the base model (``adapter_hash`` ``None``) so
every adapter's ``Δloss`` is measured against it. The report is data only; the
functions here turn it into:

* JSON (``report_to_json`` / ``report_from_json``): camelCase keys, floats rounded to
  6 places, an infinite value written as the string ``"inf"`` (``"-inf"``) because JSON
  has no infinity, and ``deltaLoss`` added per row (``loss - base loss``; derived, so
  ``report_from_json`` ignores it and recomputes). Parsing bad input raises
  :class:`~loraledger.errors.InputError` naming the field, e.g. ``rows[1].loss``.
* a plain-text table for terminals (``render_terminal``) and a GitHub Markdown table
  (``render_markdown``). Each marks the best value per column, lowest loss and
  perplexity, highest exact match and ROUGE-L, with ``*`` (terminal) or bold
  (Markdown); ``–`` stands for a missing score.
* a PNG chart (``write_chart``), written atomically.

Best values are compared as displayed (rounded to the column's precision) so the marker
never singles out one of two identical-looking numbers, and a column is only marked
when it has at least two values that differ: a lone row or a tie of every row has no
"best".

Only ``write_chart`` needs matplotlib, and imports it when called (the ``ml`` extra).
It draws on a bare ``Figure`` with the Agg canvas and never imports ``pyplot``, so it
works headless and does not switch the process-wide matplotlib backend under a caller
that has its own.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraledger.errors import ConfigError, InputError
from loraledger.fsutil import atomic_write_bytes

__all__ = [
    "BenchmarkReport",
    "BenchmarkRow",
    "render_markdown",
    "render_terminal",
    "report_from_json",
    "report_to_json",
    "short_hash",
    "write_chart",
]

MISSING = "–"  # en dash: shown for a score that does not exist (no instruction rows)

#: Chart geometry: fixed so every chart has the same pixel size (1200 × 450).
CHART_SIZE_INCHES = (12.0, 4.5)
CHART_DPI = 100

_JSON_DECIMALS = 6
_HEX_RE = re.compile(r"^0x[0-9a-fA-F]+$")


# ---------------------------------------------------------------------------- data


@dataclass(frozen=True)
class BenchmarkRow:
    """One model's scores on the eval set.

    ``loss`` is the mean token loss over the completion tokens (``>= 0``, ``math.inf``
    allowed) and ``perplexity`` its exponential (may be ``math.inf``); ``exact_match`` and ``rouge_l`` are means over
    the instruction rows, ``None`` when the eval set has none. Construction validates
    the fields and raises :class:`InputError` whose ``details["field"]`` names the bad one.
    """

    name: str  # "base" or the adapter's name
    adapter_hash: str | None  # None for the base model
    loss: float
    perplexity: float
    exact_match: float | None
    rouge_l: float | None
    examples: int
    tokens: int

    def __post_init__(self) -> None:
        _require(
            isinstance(self.name, str) and self.name.strip() != "",
            "name",
            "must be a non-empty string",
            self.name,
        )
        _require(
            self.adapter_hash is None or (isinstance(self.adapter_hash, str) and self.adapter_hash != ""),
            "adapter_hash",
            "must be a non-empty string or None",
            self.adapter_hash,
        )
        # A mean cross-entropy is never negative; +inf (a diverged model) is allowed.
        _require(
            _is_number(self.loss) and not math.isnan(self.loss) and self.loss >= 0,
            "loss",
            "must be a non-negative number",
            self.loss,
        )
        _require(
            _is_number(self.perplexity) and not math.isnan(self.perplexity) and self.perplexity >= 0,
            "perplexity",
            "must be a non-negative number",
            self.perplexity,
        )
        for field in ("exact_match", "rouge_l"):
            value = getattr(self, field)
            _require(
                value is None or (_is_number(value) and 0.0 <= value <= 1.0),
                field,
                "must be a number in [0, 1] or None",
                value,
            )
        for field in ("examples", "tokens"):
            value = getattr(self, field)
            _require(_is_int(value) and value >= 0, field, "must be a non-negative integer", value)


@dataclass(frozen=True)
class BenchmarkReport:
    """The base model and its adapters evaluated on one eval set.

    ``eval_set_hash`` is the ``0x``-hex hash of the eval set, ``eval_source`` says where
    it came from (``"datanet 1 snapshot 2 (validation split)"`` or a file path), and
    ``rows[0]`` is the base model (``adapter_hash`` ``None``). A list of rows is
    accepted and stored as a tuple.
    """

    eval_set_hash: str
    eval_source: str
    base_model_hash: str
    rows: tuple[BenchmarkRow, ...]

    def __post_init__(self) -> None:
        _require(
            isinstance(self.eval_set_hash, str) and _HEX_RE.match(self.eval_set_hash) is not None,
            "eval_set_hash",
            "must be a 0x-prefixed hex string",
            self.eval_set_hash,
        )
        _require(isinstance(self.eval_source, str), "eval_source", "must be a string", self.eval_source)
        _require(
            isinstance(self.base_model_hash, str) and self.base_model_hash != "",
            "base_model_hash",
            "must be a non-empty string",
            self.base_model_hash,
        )
        _require(
            isinstance(self.rows, (tuple, list))
            and all(isinstance(row, BenchmarkRow) for row in self.rows),
            "rows",
            "must be a sequence of BenchmarkRow",
            type(self.rows).__name__,
        )
        # A frozen dataclass has no setter; this is the documented way to normalise a field.
        object.__setattr__(self, "rows", tuple(self.rows))
        _require(len(self.rows) > 0, "rows", "must hold at least the base model's row", "[]")
        _require(
            self.rows[0].adapter_hash is None,
            "rows",
            "must start with the base model (adapter_hash None)",
            self.rows[0].name,
        )

    @property
    def base(self) -> BenchmarkRow:
        """The base model's row (the first)."""
        return self.rows[0]

    def delta_loss(self, row: BenchmarkRow) -> float:
        """``row.loss - base.loss``; ``0.0`` when equal (also when both are infinite)."""
        if row.loss == self.base.loss:
            return 0.0
        return row.loss - self.base.loss


def _is_number(value: object) -> bool:
    # bool is an int subclass; True is not a loss.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(ok: bool, field: str, problem: str, value: object) -> None:
    if not ok:
        raise InputError(f"invalid benchmark report: {field} {problem} (got {value!r})", field=field)


# ---------------------------------------------------------------------------- JSON

# (Python field, JSON key) in output order.
_ROW_KEYS = (
    ("name", "name"),
    ("adapter_hash", "adapterHash"),
    ("loss", "loss"),
    ("perplexity", "perplexity"),
    ("exact_match", "exactMatch"),
    ("rouge_l", "rougeL"),
    ("examples", "examples"),
    ("tokens", "tokens"),
)
_REPORT_KEYS = (
    ("eval_set_hash", "evalSetHash"),
    ("eval_source", "evalSource"),
    ("base_model_hash", "baseModelHash"),
)
_JSON_KEY = dict(_ROW_KEYS + _REPORT_KEYS)


def _encode_float(value: float | None) -> float | str | None:
    if value is None:
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    # "+ 0.0" turns a rounded -0.0 into 0.0 so a tiny negative delta does not print "-0.0".
    return round(float(value), _JSON_DECIMALS) + 0.0


def report_to_json(report: BenchmarkReport) -> dict[str, Any]:
    """The report as a JSON-ready dict (camelCase keys; see the module docstring)."""
    rows: list[dict[str, Any]] = []
    for row in report.rows:
        rows.append(
            {
                "name": row.name,
                "adapterHash": row.adapter_hash,
                "loss": _encode_float(row.loss),
                "perplexity": _encode_float(row.perplexity),
                "exactMatch": _encode_float(row.exact_match),
                "rougeL": _encode_float(row.rouge_l),
                "examples": row.examples,
                "tokens": row.tokens,
                "deltaLoss": _encode_float(report.delta_loss(row)),
            }
        )
    return {
        "evalSetHash": report.eval_set_hash,
        "evalSource": report.eval_source,
        "baseModelHash": report.base_model_hash,
        "rows": rows,
    }


def _bad(where: str, problem: str, value: object) -> InputError:
    message = f"invalid benchmark report JSON: {where} {problem} (got {_preview(value)})"
    return InputError(message, field=where)


def _missing(where: str) -> InputError:
    return InputError(f"invalid benchmark report JSON: {where} is missing", field=where)


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _decode_float(value: object, where: str, *, nullable: bool) -> float | None:
    if value is None and nullable:
        return None
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    if _is_number(value):
        return float(value)  # type: ignore[arg-type]  # _is_number checked int | float
    expected = 'a number, "inf", "-inf" or null' if nullable else 'a number, "inf" or "-inf"'
    raise _bad(where, f"must be {expected}", value)


def _decode_row(data: object, where: str) -> BenchmarkRow:
    if not isinstance(data, Mapping):
        raise _bad(where, "must be an object", data)

    def get(key: str, *, optional: bool = False) -> object:
        if key in data:
            return data[key]
        if optional:
            return None
        raise _missing(f"{where}.{key}")

    name = get("name")
    if not isinstance(name, str):
        raise _bad(f"{where}.name", "must be a string", name)
    adapter_hash = get("adapterHash", optional=True)
    if adapter_hash is not None and not isinstance(adapter_hash, str):
        raise _bad(f"{where}.adapterHash", "must be a string or null", adapter_hash)
    counts: dict[str, int] = {}
    for key in ("examples", "tokens"):
        value = get(key)
        if not _is_int(value):
            raise _bad(f"{where}.{key}", "must be an integer", value)
        counts[key] = value  # type: ignore[assignment]  # _is_int checked
    loss = _decode_float(get("loss"), f"{where}.loss", nullable=False)
    ppl = _decode_float(get("perplexity"), f"{where}.perplexity", nullable=False)
    em = _decode_float(get("exactMatch", optional=True), f"{where}.exactMatch", nullable=True)
    rl = _decode_float(get("rougeL", optional=True), f"{where}.rougeL", nullable=True)
    # deltaLoss is derived from the rows; it is recomputed, never trusted.
    try:
        return BenchmarkRow(
            name=name,
            adapter_hash=adapter_hash,
            loss=loss,  # type: ignore[arg-type]  # not nullable
            perplexity=ppl,  # type: ignore[arg-type]  # not nullable
            exact_match=em,
            rouge_l=rl,
            examples=counts["examples"],
            tokens=counts["tokens"],
        )
    except InputError as exc:
        raise _rename(exc, where) from None


def _rename(exc: InputError, where: str) -> InputError:
    """Re-word a constructor error with the JSON path of its field."""
    field = str(exc.details.get("field", ""))
    path = f"{where}.{_JSON_KEY.get(field, field)}" if where else _JSON_KEY.get(field, field)
    message = exc.message.replace("invalid benchmark report:", "invalid benchmark report JSON:", 1)
    message = message.replace(f": {field} ", f": {path} ", 1)
    return InputError(message, field=path)


def report_from_json(data: Mapping[str, Any]) -> BenchmarkReport:
    """Parse what :func:`report_to_json` wrote; ``InputError`` naming the field on bad input.

    Unknown keys are ignored (so a newer writer's extra fields do not break a reader);
    ``adapterHash``, ``exactMatch`` and ``rougeL`` may be absent (read as ``None``).
    """
    if not isinstance(data, Mapping):
        raise _bad("report", "must be an object", data)
    fields: dict[str, str] = {}
    for attr, key in _REPORT_KEYS:
        if key not in data:
            raise _missing(key)
        if not isinstance(data[key], str):
            raise _bad(key, "must be a string", data[key])
        fields[attr] = data[key]
    raw_rows = data.get("rows")
    if not isinstance(raw_rows, list):
        raise _bad("rows", "must be a list", raw_rows)
    rows = tuple(_decode_row(item, f"rows[{index}]") for index, item in enumerate(raw_rows))
    try:
        return BenchmarkReport(rows=rows, **fields)
    except InputError as exc:
        raise _rename(exc, "") from None


# ---------------------------------------------------------------------------- text


def short_hash(value: str) -> str:
    """``0x1234…abcd``: the first 4 and last 4 hex digits of a long ``0x`` hash."""
    body = value[2:] if value.startswith("0x") else value
    prefix = "0x" if value.startswith("0x") else ""
    if len(body) <= 10:
        return value
    return f"{prefix}{body[:4]}…{body[-4:]}"


@dataclass(frozen=True)
class _Column:
    title: str
    value: Callable[[BenchmarkReport, BenchmarkRow], float | None]
    decimals: int
    best: str | None  # "min", "max" or None (never marked)
    signed: bool = False


_COLUMNS = (
    _Column("loss", lambda _r, row: row.loss, 4, "min"),
    _Column("ppl", lambda _r, row: row.perplexity, 2, "min"),
    _Column("exact match", lambda _r, row: row.exact_match, 4, "max"),
    _Column("ROUGE-L", lambda _r, row: row.rouge_l, 4, "max"),
    # Δloss ranks exactly like loss; marking it too would only repeat the loss marker.
    _Column("Δloss", lambda report, row: report.delta_loss(row), 4, None, signed=True),
)


def _format(value: float | None, decimals: int, *, signed: bool) -> str:
    if value is None:
        return MISSING
    if math.isinf(value):
        return ("+inf" if signed else "inf") if value > 0 else "-inf"
    text = f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"
    return text


def _best_flags(report: BenchmarkReport, column: _Column) -> list[bool]:
    """Which rows hold the column's best value, compared as displayed."""
    values = [column.value(report, row) for row in report.rows]
    if column.best is None:
        return [False] * len(values)
    shown = [None if v is None else round(v, column.decimals) for v in values]
    present = [v for v in shown if v is not None]
    if len(present) < 2 or len(set(present)) == 1:
        return [False] * len(values)
    best = min(present) if column.best == "min" else max(present)
    return [v is not None and v == best for v in shown]


def _cells(report: BenchmarkReport) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Header titles and, per row, (text, is_best) for each column after the model name."""
    flags = [_best_flags(report, column) for column in _COLUMNS]
    body = [
        [
            (_format(column.value(report, row), column.decimals, signed=column.signed), flags[c][r])
            for c, column in enumerate(_COLUMNS)
        ]
        for r, row in enumerate(report.rows)
    ]
    return [column.title for column in _COLUMNS], body


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _summary(report: BenchmarkReport) -> tuple[str, str]:
    base = report.base
    return (
        f"eval set {short_hash(report.eval_set_hash)} · {_count(base.examples, 'example')}, "
        f"{_count(base.tokens, 'token')}",
        f"source: {report.eval_source} · base model {short_hash(report.base_model_hash)}",
    )


def render_terminal(report: BenchmarkReport) -> str:
    """An aligned plain-text table, best value per column marked ``*``.

    Two header lines (eval set hash shortened, example and token counts, source, base
    model), then the table: model names left-aligned, numbers right-aligned.
    """
    titles, body = _cells(report)
    marked = [any(row[c][1] for row in body) for c in range(len(titles))]

    def cell(text: str, best: bool, column: int) -> str:
        # Columns with a marker give every value a trailing slot ("*" or " ") so the
        # digits stay aligned whether or not the row is starred.
        return text + ("*" if best else " ") if marked[column] else text

    names = [row.name for row in report.rows]
    table: list[list[str]] = [["model", *titles]]
    for name, cells in zip(names, body):
        table.append([name, *(cell(text, best, c) for c, (text, best) in enumerate(cells))])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]

    def line(values: Sequence[str]) -> str:
        parts = [values[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(values[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    out = [*_summary(report), "", line(table[0]), "  ".join("-" * w for w in widths)]
    out += [line(values) for values in table[1:]]
    if any(marked):
        out += ["", "* best per column (lowest loss and ppl, highest exact match and ROUGE-L)"]
    return "\n".join(out) + "\n"


_MD_SPECIAL_RE = re.compile(r"([\\`*_\[\]<>|])")


def _md(text: str) -> str:
    """Escape text for a Markdown table cell (a bare ``|`` would split the cell)."""
    return _MD_SPECIAL_RE.sub(r"\\\1", text).replace("\n", " ")


def render_markdown(report: BenchmarkReport) -> str:
    """A GitHub Markdown table with the same content; best value per column in bold.

    Numeric columns are right-aligned (``--:``). The summary lines come first, as a
    paragraph, then a blank line and the table.
    """
    titles, body = _cells(report)
    first, second = _summary(report)
    out = [f"**Benchmark**: {_md(first)}  ", _md(second), ""]
    out.append("| " + " | ".join(["model", *titles]) + " |")
    out.append("|:---|" + "|".join("---:" for _ in titles) + "|")
    for row, cells in zip(report.rows, body):
        texts = [f"**{text}**" if best else text for text, best in cells]
        out.append("| " + " | ".join([_md(row.name), *texts]) + " |")
    if any(best for cells in body for _, best in cells):
        out += ["", "Bold: best per column (lowest loss and ppl, highest exact match and ROUGE-L)."]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- chart


def _label(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def write_chart(report: BenchmarkReport, path: Path) -> Path:
    """Draw the report as a PNG at ``path`` (atomically) and return ``path``.

    Left panel: loss per model (the base model's bar grey). Right panel: exact match and
    ROUGE-L as grouped bars per model, or a note when the eval set has no instruction
    rows. The image is always ``CHART_SIZE_INCHES`` at ``CHART_DPI`` (1200 × 450 px).
    Raises :class:`ConfigError` when matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "writing a benchmark chart needs matplotlib: install the ml extra "
            "(pip install 'loraledger[ml]')"
        ) from exc

    rows = report.rows
    names = [_label(row.name) for row in rows]
    positions = list(range(len(rows)))
    rotate = len(rows) > 4 or any(len(name) > 10 for name in names)

    figure = Figure(figsize=CHART_SIZE_INCHES, dpi=CHART_DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself as figure.canvas: render with Agg, no pyplot
    examples = _count(report.base.examples, "example")
    figure.suptitle(f"Benchmark on eval set {short_hash(report.eval_set_hash)} ({examples})")
    loss_axes, score_axes = figure.subplots(1, 2)

    # Panel 1: loss. An infinite loss cannot be drawn: a zero-height bar carries its
    # "inf" label (a NaN height would hide the label too).
    losses = [row.loss if math.isfinite(row.loss) else 0.0 for row in rows]
    colours = ["#9e9e9e"] + ["#1f77b4"] * (len(rows) - 1)
    bars = loss_axes.bar(positions, losses, color=colours)
    loss_labels = [_format(row.loss, 3, signed=False) for row in rows]
    loss_axes.bar_label(bars, labels=loss_labels, padding=2, fontsize=8)
    loss_axes.set_title("mean token loss (lower is better)")
    loss_axes.set_ylabel("loss")
    top = max(losses)
    loss_axes.set_ylim(0, top * 1.15 if top > 0 else 1.0)  # headroom for the value labels
    _model_ticks(loss_axes, positions, names, rotate)

    # Panel 2: exact match and ROUGE-L, or why there are none.
    em = [row.exact_match for row in rows]
    rl = [row.rouge_l for row in rows]
    if all(v is None for v in em + rl):
        score_axes.set_axis_off()
        score_axes.text(
            0.5,
            0.5,
            "no instruction rows in the eval set:\nexact match and ROUGE-L not computed",
            ha="center",
            va="center",
            fontsize=11,
            color="#555555",
            transform=score_axes.transAxes,
        )
    else:
        width = 0.38
        series = ((-width / 2, em, "exact match", "#2ca02c"), (width / 2, rl, "ROUGE-L", "#ff7f0e"))
        for offset, values, label, colour in series:
            # A missing score gets a zero-height bar labelled "–" (not NaN, which would
            # hide the label too).
            heights = [0.0 if v is None else v for v in values]
            xs = [p + offset for p in positions]
            group = score_axes.bar(xs, heights, width, label=label, color=colour)
            labels = [_format(v, 2, signed=False) for v in values]
            score_axes.bar_label(group, labels=labels, padding=2, fontsize=8)
        score_axes.set_title("answer quality (higher is better)")
        score_axes.set_ylabel("score")
        # Room above 1.0 for the value labels and, above them, the legend, so the
        # legend never covers a bar that scores 1.0.
        score_axes.set_ylim(0, 1.3)
        score_axes.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
        score_axes.legend(loc="upper left", ncols=2, fontsize=8)
        _model_ticks(score_axes, positions, names, rotate)

    buffer = io.BytesIO()
    # No "Software" metadata: the bytes then do not change with the matplotlib version.
    figure.savefig(buffer, format="png", dpi=CHART_DPI, metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _model_ticks(axes: Any, positions: list[int], names: list[str], rotate: bool) -> None:
    axes.set_xticks(positions)
    if rotate:
        axes.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    else:
        axes.set_xticklabels(names, fontsize=9)
