"""``loraledger pipeline run FILE.toml``: snapshot → train → bench → register as one run.

A pipeline file (relative paths are relative to the file)::

    name = "support-bot-v1"            # the run's name; also the default adapter name

    [base]
    path = "models/tiny-llama"         # local Hugging Face model directory

    [snapshot]
    datanet = 1
    version = "latest"                 # "latest", a number, or "new" (snapshot now if rows changed)

    [train]                            # any TrainConfig setting, snake_case
    rank = 8
    learning_rate = 0.005
    epochs = 3
    seed = 0
    developer = "0x..."                # optional; default the operator
    device = "auto"

    [bench]                            # optional; omit to skip benchmarking
    eval = "validation"                # "validation", "all" or a JSONL file
    adapters = ["older-adapter"]       # optional: compare against adapters already in the node
    max_new_tokens = 32

    [register]
    enabled = true                     # register the adapter in AdapterRegistry

The run writes ``<data_dir>/runs/<name>/run.json`` (format ``loraledger-run-v1``): the
file's own sha256, the snapshot (version, root), the adapter (name, hashes), the benchmark
report and the registration. Training is deterministic, so running the same file on the
same snapshot again reproduces the adapter hash; a run whose ``run.json`` says ``done``
is not repeated.
"""

from __future__ import annotations

import hashlib
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, NotFoundError
from ..fsutil import atomic_write_json
from .config import TrainConfig, validate_adapter_name
from .factory import ModelFactory, TrainRequest
from .report import BenchmarkReport, report_from_json, report_to_json

__all__ = ["PipelineRun", "PipelineSpec", "load_pipeline", "run_pipeline"]

RUN_FORMAT = "loraledger-run-v1"
_SECTIONS = {"name", "base", "snapshot", "train", "bench", "register"}
_TRAIN_EXTRA = {"developer", "device", "name"}


@dataclass(frozen=True)
class PipelineSpec:
    """A parsed, validated pipeline file."""

    name: str
    file: Path
    file_sha256: str
    base_dir: Path
    datanet_id: int
    snapshot: str | int
    config: TrainConfig
    adapter_name: str
    developer: str | None
    device: str
    bench: dict[str, Any] | None
    register: bool


@dataclass
class PipelineRun:
    """What a pipeline run produced (also in ``run.json``)."""

    path: Path
    adapter_name: str
    adapter_hash: str
    report: BenchmarkReport | None
    data: dict[str, Any] = field(default_factory=dict)


def _table(data: dict[str, Any], key: str, file: Path, *, required: bool = True) -> dict[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{file}: [{key}] section is missing or not a table")
    return value


def load_pipeline(file: str | Path) -> PipelineSpec:
    """Parse and validate a pipeline file; ``InputError`` naming the file and the bad entry."""
    path = Path(file).expanduser()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"pipeline file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from None
    unknown = set(data) - _SECTIONS
    if unknown:
        raise InputError(f"{path}: unknown entries {sorted(unknown)} (allowed: {sorted(_SECTIONS)})")
    name = data.get("name")
    if not isinstance(name, str):
        raise InputError(f"{path}: `name` (the run's name) is required")
    validate_adapter_name(name)
    base = _table(data, "base", path)
    if not isinstance(base.get("path"), str):
        raise InputError(f"{path}: [base] path is required")
    snapshot = _table(data, "snapshot", path)
    datanet = snapshot.get("datanet")
    if not isinstance(datanet, int) or isinstance(datanet, bool) or datanet < 1:
        raise InputError(f"{path}: [snapshot] datanet must be a datanet id")
    version = snapshot.get("version", "latest")
    if not (version in ("latest", "new") or (isinstance(version, int) and not isinstance(version, bool) and version > 0)):
        raise InputError(f"{path}: [snapshot] version must be \"latest\", \"new\" or a version number, not {version!r}")
    train = dict(_table(data, "train", path, required=False))
    extra = {k: train.pop(k) for k in list(train) if k in _TRAIN_EXTRA}
    try:
        config = TrainConfig.parse(train)
    except InputError as exc:
        raise InputError(f"{path}: [train] {exc.message}") from None
    bench = data.get("bench")
    if bench is not None and not isinstance(bench, dict):
        raise InputError(f"{path}: [bench] must be a table")
    register = _table(data, "register", path, required=False).get("enabled", True)
    return PipelineSpec(
        name=name, file=path.resolve(), file_sha256=hashlib.sha256(raw).hexdigest(),
        base_dir=(path.parent / base["path"]).resolve(), datanet_id=datanet, snapshot=version, config=config,
        adapter_name=validate_adapter_name(extra.get("name", name)), developer=extra.get("developer"),
        device=extra.get("device", "auto"), bench=bench, register=bool(register),
    )


def run_pipeline(factory: ModelFactory, spec: PipelineSpec, *, on_progress: Callable[[Any], None] | None = None,
                 on_stage: Callable[[str], None] | None = None) -> PipelineRun:
    """Run ``spec`` with ``factory`` (its datanets, and its operator key for snapshots and registration);
    the run's state is kept in ``<data_dir>/runs/<name>/run.json``."""
    stage = on_stage or (lambda _: None)
    run_dir = factory.data_dir / "runs" / spec.name
    run_file = run_dir / "run.json"
    if run_file.exists():
        import json

        previous = json.loads(run_file.read_text())
        if previous.get("status") == "done":
            if previous.get("fileSha256") != spec.file_sha256:
                raise InputError(f"run {spec.name} was done with another version of {spec.file.name}; "
                                 "give the changed pipeline a new name")
            report = report_from_json(previous["benchmark"]) if previous.get("benchmark") else None
            stage(f"run {spec.name} is already done ({run_file})")
            return PipelineRun(run_file, previous["adapter"]["name"], previous["adapter"]["adapterHash"], report,
                               previous)
    started = time.time()
    record: dict[str, Any] = {"format": RUN_FORMAT, "name": spec.name, "file": str(spec.file),
                              "fileSha256": spec.file_sha256, "status": "running", "startedAt": int(started)}
    atomic_write_json(run_file, record)

    # 1. snapshot
    datanets = factory.datanets
    version: int | None = None if spec.snapshot in ("latest", "new") else int(spec.snapshot)
    if spec.snapshot == "new":
        current = datanets.get(spec.datanet_id)
        accepted = datanets.counts(spec.datanet_id).get("accepted", 0)
        latest_rows = datanets.snapshot_row(spec.datanet_id, current.latest_version).row_count \
            if current.latest_version else -1
        if accepted != latest_rows:
            stage(f"taking snapshot of datanet {spec.datanet_id}")
            version = datanets.snapshot(spec.datanet_id, factory.operator).version
    version = datanets.resolve_version(spec.datanet_id, version)
    snap = datanets.snapshot_row(spec.datanet_id, version)  # the rows themselves are read by training
    record["snapshot"] = {"datanet": spec.datanet_id, "version": version, "root": snap.root, "rows": snap.row_count}
    atomic_write_json(run_file, record)

    # 2. train (or find the adapter a crashed earlier attempt of this run already made)
    try:
        existing = factory.get(spec.adapter_name)
    except NotFoundError:  # not trained yet
        existing = None
    if existing is not None and existing.snapshot_version == version and existing.datanet_id == spec.datanet_id:
        adapter = existing
        stage(f"adapter {adapter.name} exists from an earlier attempt of this run; reusing it")
    else:
        partial = (factory.adapters_dir / f"{spec.adapter_name}.partial")
        request = TrainRequest(datanet_id=spec.datanet_id, base_dir=spec.base_dir, config=spec.config,
                               snapshot_version=version, name=spec.adapter_name, developer=spec.developer,
                               device=spec.device, register=False, resume=partial.exists())
        adapter = factory.train(request, on_progress=on_progress, on_stage=stage).adapter
    record["adapter"] = {"name": adapter.name, "adapterHash": adapter.adapter_hash,
                         "provenanceHash": adapter.provenance_hash, "baseModelHash": adapter.base_model_hash,
                         "path": adapter.path}
    atomic_write_json(run_file, record)

    # 3. bench
    report = None
    if spec.bench is not None:
        source = str(spec.bench.get("eval", "validation"))
        eval_set = factory.eval_set(
            eval_file=None if source in ("validation", "all") else spec.file.parent / source,
            datanet=spec.datanet_id, snapshot=version, split=source if source in ("validation", "all") else "all",
            val_fraction=spec.config.val_fraction)
        others = [str(a) for a in spec.bench.get("adapters", [])]
        stage("benchmarking")
        report, records = factory.benchmark(
            spec.base_dir, [*others, adapter.name], eval_set, device=spec.device,
            max_new_tokens=int(spec.bench.get("max_new_tokens", 64)),
            batch_size=int(spec.bench.get("batch_size", 8)), max_length=spec.config.max_length)
        record["benchmark"] = report_to_json(report)
        record["benchmarkRecordSeqs"] = [r.seq for r in records]
        atomic_write_json(run_file, record)

    # 4. register
    if spec.register:
        stage("registering on chain")
        adapter, _ = factory.register(adapter.name)
        record["registration"] = {"version": adapter.chain_version, "txHash": adapter.tx_hash}
    record.update(status="done", finishedAt=int(time.time()))
    atomic_write_json(run_file, record)
    return PipelineRun(run_file, adapter.name, adapter.adapter_hash, report, record)
