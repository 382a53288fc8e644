"""The node: `loraledger node run`."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import (
    KeyEnvOption,
    KeystoreOption,
    _operator,
    _settings,
)

node_app = typer.Typer(help="Run the node: API and epoch loop.", no_args_is_help=True)


@node_app.command("run")
def node_run(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Listen address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Serve the /v1 API and close epochs by policy (every N seconds or M records)."""
    from ..api import create_app
    from ..node.daemon import run_node

    settings = _settings(ctx)
    operator = _operator(settings, key_env, keystore)
    run_node(settings, operator=operator, host=host, port=port,
             make_app=lambda node: create_app(settings, operator=operator, node=node))
