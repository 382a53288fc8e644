"""Epochs: `loraledger epoch close|status|show`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ._common import (
    JsonOption,
    KeyEnvOption,
    KeystoreOption,
    _echo_epoch,
    _echo_json,
    _operator,
    _settings,
    _store,
    format_open,
)

epoch_app = typer.Typer(help="Seal, post and inspect epochs.", no_args_is_help=True)


@epoch_app.command("close")
def epoch_close(ctx: typer.Context, key_env: KeyEnvOption = None, keystore: KeystoreOption = None) -> None:
    """Finish any pending epoch, then seal the open records into a new epoch, post and confirm it."""
    from ..node.context import open_node

    settings = _settings(ctx)
    node = open_node(settings, operator=_operator(settings, key_env, keystore))
    row = node.manager.close()
    if row is None:
        typer.echo("no new records since the last epoch; nothing to seal")
        latest = node.manager.latest()
        if latest is not None:
            _echo_epoch(latest)
        return
    _echo_epoch(row, node.store.path(row.number))


@epoch_app.command("status")
def epoch_status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every epoch's state (sealed, submitted, confirmed) and the records waiting for the next one."""
    from ..epochs.machine import describe
    from ..node.context import open_node

    node = open_node(_settings(ctx))
    rows = node.manager.epochs()
    pending = node.manager.pending_records()
    if as_json:
        _echo_json({"epochs": [describe(r) for r in rows], "pendingRecords": pending,
                    "chainEpoch": node.contracts.current_epoch(), "logSize": node.records.size()})
        return
    for row in rows:
        typer.echo(f"{row.number:>5}  {row.status:<10} {row.record_count:>8} records  "
                   f"{format_open(int(row.total)):>24}  block {row.block_number}")
    typer.echo(f"chain epoch {node.contracts.current_epoch()}; {pending} records wait for the next epoch")


@epoch_app.command("show")
def epoch_show(ctx: typer.Context, number: Annotated[int, typer.Argument(help="Epoch number.")]) -> None:
    """Print epoch N's file (JSON): records, log root, reward tree, totals."""
    settings = _settings(ctx)
    typer.echo(json.dumps(_store(settings).read(number), indent=2))
