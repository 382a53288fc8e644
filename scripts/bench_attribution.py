#!/usr/bin/env python3
"""Attribution benchmark: quality (LDS) and cost of our LoRA influence index against its peers.

One run prints one table (every number measured in this run, peers side by side), then the
planted-contributor accuracy, the costs, and one PASS / FAIL line.

**Model and data.** A tiny random Llama written by ``init_tiny_model`` (2 layers, hidden 64,
4 heads, its 512-token BPE vocabulary; ``--hidden/--layers``). ``--contributors`` (16; quick 8)
synthetic contributors each own a family of invented entities (names drawn from syllables,
seeded); every entity has ``--attributes`` (4) invented facts (colour, capital, founder, ...,
values invented words or numbers), one training row per fact: ``What is the <attribute> of
<entity>?`` → ``<entity>'s <attribute> is <value>.`` as a prompt / completion row, tokenised by
the trainer's own ``encode_row`` (ChatML, completion-only loss). ``--rows`` (256; quick 96) rows
in all. ``--queries`` (64; quick 24) held-out queries ask about distinct facts of the training
rows in other words (``Tell me <entity>'s <attribute>.`` and three other phrasings); the
reference answer is the fact's sentence, so each query has one planted contributor.

**Training.** A rank-8 LoRA (alpha 16, dropout 0, on ``q_proj k_proj v_proj o_proj gate_proj up_proj
down_proj``: ``--targets``; on the attention alone the random base barely learns the facts) trained by
the project's own ``train_lora`` (AdamW, linear decay, ``--epochs`` 20, batch 8, learning rate
``--lr`` 5e-3, seed 0) on all rows: the *full model* every method scores on. Its wall time is
the "training time" of the cost lines. Then ``--retrains`` (m = 32; quick 8) models are trained
from the same base on random 50% subsets of the rows (subset ``i`` drawn from seed ``1000 + i``), with
the same config and seed: only the subset changes (the rows keep their relative order).

**Quality: Linear Datamodeling Score (LDS).** For query ``q`` and subset ``S_i``, the method's
prediction is ``Σ_{j ∈ S_i} score_q(j)`` (scores from the full model) and the truth is the sum of
the log-probabilities of the reference answer's tokens given the prompt under the model retrained
on ``S_i``. A query's LDS is the Spearman correlation of the two over the m subsets
(``scipy.stats.spearmanr``); the table gives the mean over queries (a query whose predictions are
all equal counts as 0) and a bootstrap 95% CI over queries (``--bootstrap`` 1000 resamples).

**Methods** (rows):

* ``ours``: ``build_index`` at the full training's early snapshots (``train_lora``'s trajectory at
  ``ATTRIBUTION_TRAJECTORY`` = 2% and 5% of the steps, as the node's ``train`` keeps them;
  projected LoRA gradients, k = 16 per side, LoGra damped inverse covariance per layer and snapshot,
  fixed point), query scores by ``attribute`` (the node's code path: query gradients at the same
  snapshots, integer scores, spans, contributor weights);
* ``ours at the trained adapter``: the same, at the end of training only (an ablation, not a peer);
* ``grad-dot``: the same projected gradients, ``identity`` preconditioner;
* ``DataInf``: the same projected gradients, ``datainf`` preconditioner;
* ``TracIn-CP``: ``Σ_c η_c · <q_c, g_c>`` over ``--checkpoints`` (3) checkpoints of the full training
  (at 1/3, 2/3 and the end; ``η_c`` the learning rate of the step that made it), gradients projected
  as ours;
* ``TRAK-1``: the ``traker`` package's CPU ``BasicProjector`` (Rademacher, ``--trak-dim`` 256) on
  full per-example LoRA gradients of the answer's mean token margin ``log p - log(1 - p)``; scores
  ``φ_q (ΦᵀΦ + λI)⁻¹ φ_j · (1 - p̄_j)`` (TRAK's formula, one model: no ensemble; λ = 1e-3 of the mean
  diagonal, as Φ has fewer rows than columns);
* ``BM25``: Okapi BM25 (k1 1.5, b 0.75) of the query text (prompt + answer) against each row's text;
* ``span-only``: the exact spans of the answer in the rows (``match_spans`` over the index's span
  index), each span's unigram surprisal shared among the rows holding it;
* ``random``: seeded Gaussian scores.
* ``Kronfluence (EK-FAC)``: Kronfluence 1.0.1's EK-FAC on the trained adapter's LoRA modules (true
  Fisher, its damping heuristic), run by ``scripts/peers/kronfluence_peer.py`` in its own virtualenv
  ``.venv-kronfluence`` (``scripts/peers/setup_kronfluence.sh`` makes it, about a minute, CPU torch);
  its per-query time includes fitting the factors and loading the model, spread over the queries.
  Without that virtualenv its row says so.

``per-query ms`` is the mean wall time to score one query against all rows, from its text to the
row scores (query gradient(s) included; ours: the whole ``attribute`` call). ``planted@1`` is the
share of queries whose planted contributor has the largest sum of its rows' scores among the top
20 rows. The ``planted`` line is the share whose planted contributor gets the largest weight in
``attribute``'s contributor weights. Costs: index build time (``build_index``) against the full
training's wall time; index bytes per row (``write_index``'s file size / rows).

All torch work runs through ``benchutil.on_own_thread`` (2 threads). ``others' CPU`` is the share
of the machine's CPUs that other processes used during the run (``/proc/stat`` less this process's
CPU time): a neighbour on one of the two cores makes 2-thread torch several times slower, so every
time in the run (ms per query, training, index build, the whole run) is inflated when it is high;
the LDS and planted numbers do not depend on it (training is deterministic).

    .venv/bin/python scripts/bench_attribution.py            # full run (m = 32, 256 rows): ~4 min on 2 idle cores
    .venv/bin/python scripts/bench_attribution.py --quick    # m = 8, 96 rows: ~1 min on 2 idle cores
    .venv/bin/python scripts/bench_attribution.py --quick --targets q_proj k_proj v_proj o_proj --epochs 6

Nothing is downloaded; the tiny model, adapters and index go to a temporary directory, removed at
the end. TRAK needs the ``traker`` package (``pip install --no-deps traker``: its CPU projector
needs nothing else; the `ml` extra installs it); without it its row says why it did not run.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import (  # noqa: E402
    SMOLLM,
    SMOLLM_CACHE,
    machine_cpu_seconds,
    on_own_thread,
    progress,
    rss_mib,
    smollm_dir,
    table,
)
from peers.kronfluence_client import kronfluence_scores  # noqa: E402

from loraledger.attribution.attribute import attribute  # noqa: E402
from loraledger.attribution.checkpoints import CheckpointSource, load_checkpoints  # noqa: E402
from loraledger.attribution.features import LoraGradientFeatures  # noqa: E402
from loraledger.attribution.index import INDEX_FILE, write_index  # noqa: E402
from loraledger.attribution.influence import fit_preconditioners, precondition  # noqa: E402
from loraledger.attribution.influence import scores as int_scores  # noqa: E402
from loraledger.attribution.service import build_index  # noqa: E402
from loraledger.attribution.spans import match_spans  # noqa: E402
from loraledger.fsutil import sha256_file  # noqa: E402
from loraledger.training.config import TrainConfig  # noqa: E402
from loraledger.training.data import IGNORE_INDEX, Example, TrainingRow, encode_row, render_chat  # noqa: E402
from loraledger.training.factory import ATTRIBUTION_TRAJECTORY  # noqa: E402
from loraledger.training.hf.trainer import TRAJECTORY_DIR  # noqa: E402

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
FULL = {"rows": 256, "contributors": 16, "queries": 64, "retrains": 32}
QUICK = {"rows": 96, "contributors": 8, "queries": 24, "retrains": 8}
ANCHORS = "Kronfluence EK-FAC LDS 0.44 on GPT-2/WikiText; TRAK-50 ≈ 0.23, TracIn ≈ 0.09 on nanoGPT (dattri)"

SYLLABLES = ("ka", "lo", "mi", "ren", "tar", "vo", "sel", "bru", "dan", "fi", "gor", "hal", "ji", "nep", "qua",
             "zor", "wen", "pil", "ost", "ury")
ATTRIBUTES = ("colour", "capital", "founder", "motto", "river", "mascot", "currency", "anthem")
QUESTIONS = ("What is the {a} of {e}?",)
REWORDED = ("Tell me {e}'s {a}.", "Which {a} does {e} have?", "Do you know the {a} of {e}?",
            "Name the {a} that {e} has.")


# ------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Fact:
    """One invented fact, owned by ``contributor``; ``answer`` is both the training completion and the
    query's reference answer."""

    contributor: str
    entity: str
    attribute: str
    value: str

    @property
    def answer(self) -> str:
        return f"{self.entity}'s {self.attribute} is {self.value}."


@dataclass
class Dataset:
    """The training rows (tokenised as the trainer does) and the held-out queries."""

    facts: list[Fact]
    rows: list[TrainingRow]
    examples: list[Example]
    contributors: list[str]  # per example
    texts: list[str]  # per example: prompt + completion
    queries: list[Fact]
    query_prompts: list[str]  # chat-rendered prompts (what the model sees)
    query_texts: list[str]  # user question + answer (for BM25)
    query_examples: list[Example] = field(default_factory=list)
    query_output_ids: list[list[int]] = field(default_factory=list)


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize()


def make_facts(rows: int, contributors: int, attributes: int, seed: int) -> list[Fact]:
    """``rows`` invented facts: contributor ``c`` owns entities, each with ``attributes`` facts."""
    rng = random.Random(seed)
    names: set[str] = set()
    facts: list[Fact] = []
    per = math.ceil(rows / contributors)
    for c in range(contributors):
        who = f"0x{hashlib.sha256(f'contributor-{c}'.encode()).hexdigest()[:40]}"
        mine: list[Fact] = []
        while len(mine) < per:
            entity = _word(rng, 3)
            if entity in names:
                continue
            names.add(entity)
            for name in rng.sample(ATTRIBUTES, attributes):
                value = str(rng.randrange(10, 999)) if name == "currency" else _word(rng, 2)
                mine.append(Fact(who, entity, name, value))
        facts.extend(mine[:per])
    return facts[:rows]


def make_dataset(tokenizer: Any, args: argparse.Namespace) -> Dataset:
    facts = make_facts(args.rows, args.contributors, args.attributes, args.seed)
    rows, examples, contributors, texts = [], [], [], []
    for fact in facts:
        prompt = QUESTIONS[0].format(a=fact.attribute, e=fact.entity)
        data = {"prompt": prompt, "completion": fact.answer}
        row = TrainingRow(hashlib.sha256(f"{prompt}|{fact.answer}".encode()).hexdigest(), fact.contributor, data)
        example = encode_row(tokenizer, row, 256)
        assert example is not None
        rows.append(row)
        examples.append(example)
        contributors.append(fact.contributor)
        texts.append(f"{prompt} {fact.answer}")
    rng = random.Random(args.seed + 1)
    queries = rng.sample(facts, min(args.queries, len(facts)))
    dataset = Dataset(facts, rows, examples, contributors, texts, queries, [], [])
    for i, fact in enumerate(queries):
        question = REWORDED[i % len(REWORDED)].format(a=fact.attribute, e=fact.entity)
        prompt = render_chat(tokenizer, [{"role": "user", "content": question}], generation_prompt=True)
        prompt_ids = list(tokenizer(prompt)["input_ids"])  # as attribute() tokenises
        output_ids = list(tokenizer(fact.answer, add_special_tokens=False)["input_ids"])
        dataset.query_prompts.append(prompt)
        dataset.query_texts.append(f"{question} {fact.answer}")
        dataset.query_output_ids.append(output_ids)
        dataset.query_examples.append(Example(f"query-{i}", tuple(prompt_ids + output_ids),
                                              tuple([IGNORE_INDEX] * len(prompt_ids) + output_ids)))
    return dataset


# ------------------------------------------------------------------------------ training (torch)


@dataclass
class Trained:
    """A trained PEFT model, its training wall time and losses, and its TracIn checkpoints."""

    model: Any
    seconds: float
    losses: list[float]
    #: TracIn checkpoints: (learning rate of the step that made it, {base parameter name: tensor}).
    checkpoints: list[tuple[float, dict[str, Any]]]


def train(base_dir: Path, examples: Sequence[Example], config: TrainConfig, pad_id: int, work: Path,
          checkpoint_steps: Sequence[int] = (), trajectory: Sequence[float] = ()) -> Trained:
    """A fresh base model with a LoRA trained by ``train_lora`` on ``examples`` (run on a torch thread)."""
    import torch

    from loraledger.training.hf.basemodel import load_base_model
    from loraledger.training.hf.trainer import train_lora

    base = load_base_model(base_dir, device="cpu").model
    checkpoints: list[tuple[float, dict[str, Any]]] = []
    lr_used = [config.learning_rate]  # the rate the next step uses

    def on_progress(p: Any) -> None:
        if p.step in checkpoint_steps:
            state = {n: t.detach().clone() for n, t in base.named_parameters() if "lora_" in n}
            checkpoints.append((lr_used[0], state))
        lr_used[0] = p.learning_rate

    started = time.perf_counter()
    with torch.enable_grad():
        outcome = train_lora(base, examples, [], config, pad_id=pad_id, device="cpu", work_dir=work,
                             on_progress=on_progress, trajectory=trajectory)
    return Trained(outcome.model, time.perf_counter() - started, outcome.losses, checkpoints)


def answer_logprobs(model: Any, examples: Sequence[Example], pad_id: int, batch: int = 32) -> np.ndarray:
    """Σ log p(answer token | prefix) per example (labelled tokens only)."""
    import torch

    from loraledger.training.hf.tensors import collate

    out = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(examples), batch):
            inputs = collate(examples[start:start + batch], pad_id, "cpu")
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
            labels = inputs["labels"][:, 1:]
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels,
                                                    ignore_index=IGNORE_INDEX, reduction="none")
            out.append((-nll.sum(dim=1)).numpy())
    return np.concatenate(out)


def projected(model: Any, examples: Sequence[Example], pad_id: int, k: int, seed: int, batch: int = 16
              ) -> tuple[np.ndarray, list[int]]:
    """Projected per-example LoRA gradients (``LoraGradientFeatures``) and the block sizes."""
    features = LoraGradientFeatures(model, k=k, seed=seed)
    parts = [features.features(examples[i:i + batch], pad_id=pad_id) for i in range(0, len(examples), batch)]
    return np.concatenate(parts).astype(np.float64), [b.size for b in features.blocks]


def load_lora(model: Any, state: dict[str, Any]) -> None:
    """Copy checkpointed LoRA weights (base parameter names) into a PEFT ``model``."""
    import torch

    params = dict(model.base_model.model.named_parameters())
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def index_at_snapshots(model: Any, work: Path, data: Dataset, args: argparse.Namespace, pad_id: int, *,
                       at_snapshots: bool, batch_size: int) -> tuple[Any, list[str]]:
    """``build_index`` as the node builds it: at the trajectory snapshots ``train_lora`` wrote under
    ``work`` (loaded into ``model``), or at the trained adapter only; the index and the PEFT adapter
    names ``attribute()`` takes."""
    sources = None
    names = ["default"]
    if at_snapshots:
        snapshots = sorted((work / TRAJECTORY_DIR).iterdir())
        sources = [CheckpointSource(f"{TRAJECTORY_DIR}/{d.name}", int(d.name[5:]),
                                    "0x" + sha256_file(d / "adapter_model.safetensors").hex()) for d in snapshots]
        names = load_checkpoints(model, work, sources, adapter="default", prefix="snap")
    index = build_index(model, data.examples, data.contributors, pad_id=pad_id, k=args.k, seed=args.seed,
                        method="logra", damping=args.damping, batch_size=batch_size, adapter_hash="0x" + "0" * 64,
                        base_model_hash="0x" + "0" * 64, training_rows_root="0x" + "0" * 64, adapters=names,
                        checkpoints=sources)
    return index, names


# ------------------------------------------------------------------------------ TRAK (torch + traker)


def margin_grads(model: Any, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    """Full per-example gradients of the LoRA parameters of the answer's mean token margin
    ``log p - log(1 - p)``, and each example's mean answer-token probability."""
    import torch

    params = [p for n, p in model.named_parameters() if "lora_" in n and ".default." in n]  # not the snapshots
    frozen = [p for p in params if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    grads, probs = [], []
    try:
        with torch.enable_grad():
            for example in examples:
                ids = torch.tensor([example.input_ids])
                labels = torch.tensor(example.labels[1:])
                logits = model(input_ids=ids).logits[0, :-1].float()
                keep = labels != IGNORE_INDEX
                logp = torch.log_softmax(logits[keep], dim=-1).gather(1, labels[keep][:, None])[:, 0]
                margin = (logp - torch.log1p(-logp.exp().clamp(max=1 - 1e-6))).mean()
                grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(margin, params)]))
                probs.append(float(logp.detach().exp().mean()))
    finally:
        for p in frozen:
            p.requires_grad_(False)
    return torch.stack(grads).numpy(), np.array(probs)


class Trak:
    """TRAK-1 with traker's CPU ``BasicProjector`` (module docstring)."""

    def __init__(self, model: Any, train: Sequence[Example], dim: int, seed: int) -> None:
        import torch
        from trak.projectors import BasicProjector, ProjectionType

        self.model = model
        grads, probs = margin_grads(model, train)
        self.projector = BasicProjector(grad_dim=grads.shape[1], proj_dim=dim, seed=seed,
                                        proj_type=ProjectionType.rademacher, device=torch.device("cpu"))
        phi = self.projector.project(torch.from_numpy(grads), model_id=0).double().numpy()
        xtx = phi.T @ phi
        lam = 1e-3 * float(np.trace(xtx)) / dim
        self.rows = (np.linalg.inv(xtx + lam * np.eye(dim)) @ phi.T) * (1.0 - probs)[None, :]  # [dim, n]

    def scores(self, queries: Sequence[Example]) -> np.ndarray:
        import torch

        grads, _ = margin_grads(self.model, queries)
        phi = self.projector.project(torch.from_numpy(grads), model_id=0).double().numpy()
        return phi @ self.rows


# ------------------------------------------------------------------------------ text peers


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class BM25:
    """Okapi BM25 over documents (k1 1.5, b 0.75, idf ``log(1 + (N - df + 0.5) / (df + 0.5))``)."""

    def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.docs = [Counter(_words(d)) for d in documents]
        self.lengths = np.array([sum(d.values()) for d in self.docs], dtype=np.float64)
        self.k1, self.b, self.mean = k1, b, float(self.lengths.mean())
        df = Counter(w for d in self.docs for w in d)
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) for w, c in df.items()}

    def scores(self, query: str) -> np.ndarray:
        out = np.zeros(len(self.docs))
        norm = self.k1 * (1 - self.b + self.b * self.lengths / self.mean)
        for word in set(_words(query)):
            if word not in self.idf:
                continue
            tf = np.array([d.get(word, 0) for d in self.docs], dtype=np.float64)
            out += self.idf[word] * tf * (self.k1 + 1) / (tf + norm)
        return out


def span_scores(index: Any, output_ids: Sequence[int], n: int) -> np.ndarray:
    """Each exact span's surprisal, shared among the rows holding it."""
    out = np.zeros(n)
    for span in match_spans(index.spans, output_ids):
        for r in span.rows:
            out[r] += span.surprisal / len(span.rows)
    return out


# ------------------------------------------------------------------------------ metrics


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (``scipy.stats.spearmanr`` when scipy is there); 0 when either side is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    try:
        from scipy.stats import spearmanr

        return float(spearmanr(a, b).statistic)
    except ImportError:
        def ranks(x: np.ndarray) -> np.ndarray:
            order = np.argsort(x, kind="stable")
            r = np.empty(len(x))
            r[order] = np.arange(len(x), dtype=np.float64)
            for value in np.unique(x):  # average ties
                tied = x == value
                r[tied] = r[tied].mean()
            return r
        return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def lds(scores: np.ndarray, masks: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-query LDS: ``scores`` [queries, rows], ``masks`` [m, rows] 0/1, ``truth`` [m, queries]."""
    predicted = masks @ scores.T  # [m, queries]
    return np.array([spearman(predicted[:, q], truth[:, q]) for q in range(scores.shape[0])])


def bootstrap_ci(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean of ``values`` (resampled with replacement)."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(resamples, len(values)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def planted_top1(scores: np.ndarray, contributors: Sequence[str], owners: Sequence[str], top: int = 20) -> float:
    """Share of queries whose owner has the largest sum of positive scores among its top-``top`` rows."""
    hits = 0
    for q, owner in enumerate(owners):
        best = np.argsort(-scores[q], kind="stable")[:top]
        sums: dict[str, float] = {}
        for r in best:
            if scores[q, r] > 0:
                sums[contributors[r]] = sums.get(contributors[r], 0.0) + float(scores[q, r])
        hits += bool(sums) and max(sums, key=lambda c: sums[c]) == owner
    return hits / len(owners)


# ------------------------------------------------------------------------------ the run


@dataclass
class Method:
    """A table row: scores ``None`` for a method that did not run (``notes`` says why)."""

    name: str
    scores: np.ndarray | None  # [queries, rows]
    ms_per_query: float
    notes: str = ""


def timed_per_query(fn: Callable[[int], np.ndarray], n: int) -> tuple[np.ndarray, float]:
    """Row scores of each query ``fn(q)`` and the mean ms per query."""
    started = time.perf_counter()
    rows = [fn(q) for q in range(n)]
    return np.stack(rows).astype(np.float64), (time.perf_counter() - started) * 1000 / n


def others_cpu(start: tuple[float, float, float]) -> float:
    """Share of the machine's CPU used by other processes since ``start`` = (busy, total, own)."""
    busy, total = machine_cpu_seconds()
    own = sum(os.times()[:2])
    if total <= start[1]:
        return 0.0
    return max(0.0, (busy - start[0]) - (own - start[2])) / (total - start[1])


def run(args: argparse.Namespace, tmp: Path) -> None:
    """The whole benchmark (module docstring); models and the index are written under ``tmp``."""
    import torch  # noqa: F401 - loaded on the main thread once, used on torch threads

    from loraledger.training.hf.basemodel import load_base_model
    from loraledger.training.hf.tiny import init_tiny_model

    run_started = time.perf_counter()
    cpu_start = (*machine_cpu_seconds(), sum(os.times()[:2]))
    base_dir = tmp / "base"
    init_tiny_model(base_dir, "llama", hidden_size=args.hidden, layers=args.layers, heads=4)
    tokenizer = load_base_model(base_dir, device="cpu").tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    data = make_dataset(tokenizer, args)
    n, nq = len(data.examples), len(data.queries)
    progress(f"{n} rows from {args.contributors} contributors, {nq} queries; tiny llama hidden {args.hidden}")

    config = TrainConfig(rank=8, alpha=16.0, dropout=0.0, target_modules=tuple(args.targets), learning_rate=args.lr,
                         epochs=args.epochs, batch_size=8, seed=0, val_fraction=0.0)
    total_steps = math.ceil(n / config.batch_size) * config.epochs
    ckpt_steps = sorted({max(1, round(total_steps * (c + 1) / args.checkpoints)) for c in range(args.checkpoints)})
    full: Trained = on_own_thread(train, base_dir, data.examples, config, pad_id, tmp / "full", ckpt_steps,
                                  ATTRIBUTION_TRAJECTORY)
    model = full.model
    progress(f"full training: {total_steps} steps in {full.seconds:.1f}s, loss {full.losses[0]:.2f} → "
             f"{np.mean(full.losses[-3:]):.2f}")

    # --- ours: the index at the training's early snapshots, as the node builds it; queries through attribute()
    def build(at_snapshots: bool) -> tuple[Any, list[str]]:
        return index_at_snapshots(model, tmp / "full", data, args, pad_id, at_snapshots=at_snapshots, batch_size=16)

    started = time.perf_counter()
    index, names = on_own_thread(build, True)
    build_seconds = time.perf_counter() - started
    index_hash = write_index(tmp, index)
    bytes_per_row = (tmp / INDEX_FILE).stat().st_size / n
    owners = [fact.contributor for fact in data.queries]

    def ours(index: Any, names: list[str]) -> tuple[np.ndarray, float, float]:
        hits = 0
        results = []
        started = time.perf_counter()
        for q in range(nq):
            result = attribute(index, index_hash, model, tokenizer, data.query_prompts[q], data.queries[q].answer,
                               adapters=names)
            results.append(result)
            hits += bool(result.weights) and max(result.weights, key=lambda c: result.weights[c]) == owners[q]
        ms = (time.perf_counter() - started) * 1000 / nq
        # every row's exact integer score (attribute() keeps only the top rows), outside the clock
        rows = [int_scores(result.query, index.features).astype(np.float64) for result in results]
        return np.stack(rows), ms, hits / nq

    steps = ", ".join(str(c.step) for c in index.checkpoints)
    ours_scores, ours_ms, planted = on_own_thread(ours, index, names)
    methods = [Method(f"ours (logra, k={args.k}, {len(names)} snapshots)", ours_scores, ours_ms,
                      f"attribute() at steps {steps} of {total_steps}: grads, int scores, spans, weights")]
    progress(f"index built in {build_seconds:.2f}s; ours {ours_ms:.1f} ms/query")
    final_index, final_names = on_own_thread(build, False)
    scores, ms, _ = on_own_thread(ours, final_index, final_names)
    ablation = Method("ours at the trained adapter", scores, ms, "ablation: the same index and query at the "
                      "end of training only")

    # --- grad-dot and DataInf: the same projected gradients, other preconditioners
    grads, sizes = on_own_thread(projected, model, data.examples, pad_id, args.k, args.seed)
    for name, method in (("grad-dot", "identity"), ("DataInf", "datainf")):
        rows_pre = precondition(grads, sizes, fit_preconditioners(grads, sizes, method=method, damping=args.damping))

        def one(q: int, rows_pre: np.ndarray = rows_pre) -> np.ndarray:
            vector, _ = projected(model, [data.query_examples[q]], pad_id, args.k, args.seed)
            return rows_pre @ vector[0]

        scores, ms = on_own_thread(timed_per_query, one, nq)
        methods.append(Method(name, scores, ms, f"{method} preconditioner, same features"))
        progress(f"{name}: {ms:.1f} ms/query")

    # --- TracIn-CP over the checkpoints of the full training
    final_state = {n_: t.detach().clone() for n_, t in model.base_model.model.named_parameters() if "lora_" in n_}
    ckpt_rows = []
    for lr, state in full.checkpoints:
        on_own_thread(load_lora, model, state)
        ckpt_rows.append((lr, on_own_thread(projected, model, data.examples, pad_id, args.k, args.seed)[0]))

    def tracin(q: int) -> np.ndarray:
        total = np.zeros(n)
        for (lr, rows_c), (_, state) in zip(ckpt_rows, full.checkpoints, strict=True):
            load_lora(model, state)
            vector, _ = projected(model, [data.query_examples[q]], pad_id, args.k, args.seed)
            total += lr * (rows_c @ vector[0])
        return total

    scores, ms = on_own_thread(timed_per_query, tracin, nq)
    on_own_thread(load_lora, model, final_state)
    progress(f"TracIn-CP: {ms:.1f} ms/query")
    lrs = ", ".join(f"{lr:.1e}" for lr, _ in full.checkpoints)
    methods.append(Method("TracIn-CP", scores, ms, f"{len(full.checkpoints)} checkpoints (lr {lrs}), k={args.k} grads"))

    # --- TRAK via traker's projector
    try:
        started = time.perf_counter()
        trak = on_own_thread(Trak, model, data.examples, args.trak_dim, args.seed)
        trak_build = time.perf_counter() - started
        scores, ms = on_own_thread(timed_per_query, lambda q: trak.scores([data.query_examples[q]])[0], nq)
        progress(f"TRAK: built in {trak_build:.1f}s, {ms:.1f} ms/query")
        methods.append(Method("TRAK-1 (traker)", scores, ms,
                              f"BasicProjector d={args.trak_dim}, 1 model, build {trak_build:.1f}s"))
    except Exception as exc:  # noqa: BLE001 - reported as a row
        methods.append(Method("TRAK (traker)", None, float("nan"), f"not run: {type(exc).__name__}: {exc}"[:100]))

    methods.append(ablation)

    # --- Kronfluence EK-FAC, in its own virtualenv (scripts/peers/setup_kronfluence.sh)
    started = time.perf_counter()
    kron, note = on_own_thread(kronfluence_scores, model, base_dir, data.examples, data.query_examples, tmp / "kron")
    kron_ms = (time.perf_counter() - started) * 1000 / nq if kron is not None else float("nan")
    methods.append(Method("Kronfluence (EK-FAC)", kron, kron_ms, note[:100]))
    progress(f"Kronfluence: {note}")

    # --- text peers and random
    bm25 = BM25(data.texts)
    scores, ms = timed_per_query(lambda q: bm25.scores(data.query_texts[q]), nq)
    methods.append(Method("BM25", scores, ms, "Okapi k1=1.5 b=0.75 on question + answer text"))
    scores, ms = timed_per_query(lambda q: span_scores(index, data.query_output_ids[q], n), nq)
    methods.append(Method("span-only", scores, ms, "match_spans surprisal shared by rows"))
    rng = np.random.default_rng(args.seed)
    scores, ms = timed_per_query(lambda q: rng.standard_normal(n), nq)
    methods.append(Method("random", scores, ms, "Gaussian"))

    # --- retrains on random halves: the truth
    masks = np.zeros((args.retrains, n))
    truth = np.zeros((args.retrains, nq))
    retrain_seconds = 0.0
    for i in range(args.retrains):
        chosen = np.sort(np.random.default_rng(1000 + i).choice(n, size=n // 2, replace=False))
        masks[i, chosen] = 1
        subset = [data.examples[j] for j in chosen]
        trained = on_own_thread(train, base_dir, subset, config, pad_id, tmp / f"retrain-{i}")
        truth[i] = on_own_thread(answer_logprobs, trained.model, data.query_examples, pad_id)
        retrain_seconds += trained.seconds
        del trained
        progress(f"retrain {i + 1}/{args.retrains}: {retrain_seconds:.0f}s so far, rss {rss_mib():.0f} MiB")

    rows_out = []
    best_peer = -math.inf
    ours_lds = math.nan
    for method in methods:
        if method.scores is None:
            rows_out.append([method.name, "-", "-", "-", "-", method.notes])
            continue
        per_query = lds(method.scores, masks, truth)
        mean = float(per_query.mean())
        lo, hi = bootstrap_ci(per_query, args.bootstrap, args.seed)
        top1 = planted_top1(method.scores, data.contributors, owners)
        if method is methods[0]:
            ours_lds = mean
        elif method.name != "random" and not method.name.startswith("ours"):
            best_peer = max(best_peer, mean)
        rows_out.append([method.name, f"{mean:.3f}", f"[{lo:.3f}, {hi:.3f}]", f"{method.ms_per_query:.2f}",
                         f"{top1:.0%}", method.notes])
    best_name = max((r for r in rows_out[1:] if r[1] != "-" and r[0] != "random" and not r[0].startswith("ours")),
                    key=lambda r: float(r[1]))[0]
    table(f"Attribution quality: LDS over m={args.retrains} retrains on 50% subsets, {n} rows, {nq} queries",
          ["method", "LDS mean", "95% CI", "per-query ms", "planted@1", "notes"], rows_out,
          notes=[f"anchors (other setups, not this run): {ANCHORS}",
                 "planted@1: the query's contributor has the largest sum of positive scores among the top 20 rows"])
    smol, why = smollm_dir(args.smollm, args.smollm_cache)
    smol_lines = [why] if smol is None else smollm_planted(args, tmp, smol)
    total = time.perf_counter() - run_started
    print()
    for line in smol_lines:
        print(line)
    print(f"\nplanted contributors (ours, attribute() contributor weights, first = planted): {planted:.0%} "
          f"of {nq} queries")
    print(f"index build: {build_seconds:.2f}s vs full training {full.seconds:.2f}s "
          f"({build_seconds / full.seconds:.0%}); retrains {retrain_seconds:.0f}s for m={args.retrains}")
    print(f"index bytes per row: {bytes_per_row:,.0f} ({(tmp / INDEX_FILE).stat().st_size:,} bytes / {n} rows; "
          f"features {index.dim} int16 = {2 * index.dim} bytes/row ({len(index.checkpoints)} snapshots), the rest "
          "the span index and metadata)")
    print(f"full training loss {full.losses[0]:.2f} (first step) -> {np.mean(full.losses[-3:]):.2f} (last 3 steps); "
          f"damping {args.damping}, k {args.k}, lr {args.lr}, {args.epochs} epochs")
    print(f"whole run: {total:.0f}s; others' CPU during it: {others_cpu(cpu_start):.0%} of the machine "
          "(times are inflated when this is high)")
    verdict = "PASS" if ours_lds >= best_peer else "FAIL"
    print(f"{verdict}: our LDS >= the best peer's in this run: ours {ours_lds:.3f}, best peer {best_name} "
          f"{best_peer:.3f}")


# ------------------------------------------------------------------------------ SmolLM2: planted contributors


def smollm_planted(args: argparse.Namespace, tmp: Path, base_dir: Path) -> list[str]:
    """The planted-contributor check on SmolLM2-135M with an adapter trained (``train_lora``, the
    node's trajectory) on ``--smollm-rows`` invented facts from 12 contributors: for every fact, a
    reworded question with the fact's sentence as the answer is attributed by ``attribute()``; the
    share whose owner gets the largest weight. Also, for 8 of them, the model's own greedy answer:
    whether it states the fact, its generation time and its attribution time. Lines to print."""
    import torch

    from loraledger.training.hf.basemodel import load_base_model

    tokenizer = load_base_model(base_dir, device="cpu").tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sub = argparse.Namespace(**{**vars(args), "rows": args.smollm_rows, "contributors": 12,
                                "queries": args.smollm_rows})
    data = make_dataset(tokenizer, sub)
    config = TrainConfig(rank=16, alpha=32.0, dropout=0.0, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
                         learning_rate=2e-3, epochs=args.smollm_epochs, batch_size=4, seed=0, val_fraction=0.0)
    full: Trained = on_own_thread(train, base_dir, data.examples, config, pad_id, tmp / "smol", (),
                                  ATTRIBUTION_TRAJECTORY)
    model = full.model
    progress(f"SmolLM2: trained on {len(data.examples)} rows in {full.seconds:.0f}s, loss {full.losses[0]:.2f} → "
             f"{np.mean(full.losses[-3:]):.2f}")
    started = time.perf_counter()

    def build() -> tuple[Any, list[str]]:
        return index_at_snapshots(model, tmp / "smol", data, args, pad_id, at_snapshots=True, batch_size=8)

    index, names = on_own_thread(build)
    build_seconds = time.perf_counter() - started
    owners = [fact.contributor for fact in data.queries]

    def planted() -> tuple[float, float]:
        hits, started = 0, time.perf_counter()
        for q in range(len(data.queries)):
            result = attribute(index, "0x", model, tokenizer, data.query_prompts[q], data.queries[q].answer,
                               adapters=names)
            hits += bool(result.weights) and max(result.weights, key=lambda c: result.weights[c]) == owners[q]
        return hits / len(data.queries), (time.perf_counter() - started) * 1000 / len(data.queries)

    share, ms = on_own_thread(planted)

    def generated() -> tuple[int, int, float, float]:
        stated = credited = 0
        gen_s = attr_s = 0.0
        for q in range(8):
            ids = torch.tensor([tokenizer(data.query_prompts[q])["input_ids"]])
            started = time.perf_counter()
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24,
                                     do_sample=False, pad_token_id=pad_id)
            gen_s += time.perf_counter() - started
            answer = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
            stated += data.queries[q].value in answer
            started = time.perf_counter()
            result = attribute(index, "0x", model, tokenizer, data.query_prompts[q], answer, adapters=names)
            attr_s += time.perf_counter() - started
            credited += bool(result.weights) and max(result.weights, key=lambda c: result.weights[c]) == owners[q]
        return stated, credited, gen_s / 8, attr_s / 8

    stated, credited, gen_s, attr_s = on_own_thread(generated)
    return [
        f"SmolLM2-135M-Instruct, rank-16 adapter trained on {len(data.examples)} invented facts of 12 contributors "
        f"({config.epochs} epochs, {full.seconds:.0f}s; index at steps "
        f"{', '.join(str(c.step) for c in index.checkpoints)} built in {build_seconds:.1f}s):",
        f"  planted contributors: {share:.0%} of {len(data.queries)} answers repeating a contributor's fact credit "
        f"that contributor first ({ms:.0f} ms per attribution)",
        f"  its own greedy answers to 8 of the questions: {stated}/8 state the fact, {credited}/8 credit its "
        f"contributor first; generation {gen_s * 1000:.0f} ms vs attribution {attr_s * 1000:.0f} ms per answer "
        f"({attr_s / gen_s:.2f}x)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (a few minutes on 2 cores)")
    parser.add_argument("--rows", type=int, help="training rows (full 256, quick 96)")
    parser.add_argument("--contributors", type=int, help="synthetic contributors (full 16, quick 8)")
    parser.add_argument("--queries", type=int, help="held-out queries (full 64, quick 24)")
    parser.add_argument("--retrains", type=int, help="m: models retrained on random 50%% subsets (full 32, quick 8)")
    parser.add_argument("--attributes", type=int, default=4, help="facts per invented entity")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), help="LoRA target modules")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--k", type=int, default=16, help="projection width per side (ours, grad-dot, DataInf, TracIn)")
    parser.add_argument("--damping", type=float, default=0.1, help="damping of ours and DataInf (relative)")
    parser.add_argument("--checkpoints", type=int, default=3, help="TracIn-CP checkpoints")
    parser.add_argument("--trak-dim", type=int, default=256, help="TRAK projection dimension")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CI")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smollm", default="auto", help=f"the SmolLM2 planted-contributor check: 'auto' (if "
                        f"{SMOLLM_CACHE / SMOLLM} is there), 'fetch', 'none' or a model directory")
    parser.add_argument("--smollm-cache", type=Path, default=SMOLLM_CACHE, help="where --smollm fetch writes")
    parser.add_argument("--smollm-rows", type=int, default=48, help="invented facts the SmolLM2 adapter learns")
    parser.add_argument("--smollm-epochs", type=int, default=8)
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    tmp = Path(tempfile.mkdtemp(prefix="bench-attribution-"))
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
