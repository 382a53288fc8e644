"""Benchmark reports: JSON round trip and validation, terminal and Markdown tables, PNG chart."""

from __future__ import annotations

import copy
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loraledger.errors import InputError
from loraledger.training.report import (
    CHART_DPI,
    CHART_SIZE_INCHES,
    MISSING,
    BenchmarkReport,
    BenchmarkRow,
    render_markdown,
    render_terminal,
    report_from_json,
    report_to_json,
    short_hash,
    write_chart,
)

EVAL_HASH = "0x1234" + "0" * 56 + "abcd"
BASE_HASH = "0x" + "ef" * 32
ADAPTER_A = "0x" + "aa" * 32
ADAPTER_B = "0x" + "bb" * 32
CHART_PIXELS = (int(CHART_SIZE_INCHES[0] * CHART_DPI), int(CHART_SIZE_INCHES[1] * CHART_DPI))


def row(
    name: str,
    adapter_hash: str | None,
    loss: float,
    em: float | None = None,
    rl: float | None = None,
    *,
    ppl: float | None = None,
) -> BenchmarkRow:
    return BenchmarkRow(
        name=name,
        adapter_hash=adapter_hash,
        loss=loss,
        perplexity=math.exp(loss) if ppl is None else ppl,
        exact_match=em,
        rouge_l=rl,
        examples=120,
        tokens=4567,
    )


@pytest.fixture
def report() -> BenchmarkReport:
    """Base plus two adapters, with EM/ROUGE-L; values exact at 6 decimals."""
    return BenchmarkReport(
        eval_set_hash=EVAL_HASH,
        eval_source="datanet 1 snapshot 2 (validation split)",
        base_model_hash=BASE_HASH,
        rows=(
            row("base", None, 2.5, 0.1, 0.25, ppl=12.182494),
            row("legal-qa", ADAPTER_A, 1.75, 0.4, 0.625, ppl=5.754603),
            row("legal-qa-small", ADAPTER_B, 2.0, 0.45, 0.5, ppl=7.389056),
        ),
    )


@pytest.fixture
def plain_report() -> BenchmarkReport:
    """No instruction rows: every EM and ROUGE-L is None."""
    return BenchmarkReport(
        eval_set_hash=EVAL_HASH,
        eval_source="/data/eval.jsonl",
        base_model_hash=BASE_HASH,
        rows=(row("base", None, 3.0, ppl=20.085537), row("adapter-x", ADAPTER_A, 2.25, ppl=9.487736)),
    )


# ----------------------------------------------------------------- data validation


def test_rows_list_is_stored_as_tuple(report: BenchmarkReport) -> None:
    again = BenchmarkReport(EVAL_HASH, "src", BASE_HASH, list(report.rows))  # type: ignore[arg-type]
    assert again.rows == report.rows and isinstance(again.rows, tuple)
    assert again.base is report.rows[0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("loss", math.nan),
        ("loss", -0.1),
        ("loss", True),
        ("perplexity", math.nan),
        ("exact_match", 1.5),
        ("rouge_l", -0.1),
        ("examples", -1),
        ("tokens", 1.0),
    ],
)
def test_row_rejects_bad_fields(field: str, value: Any) -> None:
    fields: dict[str, Any] = dict(
        name="base", adapter_hash=None, loss=1.0, perplexity=2.7, exact_match=None, rouge_l=None, examples=1, tokens=1
    )
    fields[field] = value
    with pytest.raises(InputError) as info:
        BenchmarkRow(**fields)
    assert info.value.details["field"] == field


def test_report_requires_base_row_first(report: BenchmarkReport) -> None:
    with pytest.raises(InputError, match="base model"):
        BenchmarkReport(EVAL_HASH, "src", BASE_HASH, report.rows[1:])
    with pytest.raises(InputError, match="at least"):
        BenchmarkReport(EVAL_HASH, "src", BASE_HASH, ())
    with pytest.raises(InputError, match="eval_set_hash"):
        BenchmarkReport("1234", "src", BASE_HASH, report.rows)


# ----------------------------------------------------------------- JSON


def test_report_to_json_shape(report: BenchmarkReport) -> None:
    data = report_to_json(report)
    assert list(data) == ["evalSetHash", "evalSource", "baseModelHash", "rows"]
    assert data["evalSetHash"] == EVAL_HASH
    assert data["rows"][0] == {
        "name": "base",
        "adapterHash": None,
        "loss": 2.5,
        "perplexity": 12.182494,
        "exactMatch": 0.1,
        "rougeL": 0.25,
        "examples": 120,
        "tokens": 4567,
        "deltaLoss": 0.0,
    }
    assert [r["deltaLoss"] for r in data["rows"]] == [0.0, -0.75, -0.5]
    assert data["rows"][1]["adapterHash"] == ADAPTER_A
    json.dumps(data, allow_nan=False)  # strict JSON


def test_report_json_round_trip(report: BenchmarkReport, plain_report: BenchmarkReport) -> None:
    for original in (report, plain_report):
        text = json.dumps(report_to_json(original), allow_nan=False)
        assert report_from_json(json.loads(text)) == original


def test_json_rounds_to_six_places_and_is_stable() -> None:
    noisy = BenchmarkReport(
        EVAL_HASH, "src", BASE_HASH, (row("base", None, 1.23456789, 1 / 3, 2 / 3),)
    )
    data = report_to_json(noisy)
    assert data["rows"][0]["loss"] == 1.234568
    assert data["rows"][0]["exactMatch"] == 0.333333
    assert report_to_json(report_from_json(data)) == data


def test_json_infinite_perplexity_is_a_string() -> None:
    diverged = BenchmarkReport(
        EVAL_HASH, "src", BASE_HASH, (row("base", None, 2.0), row("broken", ADAPTER_A, 900.0, ppl=math.inf))
    )
    data = report_to_json(diverged)
    assert data["rows"][1]["perplexity"] == "inf"
    json.dumps(data, allow_nan=False)
    assert report_from_json(data).rows[1].perplexity == math.inf


def test_json_delta_loss_is_recomputed_not_trusted(report: BenchmarkReport) -> None:
    data = report_to_json(report)
    data["rows"][1]["deltaLoss"] = 99.0
    del data["rows"][2]["deltaLoss"]
    data["extra"] = "ignored"
    assert report_from_json(data) == report


def _mutate(data: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["evalSetHash"], _DELETE, "evalSetHash"),
        (["evalSetHash"], 123, "evalSetHash"),
        (["evalSetHash"], "nothex", "evalSetHash"),
        (["baseModelHash"], "", "baseModelHash"),
        (["rows"], {}, "rows"),
        (["rows"], [], "rows"),
        (["rows", 0], "base", "rows[0]"),
        (["rows", 1, "name"], _DELETE, "rows[1].name"),
        (["rows", 1, "name"], 7, "rows[1].name"),
        (["rows", 1, "loss"], "lots", "rows[1].loss"),
        (["rows", 1, "loss"], None, "rows[1].loss"),
        (["rows", 1, "loss"], -1, "rows[1].loss"),
        (["rows", 2, "perplexity"], "NaN", "rows[2].perplexity"),
        (["rows", 2, "exactMatch"], 2, "rows[2].exactMatch"),
        (["rows", 2, "rougeL"], "0.5", "rows[2].rougeL"),
        (["rows", 1, "examples"], 1.5, "rows[1].examples"),
        (["rows", 1, "tokens"], True, "rows[1].tokens"),
        (["rows", 1, "adapterHash"], 5, "rows[1].adapterHash"),
        (["rows", 0, "adapterHash"], ADAPTER_A, "rows"),  # first row must be the base model
    ],
)
def test_report_from_json_rejects_bad_input(
    report: BenchmarkReport, path: list[Any], value: Any, field: str
) -> None:
    bad = _mutate(report_to_json(report), path, value)
    with pytest.raises(InputError) as info:
        report_from_json(bad)
    assert info.value.details["field"] == field
    assert field in str(info.value)


def test_report_from_json_rejects_non_object() -> None:
    with pytest.raises(InputError):
        report_from_json([])  # type: ignore[arg-type]


def test_report_from_json_optional_fields_default_to_none(plain_report: BenchmarkReport) -> None:
    data = report_to_json(plain_report)
    for item in data["rows"]:
        del item["exactMatch"], item["rougeL"]
    del data["rows"][0]["adapterHash"]
    assert report_from_json(data) == plain_report


# ----------------------------------------------------------------- terminal


def test_short_hash() -> None:
    assert short_hash(EVAL_HASH) == "0x1234…abcd"
    assert short_hash("0xabc") == "0xabc"


def _table_lines(text: str) -> dict[str, str]:
    """Table body lines keyed by model name (the first word)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model"))
    body = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        body.append(line)
    return {line.split()[0]: line for line in body}


def test_render_terminal_content(report: BenchmarkReport) -> None:
    text = render_terminal(report)
    header = text.splitlines()[0]
    assert "0x1234…abcd" in header and "120 examples" in header
    assert "datanet 1 snapshot 2 (validation split)" in text
    for title in ("model", "loss", "ppl", "exact match", "ROUGE-L", "Δloss"):
        assert title in text
    lines = _table_lines(text)
    assert set(lines) == {"base", "legal-qa", "legal-qa-small"}
    base = lines["base"]
    for number in ("2.5000", "12.18", "0.1000", "0.2500", "+0.0000"):
        assert number in base
    assert "-0.7500" in lines["legal-qa"]
    assert "-0.5000" in lines["legal-qa-small"]


def test_render_terminal_marks_best_values(report: BenchmarkReport) -> None:
    lines = _table_lines(render_terminal(report))
    # legal-qa: lowest loss and ppl, highest ROUGE-L; legal-qa-small: highest exact match.
    assert "1.7500*" in lines["legal-qa"] and "5.75*" in lines["legal-qa"] and "0.6250*" in lines["legal-qa"]
    assert "0.4000*" not in lines["legal-qa"]
    assert "0.4500*" in lines["legal-qa-small"]
    assert "*" not in lines["base"]
    assert lines["legal-qa"].endswith("-0.7500")  # Δloss is never starred


def test_render_terminal_columns_are_aligned(report: BenchmarkReport) -> None:
    lines = render_terminal(report).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model"))
    separator = lines[start + 1]
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", separator)]
    assert len(spans) == 6
    body = [line.ljust(len(separator)) for line in lines[start + 2 : start + 2 + len(report.rows)]]
    for number, (begin, end) in enumerate(spans):
        cells = [line[begin:end] for line in body]
        if number == 0:
            assert [c.strip() for c in cells] == ["base", "legal-qa", "legal-qa-small"]
            assert all(not c.startswith(" ") for c in cells)  # names left-aligned
        else:
            # Numbers right-aligned: the decimal points line up, starred or not.
            assert len({c.index(".") for c in cells}) == 1, cells


def test_render_terminal_shows_missing_as_dash(plain_report: BenchmarkReport) -> None:
    text = render_terminal(plain_report)
    lines = _table_lines(text)
    for line in lines.values():
        assert line.count(MISSING) == 2
    assert "none" not in text.lower()


def test_render_terminal_no_marker_for_single_row_or_tie() -> None:
    single = BenchmarkReport(EVAL_HASH, "src", BASE_HASH, (row("base", None, 2.0, 0.5, 0.5),))
    assert "*" not in render_terminal(single)
    tie = BenchmarkReport(
        EVAL_HASH, "src", BASE_HASH, (row("base", None, 2.0, 0.5, 0.5), row("same", ADAPTER_A, 2.0, 0.5, 0.5))
    )
    assert "*" not in render_terminal(tie)


def test_render_terminal_marks_all_tied_best_rows() -> None:
    tied = BenchmarkReport(
        EVAL_HASH,
        "src",
        BASE_HASH,
        (row("base", None, 2.0, 0.2), row("one", ADAPTER_A, 1.0, 0.5), row("two", ADAPTER_B, 1.0, 0.5)),
    )
    lines = _table_lines(render_terminal(tied))
    assert "1.0000*" in lines["one"] and "1.0000*" in lines["two"]
    assert "0.5000*" in lines["one"] and "0.5000*" in lines["two"]


def test_render_terminal_infinite_perplexity() -> None:
    diverged = BenchmarkReport(
        EVAL_HASH, "src", BASE_HASH, (row("base", None, 2.0), row("broken", ADAPTER_A, 900.0, ppl=math.inf))
    )
    lines = _table_lines(render_terminal(diverged))
    assert " inf" in lines["broken"]
    assert "7.39*" in lines["base"]


# ----------------------------------------------------------------- markdown


def _markdown_table(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def test_render_markdown_is_a_table(report: BenchmarkReport) -> None:
    table = _markdown_table(render_markdown(report))
    assert len(table) == 2 + len(report.rows)
    assert len({line.count("|") for line in table}) == 1
    assert table[0].count("|") == 7  # six columns
    assert table[1] == "|:---|---:|---:|---:|---:|---:|"
    for model in ("base", "legal-qa", "legal-qa-small"):
        assert any(line.startswith(f"| {model} |") for line in table)


def test_render_markdown_content_and_best(report: BenchmarkReport, plain_report: BenchmarkReport) -> None:
    text = render_markdown(report)
    assert "0x1234…abcd" in text and "120 examples" in text
    table = _markdown_table(text)
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table[2:]}
    assert cells["base"] == ["2.5000", "12.18", "0.1000", "0.2500", "+0.0000"]
    assert cells["legal-qa"] == ["**1.7500**", "**5.75**", "0.4000", "**0.6250**", "-0.7500"]
    assert cells["legal-qa-small"] == ["2.0000", "7.39", "**0.4500**", "0.5000", "-0.5000"]

    plain = _markdown_table(render_markdown(plain_report))
    assert all(line.count(MISSING) == 2 for line in plain[2:])


def test_render_markdown_escapes_pipes_in_names() -> None:
    odd = BenchmarkReport(
        EVAL_HASH, "a|b", BASE_HASH, (row("base", None, 2.0), row("we|rd_name", ADAPTER_A, 1.0))
    )
    table = _markdown_table(render_markdown(odd))
    unescaped = [line.replace("\\|", "").count("|") for line in table]
    assert len(set(unescaped)) == 1
    assert "we\\|rd\\_name" in table[-1]


# ----------------------------------------------------------------- chart


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == CHART_PIXELS


def test_write_chart_with_scores(report: BenchmarkReport, tmp_path: Path) -> None:
    target = tmp_path / "charts" / "bench.png"  # parent does not exist yet
    assert write_chart(report, target) == target
    _check_png(target)
    assert [p.name for p in target.parent.iterdir()] == ["bench.png"]  # no temp files left


def test_write_chart_without_instruction_rows(plain_report: BenchmarkReport, tmp_path: Path) -> None:
    target = tmp_path / "plain.png"
    write_chart(plain_report, target)
    _check_png(target)


def test_write_chart_edge_cases(tmp_path: Path) -> None:
    long_names = BenchmarkReport(
        EVAL_HASH,
        "src",
        BASE_HASH,
        (
            row("base", None, 2.0, 0.0, 0.0),
            row("an-adapter-with-a-really-very-long-name", ADAPTER_A, 900.0, None, 1.0, ppl=math.inf),
            *(row(f"a{i}", f"0x{i:064x}", 1.0 + i / 10, 1.0, 0.9) for i in range(5)),
        ),
    )
    target = tmp_path / "edge.png"
    write_chart(long_names, target)
    _check_png(target)
    # Overwriting an existing chart replaces it.
    single = BenchmarkReport(EVAL_HASH, "src", BASE_HASH, (row("base", None, 0.0),))
    write_chart(single, target)
    _check_png(target)


def test_write_chart_does_not_touch_pyplot_backend(report: BenchmarkReport, tmp_path: Path) -> None:
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        write_chart(report, tmp_path / "c.png")
        # Drawing on a bare Figure with the Agg canvas never imports pyplot, so no
        # global backend is chosen or switched behind a caller's back.
        assert "matplotlib.pyplot" not in sys.modules
    else:  # someone else loaded pyplot first: at least its backend must not change
        before = matplotlib.get_backend()
        write_chart(report, tmp_path / "c.png")
        assert matplotlib.get_backend() == before
