"""Payers' API keys: `loraledger keys create|list|revoke` (on the node's own database: admin)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import JsonOption, _echo_json, _open_node

keys_app = typer.Typer(help="Payers' API keys for the inference API: create, list, revoke.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    payer: Annotated[str, typer.Option("--payer", help="The address that pays for the key's requests.")],
    label: Annotated[str | None, typer.Option("--label", help="A note to tell keys apart.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key for a payer. The key is printed once and only its hash is stored."""
    from ..serving.payers import key_to_dict

    row, key = _open_node(ctx).payers.create(payer, label=label)
    if as_json:
        _echo_json({**key_to_dict(row), "key": key})
        return
    typer.echo(key)
    typer.echo(f"key {row.id} for payer {row.payer}: shown once, store it now (the node keeps only its hash)", err=True)


@keys_app.command("list")
def keys_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every key: id, prefix, payer, label, created, revoked (never the key)."""
    from ..serving.payers import key_to_dict

    rows = [key_to_dict(row) for row in _open_node(ctx).payers.all()]
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        state = "revoked" if row["revokedAt"] else "active"
        typer.echo(f"{row['id']:>4}  {row['prefix']:<14} {row['payer']}  {state:<8} {row['label'] or ''}")


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: Annotated[int, typer.Argument(help="The key's id (keys list).")]) -> None:
    """Revoke a key: its requests are refused from now on (401)."""
    row = _open_node(ctx).payers.revoke(key_id)
    typer.echo(f"key {row.id} ({row.prefix}…) of {row.payer} revoked")
