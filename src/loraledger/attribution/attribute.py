"""Attributing one answer: the training rows that shaped it, the spans it repeats, the weights (torch).

:func:`attribute` takes an adapter's index, the adapter loaded on its base model, and an answer
as the node stored it (the prompt as the model saw it, chat template applied, and the output
text) and computes, from those public artifacts only:

1. the answer's projected gradient: the output tokens' mean loss given the prompt, at each of the
   index's checkpoints (:mod:`~loraledger.attribution.checkpoints`), projected exactly as the
   index's rows were (same seed, width and layers); it is quantized
   (:func:`~loraledger.attribution.influence.quantize`) into the *query vector*;
2. every training row's integer score against it, and the top rows with a positive score;
3. the exact spans of the output found in the rows (:func:`~loraledger.attribution.spans.match_spans`),
   with their character offsets in the output text;
4. the contributor weights of :mod:`~loraledger.attribution.policy`.

Steps 2-4 are integer and deterministic given the query vector; step 1 is floating point, so
``verify`` recomputes it and compares the vectors at a stated tolerance (:data:`QUERY_TOLERANCE`),
then recomputes everything else from the recorded vector bit for bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..records.kinds import AttributionRecord
from ..training.data import IGNORE_INDEX, Example
from .features import LoraGradientFeatures, features_under
from .index import AttributionIndex
from .influence import Quantized, quantize, scores, top_rows
from .policy import POLICY_VERSION, RowEvidence, contributor_weights
from .spans import match_spans

__all__ = ["QUERY_TOLERANCE", "TOP_ROWS", "Attribution", "AttributedSpan", "attribute", "attribution_record",
           "answer_tokens", "query_hash", "query_vector", "score_query"]

#: Rows kept per answer (the rest of the scores are not recorded).
TOP_ROWS = 20
#: A query vector recomputed elsewhere may differ from the recorded one by this many units in any
#: component (float summation order in the gradient can move a value across a rounding boundary).
QUERY_TOLERANCE = 2


@dataclass(frozen=True)
class AttributedSpan:
    """A span of the output found verbatim in training rows: characters ``[start, end)`` of the
    output text (tokens ``[token_start, token_end)``) and the rows holding it."""

    start: int
    end: int
    token_start: int
    token_end: int
    rows: tuple[str, ...]
    surprisal: float


@dataclass(frozen=True)
class Attribution:
    """One answer's attribution (module docstring)."""

    index_hash: str
    policy: str
    query: Quantized
    #: (row hash, contributor, integer score), best first; the real score is ``score · 2^-score_exponent``.
    top: list[tuple[str, str, int]]
    score_exponent: int
    spans: list[AttributedSpan]
    weights: dict[str, int]

    @property
    def query_hash(self) -> str:
        return query_hash(self.query)


def query_hash(query: Quantized) -> str:
    """``0x`` + sha256 of the query vector as little-endian int16 values, then its exponent (int32)."""
    data = query.values.astype("<i2").tobytes() + int(query.exponent).to_bytes(4, "little", signed=True)
    return "0x" + hashlib.sha256(data).hexdigest()


def answer_tokens(tokenizer: Any, prompt: str, output: str) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """The prompt's token ids, the output's, and each output token's character offsets in ``output``."""
    prompt_ids = list(tokenizer(prompt)["input_ids"])
    encoded = tokenizer(output, add_special_tokens=False, return_offsets_mapping=True)
    return prompt_ids, list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]


def score_query(index: AttributionIndex, query: Quantized, output_ids: Sequence[int],
                offsets: Sequence[tuple[int, int]], *, top_k: int = TOP_ROWS,
                span_min_tokens: int = 4) -> tuple[list[tuple[str, str, int]], list[AttributedSpan], dict[str, int]]:
    """Steps 2-4 of the module docstring: integer, deterministic, from the query vector alone."""
    row_keys = [row.row_hash for row in index.rows]
    best = top_rows(scores(query, index.features), top_k, row_keys)
    top = [(index.rows[i].row_hash, index.rows[i].contributor, score) for i, score in best]
    spans = []
    span_tokens: dict[int, int] = {}
    for span in match_spans(index.spans, output_ids, min_tokens=span_min_tokens):
        for row in span.rows:
            span_tokens[row] = span_tokens.get(row, 0) + span.length
        spans.append(AttributedSpan(offsets[span.start][0], offsets[span.end - 1][1], span.start, span.end,
                                    tuple(index.rows[r].row_hash for r in span.rows), span.surprisal))
    evidence = {index.rows[i].row_hash: RowEvidence(index.rows[i].row_hash, index.rows[i].contributor, score)
                for i, score in best}
    for row, n in span_tokens.items():
        meta = index.rows[row]
        old = evidence.get(meta.row_hash, RowEvidence(meta.row_hash, meta.contributor))
        evidence[meta.row_hash] = RowEvidence(meta.row_hash, meta.contributor, old.influence, n)
    return top, spans, contributor_weights(list(evidence.values()))


def query_vector(index: AttributionIndex, model: Any, tokenizer: Any, prompt: str, output: str, *,
                 adapters: Sequence[str] = ("default",)) -> tuple[np.ndarray, list[int], list[tuple[int, int]]]:
    """The answer's projected gradient (float64, unquantized) at each of the index's checkpoints,
    side by side, each scaled by its ``2^query_shift``; ``adapters[c]`` is the PEFT adapter of
    ``model`` holding checkpoint ``c`` (:func:`~loraledger.attribution.checkpoints.load_checkpoints`).
    Also the output's token ids and their offsets."""
    prompt_ids, output_ids, offsets = answer_tokens(tokenizer, prompt, output)
    if not output_ids:
        raise InputError("the answer has no output tokens to attribute")
    if len(adapters) != len(index.checkpoints):
        raise InputError(f"{len(adapters)} PEFT adapters for the index's {len(index.checkpoints)} checkpoints")
    example = Example("query", tuple(prompt_ids + output_ids), tuple([IGNORE_INDEX] * len(prompt_ids) + output_ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    extractors = [LoraGradientFeatures(model, adapter=name, k=index.k, seed=index.seed) for name in adapters]
    for extractor in extractors:
        if extractor.layout != index.blocks:
            raise InputError("the loaded adapter's LoRA layers differ from its attribution index's: wrong "
                             "adapter or base model")
    # One pass for every checkpoint (a mixed-adapter batch), each scaled by its power of two (exact).
    found = features_under(extractors, [example], pad_id=pad)
    parts = [np.ldexp(rows[0].astype(np.float64), checkpoint.query_shift)
             for rows, checkpoint in zip(found, index.checkpoints, strict=True)]
    return np.concatenate(parts), output_ids, offsets


def attribute(index: AttributionIndex, index_hash: str, model: Any, tokenizer: Any, prompt: str,
              output: str, *, adapters: Sequence[str] = ("default",)) -> Attribution:
    """The attribution of ``output`` (given ``prompt``) against ``index`` (module docstring)."""
    vector, output_ids, offsets = query_vector(index, model, tokenizer, prompt, output, adapters=adapters)
    query = quantize(vector)
    top, spans, weights = score_query(index, query, output_ids, offsets)
    return Attribution(index_hash, POLICY_VERSION, query, top, query.exponent + index.features.exponent, spans,
                       weights)


def attribution_record(attribution: Attribution, *, inference: str, inference_seq: int, adapter_hash: str,
                       timestamp: int) -> AttributionRecord:
    """The ``attribution`` record of an answer's attribution (status ``done``)."""
    return AttributionRecord(
        timestamp=timestamp, inference=inference, inference_seq=inference_seq, adapter_hash=adapter_hash,
        index_hash=attribution.index_hash, policy=attribution.policy, status="done",
        query_hash=attribution.query_hash, score_exponent=attribution.score_exponent,
        top=[{"row": row, "contributor": who, "score": score} for row, who, score in attribution.top],
        spans=[{"start": s.start, "end": s.end, "rows": list(s.rows)} for s in attribution.spans],
        weights=attribution.weights)
