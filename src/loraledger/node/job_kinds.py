"""The ModelFactory's background job kinds: ``train``, ``bench`` and ``pipeline``.

Parameters (JSON, camelCase) — validated when the job is submitted, so a bad job is
refused before it is queued:

``train``
    ``{"datanet": 1, "snapshot": 2?, "base": "/models/x", "name"?, "developer"?,
    "device"?: "auto", "register"?: true, "resume"?: false, "featurize"?: true, "config"?: {TrainConfig
    fields, snake_case}}`` (``featurize``: build the adapter's attribution index after training)
``bench``
    ``{"base": "/models/x", "adapters": ["a", "b"], "eval"?: "/path/eval.jsonl" |
    "datanet"?: 1, "snapshot"?: 2, "split"?: "validation", "valFraction"?: 0.1,
    "maxNewTokens"?: 64, "batchSize"?: 8, "maxLength"?: 512, "device"?}``
``pipeline``
    ``{"file": "/path/pipeline.toml"}``

A training job reports ``{step, totalSteps, epoch, loss, learningRate, tokensPerSecond}``
and checks for cancellation after every optimiser step; a cancelled or interrupted run
keeps its checkpoint, so submitting it again with ``"resume": true`` continues it; a run the
node stopped (shutdown or crash) is queued again with ``"resume": true`` by the node itself. Each job
runs in a child process of the node (:mod:`loraledger.jobs.isolated`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import InputError, NotFoundError
from ..jobs.queue import JobKind
from ..records.fields import parse_address
from ..training.config import TrainConfig, validate_adapter_name
from ..training.factory import ModelFactory, TrainRequest
from ..training.hf.basemodel import inspect_base_model

#: Builds the services a job runs on in its child process (``opener(settings, operator=...)``).
OPENER = "loraledger.node.context:open_factory"

__all__ = ["OPENER", "bench_job", "factory_job_kinds", "pipeline_job", "train_job"]


def _int(params: dict[str, Any], key: str, *, required: bool = False, minimum: int = 1) -> int | None:
    value = params.get(key)
    if value is None:
        if required:
            raise InputError(f"{key} is required")
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"{key} must be an integer >= {minimum}, not {value!r}")
    return value


def _known(params: dict[str, Any], allowed: set[str], kind: str) -> None:
    unknown = set(params) - allowed
    if unknown:
        raise InputError(f"unknown {kind} parameters {sorted(unknown)}; allowed: {sorted(allowed)}")


def _base(params: dict[str, Any]) -> str:
    base = params.get("base")
    if not isinstance(base, str):
        raise InputError("base (the base model directory) is required")
    return str(inspect_base_model(base).path)


def validate_train(params: dict[str, Any]) -> dict[str, Any]:
    _known(params, {"datanet", "snapshot", "base", "name", "developer", "device", "register", "resume", "featurize",
                    "config"}, "train")
    config = params.get("config", {})
    if not isinstance(config, dict):
        raise InputError("config must be an object of training settings")
    out = {
        "datanet": _int(params, "datanet", required=True), "snapshot": _int(params, "snapshot"),
        "base": _base(params), "config": TrainConfig.parse(config).model_dump(mode="json"),
        "device": str(params.get("device", "auto")), "register": bool(params.get("register", True)),
        "resume": bool(params.get("resume", False)), "featurize": bool(params.get("featurize", True)),
        "name": validate_adapter_name(params["name"]) if params.get("name") is not None else None,
        "developer": parse_address(params["developer"]) if params.get("developer") is not None else None,
    }
    return out


def validate_bench(params: dict[str, Any]) -> dict[str, Any]:
    _known(params, {"base", "adapters", "eval", "datanet", "snapshot", "split", "valFraction", "maxNewTokens",
                    "batchSize", "maxLength", "device"}, "bench")
    adapters = params.get("adapters", [])
    if not isinstance(adapters, list) or not all(isinstance(a, str) for a in adapters):
        raise InputError("adapters must be a list of adapter names")
    eval_file = params.get("eval")
    if eval_file is not None and (not isinstance(eval_file, str) or not Path(eval_file).is_file()):
        raise InputError(f"eval must be the path of a JSONL file on the node, not {eval_file!r}")
    if (eval_file is None) == (params.get("datanet") is None):
        raise InputError("name the eval set: eval (a file) or datanet (+ snapshot, split)")
    return {
        "base": _base(params), "adapters": [validate_adapter_name(a) for a in adapters], "eval": eval_file,
        "datanet": _int(params, "datanet"), "snapshot": _int(params, "snapshot"),
        "split": str(params.get("split", "validation")), "valFraction": float(params.get("valFraction", 0.1)),
        "maxNewTokens": _int(params, "maxNewTokens") or 64, "batchSize": _int(params, "batchSize") or 8,
        "maxLength": _int(params, "maxLength", minimum=8) or 512, "device": str(params.get("device", "auto")),
    }


def validate_pipeline(params: dict[str, Any]) -> dict[str, Any]:
    from ..training.pipeline import load_pipeline

    _known(params, {"file"}, "pipeline")
    if not isinstance(params.get("file"), str):
        raise InputError("file (the pipeline TOML on the node) is required")
    return {"file": str(load_pipeline(params["file"]).file)}


def _progress_reporter(ctx: Any):
    def report(progress: Any) -> None:
        ctx.report({"step": progress.step, "totalSteps": progress.total_steps, "epoch": progress.epoch,
                    "loss": round(progress.loss, 6), "learningRate": progress.learning_rate,
                    "tokensPerSecond": round(progress.tokens_per_second, 1)})
        ctx.check_cancelled()  # raises: the trainer checkpoints, the job ends cancelled
    return report


def _adapter_result(row: Any, provenance: dict[str, Any]) -> dict[str, Any]:
    return {"adapter": row.name, "adapterHash": row.adapter_hash, "provenanceHash": row.provenance_hash,
            "path": row.path, "chainVersion": row.chain_version, "metrics": provenance.get("metrics")}


def train_job(factory: ModelFactory, params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """The ``train`` job: ``factory.train`` with progress and cancellation."""

    request = TrainRequest(
        datanet_id=params["datanet"], base_dir=Path(params["base"]), config=TrainConfig.parse(params["config"]),
        snapshot_version=params["snapshot"], name=params["name"], developer=params["developer"],
        resume=params["resume"], device=params["device"], register=params["register"])
    stage = lambda text: ctx.report({"stage": text}, final=True)  # noqa: E731
    result = factory.train(request, on_progress=_progress_reporter(ctx), on_stage=stage)
    out = _adapter_result(result.adapter, result.provenance)
    if params.get("featurize", True):
        from ..attribution.service import AttributionIndexer

        indexed = AttributionIndexer(factory, factory.records).featurize(
            result.adapter.name, base_dir=request.base_dir, device=request.device, on_stage=stage)
        out["attributionIndex"] = indexed.index_hash
    return out


def bench_job(factory: ModelFactory, params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """The ``bench`` job: ``factory.benchmark`` on the named eval set."""
    from ..training.report import report_to_json

    eval_set = factory.eval_set(
        eval_file=Path(params["eval"]) if params["eval"] else None, datanet=params["datanet"],
        snapshot=params["snapshot"], split=params["split"], val_fraction=params["valFraction"])

    def on_model(name: str) -> None:
        ctx.check_cancelled()
        ctx.report({"model": name}, final=True)

    report, records = factory.benchmark(
        Path(params["base"]), params["adapters"], eval_set, device=params["device"],
        max_length=params["maxLength"], batch_size=params["batchSize"], max_new_tokens=params["maxNewTokens"],
        on_model=on_model)
    return {**report_to_json(report), "recordSeqs": [r.seq for r in records]}


def pipeline_job(factory: ModelFactory, params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """The ``pipeline`` job: ``run_pipeline`` on the TOML file."""
    from ..training.pipeline import load_pipeline, run_pipeline

    run = run_pipeline(factory, load_pipeline(params["file"]), on_progress=_progress_reporter(ctx),
                       on_stage=lambda text: ctx.report({"stage": text}, final=True))
    return {"runFile": str(run.path), "adapter": run.adapter_name, "adapterHash": run.adapter_hash}


def factory_job_kinds(factory: ModelFactory, settings: Settings, *, isolated: bool = True) -> list[JobKind]:
    """The job kinds of ``factory``. With ``isolated`` (the default) each job runs in a child
    process (:mod:`loraledger.jobs.isolated`) that opens its own factory from ``settings``: a
    crash or an out-of-memory kill fails the job, not the node."""
    from ..jobs.isolated import run_isolated

    def runner(handler: Any) -> Any:
        if not isolated:
            return lambda params, ctx: handler(factory, params, ctx)
        target = f"{__name__}:{handler.__name__}"
        return lambda params, ctx: run_isolated(target, OPENER, settings, factory.operator, params, ctx)

    def known_datanet(validate: Any) -> Any:
        """``validate`` plus: the datanet and the snapshot (named, or its latest) exist on this
        node, so a job naming an unknown one is refused at submit time (400), not queued to fail."""
        def check(params: dict[str, Any]) -> dict[str, Any]:
            out = validate(params)
            if out.get("datanet") is not None:
                try:
                    factory.datanets.resolve_version(out["datanet"], out.get("snapshot"))
                except NotFoundError as exc:
                    raise InputError(exc.message) from None
            return out
        return check

    # An interrupted training run continues from its checkpoint (one record, one registration: see factory).
    return [JobKind("train", runner(train_job), known_datanet(validate_train), resume=lambda p: {**p, "resume": True}),
            JobKind("bench", runner(bench_job), known_datanet(validate_bench)),
            JobKind("pipeline", runner(pipeline_job), validate_pipeline)]
