"""LoRA adapters: `loraledger adapters list|show|hash|import|register|proof|verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..training.factory import adapter_to_dict
from ._common import (
    JsonOption,
    KeyEnvOption,
    KeystoreOption,
    _echo_json,
    _maybe_operator,
    _open_node,
    _operator,
    _settings,
)

adapters_app = typer.Typer(help="LoRA adapters: list, show, import, register, verify.", no_args_is_help=True)


@adapters_app.command("list")
def adapters_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Adapters in this node, oldest first."""
    rows = _open_node(ctx).factory.all()
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
    node = _open_node(ctx)
    _echo_json({**adapter_to_dict(node.factory.get(name)), "provenance": node.factory.provenance(name)})


@adapters_app.command("hash")
def adapters_hash(directory: Annotated[Path, typer.Argument(help="A PEFT adapter directory.")]) -> None:
    """The adapter hash of a PEFT LoRA directory (the recipe is in the docs)."""
    from ..training.adapters import adapter_hash

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
    node = _open_node(ctx, operator=operator)
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
    node = _open_node(ctx, operator=_operator(settings, key_env, keystore))
    row, fresh = node.factory.register(name)
    typer.echo(f"{row.name}: AdapterRegistry version {row.chain_version}" + ("" if fresh else " (already registered)"))


@adapters_app.command("proof")
def adapters_proof(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter name.")],
    row_hash: Annotated[str, typer.Argument(help="The datanet row's hash.")],
) -> None:
    """Prove that a datanet row trained an adapter (Merkle proof against its AdapterRecord)."""
    _echo_json(_open_node(ctx).factory.training_row_proof(name, row_hash))


@adapters_app.command("verify")
def adapters_verify(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Adapter name.")]) -> None:
    """Recompute an adapter's hashes from its files; compare with the ledger and the chain."""
    node = _open_node(ctx)
    problems = node.factory.verify(name)
    if problems:
        for problem in problems:
            typer.echo(f"MISMATCH {problem}", err=True)
        raise typer.Exit(6)
    typer.echo(f"{name}: files, ledger record and AdapterRegistry agree")


@adapters_app.command("featurize")
def adapters_featurize(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter name (trained here on a datanet).")],
    base: Annotated[Path, typer.Option(help="Its base model directory.")],
    k: Annotated[int, typer.Option(help="Projection width per side of each LoRA layer.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the projections.")] = 0,
    method: Annotated[str, typer.Option(help="Preconditioner: logra, datainf or identity.")] = "logra",
    damping: Annotated[float, typer.Option(help="Damping, relative to each layer's mean eigenvalue.")] = 0.1,
    batch_size: Annotated[int, typer.Option(help="Rows per forward/backward pass.")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
) -> None:
    """Build the adapter's attribution index (projected gradients of its training rows and the span
    index over them) beside it, and record its hash; does nothing when it exists already."""
    from ..attribution.service import AttributionIndexer

    node = _open_node(ctx)
    indexer = AttributionIndexer(node.factory, node.records)
    result = indexer.featurize(name, base_dir=base, k=k, seed=seed, method=method, damping=damping,
                               batch_size=batch_size, device=device,
                               on_stage=lambda text: typer.echo(f"… {text}", err=True))
    index = result.index
    _echo_json({"adapter": name, "indexHash": result.index_hash, "created": result.created,
                "recordSeq": result.record.seq if result.record else indexer.current(index.adapter_hash).record_seq,
                "rows": len(index.rows), "dim": sum(index.block_sizes), "method": index.method, "k": index.k,
                "seed": index.seed, "spanTokens": index.spans.total_tokens,
                "bytes": (Path(node.factory.get(name).path) / "attribution.safetensors").stat().st_size,
                "seconds": round(result.seconds, 2)})
