"""Kronfluence EK-FAC influence on a PEFT LoRA adapter: a peer method for scripts/bench_attribution.py.

Runs INSIDE the separate virtualenv made by ``scripts/peers/setup_kronfluence.sh``
(``.venv-kronfluence``: torch 2.13.0 CPU, kronfluence 1.0.1, transformers, peft, numpy), never in
the project's own venv; ``scripts/peers/kronfluence_client.py`` prepares a work directory and calls
it with that venv's python::

    .venv-kronfluence/bin/python scripts/peers/kronfluence_peer.py WORKDIR

WORKDIR holds
  base/          a Hugging Face causal LM directory
  adapter/       a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors)
  train.json     [{"input_ids": [...], "labels": [...]}, ...]  (labels: -100 = not scored)
  queries.json   same format
  config.json    {"damping": float | null, "batch_size": int}
                 optional: "seed" (int, default 0), "empirical_fisher" (bool, default false)
and receives
  scores.npy     float64 [n_queries, n_train]; positive = the training row helps the query
                 (upweighting it lowers the query's loss)
  timing.json    {"factors_seconds": float, "scores_seconds": float}
  kronfluence/   Kronfluence's own factor and score files (can be deleted)

Only the LoRA matrices (the ``lora_A.default`` / ``lora_B.default`` nn.Linear submodules) are
tracked: the influence is that of the adapter's parameters, the ones fine-tuning changed. The
loss of an example is the SUM of token cross-entropies over its labelled tokens, shifted as in a
causal LM (logits[:, :-1] against labels[:, 1:]), both for fitting the factors and for the query
measurement (as in Kronfluence's language-model examples).

``damping``: a float is used as is; null means Kronfluence's heuristic (0.1 x the mean
eigenvalue of each module); a missing key means Kronfluence's default (1e-8).

CPU only, 2 threads, seeded: the true-Fisher factors sample labels from the model
(``torch.multinomial``), which is deterministic on CPU for a fixed seed.
"""

from __future__ import annotations

import os

# Before torch is imported: 2 threads, no network, no GPU.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils import data  # noqa: E402

IGNORE_INDEX = -100
ADAPTER_NAME = "default"
_LORA_SUFFIXES = (f".lora_A.{ADAPTER_NAME}", f".lora_B.{ADAPTER_NAME}")


class PeerError(Exception):
    """A problem with the inputs: reported on stderr, exit status 2."""


# --------------------------------------------------------------------------------------------
# Data


def _load_examples(path: Path) -> list[dict[str, list[int]]]:
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PeerError(f"cannot read {path.name}: {exc}") from exc
    if not isinstance(rows, list) or not rows:
        raise PeerError(f"{path.name} must be a non-empty list")
    out = []
    for i, row in enumerate(rows):
        try:
            ids = [int(t) for t in row["input_ids"]]
            labels = [int(t) for t in row["labels"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise PeerError(f"{path.name}[{i}]: needs integer lists 'input_ids' and 'labels'") from exc
        if not ids or len(ids) != len(labels):
            raise PeerError(f"{path.name}[{i}]: input_ids and labels must be non-empty and of equal length")
        out.append({"input_ids": ids, "labels": labels})
    return out


class ExampleDataset(data.Dataset):
    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.rows[index]


def make_collate(pad_id: int):
    """Right-pads a batch: padded positions get attention 0 and label -100, so with a causal
    model the real positions (and so every loss, gradient and covariance) are as unpadded."""

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, row in enumerate(batch):
            n = len(row["input_ids"])
            ids[i, :n] = torch.tensor(row["input_ids"], dtype=torch.long)
            labels[i, :n] = torch.tensor(row["labels"], dtype=torch.long)
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


# --------------------------------------------------------------------------------------------
# Task


def _make_task(tracked: list[str]):
    from kronfluence.task import Task

    class LoraLanguageModelingTask(Task):
        """Summed token cross-entropy of a causal LM; only the LoRA matrices are tracked."""

        def _shifted(self, batch: dict[str, torch.Tensor], model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            logits = logits[..., :-1, :].contiguous().view(-1, logits.size(-1))
            labels = batch["labels"][..., 1:].contiguous().view(-1)
            return logits, labels

        def compute_train_loss(self, batch: Any, model: nn.Module, sample: bool = False) -> torch.Tensor:
            logits, labels = self._shifted(batch, model)
            if sample:
                # True Fisher: labels drawn from the model's own predictions at the scored positions.
                with torch.no_grad():
                    probs = torch.softmax(logits.detach(), dim=-1)
                    sampled = torch.multinomial(probs, num_samples=1).flatten()
                    sampled[labels == IGNORE_INDEX] = IGNORE_INDEX
                labels = sampled
            return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")

        def compute_measurement(self, batch: Any, model: nn.Module) -> torch.Tensor:
            # f(theta) = the query's summed loss (= - summed log-prob of its labelled tokens).
            logits, labels = self._shifted(batch, model)
            return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")

        def get_influence_tracked_modules(self) -> list[str]:
            return list(tracked)

        def get_attention_mask(self, batch: Any) -> torch.Tensor:
            return batch["attention_mask"]

    return LoraLanguageModelingTask()


# --------------------------------------------------------------------------------------------
# Model


def load_model(base_dir: Path, adapter_dir: Path) -> nn.Module:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if not (base_dir / "config.json").is_file():
        raise PeerError(f"{base_dir} is not a Hugging Face model directory (no config.json)")
    if not (adapter_dir / "adapter_config.json").is_file():
        raise PeerError(f"{adapter_dir} is not a PEFT adapter directory (no adapter_config.json)")
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32, local_files_only=True)
    model = PeftModel.from_pretrained(base, str(adapter_dir), adapter_name=ADAPTER_NAME, is_trainable=False)
    model.eval()
    return model


def lora_module_names(model: nn.Module) -> list[str]:
    names = [
        name
        for name, module in model.named_modules()
        if name.endswith(_LORA_SUFFIXES) and type(module) is nn.Linear  # noqa: E721 (Kronfluence wraps exact nn.Linear)
    ]
    if not names:
        raise PeerError("the adapter has no lora_A/lora_B nn.Linear modules to track")
    return names


# --------------------------------------------------------------------------------------------


def run(workdir: Path) -> dict[str, Any]:
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.utils.dataset import DataLoaderKwargs

    try:
        config = json.loads((workdir / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise PeerError(f"cannot read config.json: {exc}") from exc
    batch_size = int(config.get("batch_size", 4))
    if batch_size < 1:
        raise PeerError("batch_size must be >= 1")
    damping = config.get("damping", 1e-8)  # key absent: Kronfluence's default; null: its heuristic
    damping = None if damping is None else float(damping)
    seed = int(config.get("seed", 0))
    empirical_fisher = bool(config.get("empirical_fisher", False))

    train = _load_examples(workdir / "train.json")
    queries = _load_examples(workdir / "queries.json")

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

    model = load_model(workdir / "base", workdir / "adapter")
    tracked = lora_module_names(model)
    task = _make_task(tracked)
    model = prepare_model(model, task)

    pad_id = model.config.pad_token_id
    if pad_id is None:
        pad_id = model.config.eos_token_id
    if isinstance(pad_id, (list, tuple)):
        pad_id = pad_id[0] if pad_id else None
    pad_id = 0 if pad_id is None else int(pad_id)

    out_dir = workdir / "kronfluence"
    shutil.rmtree(out_dir, ignore_errors=True)
    analyzer = Analyzer(
        analysis_name="lora",
        model=model,
        task=task,
        cpu=True,
        log_level=logging.WARNING,
        disable_tqdm=True,
        output_dir=str(out_dir),
    )
    analyzer.set_dataloader_kwargs(DataLoaderKwargs(num_workers=0, collate_fn=make_collate(pad_id)))

    factor_args = FactorArguments(strategy="ekfac", use_empirical_fisher=empirical_fisher)
    score_args = ScoreArguments(damping_factor=damping)
    train_ds, query_ds = ExampleDataset(train), ExampleDataset(queries)

    t0 = time.perf_counter()
    analyzer.fit_all_factors(
        factors_name="ekfac",
        dataset=train_ds,
        per_device_batch_size=batch_size,
        factor_args=factor_args,
        overwrite_output_dir=True,
    )
    t1 = time.perf_counter()
    analyzer.compute_pairwise_scores(
        scores_name="pairwise",
        factors_name="ekfac",
        query_dataset=query_ds,
        train_dataset=train_ds,
        per_device_query_batch_size=batch_size,
        per_device_train_batch_size=batch_size,
        score_args=score_args,
        overwrite_output_dir=True,
    )
    t2 = time.perf_counter()
    scores = analyzer.load_pairwise_scores("pairwise")["all_modules"]

    # Sign convention. Kronfluence's pairwise score is a plain product, with no minus sign:
    #     score(q, z) = grad f_q(theta)^T  H^-1  grad L_z(theta)
    # (PairwiseScoreTracker: einsum of the preconditioned query gradient with the per-sample
    # training gradient). Upweighting z by eps moves theta by -eps H^-1 grad L_z, so f_q changes
    # by -eps * score(q, z). With f_q = the query's summed LOSS, a positive score means that
    # upweighting z lowers the query's loss: z helps q. That is already our convention (positive
    # = helps), so the scores are NOT negated. (The maintainer's reading, kronfluence issue #9:
    # the score is the change in the query's loss when the training example is down-weighted.)
    result = scores.detach().to(torch.float64).cpu().numpy()
    if result.shape != (len(queries), len(train)):
        raise RuntimeError(f"Kronfluence returned shape {result.shape}, expected {(len(queries), len(train))}")
    if not np.all(np.isfinite(result)):
        # Typically a tracked LoRA matrix whose gradient is identically zero (an untrained adapter:
        # lora_B = 0 makes every lora_A gradient 0); with damping null the heuristic damping of
        # that module is 0 too and its preconditioned gradient is 0/0.
        raise PeerError(
            "non-finite scores (a LoRA module with all-zero gradients, e.g. an untrained adapter "
            "with lora_B = 0? a positive damping avoids the 0/0)"
        )

    tmp = workdir / "scores.tmp.npy"
    np.save(tmp, result)
    os.replace(tmp, workdir / "scores.npy")
    timing = {"factors_seconds": t1 - t0, "scores_seconds": t2 - t1}
    (workdir / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    return {
        "shape": list(result.shape),
        "tracked_modules": len(tracked),
        "damping": damping,
        **timing,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        print(f"usage: {argv[0]} WORKDIR", file=sys.stderr)
        return 2
    workdir = Path(argv[1])
    if not workdir.is_dir():
        print(f"kronfluence_peer: no such directory: {workdir}", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        summary = run(workdir)
    except PeerError as exc:
        print(f"kronfluence_peer: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
