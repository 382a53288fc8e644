"""Datanets: `loraledger datanet create|contribute|review|snapshot|export|show|proof`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InputError, NotFoundError
from ._common import (
    JsonOption,
    KeyEnvOption,
    KeystoreOption,
    _echo_json,
    _open_node,
    _operator,
    _settings,
    _signer,
)

datanet_app = typer.Typer(help="Community datasets: create, contribute, review, snapshot, export.", no_args_is_help=True)
DatanetArg = Annotated[int, typer.Argument(help="Datanet id.")]
VersionOption = Annotated[int | None, typer.Option(help="Snapshot version (default: latest).")]


def _datanet_json(node, datanet_id: int) -> dict[str, Any]:
    row = node.datanets.get(datanet_id)
    return {
        "id": row.id, "owner": row.owner, "name": row.name, "schema": row.row_schema,
        "licenses": json.loads(row.licenses), "policy": row.policy, "nearDuplicatePct": row.near_duplicate_pct,
        "latestVersion": row.latest_version, "rows": node.datanets.counts(row.id),
        "domain": {"name": "loraledger", "version": "1", "chainId": node.datanets.domain.chain_id,
                   "verifyingContract": node.datanets.domain.registry},
    }


def _export(node, datanet_id: int, version: int, directory: Path) -> None:
    snap = node.datanets.snapshot_row(datanet_id, version)
    with typer.progressbar(length=snap.row_count, label="exporting", file=sys.stderr) as bar:
        rows_path, manifest_path = node.datanets.export(datanet_id, version, directory, progress=bar.update)
    typer.echo(f"exported {snap.row_count} rows to {rows_path} (manifest {manifest_path})")


@datanet_app.command("create")
def datanet_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Datanet name.")],
    schema: Annotated[str, typer.Option(help="Row schema: text, instruction (prompt/completion) or chat (messages).")],
    license: Annotated[list[str], typer.Option("--license", help="Allowed SPDX licence id (repeat for several).")],
    owner: Annotated[str | None, typer.Option(help="Owner address (default: the operator).")] = None,
    policy: Annotated[str, typer.Option(help="auto (accept valid rows) or review (the owner decides).")] = "auto",
    near_pct: Annotated[int, typer.Option("--near-pct", help="Near-duplicate threshold, Jaccard %.")] = 85,
    metadata_uri: Annotated[str, typer.Option(help="Metadata URI stored on chain.")] = "",
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Create a datanet: registered in DatanetRegistry and recorded in the ledger."""
    settings = _settings(ctx)
    operator = _operator(settings, key_env, keystore)
    node = _open_node(ctx, operator)
    row = node.datanets.create(operator, owner=owner or operator.address, name=name, row_schema=schema,
                               licenses=license, policy=policy, near_duplicate_pct=near_pct, metadata_uri=metadata_uri)
    typer.echo(f"datanet {row.id} '{row.name}' created (owner {row.owner}, schema {row.row_schema}, policy {row.policy})")


@datanet_app.command("contribute")
def datanet_contribute(
    ctx: typer.Context,
    datanet_id: DatanetArg,
    file: Annotated[Path, typer.Argument(help="Rows as JSON lines.")],
    license: Annotated[str, typer.Option(help="SPDX licence of these rows.")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per signed batch.")] = 1_000,
    valid_minutes: Annotated[int, typer.Option(min=1, help="Signature deadline, minutes from now.")] = 60,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Sign (EIP-712, your key) and submit rows in batches; each batch is all or nothing."""

    from ..datanets.content import content_hash, parse_rows
    from ..datanets.contribution import Contribution, sign_contribution

    contributor = _signer(key_env, keystore, default_env="LORALEDGER_KEY")
    node = _open_node(ctx)
    schema = node.datanets.get(datanet_id).row_schema
    try:
        lines = file.read_bytes().decode("utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        raise NotFoundError(f"rows file {file} does not exist") from None
    except UnicodeDecodeError:
        raise InputError(f"rows file {file} is not UTF-8") from None
    batches = [
        "".join(lines[i:i + batch_size]) for i in range(0, len(lines), batch_size) if "".join(lines[i:i + batch_size]).strip()
    ]
    if not batches:
        raise InputError(f"rows file {file} has no rows")
    accepted = 0
    with typer.progressbar(length=len(lines), label=f"contributing {file.name}", file=sys.stderr) as bar:
        for index, text in enumerate(batches):
            rows = parse_rows(text, schema)
            contribution = Contribution(datanet_id, contributor.address, content_hash(rows), license,
                                        node.datanets.next_nonce(contributor.address),
                                        int(time.time()) + 60 * valid_minutes)
            try:
                result = node.datanets.contribute(datanet_id, text, contribution,
                                                  sign_contribution(contributor, node.datanets.domain, contribution))
            except InputError as exc:
                raise InputError(f"batch {index + 1} of {len(batches)} (starting at line {index * batch_size + 1}): "
                                 f"{exc.message}; {accepted} rows from earlier batches were recorded", **exc.details) from None
            accepted += len(result.row_hashes)
            bar.update(text.count("\n") or 1)
    typer.echo(f"{accepted} rows recorded in datanet {datanet_id} ({result.status}) from {contributor.address}")


@datanet_app.command("review")
def datanet_review(
    ctx: typer.Context,
    datanet_id: DatanetArg,
    row_hashes: Annotated[list[str] | None, typer.Argument(help="Row hashes to decide.")] = None,
    accept: Annotated[bool, typer.Option("--accept/--reject", help="Accept or reject the rows.")] = True,
    all_pending: Annotated[bool, typer.Option("--all-pending", help="Decide every pending row.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (recorded with the decision).")] = None,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """The owner (or the operator for the owner) accepts or rejects pending rows; recorded in the ledger."""
    settings = _settings(ctx)
    signer = _signer(key_env, keystore, default_env="LORALEDGER_KEY", settings_key=settings.operator_key)
    node = _open_node(ctx)
    datanet = node.datanets.get(datanet_id)
    if signer.address not in (datanet.owner, node.contracts.deployment.operator):
        raise InputError(f"only the owner {datanet.owner} or the node operator may review datanet {datanet_id}")
    wanted = [r.row_hash for r in node.datanets.pending(datanet_id)] if all_pending else (row_hashes or [])
    count = node.datanets.review(datanet_id, wanted, accept=accept, decided_by=signer.address, reason=reason)
    typer.echo(f"{'accepted' if accept else 'rejected'} {count} rows of datanet {datanet_id}")


@datanet_app.command("snapshot")
def datanet_snapshot(
    ctx: typer.Context,
    datanet_id: DatanetArg,
    export: Annotated[Path | None, typer.Option(help="Also export the snapshot to this directory.")] = None,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Freeze the accepted rows as the next version; publish its root to DatanetRegistry."""
    settings = _settings(ctx)
    operator = _operator(settings, key_env, keystore)
    node = _open_node(ctx, operator)
    snap = node.datanets.snapshot(datanet_id, operator)
    typer.echo(f"datanet {datanet_id} version {snap.version}: {snap.row_count} rows, root {snap.root}")
    if export is not None:
        _export(node, datanet_id, snap.version, export)


@datanet_app.command("export")
def datanet_export(
    ctx: typer.Context,
    datanet_id: DatanetArg,
    directory: Annotated[Path, typer.Argument(help="Output directory (rows.jsonl + manifest.json).")],
    version: VersionOption = None,
) -> None:
    """Export a snapshot as JSONL + manifest (reads with datasets.load_dataset("json", ...))."""
    node = _open_node(ctx)
    _export(node, datanet_id, node.datanets.resolve_version(datanet_id, version), directory)


@datanet_app.command("show")
def datanet_show(
    ctx: typer.Context,
    datanet_id: DatanetArg,
    as_json: JsonOption = False,
) -> None:
    """A datanet's rules, row counts, latest version and EIP-712 domain."""
    info = _datanet_json(_open_node(ctx), datanet_id)
    if as_json:
        _echo_json(info)
        return
    for key, value in info.items():
        typer.echo(f"{key}: {value}")


@datanet_app.command("proof")
def datanet_proof(
    ctx: typer.Context,
    datanet_id: DatanetArg,
    row_hash: Annotated[str, typer.Argument(help="The row's hash.")],
    version: VersionOption = None,
) -> None:
    """Prove a row is in a snapshot; the proof is checked by DatanetRegistry.verifyRow on chain."""
    node = _open_node(ctx)
    _echo_json(node.datanets.row_proof(datanet_id, node.datanets.resolve_version(datanet_id, version), row_hash))
