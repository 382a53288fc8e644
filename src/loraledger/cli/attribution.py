"""Attribution: `loraledger attribution show HASH` and `loraledger verify inference HASH`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ChainError, ConfigError, InputError
from ._common import JsonOption, _echo_json, _open_node, _settings, format_open

attribution_app = typer.Typer(help="See which training rows shaped an answer and whom its fee paid.",
                              no_args_is_help=True)

BaseOption = Annotated[Path | None, typer.Option("--base", help="The base model directory (default: the node's "
                                                 "serve_base setting).")]


def highlight(text: str, spans: list[tuple[int, int]], *, color: bool) -> str:
    """``text`` with the character ranges ``spans`` marked: reverse video on a terminal, ``⟦…⟧`` otherwise
    (overlapping ranges are merged)."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    opening, closing = ("\x1b[7m", "\x1b[0m") if color else ("⟦", "⟧")
    out, at = [], 0
    for start, end in merged:
        out += [text[at:start], opening, text[start:end], closing]
        at = end
    out.append(text[at:])
    return "".join(out)


def _short(value: str) -> str:
    return value[:10] + "…" + value[-4:] if len(value) > 16 else value


@attribution_app.command("show")
def attribution_show(
    ctx: typer.Context,
    inference_hash: Annotated[str, typer.Argument(metavar="HASH", help="The inference record's hash.")],
    color: Annotated[bool | None, typer.Option("--color/--no-color", help="Highlight spans with terminal "
                                               "colours (default: when printing to a terminal).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print an answer with the spans it repeats from training rows highlighted, the contributors it
    credited (ranked, with their share of the fee) and its top training rows."""
    from sqlmodel import Session

    from ..attribution.tables import InferenceTextRow
    from ..attribution.view import answer_attribution, fee_shares
    from ..records.kinds import InferenceRecord
    from ..rewards.split import FeeSplit

    node = _open_node(ctx)
    inference = node.records.get_by_hash(inference_hash.strip().lower())
    if not isinstance(inference, InferenceRecord):
        raise InputError(f"record {inference_hash} is a {inference.kind} record, not an inference")
    answer = answer_attribution(node.records, inference)
    with Session(node.engine) as session:
        texts = session.get(InferenceTextRow, inference.seq)
    shares: list[dict[str, Any]] | None = None
    if answer.fee is not None:
        try:
            shares = fee_shares(answer.fee, FeeSplit.from_tuple(node.contracts.fee_split()))
        except ChainError as exc:
            typer.echo(f"warning: fee shares unavailable: {exc.message}", err=True)
    record = answer.record
    if as_json:
        _echo_json({"inference": inference.hash_hex, "model": inference.model, "adapterHash": inference.adapter_hash,
                    "output": texts.output if texts else None,
                    "status": answer.status["status"] if answer.status else None,
                    "attribution": record.model_dump(mode="json") if record else None,
                    "fee": answer.fee.model_dump(mode="json") if answer.fee else None, "shares": shares})
        return
    status = answer.status["status"] if answer.status else "not attributed (no attribution index)"
    typer.echo(f"inference {inference.hash_hex}  seq {inference.seq}")
    typer.echo(f"model {inference.model}  adapter {inference.adapter_hash or '(base model)'}  attribution {status}")
    spans = [(s.start, s.end) for s in record.spans] if record else []
    if texts is None:
        typer.echo("answer: (texts no longer held: retention)")
    else:
        use_color = sys.stdout.isatty() if color is None else color
        typer.echo("answer" + (f" ({len(spans)} spans found verbatim in training rows "
                               f"{'highlighted' if use_color else 'in ⟦ ⟧'}):" if spans else ":"))
        for line in highlight(texts.output, spans, color=use_color).splitlines() or [""]:
            typer.echo("  " + line)
    if record is not None and record.status == "fallback":
        typer.echo(f"fallback: {record.reason}; the fee is split by training rows per contributor")
    if record is not None:
        rows_of: dict[str, int] = {}
        for row in record.top:
            rows_of[row.contributor] = rows_of.get(row.contributor, 0) + 1
        amount = {share["account"]: int(share["amount"]) for share in shares or []}
        total = sum(record.weights.values()) or 1
        typer.echo(f"contributors credited ({len(record.weights)}):")
        ranked = sorted(record.weights.items(), key=lambda item: (-item[1], item[0]))
        for place, (who, weight) in enumerate(ranked, 1):
            paid = f"  earns {format_open(amount[who])}" if who in amount else ""
            typer.echo(f"  {place:>2}. {who}  {100 * weight / total:5.1f}%{paid}  ({rows_of.get(who, 0)} of the top rows)")
        if record.top:
            typer.echo(f"top training rows (score × 2^{-record.score_exponent}):")
            for row in record.top[:10]:
                typer.echo(f"  {_short(row.row)}  {_short(row.contributor)}  {row.score}")
    if answer.fee is not None:
        others = [s for s in shares or [] if "contributor" not in s["roles"]]
        typer.echo(f"fee {format_open(answer.fee.fee)}" + "".join(
            f"; {'/'.join(s['roles'])} {_short(s['account'])} {format_open(int(s['amount']))}" for s in others))
    elif inference.fee and answer.status is not None:
        typer.echo(f"fee {format_open(inference.fee)}: recorded once the attribution is done")


def verify_inference(
    ctx: typer.Context,
    inference_hash: Annotated[str, typer.Argument(metavar="HASH", help="The inference record's hash.")],
    base: BaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute an answer's attribution from public artifacts (the texts, the base model, the adapter,
    its index, the snapshot rows) and compare it with the records: scores, spans and weights bit for
    bit, the query gradient within the stated tolerance; exits 1 on any mismatch."""
    from ..attribution.verify import InferenceVerifier

    settings = _settings(ctx)
    base_dir = base or settings.serve_base
    if base_dir is None:
        raise ConfigError("give the base model directory the answer was served on (--base DIR)")
    node = _open_node(ctx)
    assert node.factory is not None
    report = InferenceVerifier(node.records, node.factory).verify(inference_hash.strip(), base_dir=Path(base_dir))
    if as_json:
        _echo_json(report.to_json())
    else:
        for check in report.checks:
            typer.echo(f"{'ok      ' if check.ok else 'MISMATCH'}  {check.name}: {check.detail}",
                       err=not check.ok)
        typer.echo(f"{'verified' if report.ok else 'FAILED'}: inference {report.inference} (attribution "
                   f"{report.status})")
    if not report.ok:
        raise typer.Exit(1)
