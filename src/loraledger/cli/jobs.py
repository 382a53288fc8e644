"""Background jobs of a running node: `loraledger jobs submit|list|show|cancel`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InputError
from ._common import JsonOption, NodeUrlOption, _client_of_node, _echo_json, _settings

jobs_app = typer.Typer(help="Background jobs of a running node: submit, list, show, cancel.", no_args_is_help=True)


def _node_client(ctx: typer.Context, node_url: str | None):
    settings = _settings(ctx)
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    return _client_of_node(settings, node_url, admin_token=token)


def _echo_job(job: dict[str, Any]) -> None:
    line = f"job {job['id']} {job['kind']}: {job['status']}"
    if job.get("progress"):
        line += f"  progress {json.dumps(job['progress'])}"
    if job.get("error"):
        line += f"  error: {job['error']}"
    typer.echo(line)


def _params(value: str) -> dict[str, Any]:
    """Params from JSON text or @FILE."""
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read params file {value[1:]}: {exc.strerror or exc}") from None
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise InputError(f"--params is not JSON: {exc}") from None
    if not isinstance(params, dict):
        raise InputError("--params must be a JSON object")
    return params


@jobs_app.command("submit")
def jobs_submit(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="train, bench or pipeline.")],
    params: Annotated[str, typer.Option(help="Job parameters: JSON, or @FILE.")] = "{}",
    wait: Annotated[bool, typer.Option(help="Wait until the job ends; exit non-zero unless it is done.")] = False,
    node_url: NodeUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a background job on the node (admin token: LORALEDGER_ADMIN_TOKEN)."""
    client = _node_client(ctx, node_url)
    job = client.request("POST", "/v1/jobs", json={"kind": kind, "params": _params(params)}, admin=True)
    if wait:
        job = _wait(client, job, quiet=as_json)
    _echo_json(job) if as_json else _echo_job(job)
    if wait and job["status"] != "done":
        raise typer.Exit(1)


def _wait(client, job: dict[str, Any], *, quiet: bool) -> dict[str, Any]:

    last = None
    while job["status"] in ("queued", "running"):
        time.sleep(1.0)
        job = client.request("GET", f"/v1/jobs/{job['id']}")
        if not quiet and job.get("progress") != last:
            last = job.get("progress")
            typer.echo(f"[job {job['id']}] {job['status']} {json.dumps(last) if last else ''}", err=True)
    return job


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind.")] = None,
    node_url: NodeUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """The node's jobs, newest first."""
    query = {k: v for k, v in {"status": status, "kind": kind}.items() if v is not None}
    jobs = _node_client(ctx, node_url).request("GET", "/v1/jobs", params=query)
    if as_json:
        _echo_json(jobs)
        return
    for job in jobs:
        _echo_job(job)


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: Annotated[int, typer.Argument(help="Job id.")],
              node_url: NodeUrlOption = None) -> None:
    """One job, with its params, progress, result or error."""
    _echo_json(_node_client(ctx, node_url).request("GET", f"/v1/jobs/{job_id}"))


@jobs_app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: Annotated[int, typer.Argument(help="Job id.")],
                node_url: NodeUrlOption = None) -> None:
    """Cancel a queued job, or ask a running one to stop (a training job keeps its checkpoint)."""
    _echo_job(_node_client(ctx, node_url).request("POST", f"/v1/jobs/{job_id}/cancel", admin=True))
