"""Adapter prices: `loraledger prices show|set NAME` (set: as the node's admin, with the operator key)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import JsonOption, KeyEnvOption, KeystoreOption, _echo_json, _open_node, _operator, _settings

prices_app = typer.Typer(help="Prices of served adapters, in wei of OPEN per 1,000 tokens.", no_args_is_help=True)


@prices_app.command("show")
def prices_show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The adapter.")],
                as_json: JsonOption = False) -> None:
    """The price in force (its price record, or the node's default)."""
    node = _open_node(ctx)
    row = node.factory.get(name)
    price = node.prices.current(row.name)
    if as_json:
        from ..serving.pricing import price_to_dict

        _echo_json(price_to_dict(row.name, price))
        return
    source = "the node's default" if price.seq is None else f"price record {price.seq}"
    typer.echo(f"{row.name}: {price.input_per_1k} wei per 1k prompt tokens, {price.output_per_1k} wei per 1k "
               f"completion tokens ({source})")


@prices_app.command("set")
def prices_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The adapter.")],
    input_per_1k: Annotated[str, typer.Option("--input", help="wei per 1,000 prompt tokens")],
    output_per_1k: Annotated[str, typer.Option("--output", help="wei per 1,000 completion tokens")],
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Set an adapter's price as the node's admin (a price record names the operator). Developers set
    theirs with a signature through the API (POST /v1/adapters/NAME/price)."""
    settings = _settings(ctx)
    operator = _operator(settings, key_env, keystore)
    node = _open_node(ctx, operator)
    row = node.factory.get(name)
    record = node.prices.set(row.name, adapter_hash=row.adapter_hash, developer=row.developer,
                             input_per_1k=input_per_1k, output_per_1k=output_per_1k, admin=operator.address)
    typer.echo(f"{row.name}: {record.input_per_1k} / {record.output_per_1k} wei per 1k tokens from price record "
               f"{record.seq}")
