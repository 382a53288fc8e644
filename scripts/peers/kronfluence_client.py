"""Run Kronfluence's EK-FAC influence (scripts/peers/kronfluence_peer.py) from the main venv.

Kronfluence lives in its own virtualenv, ``.venv-kronfluence`` at the repo root (made by
``scripts/peers/setup_kronfluence.sh``), so that it never touches the project's dependencies.
This module needs only numpy and the standard library; it writes a work directory, runs the peer
script with that venv's python in a subprocess and reads back the score matrix::

    from kronfluence_client import kronfluence_scores
    scores, note = kronfluence_scores(peft_model, base_dir, train_examples, query_examples, work)
    # scores: float64 [n_queries, n_train], positive = the training example helps the query
    #         (lowers its loss), or None with note "not run: <reason>"

``train_examples`` / ``query_examples`` are :class:`loraledger.training.data.Example` objects
(anything with ``.input_ids`` and ``.labels`` sequences; plain dicts with those keys work too).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER_SCRIPT = Path(__file__).resolve().parent / "kronfluence_peer.py"
SETUP_SCRIPT = "scripts/peers/setup_kronfluence.sh"
ADAPTER_NAME = "default"


def kronfluence_python() -> Path:
    """The peer venv's interpreter (``$KRONFLUENCE_PYTHON`` overrides)."""
    override = os.environ.get("KRONFLUENCE_PYTHON")
    return Path(override) if override else REPO_ROOT / ".venv-kronfluence" / "bin" / "python"


def _rows(examples: Iterable[Any]) -> list[dict[str, list[int]]]:
    rows = []
    for ex in examples:
        if isinstance(ex, dict):
            ids, labels = ex["input_ids"], ex["labels"]
        else:
            ids, labels = ex.input_ids, ex.labels
        rows.append({"input_ids": [int(t) for t in ids], "labels": [int(t) for t in labels]})
    return rows


def _short(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    return last if len(last) <= limit else last[: limit - 3] + "..."


def _link_base(base_dir: Path, target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    try:
        target.symlink_to(base_dir.resolve(), target_is_directory=True)
    except OSError:
        shutil.copytree(base_dir, target)


def kronfluence_scores(
    model: Any,
    base_dir: Path,
    train_examples: Iterable[Any],
    query_examples: Iterable[Any],
    work: Path,
    *,
    timeout: float = 1800,
    damping: float | None = None,
    batch_size: int = 4,
    empirical_fisher: bool = False,
) -> tuple[np.ndarray | None, str]:
    """Kronfluence EK-FAC pairwise influence of each training example on each query.

    ``model`` is the trained PEFT model (its ``"default"`` LoRA adapter is scored; other adapters
    it holds are ignored), ``base_dir`` the base model directory it was built on. Returns
    ``(scores, note)``: scores float64 ``[n_queries, n_train]`` (positive = helps), or ``None``
    and ``"not run: <reason>"`` on any failure. ``damping=None`` uses Kronfluence's heuristic
    (0.1 x mean eigenvalue per module). ``empirical_fisher=False`` (Kronfluence's recommended
    default) fits the factors on labels sampled from the model (seeded, so repeatable for a given
    ``batch_size``, but the sample, hence the scores, changes with ``batch_size``); ``True`` uses
    the data's labels and makes the scores independent of ``batch_size``.
    """
    python = kronfluence_python()
    if not python.exists():
        return None, f"not run: no {python} (run {SETUP_SCRIPT})"
    try:
        train_rows, query_rows = _rows(train_examples), _rows(query_examples)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return None, f"not run: bad examples ({exc})"
    if not train_rows or not query_rows:
        return None, "not run: no training examples or no queries"
    base_dir = Path(base_dir)
    if not (base_dir / "config.json").is_file():
        return None, f"not run: {base_dir} is not a model directory"

    work = Path(work)
    try:
        work.mkdir(parents=True, exist_ok=True)
        for stale in ("adapter", "kronfluence"):
            shutil.rmtree(work / stale, ignore_errors=True)
        for stale in ("scores.npy", "timing.json"):
            (work / stale).unlink(missing_ok=True)
        # PEFT writes the adapter named "default" at the top of the directory (others would go to
        # sub-directories), so work/adapter is a plain adapter dir that loads as "default".
        model.save_pretrained(str(work / "adapter"), selected_adapters=[ADAPTER_NAME])
        if not (work / "adapter" / "adapter_config.json").is_file():
            return None, "not run: saving the adapter wrote no adapter_config.json"
        _link_base(base_dir, work / "base")
        (work / "train.json").write_text(json.dumps(train_rows))
        (work / "queries.json").write_text(json.dumps(query_rows))
        config = {"damping": damping, "batch_size": int(batch_size), "empirical_fisher": bool(empirical_fisher)}
        (work / "config.json").write_text(json.dumps(config))
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        return None, f"not run: preparing {work} failed ({type(exc).__name__}: {exc})"

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(
        OMP_NUM_THREADS="2",
        MKL_NUM_THREADS="2",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        CUDA_VISIBLE_DEVICES="",
        PYTHONHASHSEED="0",
    )
    try:
        proc = subprocess.run(
            [str(python), str(PEER_SCRIPT), str(work)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"not run: timed out after {timeout:g}s"
    except OSError as exc:
        return None, f"not run: cannot start {python} ({exc})"
    if proc.returncode != 0:
        (work / "peer.log").write_text(proc.stdout + proc.stderr)
        return None, f"not run: peer exited {proc.returncode}: {_short(proc.stderr or proc.stdout)}"

    try:
        scores = np.load(work / "scores.npy")
        timing = json.loads((work / "timing.json").read_text())
    except (OSError, ValueError) as exc:
        return None, f"not run: no readable scores ({exc})"
    expected = (len(query_rows), len(train_rows))
    if scores.shape != expected:
        return None, f"not run: scores have shape {scores.shape}, expected {expected}"
    if not np.all(np.isfinite(scores)):
        return None, "not run: non-finite scores"
    try:
        tracked = json.loads(_short(proc.stdout)).get("tracked_modules", "?")
    except ValueError:
        tracked = "?"
    damp = "heuristic" if damping is None else f"{damping:g}"
    fisher = "empirical" if empirical_fisher else "true"
    note = (
        f"EK-FAC on LoRA modules ({tracked} tracked), {fisher} Fisher, damping {damp}, "
        f"factors {timing['factors_seconds']:.1f}s, scores {timing['scores_seconds']:.1f}s"
    )
    return scores.astype(np.float64, copy=False), note


if __name__ == "__main__":  # pragma: no cover - tiny manual check
    print(f"peer python: {kronfluence_python()} ({'present' if kronfluence_python().exists() else 'missing'})")
    sys.exit(0)
