"""Per-request sampling: temperature, top-p, seeds, logprobs (torch), and the request's parameters.

A batch's logits are sampled row by row with each request's own settings, in a few batched
ops: greedy rows take the argmax; sampled rows scale by their temperature, keep the smallest
set of tokens whose probability reaches ``top_p`` (the most likely token is always kept), and
pick by inverse CDF with one uniform number drawn from the request's own ``torch.Generator``.
A request's draws depend only on its seed and its own logits, so the same seed and prompt give
the same text whatever else shares the batch.

Logprobs are those of the model's distribution (``log_softmax`` of the raw logits, before
temperature and top-p), as vLLM reports them by default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..errors import InputError

__all__ = ["MAX_TOP_LOGPROBS", "SampledToken", "SamplingParams", "TokenLogprob", "sample"]

#: The most alternatives a request may ask for per token (OpenAI's limit).
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class SamplingParams:
    """How one request is sampled and when it stops.

    ``temperature`` 0 is greedy; ``top_p`` in (0, 1]; ``max_tokens`` new tokens at most; ``stop``:
    strings that end the output when it contains one (the text returned excludes it); ``seed``:
    reproducible sampling (None: drawn from the engine's seed); ``logprobs``: report the chosen
    token's logprob, and ``top_logprobs`` alternatives (0..20) with it.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    #: Keep generating after the end-of-sequence token (benchmarks).
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        def number(value: object) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        if not number(self.temperature) or self.temperature < 0:
            raise InputError(f"temperature must be a number >= 0, got {self.temperature!r}")
        if not number(self.top_p) or not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise InputError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if any(not isinstance(s, str) or not s for s in stop):
            raise InputError("stop must be a list of non-empty strings")
        object.__setattr__(self, "stop", stop)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed < 2**63):
            raise InputError(f"seed must be an integer in [0, 2^63), got {self.seed!r}")
        if isinstance(self.top_logprobs, bool) or not isinstance(self.top_logprobs, int) \
                or not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise InputError(f"top_logprobs must be 0..{MAX_TOP_LOGPROBS}, got {self.top_logprobs!r}")
        if self.top_logprobs and not self.logprobs:
            raise InputError("top_logprobs needs logprobs")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class TokenLogprob:
    """The chosen token's logprob and, when asked, the ``top`` most likely ``(token_id, logprob)``."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class SampledToken:
    token_id: int
    logprob: TokenLogprob | None = field(default=None)


@torch.inference_mode()
def sample(logits: torch.Tensor, params: Sequence[SamplingParams],
           generators: Sequence[torch.Generator]) -> list[SampledToken]:
    """One token per row of ``logits`` (``[B, vocab]``, float32) by ``params[i]``, drawing from
    ``generators[i]`` (CPU generators, whatever the device)."""
    batch = logits.shape[0]
    tokens = torch.argmax(logits, dim=-1)
    sampled = [i for i, p in enumerate(params) if not p.greedy]
    if sampled:
        index = torch.tensor(sampled, device=logits.device)
        temperature = torch.tensor([params[i].temperature for i in sampled], device=logits.device)
        top_p = torch.tensor([params[i].top_p for i in sampled], device=logits.device)
        probs = torch.softmax(logits.index_select(0, index) / temperature[:, None], dim=-1)
        sorted_probs, sorted_ids = torch.sort(probs, dim=-1, descending=True)
        # Keep a token while the mass before it is below top_p: the first is always kept.
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        sorted_probs = torch.where(before < top_p[:, None], sorted_probs, torch.zeros_like(sorted_probs))
        cdf = torch.cumsum(sorted_probs, dim=-1)
        # One float per step from each request's own (CPU) generator: its draws are its own.
        u = torch.stack([torch.rand((), generator=generators[i]) for i in sampled]).to(logits.device)
        pick = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1)).clamp(max=cdf.shape[1] - 1)
        # searchsorted may land on a zeroed tail entry when u*total equals the last kept cdf value.
        kept = (sorted_probs > 0).sum(dim=-1, keepdim=True) - 1
        pick = torch.minimum(pick, kept)
        tokens[index] = sorted_ids.gather(1, pick).squeeze(1)
    token_list = tokens.tolist()
    wants = [i for i, p in enumerate(params) if p.logprobs]
    chosen: dict[int, TokenLogprob] = {}
    if wants:
        index = torch.tensor(wants, device=logits.device)
        logprobs = torch.log_softmax(logits.index_select(0, index), dim=-1)
        picked = logprobs.gather(1, tokens.index_select(0, index).unsqueeze(1)).squeeze(1).tolist()
        k = max(params[i].top_logprobs for i in wants)
        top_values, top_ids = torch.topk(logprobs, k, dim=-1) if k else (None, None)
        for row, i in enumerate(wants):
            top: tuple[tuple[int, float], ...] = ()
            if params[i].top_logprobs and top_values is not None and top_ids is not None:
                n = params[i].top_logprobs
                top = tuple(zip(top_ids[row, :n].tolist(), top_values[row, :n].tolist()))
            chosen[i] = TokenLogprob(token_list[i], picked[row], top)
    return [SampledToken(token_list[i], chosen.get(i)) for i in range(batch)]
