"""``loraledger model | train | adapters | bench | pipeline`` (the ModelFactory commands).

Part of the one ``loraledger`` Typer app (registered by :mod:`loraledger.cli`); kept in its
own module because these commands are many and import torch lazily, only when they run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli import JsonOption, KeyEnvOption, KeystoreOption, _echo_json, _operator, _settings, app
from .errors import InputError
from .training.factory import adapter_to_dict

model_app = typer.Typer(help="Base models: build a tiny offline one, hash a local one.", no_args_is_help=True)
adapters_app = typer.Typer(help="LoRA adapters: list, show, import, register, verify.", no_args_is_help=True)
pipeline_app = typer.Typer(help="Run snapshot → train → bench → register from a TOML file.", no_args_is_help=True)
jobs_app = typer.Typer(help="Background jobs of a running node: submit, list, show, cancel.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(adapters_app, name="adapters")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(jobs_app, name="jobs")

DeviceOption = Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")]


def _factory_node(ctx: typer.Context, *, operator: Any = None):
    from .node.context import open_node

    return open_node(_settings(ctx), operator=operator)


def _maybe_operator(settings, key_env, keystore):
    """The operator key if one is configured; ``None`` otherwise (read-only commands)."""
    from .errors import ConfigError

    try:
        return _operator(settings, key_env, keystore)
    except ConfigError:
        return None


# ---- model ------------------------------------------------------------------------------
@model_app.command("init-tiny")
def model_init_tiny(
    directory: Annotated[Path, typer.Argument(help="Where to write the model (must be empty or new).")],
    family: Annotated[str, typer.Option(help="Architecture: gpt2, llama or qwen2.")] = "llama",
    seed: Annotated[int, typer.Option(help="Weight init seed.")] = 0,
    hidden_size: Annotated[int, typer.Option(help="Hidden size.")] = 64,
    layers: Annotated[int, typer.Option(help="Transformer layers.")] = 2,
    heads: Annotated[int, typer.Option(help="Attention heads.")] = 4,
    force: Annotated[bool, typer.Option(help="Overwrite a model already there.")] = False,
) -> None:
    """Write a TOY causal LM (random weights, a locally built tokenizer) for offline tests and
    demos. Real use points --base at a real Hugging Face model directory."""
    from .training.basemodel import hash_base_model
    from .training.tiny import init_tiny_model

    info = init_tiny_model(directory, family, seed=seed, hidden_size=hidden_size, layers=layers, heads=heads,
                           force=force)
    digest = hash_base_model(info.path)
    typer.echo(f"tiny {info.model_type} model written to {info.path} (base model hash {digest.hash}); "
               "it is a toy: point --base at a real model for real use")


@model_app.command("hash")
def model_hash(
    directory: Annotated[Path, typer.Argument(help="A local Hugging Face model directory.")],
    as_json: JsonOption = False,
) -> None:
    """Hash a base model's weight files (streamed; the recipe is in the docs)."""
    from .training.basemodel import hash_base_model, inspect_base_model

    info = inspect_base_model(directory)
    digest = hash_base_model(info.path)
    if as_json:
        _echo_json({"hash": digest.hash, "modelType": info.model_type, "bytes": digest.total_bytes,
                    "seconds": round(digest.seconds, 3), **digest.manifest()})
        return
    typer.echo(f"{digest.hash}  {info.path} ({info.model_type}, {len(digest.files)} weight files, "
               f"{digest.total_bytes / 1e6:.1f} MB, {digest.seconds:.2f} s)")


# ---- train ------------------------------------------------------------------------------
def train_config_from_options(**options: Any):
    """A validated TrainConfig from CLI/TOML options (``None`` values take the defaults)."""
    from .training.config import TrainConfig

    values = {k: v for k, v in options.items() if v is not None}
    targets = values.get("target_modules")
    if isinstance(targets, str):
        values["target_modules"] = [t for t in targets.split(",") if t.strip()] or [""]
    return TrainConfig.parse(values)


class _ProgressBar:
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


@app.command("train")
def train(
    ctx: typer.Context,
    datanet: Annotated[int, typer.Option("--datanet", help="Datanet id.")],
    base: Annotated[Path, typer.Option("--base", help="Base model: a local Hugging Face directory.")],
    snapshot: Annotated[int | None, typer.Option("--snapshot", help="Snapshot version (default: latest).")] = None,
    name: Annotated[str | None, typer.Option(help="Adapter name (default d<id>-v<version>-r<rank>-s<seed>).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (default <data-dir>/adapters/<name>).")] = None,
    developer: Annotated[str | None, typer.Option(help="Developer address credited (default: the operator).")] = None,
    rank: Annotated[int | None, typer.Option(help="LoRA rank r [8].")] = None,
    alpha: Annotated[float | None, typer.Option(help="LoRA alpha [16].")] = None,
    dropout: Annotated[float | None, typer.Option(help="LoRA dropout [0.05].")] = None,
    target_modules: Annotated[str | None, typer.Option(help="Comma-separated modules (default: per family).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate [2e-4].")] = None,
    lr_schedule: Annotated[str | None, typer.Option(help="linear or constant [linear].")] = None,
    warmup_steps: Annotated[int | None, typer.Option(help="Warm-up steps [0].")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs [1].")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimiser steps.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size [4].")] = None,
    grad_accum: Annotated[int | None, typer.Option(help="Gradient accumulation steps [1].")] = None,
    max_length: Annotated[int | None, typer.Option(help="Max tokens per example [512].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed [0].")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Held-out share, chosen by row hash [0.1].")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Checkpoint every K steps [0: off].")] = None,
    quantize: Annotated[str | None, typer.Option(help="4bit: QLoRA (CUDA + bitsandbytes).")] = None,
    device: DeviceOption = "auto",
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its last checkpoint.")] = False,
    register: Annotated[bool, typer.Option(help="Register the adapter in AdapterRegistry.")] = True,
    as_json: JsonOption = False,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Fine-tune a LoRA adapter on a datanet snapshot; record and register it with its provenance."""
    from .training.factory import TrainRequest

    config = train_config_from_options(
        rank=rank, alpha=alpha, dropout=dropout, target_modules=target_modules, learning_rate=lr,
        lr_schedule=lr_schedule, warmup_steps=warmup_steps, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
        gradient_accumulation=grad_accum, max_length=max_length, seed=seed, val_fraction=val_fraction,
        checkpoint_every=checkpoint_every, quantize=quantize,
    )
    settings = _settings(ctx)
    operator = _operator(settings, key_env, keystore) if register else _maybe_operator(settings, key_env, keystore)
    node = _factory_node(ctx, operator=operator)
    bar = _ProgressBar(enabled=not as_json)
    request = TrainRequest(datanet_id=datanet, base_dir=base, config=config, snapshot_version=snapshot, name=name,
                           developer=developer, output_dir=out, resume=resume, device=device, register=register)
    try:
        result = node.factory.train(request, on_progress=bar, on_stage=bar.stage)
    except KeyboardInterrupt:
        bar.close()
        typer.echo("interrupted: a checkpoint was saved; run the same command with --resume to continue", err=True)
        raise typer.Exit(130) from None
    finally:
        bar.close()
    row, metrics = result.adapter, result.provenance["metrics"]
    if as_json:
        _echo_json({"adapter": adapter_to_dict(row), "metrics": metrics, "registered": result.registered})
        return
    typer.echo(f"adapter {row.name} → {row.path}")
    typer.echo(f"  adapter hash {row.adapter_hash}\n  provenance   {row.provenance_hash}")
    typer.echo(f"  {metrics['steps']} steps, loss {metrics['firstLoss']} → {metrics['finalLoss']}"
               f", validation loss {metrics['valLoss']}, {metrics['tokensPerSecond']:,.0f} tokens/s")
    if row.chain_version is not None:
        typer.echo(f"  registered in AdapterRegistry as version {row.chain_version} (tx {row.tx_hash})")


# ---- adapters ---------------------------------------------------------------------------
@adapters_app.command("list")
def adapters_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Adapters in this node, oldest first."""
    rows = _factory_node(ctx).factory.all()
    if as_json:
        _echo_json([adapter_to_dict(r) for r in rows])
        return
    if not rows:
        typer.echo("no adapters yet: `loraledger train` or `loraledger adapters import`")
    for r in rows:
        chain = f"v{r.chain_version}" if r.chain_version else "not registered"
        origin = f"datanet {r.datanet_id} v{r.snapshot_version}" if r.source == "trained" else "external"
        typer.echo(f"{r.name:<32} {r.adapter_hash[:18]}…  {origin:<20} {chain}")


@adapters_app.command("show")
def adapters_show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Adapter name.")]) -> None:
    """An adapter's row and its provenance.json."""
    node = _factory_node(ctx)
    _echo_json({**adapter_to_dict(node.factory.get(name)), "provenance": node.factory.provenance(name)})


@adapters_app.command("hash")
def adapters_hash(directory: Annotated[Path, typer.Argument(help="A PEFT adapter directory.")]) -> None:
    """The adapter hash of a PEFT LoRA directory (the recipe is in the docs)."""
    from .training.adapters import adapter_hash

    digest = adapter_hash(directory)
    typer.echo(f"{digest.hash}  {directory}")


@adapters_app.command("import")
def adapters_import(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="A PEFT LoRA adapter trained elsewhere.")],
    name: Annotated[str, typer.Option(help="Name to give it here.")],
    base: Annotated[Path | None, typer.Option(help="Its base model directory (hashed here).")] = None,
    base_model_hash: Annotated[str | None, typer.Option(help="Or its base model hash.")] = None,
    developer: Annotated[str | None, typer.Option(help="Developer address (default: the operator).")] = None,
    expect_hash: Annotated[str | None, typer.Option(help="Refuse unless the adapter hashes to this.")] = None,
    register: Annotated[bool, typer.Option(help="Register it in AdapterRegistry.")] = True,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Import an external adapter with provenance `external` (never credited to datanet contributors)."""
    settings = _settings(ctx)
    operator = _operator(settings, key_env, keystore) if register else _maybe_operator(settings, key_env, keystore)
    node = _factory_node(ctx, operator=operator)
    result = node.factory.import_adapter(directory, name=name, base_dir=base, base_model_hash=base_model_hash,
                                         developer=developer, expect_hash=expect_hash, register=register)
    row = result.adapter
    typer.echo(f"imported {row.name} ({row.adapter_hash}), provenance external"
               + (f", registered as version {row.chain_version}" if row.chain_version else ""))


@adapters_app.command("register")
def adapters_register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter name.")],
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Register (or finish registering) an adapter in AdapterRegistry; safe to repeat."""
    settings = _settings(ctx)
    node = _factory_node(ctx, operator=_operator(settings, key_env, keystore))
    row, fresh = node.factory.register(name)
    typer.echo(f"{row.name}: AdapterRegistry version {row.chain_version}" + ("" if fresh else " (already registered)"))


@adapters_app.command("proof")
def adapters_proof(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter name.")],
    row_hash: Annotated[str, typer.Argument(help="The datanet row's hash.")],
) -> None:
    """Prove that a datanet row trained an adapter (Merkle proof against its AdapterRecord)."""
    _echo_json(_factory_node(ctx).factory.training_row_proof(name, row_hash))


@adapters_app.command("verify")
def adapters_verify(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Adapter name.")]) -> None:
    """Recompute an adapter's hashes from its files; compare with the ledger and the chain."""
    node = _factory_node(ctx)
    problems = node.factory.verify(name)
    if problems:
        for problem in problems:
            typer.echo(f"MISMATCH {problem}", err=True)
        raise typer.Exit(6)
    typer.echo(f"{name}: files, ledger record and AdapterRegistry agree")


# ---- bench ------------------------------------------------------------------------------
def write_report(report, *, fmt: str, chart: Path | None, out: Path | None) -> None:
    from .fsutil import atomic_write_bytes
    from .training.report import render_markdown, render_terminal, report_to_json, write_chart

    renderers = {"table": render_terminal, "markdown": render_markdown,
                 "json": lambda r: json.dumps(report_to_json(r), indent=2)}
    if fmt not in renderers:
        raise InputError(f"--format must be one of {', '.join(renderers)}, not {fmt!r}")
    typer.echo(renderers[fmt](report))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "benchmark.json", json.dumps(report_to_json(report), indent=2).encode())
        atomic_write_bytes(out / "benchmark.md", render_markdown(report).encode())
        chart = chart or out / "benchmark.png"
    if chart is not None:
        write_chart(report, chart)
        typer.echo(f"chart written to {chart}", err=True)


@app.command("bench")
def bench(
    ctx: typer.Context,
    base: Annotated[Path, typer.Option("--base", help="Base model directory.")],
    adapters: Annotated[str, typer.Option(help="Comma-separated adapter names (may be empty: base only).")] = "",
    eval_file: Annotated[Path | None, typer.Option("--eval", help="Eval rows (JSONL, datanet row shape).")] = None,
    datanet: Annotated[int | None, typer.Option(help="Or: this datanet's snapshot (default: the one the "
                                                "adapters were trained on).")] = None,
    snapshot: Annotated[int | None, typer.Option(help="Snapshot version (default: the adapters', else latest).")] = None,
    split: Annotated[str, typer.Option(help="validation (held-out rows) or all.")] = "validation",
    val_fraction: Annotated[float | None, typer.Option(help="Held-out share (default: the adapters' own, else 0.1).")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, max=4096, help="Generation length for EM/ROUGE-L.")] = 64,
    batch_size: Annotated[int, typer.Option(min=1, max=1024, help="Eval batch size.")] = 8,
    max_length: Annotated[int, typer.Option(min=8, help="Max tokens per example.")] = 512,
    fmt: Annotated[str, typer.Option("--format", help="table, markdown or json.")] = "table",
    chart: Annotated[Path | None, typer.Option(help="Write a PNG bar chart here.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write benchmark.json/.md/.png into this directory.")] = None,
    device: DeviceOption = "auto",
) -> None:
    """Benchmark the base model and adapters: loss, perplexity, exact match, ROUGE-L.
    Results are recorded as BenchmarkRecords citing the eval set hash."""
    node = _factory_node(ctx)
    names = [n.strip() for n in adapters.split(",") if n.strip()]
    if eval_file is None:
        datanet, snapshot, val_fraction = node.factory.training_source(names, datanet=datanet, snapshot=snapshot,
                                                                       val_fraction=val_fraction)
    eval_set = node.factory.eval_set(eval_file=eval_file, datanet=datanet, snapshot=snapshot, split=split,
                                     val_fraction=0.1 if val_fraction is None else val_fraction)
    report, records = node.factory.benchmark(
        base, names, eval_set, device=device, max_length=max_length, batch_size=batch_size,
        max_new_tokens=max_new_tokens, on_model=lambda n: typer.echo(f"[bench] {n}", err=True))
    write_report(report, fmt=fmt, chart=chart, out=out)
    typer.echo(f"recorded {len(records)} benchmark records (seq {records[0].seq}–{records[-1].seq})", err=True)


# ---- pipeline ---------------------------------------------------------------------------
@pipeline_app.command("run")
def pipeline_run(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Pipeline TOML (example: docs/pipeline.example.toml).")],
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Snapshot → train → bench → register, as one reproducible run recorded in run.json."""
    from .training.pipeline import load_pipeline, run_pipeline

    spec = load_pipeline(file)
    settings = _settings(ctx)
    node = _factory_node(ctx, operator=_operator(settings, key_env, keystore))
    bar = _ProgressBar(enabled=True)
    try:
        run = run_pipeline(node, spec, on_progress=bar, on_stage=bar.stage)
    finally:
        bar.close()
    if run.report is not None:
        from .training.report import render_terminal

        typer.echo(render_terminal(run.report))
    typer.echo(f"pipeline {spec.name}: adapter {run.adapter_name} ({run.adapter_hash}); run file {run.path}")


# ---- jobs (a running node's API) ------------------------------------------------------------
NodeUrlOption = Annotated[str | None, typer.Option("--node", help="Node API URL (default: public_url, else "
                                                   "http://<api_host>:<api_port>).")]


def _node_client(ctx: typer.Context, node_url: str | None):
    from .nodeclient import NodeClient

    settings = _settings(ctx)
    url = node_url or settings.public_url or f"http://{settings.api_host}:{settings.api_port}"
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    return NodeClient(url, admin_token=token)


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
    import time

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
