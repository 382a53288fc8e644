"""What every command group shares: global settings, signing keys, output helpers, option types."""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..config import Settings, load_settings
from ..errors import ConfigError

if TYPE_CHECKING:  # imported for real only inside the commands that open a node (fast --help)
    from eth_account.signers.local import LocalAccount

    from ..node.context import NodeContext

KeyEnvOption = Annotated[
    str | None,
    typer.Option("--key-env", help="Environment variable holding the signing key (hex)."),
]
KeystoreOption = Annotated[
    Path | None,
    typer.Option("--keystore", help="Encrypted JSON keystore to sign with; password from "
                 "LORALEDGER_KEYSTORE_PASSWORD or a prompt."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
NodeUrlOption = Annotated[str | None, typer.Option("--node", help="Node API URL (default: public_url, else "
                                                   "http://<api_host>:<api_port>).")]


DeviceOption = Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")]


def _settings(ctx: typer.Context, **more: Any) -> Settings:
    """Settings from env/TOML, overridden by global options, then by the command's own."""
    overrides = dict(ctx.obj or {})
    overrides.update({key: value for key, value in more.items() if value is not None})
    return load_settings(**overrides)


def _client(settings: Settings):
    from ..node.context import chain_client

    return chain_client(settings)


def _contracts(settings: Settings):
    from ..node.context import ledger_contracts

    return ledger_contracts(settings)


def _store(settings: Settings, directory: Path | None = None):
    from ..epochs.store import EpochFileStore

    return EpochFileStore(directory or settings.epochs_dir)


def _signer(key_env: str | None, keystore: Path | None, *, default_env: str, settings_key: Any = None):
    """The signing account: --keystore, else --key-env / default env var, else the settings key."""
    from ..chain.keys import account_from_env, account_from_hex, account_from_keystore

    if keystore is not None:
        password = os.environ.get("LORALEDGER_KEYSTORE_PASSWORD")
        if password is None and sys.stdin.isatty():
            password = typer.prompt(f"Password for {keystore}", hide_input=True)
        return account_from_keystore(keystore, password)
    var = key_env or default_env
    if os.environ.get(var):
        return account_from_env(var)
    if settings_key is not None:
        return account_from_hex(settings_key.get_secret_value(), source="the operator_key setting")
    raise ConfigError(f"no signing key: set {var} to a private key, or pass --keystore FILE")


def _operator(settings: Settings, key_env: str | None, keystore: Path | None):
    from ..chain.keys import account_from_keystore

    if keystore is None and key_env is None and settings.operator_keystore is not None:
        password = settings.operator_keystore_password
        return account_from_keystore(settings.operator_keystore, password.get_secret_value() if password else None)
    return _signer(key_env, keystore, default_env="LORALEDGER_OPERATOR_KEY", settings_key=settings.operator_key)


def _maybe_operator(settings, key_env, keystore):
    """The operator key if one is configured; ``None`` otherwise (read-only commands)."""
    from ..errors import ConfigError

    try:
        return _operator(settings, key_env, keystore)
    except ConfigError:
        return None


def _open_node(ctx: typer.Context, operator: LocalAccount | None = None) -> NodeContext:
    """The node of these settings (database, chain, datanets, model factory), opened in this
    process; ``operator`` signs what it sends (read-only without)."""
    from ..node.context import open_node

    return open_node(_settings(ctx), operator=operator)


def format_open(wei: int) -> str:
    """``1234500000000000000`` → ``1.2345 OPEN``."""
    text = format(Decimal(wei) / Decimal(10**18), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} OPEN"


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _echo_epoch(row, path: Path | None = None) -> None:
    typer.echo(
        f"epoch {row.number} {row.status}: {row.record_count} records, {row.accounts} accounts, "
        f"{format_open(int(row.total))} funded"
    )
    typer.echo(f"  log size {row.end_seq}, root {row.log_root}")
    typer.echo(f"  rewards root {row.rewards_root}")
    if row.block_number is not None:
        typer.echo(f"  posted in block {row.block_number} (gas {row.gas_used})")
    if path is not None:
        typer.echo(f"  epoch file {path}")


class ProgressBar:
    """A tqdm bar on stderr showing step, loss and tokens/s."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None

    def stage(self, text: str) -> None:
        if self.enabled:
            self.close()
            typer.echo(f"[train] {text}", err=True)

    def __call__(self, progress) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=progress.total_steps, initial=progress.step - 1, unit="step", file=sys.stderr,
                            dynamic_ncols=True)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{progress.loss:.4f}", lr=f"{progress.learning_rate:.2e}",
                             tok_s=f"{progress.tokens_per_second:,.0f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None



def _client_of_node(settings: Settings, node_url: str | None, **options: Any):
    """A client of the running node at ``node_url`` (default: ``public_url``, else the API address)."""
    from ..node.client import NodeClient

    return NodeClient(node_url or settings.public_url or f"http://{settings.api_host}:{settings.api_port}", **options)
