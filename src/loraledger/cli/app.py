"""The ``loraledger`` command line: the root Typer app, its command groups, and ``main``.

One module per command group (``devnet``, ``contracts``, ``rewards``, ``epochs``, ``fees``,
``node``, ``datanets``, ``models``, ``adapters``, ``pipeline``, ``jobs``, ``attribution``); what they share is
in ``_common``. Every command turns a ``LoraLedgerError`` into one line on stderr and a
non-zero exit code (2 bad input, 3 not found, 4 configuration, 5 chain, 1 other); secrets are
read from environment variables or encrypted keystores and never printed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ChainError, ConfigError, InputError, LoraLedgerError, NotFoundError
from . import (
    adapters,
    attribution,
    configure,
    contracts,
    datanets,
    devnet,
    epochs,
    fees,
    infer,
    jobs,
    keys,
    models,
    node,
    payer,
    pipeline,
    prices,
    rewards,
)

app = typer.Typer(
    name="loraledger",
    help="An attribution ledger node for specialised AI: records who shaped what, and pays them on chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Registered in the order `loraledger --help` lists them; top-level commands live in their group's module.
for group, name in [(devnet.devnet_app, "devnet"), (contracts.contracts_app, "contracts"),
                    (rewards.rewards_app, "rewards"), (epochs.epoch_app, "epoch"), (fees.fees_app, "fees"),
                    (node.node_app, "node"), (configure.config_app, "config"), (datanets.datanet_app, "datanet")]:
    app.add_typer(group, name=name)
app.command("claim")(rewards.claim)
app.command("balance")(rewards.balance)
verify_app = typer.Typer(help="Recompute what the node recorded from public artifacts and compare: the epochs "
                         "(no subcommand) or one inference's attribution.", invoke_without_command=True)
verify_app.callback()(rewards.verify)
verify_app.command("inference")(attribution.verify_inference)
app.add_typer(verify_app, name="verify")
for group, name in [(models.model_app, "model"), (adapters.adapters_app, "adapters"),
                    (pipeline.pipeline_app, "pipeline"), (jobs.jobs_app, "jobs"),
                    (keys.keys_app, "keys"), (payer.payer_app, "payer"), (prices.prices_app, "prices"),
                    (attribution.attribution_app, "attribution")]:
    app.add_typer(group, name=name)
app.command("train")(models.train)
app.command("bench")(models.bench)
app.command("infer")(infer.infer)

#: Modules of the optional extras (pyproject.toml): a command that imports one that is missing
#: says which extra to install instead of failing with ModuleNotFoundError.
OPTIONAL_EXTRAS = {name: "ml" for name in ("torch", "transformers", "peft", "safetensors", "tokenizers",
                                           "matplotlib", "tqdm", "accelerate", "bitsandbytes", "gguf")}

EXIT_CODES: list[tuple[type[LoraLedgerError], int]] = [
    (InputError, 2),
    (NotFoundError, 3),
    (ConfigError, 4),
    (ChainError, 5),
]


@app.callback()
def _global_options(
    ctx: typer.Context,
    rpc_url: Annotated[str | None, typer.Option("--rpc-url", help="Chain JSON-RPC URL (env LORALEDGER_RPC_URL).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Node state directory (env LORALEDGER_DATA_DIR).")] = None,
    deployments_dir: Annotated[
        Path | None, typer.Option("--deployments-dir", help="Where <chainId>.json deployment files live.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="The TOML config file (env LORALEDGER_CONFIG; "
                                                "default ./loraledger.toml; `config defaults` lists every key).")]
    = None,
) -> None:
    if config is not None:
        os.environ["LORALEDGER_CONFIG"] = str(config)  # read by every settings load of this process
    ctx.obj = {"rpc_url": rpc_url, "data_dir": data_dir, "deployments_dir": deployments_dir}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map errors to one line and an exit code."""
    try:
        # With standalone_mode=False click returns an Exit's code instead of raising it.
        result = app(args=argv, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except LoraLedgerError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        return next((code for cls, code in EXIT_CODES if isinstance(exc, cls)), 1)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except ModuleNotFoundError as exc:
        extra = OPTIONAL_EXTRAS.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        typer.echo(f"error: this command needs loraledger's '{extra}' extra ({exc.name} is not installed): "
                   f"pip install 'loraledger[{extra}]'", err=True)
        return 4
    except Exception as exc:  # noqa: BLE001 - a bug: say so in one line unless debugging
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()  # a usage error (Typer's own copy of click: no stable class to import)
            return exc.exit_code
        if os.environ.get("LORALEDGER_DEBUG"):
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc} (set LORALEDGER_DEBUG=1 for the traceback)", err=True)
        return 1


def run() -> None:
    """Console-script entrypoint."""
    sys.exit(main())
