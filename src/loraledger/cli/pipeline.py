"""Pipelines: `loraledger pipeline run FILE.toml`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    KeyEnvOption,
    KeystoreOption,
    ProgressBar,
    _open_node,
    _operator,
    _settings,
)

pipeline_app = typer.Typer(help="Run snapshot → train → bench → register from a TOML file.", no_args_is_help=True)


@pipeline_app.command("run")
def pipeline_run(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Pipeline TOML (example: docs/pipeline.example.toml).")],
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Snapshot → train → bench → register, as one reproducible run recorded in run.json."""
    from ..training.pipeline import load_pipeline, run_pipeline

    spec = load_pipeline(file)
    settings = _settings(ctx)
    node = _open_node(ctx, operator=_operator(settings, key_env, keystore))
    bar = ProgressBar(enabled=True)
    try:
        run = run_pipeline(node.factory, spec, on_progress=bar, on_stage=bar.stage)
    finally:
        bar.close()
    if run.report is not None:
        from ..training.report import render_terminal

        typer.echo(render_terminal(run.report))
    typer.echo(f"pipeline {spec.name}: adapter {run.adapter_name} ({run.adapter_hash}); run file {run.path}")
