"""The LoRA training loop (edge: torch + peft).

A plain loop on purpose: forward, backward, (clip), optimiser step, schedule step. Nothing
else runs per step except a progress callback, so the framework costs nothing against a
hand-written transformers + peft loop (``scripts/bench_training.py`` measures it).

Determinism
-----------
Everything random comes from ``config.seed``: the LoRA init and dropout use torch's global
generator, seeded before the adapter is created; the batch order of epoch ``e`` is a
shuffle seeded by ``(seed, e)``; deterministic torch kernels are requested. On CPU, the same
inputs, library versions and thread count give a byte-identical ``adapter_model.safetensors``.

Checkpoints and resume
----------------------
``<work_dir>/checkpoints/step-<N>/`` holds the trainable weights (safetensors), the optimiser
and schedule state, the torch RNG state and ``state.json`` (written last: a checkpoint
without it is incomplete and ignored). A checkpoint is written every
``checkpoint_every`` steps and when the run is interrupted (Ctrl-C, a cancelled job, an
error in the progress callback). Resuming restores all of it and skips the batches already
seen, so a resumed run ends with the same adapter as an uninterrupted one. A checkpoint
made with other settings or data (its fingerprint differs) is refused.

Trajectory snapshots
--------------------
``trajectory`` (fractions of the run's steps) names the early states of the adapter that
attribution scores with (:mod:`loraledger.attribution`: gradients at a few early checkpoints
predict what each row did better than gradients at the trained adapter, which has fit its rows).
At each such step the adapter is saved whole in PEFT's layout under
``<work_dir>/trajectory/step-<N>/`` (written to a temporary name, then renamed; before that
step's checkpoint, so a resumed run has every snapshot before its resume point).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...errors import InputError
from ...failpoints import failpoint
from ...fsutil import atomic_write_json
from ..config import TrainConfig
from ..data import Example, batches
from .tensors import collate, peak_memory_bytes, reset_peak_memory

__all__ = ["TRAJECTORY_DIR", "TrainOutcome", "TrainProgress", "attach_lora", "mean_token_loss", "train_lora",
           "trajectory_steps"]

_KEEP_CHECKPOINTS = 2


@dataclass(frozen=True)
class TrainProgress:
    """Reported after every optimiser step."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    learning_rate: float
    #: Tokens trained in this run so far (not counting a resumed run's earlier part).
    tokens: int
    elapsed: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class TrainOutcome:
    """The trained PEFT model and what the run measured."""

    model: Any
    steps: int
    total_steps: int
    losses: list[float]
    val_loss: float | None
    tokens: int
    seconds: float
    resumed_from: int | None
    peak_memory_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        """Throughput of this run (a resumed run counts only what it trained itself)."""
        done = self.extra.get("tokensThisRun", self.tokens)
        return done / self.seconds if self.seconds > 0 else 0.0


def attach_lora(model: Any, config: TrainConfig) -> Any:
    """Wrap ``model`` in a PEFT LoRA model (seeded init); ``InputError`` for unknown modules."""
    from peft import LoraConfig, get_peft_model

    assert config.target_modules is not None, "resolve target modules before training"
    torch.manual_seed(config.seed)
    # GPT-2 style Conv1D layers store their weight transposed; PEFT must be told, or it warns and guesses.
    conv1d = any(type(module).__name__ == "Conv1D" and name.rsplit(".", 1)[-1] in config.target_modules
                 for name, module in model.named_modules())
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM",
                      fan_in_fan_out=conv1d)
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        names = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)) or type(module).__name__ == "Conv1D"})
        raise InputError(f"target modules {list(config.target_modules)} do not match the base model "
                         f"({exc}); its adaptable modules are: {', '.join(names)}") from None


def _steps_per_epoch(n_examples: int, config: TrainConfig) -> int:
    return math.ceil(math.ceil(n_examples / config.batch_size) / config.gradient_accumulation)


def _total_steps(n_examples: int, config: TrainConfig) -> int:
    total = _steps_per_epoch(n_examples, config) * config.epochs
    return min(total, config.max_steps) if config.max_steps else total


def _schedule(config: TrainConfig, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / (config.warmup_steps + 1)
        if config.lr_schedule == "constant":
            return 1.0
        return max(0.0, (total - step) / max(1, total - config.warmup_steps))
    return factor


def mean_token_loss(model: Any, examples: Sequence[Example], *, batch_size: int, pad_id: int,
                    device: str) -> tuple[float | None, int]:
    """(mean loss per target token, number of target tokens) over ``examples``, no gradients."""
    total, tokens = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = collate(examples[start:start + batch_size], pad_id, device)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"][:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum")
            total += float(loss)
            tokens += int((labels != -100).sum())
    model.train(was_training)
    return (total / tokens if tokens else None), tokens


def _fingerprint(config: TrainConfig, examples: Sequence[Example], extra: dict[str, Any]) -> str:
    import hashlib

    digest = hashlib.sha256()
    digest.update(json.dumps({"config": config.to_json(), **extra}, sort_keys=True).encode())
    for example in examples:
        digest.update(example.row_hash.encode())
        digest.update(str(len(example.input_ids)).encode())
    return digest.hexdigest()


#: Where ``train_lora`` puts its trajectory snapshots, under ``work_dir``.
TRAJECTORY_DIR = "trajectory"


def trajectory_steps(total: int, fractions: Sequence[float]) -> list[int]:
    """The steps (1-based, distinct, ascending) at ``fractions`` of a run of ``total`` steps."""
    if any(not 0 < f <= 1 for f in fractions):
        raise InputError(f"trajectory fractions must be in (0, 1], got {list(fractions)}")
    return sorted({min(total, max(1, round(total * f))) for f in fractions})


def _save_snapshot(directory: Path, model: Any, step: int) -> None:
    target = directory / f"step-{step:08d}"
    if target.exists():
        return  # a resumed run passing the step again: the snapshot is the same
    staging = directory / f".step-{step:08d}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))
    (staging / "README.md").unlink(missing_ok=True)
    os.replace(staging, target)


def _trainable_state(model: Any) -> dict[str, torch.Tensor]:
    return {name: param.detach().to("cpu").contiguous() for name, param in model.named_parameters() if param.requires_grad}


def _latest_checkpoint(directory: Path) -> Path | None:
    done = sorted(p.parent for p in directory.glob("step-*/state.json"))
    return done[-1] if done else None


def _save_checkpoint(directory: Path, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    target = directory / f"step-{state['step']:08d}"
    if (target / "state.json").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    save_file(_trainable_state(model), str(target / "adapter.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
               target / "trainer.pt")
    atomic_write_json(target / "state.json", state)  # last: marks the checkpoint complete
    failpoint("train.after_checkpoint")
    for old in sorted(p.parent for p in directory.glob("step-*/state.json"))[:-_KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any, fingerprint: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    state = json.loads((path / "state.json").read_text())
    if state.get("fingerprint") != fingerprint:
        raise InputError(f"checkpoint {path} was made with other settings or data; "
                         "train again without --resume (or with the original settings)")
    weights = load_file(str(path / "adapter.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor.to(params[name].device))
    saved = torch.load(path / "trainer.pt", weights_only=False)  # our own file, written above
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    if saved.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    return state


@contextmanager
def _deterministic_torch(device: str) -> Iterator[None]:
    """Deterministic torch kernels while training; the process's own setting afterwards."""
    if device.startswith("cuda"):
        # cuBLAS is only deterministic with a fixed workspace (read when cuBLAS starts).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def train_lora(
    model: Any,
    train: Sequence[Example],
    validation: Sequence[Example],
    config: TrainConfig,
    *,
    pad_id: int,
    device: str,
    work_dir: Path,
    resume: bool = False,
    on_progress: Callable[[TrainProgress], None] | None = None,
    fingerprint_extra: dict[str, Any] | None = None,
    trajectory: Sequence[float] = (),
) -> TrainOutcome:
    """Fine-tune a LoRA adapter on ``train``; ``model`` is the loaded base model (on ``device``).

    ``on_progress`` is called after every optimiser step; if it raises (a cancelled job,
    Ctrl-C), a checkpoint is written first so ``resume=True`` continues from there.
    """
    if not train:
        raise InputError("no training examples: every row was held out for validation or too long "
                         "for max_length")
    with _deterministic_torch(device):
        peft_model = attach_lora(model, config)
        peft_model.train()
        trainable = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
        total = _total_steps(len(train), config)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, total))
        fingerprint = _fingerprint(config, train, fingerprint_extra or {})
        checkpoints = work_dir / "checkpoints"
        snapshot_steps = trajectory_steps(total, trajectory)

        step, epoch, skip, losses, tokens, resumed_from = 0, 0, 0, [], 0, None
        if resume:
            latest = _latest_checkpoint(checkpoints)
            if latest is None:
                raise InputError(f"--resume: no checkpoint in {checkpoints}")
            state = _load_checkpoint(latest, peft_model, optimizer, scheduler, fingerprint)
            step, epoch, skip = state["step"], state["epoch"], state["batchesDone"]
            losses, tokens, resumed_from = list(state["losses"]), state["tokens"], state["step"]
        elif checkpoints.exists():
            shutil.rmtree(checkpoints)

        def checkpoint(batches_done: int) -> None:
            _save_checkpoint(checkpoints, peft_model, optimizer, scheduler, {
                "step": step, "epoch": epoch, "batchesDone": batches_done, "losses": losses, "tokens": tokens,
                "fingerprint": fingerprint,
            })

        reset_peak_memory(device)
        started, tokens_before = time.perf_counter(), tokens
        accum = config.gradient_accumulation
        batches_done = skip
        try:
            while step < total and epoch < config.epochs:
                batch_list = list(batches(train, config.batch_size, seed=config.seed, epoch=epoch))
                batches_done = skip
                for index in range(skip, len(batch_list), accum):
                    group = batch_list[index:index + accum]
                    step_loss = 0.0
                    for examples in group:
                        inputs = collate(examples, pad_id, device)
                        loss = peft_model(**inputs).loss / len(group)
                        loss.backward()
                        step_loss += float(loss.detach())
                        tokens += sum(len(e.input_ids) for e in examples)
                    if config.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    batches_done = index + len(group)
                    losses.append(step_loss)
                    if on_progress is not None:
                        on_progress(TrainProgress(step, total, epoch, step_loss, scheduler.get_last_lr()[0],
                                                  tokens - tokens_before, time.perf_counter() - started))
                    if step in snapshot_steps:
                        _save_snapshot(work_dir / TRAJECTORY_DIR, peft_model, step)
                    if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total:
                        checkpoint(batches_done)
                    if step >= total:
                        break
                if batches_done >= len(batch_list):
                    epoch, skip, batches_done = epoch + 1, 0, 0
                else:
                    break  # max_steps reached mid-epoch
        except BaseException:
            if step > (resumed_from or 0):
                checkpoint(batches_done)
            raise
        seconds = time.perf_counter() - started
        val_loss, _ = mean_token_loss(peft_model, validation, batch_size=config.batch_size, pad_id=pad_id, device=device) \
            if validation else (None, 0)
        peft_model.eval()
        return TrainOutcome(peft_model, step, total, losses, val_loss, tokens, seconds, resumed_from,
                            peak_memory_bytes(device), {"tokensThisRun": tokens - tokens_before})
