"""The OpenAI-compatible routes: ``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``
(``stream: true`` as server-sent events), and vLLM's ``/v1/load_lora_adapter`` /
``/v1/unload_lora_adapter`` (admin), plus ``GET /v1/inferences/{hash}``.

``model`` is an adapter's name (or the base model's). The payer is the API key's
(``Authorization: Bearer <key>``, the ``openai`` client's ``api_key``); a node started with an
open payer serves key-less requests on its account. Every answer, finished or cancelled, is
recorded (``inference`` + ``fee`` records) before its last byte: the JSON body, or the final
SSE chunk, carries ``inference`` (the record's hash), also sent as ``X-Loraledger-Inference``
when the body is not streamed. Errors are OpenAI's ``{"error": {"message", "type", "param",
"code"}}`` (:mod:`loraledger.api.errors`). A client that goes away mid-stream cancels its
generation, which frees its row in the batch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...attribution.view import answer_attribution, fee_shares
from ...errors import ChainError, ConfigError, InputError, NotFoundError, Overloaded
from ...records.kinds import InferenceRecord, record_hash
from ...rewards.split import FeeSplit
from ...serving.protocol import GenerationParams, parse_attribute, parse_chat, parse_completion
from ..auth import BearerToken
from ..body import BodyLimits, JsonBody
from ..deps import AdminOnly, Node, current_node
from ..schemas import ATTRIBUTE_BODY, CHAT_BODY, COMPLETION_BODY, LORA_ADAPTER_BODY, errors, json_body, openai_errors
from .ledger import record as record_route

if TYPE_CHECKING:  # torch: imported only by a node that serves a model (``node run --base``)
    from ...serving.requests import OutputEvent
    from ...serving.service import Generation, ServingService

__all__ = ["router"]

log = logging.getLogger("loraledger.api")
router = APIRouter(prefix="/v1", tags=["openai"])

_body = JsonBody(BodyLimits(max_values=20_000))
#: Requests waiting beyond this many per running slot are refused 429 (Retry-After) rather than queued for ever.
_MAX_WAITING_PER_RUNNING = 8
_POLL_S = 0.25


def _serving(request: Request) -> ServingService:
    serving = current_node(request).serving
    if serving is None:  # every model is unknown here: a 404, as for any name the node does not serve
        raise NotFoundError("this node serves no model (start it with `loraledger node run --base DIR`)")
    return serving


Serving = Annotated["ServingService", Depends(_serving)]


@router.get("/models", responses=openai_errors(503))
def list_models(node: Node) -> dict[str, Any]:
    """The base model and every registered adapter of it (``parent``: the base, as vLLM lists them);
    empty on a node that serves no model."""
    serving = node.serving
    if serving is None:
        return {"object": "list", "data": []}
    return {"object": "list", "data": [
        {"id": m.name, "object": "model", "created": m.created, "owned_by": m.developer or "loraledger",
         "root": serving.base_name, "parent": None if m.adapter_hash is None else serving.base_name,
         "adapter_hash": m.adapter_hash}
        for m in serving.models()]}


# ---------------------------------------------------------------------------- generation


def _logprobs(serving: ServingService, generation: Generation, events: list[OutputEvent]) -> Any:
    if generation.params.logprobs is None:
        return None
    decode = serving.tokenizer.decode
    entries = [lp for event in events for lp in event.logprobs]
    if generation.params.api == "chat":
        return {"content": [{"token": decode([lp.token_id]), "logprob": lp.logprob,
                             "bytes": list(decode([lp.token_id]).encode()),
                             "top_logprobs": [{"token": decode([t]), "logprob": v, "bytes": list(decode([t]).encode())}
                                              for t, v in lp.top]} for lp in entries]}
    return {"tokens": [decode([lp.token_id]) for lp in entries], "token_logprobs": [lp.logprob for lp in entries],
            "top_logprobs": [{decode([t]): v for t, v in lp.top} for lp in entries] or None, "text_offset": []}


def _usage(generation: Generation) -> dict[str, int]:
    return {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
            "total_tokens": generation.prompt_tokens + generation.completion_tokens}


def _finish_reason(generation: Generation) -> str:
    return generation.finish_reason if generation.finish_reason in ("stop", "length") else "stop"


def _start(serving: ServingService, node: Any, token: Any, params: GenerationParams) -> Generation:
    payer = serving.payer_of(token.credentials if token is not None else None, node.payers)
    serving.resolve(params.model)  # 404 before anything is queued
    waiting, running = serving.waiting()
    if waiting >= _MAX_WAITING_PER_RUNNING * max(1, running):
        raise Overloaded(f"{waiting} requests are waiting; try again shortly", retry_after=1)
    return serving.start(params, payer)


def _wait(generation: Generation) -> list[OutputEvent]:
    """Every event of a request, until it finished (blocking: run in a worker thread)."""
    events = []
    while True:
        event = generation.handle.events.get()
        generation.absorb(event)
        events.append(event)
        if event.finished:
            return events


def _failed(generation: Generation) -> None:
    if generation.finish_reason == "error":
        raise ConfigError(f"the request failed: {generation.error}")  # e.g. the adapter could not be loaded


async def _generate(request: Request, serving: ServingService, token: Any, params: GenerationParams) -> Any:
    node = current_node(request)
    generation = await run_in_threadpool(_start, serving, node, token, params)
    if params.stream:
        return StreamingResponse(_stream(request, serving, generation), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    events = await run_in_threadpool(_wait, generation)
    record = await run_in_threadpool(serving.finish, generation)
    _failed(generation)
    digest = "0x" + record_hash(record).hex()
    body = _response(serving, generation, events, digest)
    return JSONResponse(body, headers={"X-Loraledger-Inference": digest})


def _response(serving: ServingService, generation: Generation, events: list[OutputEvent], digest: str) -> dict[str, Any]:
    params = generation.params
    created = int(time.time())
    rid = generation.handle.request_id
    choice: dict[str, Any] = {"index": 0, "finish_reason": _finish_reason(generation),
                              "logprobs": _logprobs(serving, generation, events)}
    if params.api == "chat":
        choice["message"] = {"role": "assistant", "content": generation.output}
        return {"id": f"chatcmpl-{rid}", "object": "chat.completion", "created": created, "model": params.model,
                "choices": [choice], "usage": _usage(generation), "inference": digest}
    choice["text"] = generation.output
    return {"id": f"cmpl-{rid}", "object": "text_completion", "created": created, "model": params.model,
            "choices": [choice], "usage": _usage(generation), "inference": digest}


def _chunk(serving: ServingService, generation: Generation, events: list[OutputEvent], *, text: str,
           finish: str | None, first: bool) -> dict[str, Any]:
    params = generation.params
    rid = generation.handle.request_id
    created = int(time.time())
    if params.api == "chat":
        delta: dict[str, Any] = {"content": text}
        if first:
            delta["role"] = "assistant"
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish,
                                  "logprobs": _logprobs(serving, generation, events)}
        return {"id": f"chatcmpl-{rid}", "object": "chat.completion.chunk", "created": created,
                "model": params.model, "choices": [choice]}
    choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": _logprobs(serving, generation, events)}
    return {"id": f"cmpl-{rid}", "object": "text_completion", "created": created, "model": params.model,
            "choices": [choice]}


def _sse(data: Any) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _stream(request: Request, serving: ServingService, generation: Generation) -> AsyncIterator[bytes]:
    """Server-sent events: a chunk per engine event, the record committed, then the final chunk
    (finish reason, ``inference``), the usage chunk if asked, and ``[DONE]``."""
    first = True
    finished = False
    try:
        while True:
            try:
                event = await run_in_threadpool(generation.handle.events.get, True, _POLL_S)
            except queue.Empty:
                if await request.is_disconnected():
                    return  # the finally below cancels and records
                continue
            generation.absorb(event)
            if event.finished:
                finished = True
                break
            if event.text:
                yield _sse(_chunk(serving, generation, [event], text=event.text, finish=None, first=first))
                first = False
        record = await run_in_threadpool(serving.finish, generation)
        digest = "0x" + record_hash(record).hex()
        if generation.finish_reason == "error":
            yield _sse({"error": {"message": f"the request failed: {generation.error}", "type": "server_error",
                                  "param": None, "code": "error"}, "inference": digest})
            return
        last = _chunk(serving, generation, [event], text=event.text, finish=_finish_reason(generation), first=first)
        last["inference"] = digest
        yield _sse(last)
        if generation.params.include_usage:
            usage = {"id": last["id"], "object": last["object"], "created": last["created"],
                     "model": last["model"], "choices": [], "usage": _usage(generation), "inference": digest}
            yield _sse(usage)
        yield b"data: [DONE]\n\n"
    finally:
        if not finished:
            # The client went away (or the server is stopping): stop generating, free the row,
            # and still record what was produced and paid for, off the event loop.
            generation.handle.cancel()
            asyncio.get_running_loop().run_in_executor(None, _cancel_and_record, serving, generation)


def _cancel_and_record(serving: ServingService, generation: Generation) -> InferenceRecord | None:
    try:
        _wait(generation)
        return serving.finish(generation)
    except Exception:  # noqa: BLE001 - nobody waits for this answer any more: log it
        log.exception("recording the cancelled request %s failed", generation.handle.request_id)
        return None


@router.post("/completions", responses=openai_errors(400, 401, 404, 413, 429, 503),
             openapi_extra=json_body(COMPLETION_BODY, example={"model": "base", "prompt": "Hello", "max_tokens": 8}))
async def completions(request: Request, serving: Serving, token: BearerToken,
                      body: Annotated[Any, Depends(_body)]) -> Any:
    return await _generate(request, serving, token, parse_completion(body))


@router.post("/chat/completions", responses=openai_errors(400, 401, 404, 413, 429, 503),
             openapi_extra=json_body(CHAT_BODY, example={"model": "base", "max_tokens": 8,
                                                         "messages": [{"role": "user", "content": "Hello"}]}))
async def chat_completions(request: Request, serving: Serving, token: BearerToken,
                           body: Annotated[Any, Depends(_body)]) -> Any:
    return await _generate(request, serving, token, parse_chat(body))


# ---------------------------------------------------------------------------- adapters


def _lora_name(body: Any) -> tuple[str, bool]:
    if not isinstance(body, dict) or not isinstance(body.get("lora_name"), str):
        raise InputError("send {\"lora_name\": \"<registered adapter>\"}", param="lora_name")
    if body.get("lora_path"):
        raise InputError("this node loads registered adapters only (never a path): register it with "
                         "`loraledger adapters import`, then load it by name", param="lora_path")
    unknown = set(body) - {"lora_name", "lora_path", "pin"}
    if unknown:
        raise InputError(f"unknown field {sorted(unknown)[0]}", param=sorted(unknown)[0])
    return body["lora_name"], bool(body.get("pin", False))


@router.post("/load_lora_adapter", dependencies=[AdminOnly], responses=openai_errors(400, 401, 404, 409, 503),
             openapi_extra=json_body(LORA_ADAPTER_BODY, example={"lora_name": "med-qa-lora"}))
def load_lora_adapter(serving: Serving, body: Annotated[Any, Depends(_body)]) -> dict[str, Any]:
    """Load a registered adapter into host memory and a device slot now (``pin``: keep it there)."""
    name, pin = _lora_name(body)
    if serving.upstream is not None:
        raise InputError(f"this node generates on {serving.upstream.base_url}: load adapters there", param="lora_name")
    if name == serving.base_name:
        raise InputError("the base model is always loaded", param="lora_name")
    (serving.store.pin if pin else serving.store.preload)(name)
    return {"loaded": name, "pinned": pin, "resident": serving.store.resident()}


@router.post("/unload_lora_adapter", dependencies=[AdminOnly], responses=openai_errors(400, 401, 404, 503),
             openapi_extra=json_body(LORA_ADAPTER_BODY, example={"lora_name": "med-qa-lora"}))
def unload_lora_adapter(serving: Serving, body: Annotated[Any, Depends(_body)]) -> dict[str, Any]:
    """Unpin and drop an adapter from the device and host tiers (its files stay registered)."""
    name, _ = _lora_name(body)
    serving.resolve(name)
    serving.store.unpin(name)
    return {"unloaded": name, "wasResident": serving.store.unload(name), "resident": serving.store.resident()}


# ---------------------------------------------------------------------------- attribution


def _audit(serving: ServingService, node: Any, token: Any, body: Any) -> dict[str, Any]:
    audit = parse_attribute(body)
    serving.payer_of(token.credentials if token is not None else None, node.payers)  # 401 before any work
    served = serving.resolve(audit.model)
    if served.adapter_hash is None:
        raise InputError(f"{audit.model} is the base model: it has no training rows to attribute to", param="model")
    if node.attribution is None:
        raise ConfigError("this node does not attribute answers (it serves through an upstream server or "
                          "without an operator key)")
    prompt, prompt_ids = serving.prompt(audit.as_generation())
    output_ids = serving.tokenizer.encode(audit.completion, add_special_tokens=False)
    context = serving.max_model_len
    if len(prompt_ids) + len(output_ids) > context:
        raise InputError(f"the prompt and completion have {len(prompt_ids) + len(output_ids)} tokens: more than the "
                         f"model's context of {context}", param="completion")
    result = node.attribution.audit(served.adapter_hash, prompt, audit.completion)
    text = audit.completion
    return {
        "object": "attribution", "model": served.name, "adapterHash": served.adapter_hash,
        "indexHash": result.index_hash, "policy": result.policy, "recorded": False,
        "queryVector": {"int16le": result.query.values.astype("<i2").tobytes().hex(), "exponent": result.query.exponent},
        "queryHash": result.query_hash, "scoreExponent": result.score_exponent,
        "top": [{"row": row, "contributor": who, "score": score} for row, who, score in result.top],
        "spans": [{"start": s.start, "end": s.end, "text": text[s.start:s.end], "rows": list(s.rows)}
                  for s in result.spans],
        "weights": result.weights,
    }


@router.post("/attribute", tags=["ledger"], responses=errors(400, 401, 404, 413, 503),
             openapi_extra=json_body(ATTRIBUTE_BODY, example={"model": "my-adapter", "prompt": "Q: ...\nA:",
                                                              "completion": " an answer"}))
async def attribute_answer(request: Request, serving: Serving, token: BearerToken,
                           body: Annotated[Any, Depends(_body)]) -> dict[str, Any]:
    """Attribute any answer of an indexed adapter as the node attributes the answers it serves (top
    rows with integer scores, exact spans with their text, contributor weights, the query vector),
    for audits: it records nothing and pays nothing. Needs a payer's API key."""
    return await run_in_threadpool(_audit, serving, current_node(request), token, body)


# ---------------------------------------------------------------------------- records


@router.get("/inferences/{inference_hash}", tags=["ledger"], responses=errors(400, 404, 409, 503))
def inference(node: Node, inference_hash: str) -> dict[str, Any]:
    """An inference record with its inclusion proof in the record log, its attribution and its fee.

    ``attribution`` is null when its adapter has no attribution index, else the status (``pending``,
    ``done``, ``fallback``), the ``attribution`` record with its proof once written (top rows, spans
    as character offsets in the output, contributor weights) and the query vector its scores
    recompute from. ``fee`` is null until the fee is recorded (an attributed answer's fee waits for
    its attribution), else the ``fee`` record with its proof and ``shares``: what each account
    earns from it under the ledger contract's current fee split (null when the chain cannot be read)."""
    found = record_route(node, inference_hash)
    if found["record"]["kind"] != "inference":
        raise NotFoundError(f"record {inference_hash} is a {found['record']['kind']} record, not an inference")
    record = node.records.get(found["seq"])
    assert isinstance(record, InferenceRecord)
    answer = answer_attribution(node.records, record)
    settled = [r.seq for r in (answer.record, answer.fee) if r is not None and r.seq is not None]
    if settled and max(settled) >= found["logSize"]:
        # The worker appended the attribution and fee after the log size above was read: prove all
        # three against the log as it is now, which holds them.
        found = record_route(node, inference_hash)
    status = answer.status
    if status is not None and answer.record is not None:
        status["record"] = record_route(node, answer.record.hash_hex, found["logSize"])
    found["attribution"] = status
    fee = None
    if answer.fee is not None:
        fee = record_route(node, answer.fee.hash_hex, found["logSize"])
        try:
            split = FeeSplit.from_tuple(node.contracts.fee_split())
            fee["split"] = split.to_json()
            fee["shares"] = fee_shares(answer.fee, split)
        except ChainError as exc:
            log.warning("fee split unavailable for inference %s: %s", inference_hash, exc.message)
            fee["split"] = fee["shares"] = None
    found["fee"] = fee
    return found
