"""Run a local anvil chain: `loraledger devnet up|down|status|accounts`."""

from __future__ import annotations

from typing import Annotated

import typer

from ..config import Settings
from ._common import (
    JsonOption,
    _echo_json,
    _settings,
)

devnet_app = typer.Typer(help="Run a local anvil chain in the background.", no_args_is_help=True)


def _devnet(settings: Settings):
    from ..chain.devnet import Devnet
    from ..chain.toolchain import foundry_binary

    return Devnet(settings.data_dir / "devnet", foundry_binary("anvil", settings.root))


@devnet_app.command("up")
def devnet_up(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="RPC port.")] = 8545,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    chain_id: Annotated[int, typer.Option("--chain-id", help="Chain id.")] = 31337,
    block_time: Annotated[float | None, typer.Option(help="Seconds per block (default: mine on demand).")] = None,
) -> None:
    """Start anvil in the background (state kept in <data-dir>/devnet)."""
    status = _devnet(_settings(ctx)).up(host=host, port=port, chain_id=chain_id, block_time=block_time)
    typer.echo(f"devnet running: {status.rpc_url} (chain {status.chain_id}, pid {status.pid}, block {status.block})")
    typer.echo(f"logs: {status.log_file}   state: {status.state_file}")


@devnet_app.command("down")
def devnet_down(ctx: typer.Context) -> None:
    """Stop the background anvil (its state is saved for the next `up`)."""
    stopped = _devnet(_settings(ctx)).down()
    typer.echo("devnet stopped" if stopped else "devnet was not running")


@devnet_app.command("status")
def devnet_status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show whether the devnet runs, its RPC URL, chain id and block."""
    status = _devnet(_settings(ctx)).status()
    if as_json:
        _echo_json(status.__dict__)
    elif status.running:
        typer.echo(f"running: {status.rpc_url} chain {status.chain_id} block {status.block} pid {status.pid}")
    else:
        typer.echo("not running")
        raise typer.Exit(1)


@devnet_app.command("accounts")
def devnet_accounts(count: Annotated[int, typer.Option(min=1, max=100)] = 5, as_json: JsonOption = False) -> None:
    """Print anvil's well-known dev accounts and keys (public test keys: devnet only)."""
    from ..chain.devnet import dev_accounts

    accounts = dev_accounts(count)
    if as_json:
        _echo_json([{"address": a.address, "privateKey": "0x" + a.key.hex()} for a in accounts])
        return
    typer.echo("# anvil dev accounts: these keys are public, use them on a devnet only")
    for index, account in enumerate(accounts):
        typer.echo(f"{index}  {account.address}  0x{account.key.hex()}")
