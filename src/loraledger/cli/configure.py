"""The node's configuration: `loraledger config defaults` (every key, documented) and `config show`."""

from __future__ import annotations

import typer

from ._common import JsonOption, _echo_json, _settings

config_app = typer.Typer(help="The node's settings: every key with its default, and the values in force.",
                         no_args_is_help=True)


@config_app.command("defaults")
def config_defaults() -> None:
    """Print a loraledger.toml with every setting at its default, each documented (a starting point:
    `loraledger config defaults > loraledger.toml`)."""
    from ..config import defaults_toml

    typer.echo(defaults_toml(), nl=False)


@config_app.command("show")
def config_show(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The settings in force here (config file, then LORALEDGER_* variables, then options); secrets hidden."""
    from ..config import _toml_path

    settings = _settings(ctx)
    values = {name: (None if value is None else str(value) if not isinstance(value, (bool, int, float)) else value)
              for name, value in settings.model_dump().items()}
    if as_json:
        _echo_json({"file": str(_toml_path()), "settings": values})
        return
    typer.echo(f"# from {_toml_path()} (if it exists), LORALEDGER_* variables and options")
    for name, value in values.items():
        typer.echo(f"{name} = {value!r}" if value is not None else f"# {name} (unset)")
