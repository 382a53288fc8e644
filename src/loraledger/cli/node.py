"""The node: `loraledger node run`."""

from __future__ import annotations

from pathlib import Path
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
    base: Annotated[Path | None, typer.Option("--base", help="Serve this base model directory and its registered "
                                              "adapters (OpenAI-compatible API).")] = None,
    open_payer: Annotated[str | None, typer.Option("--open", help="Serve without API keys, every answer paid by "
                                                   "this address (local use only).")] = None,
    upstream: Annotated[str | None, typer.Option("--upstream", help="Generate on this OpenAI-compatible server "
                                                 "with LoRA (vLLM, LoRAX, a node); key in LORALEDGER_UPSTREAM_API_KEY.")]
    = None,
) -> None:
    """Serve the /v1 API and close epochs by policy (every N seconds or M records); with
    --base, also answer /v1/completions and /v1/chat/completions with the base model and its adapters."""
    from ..api import create_app
    from ..node.daemon import run_node

    settings = _settings(ctx, serve_base=base, open_payer=open_payer, upstream_url=upstream)
    operator = _operator(settings, key_env, keystore)
    run_node(settings, operator=operator, host=host, port=port,
             make_app=lambda node: create_app(settings, operator=operator, node=node))
