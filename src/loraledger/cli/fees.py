"""Fee records: `loraledger fees import FILE.jsonl`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import Settings
from ._common import (
    _settings,
)

fees_app = typer.Typer(help="Append fee records to the ledger.", no_args_is_help=True)


def _default_operator(settings: Settings) -> str | None:
    """The deployment's operator (fees without an operator go to it): the deployment of
    ``chain_id`` when set, else the only deployment there is; None when that is ambiguous."""
    from ..chain.deploy import load_deployment

    if settings.chain_id is not None:
        return load_deployment(settings.deployment_file(settings.chain_id)).operator
    files = sorted(settings.deployments_dir.glob("*.json")) if settings.deployments_dir.is_dir() else []
    return load_deployment(files[0]).operator if len(files) == 1 else None


@fees_app.command("import")
def fees_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON lines: {payer, fee, weights, developer?, operator?, ref?}")],
) -> None:
    """Append fee records (one JSON object per line) to the ledger, all or nothing."""
    from ..node.context import open_records
    from ..rewards.fees import import_fee_file

    settings = _settings(ctx)
    _, records = open_records(settings)
    appended = import_fee_file(records, file, default_operator=_default_operator(settings))
    typer.echo(f"appended {len(appended)} fee records (seq {appended[0].seq}..{appended[-1].seq}); "
               f"log size {records.size()}")
