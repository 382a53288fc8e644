"""The OpenAI API's request bodies → one :class:`GenerationParams` (pure: no I/O, no torch).

``POST /v1/completions`` and ``POST /v1/chat/completions`` take OpenAI's fields; what the node
does not do is refused by name rather than ignored (``n`` > 1, ``echo``, penalties, token-id
prompts, tools), so a client never gets an answer computed differently from what it asked.
Every refusal is an :class:`~loraledger.errors.InputError` whose ``param`` detail names the
field, which the API turns into OpenAI's ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

__all__ = ["MAX_STOP", "AuditRequest", "ChatMessage", "GenerationParams", "parse_attribute", "parse_chat",
           "parse_completion"]

#: OpenAI allows up to 4 stop sequences.
MAX_STOP = 4
MAX_TOKENS_CAP = 32_768
_ROLES = ("system", "user", "assistant", "developer")
_IGNORED = {"user", "metadata", "store", "service_tier"}  # accepted, no effect on the answer


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class GenerationParams:
    """One request, as the engine needs it."""

    model: str
    api: str  # "completions" | "chat"
    prompt: str | None = None
    messages: tuple[ChatMessage, ...] = ()
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    #: Top alternatives to report per token (None: no logprobs; 0: only the chosen token's).
    logprobs: int | None = None
    stream: bool = False
    include_usage: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def sampling(self) -> dict[str, float | int | bool | None]:
        """The sampling parameters as recorded in the inference record."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens,
                "seed": self.seed, "stop": len(self.stop), "logprobs": self.logprobs}


def _bad(param: str, message: str) -> InputError:
    return InputError(f"{param}: {message}", param=param)


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(key, f"must be a number, not {value!r}")
    if not low <= value <= high:
        raise _bad(key, f"must be between {low} and {high}, got {value}")
    return float(value)


def _integer(body: dict[str, Any], key: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(key, f"must be an integer, not {value!r}")
    if not low <= value <= high:
        raise _bad(key, f"must be between {low} and {high}, got {value}")
    return value


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
        raise _bad("stop", "must be a non-empty string or a list of them")
    if len(items) > MAX_STOP:
        raise _bad("stop", f"at most {MAX_STOP} stop sequences")
    return tuple(items)


def _common(body: Any, api: str, known: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object", param=None)
    unknown = set(body) - known - _IGNORED
    if unknown:
        raise _bad(sorted(unknown)[0], f"is not supported by this server (supported: {', '.join(sorted(known))})")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "is required: the adapter's name (GET /v1/models lists them)")
    if body.get("n", 1) != 1:
        raise _bad("n", "only n=1 is supported")
    for penalty in ("presence_penalty", "frequency_penalty"):
        if body.get(penalty, 0) not in (0, 0.0, None):
            raise _bad(penalty, "is not supported (only 0)")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", "must be true or false")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise _bad("stream_options", "only {\"include_usage\": bool} is supported")
    temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
    if top_p == 0:
        raise _bad("top_p", "must be above 0")
    return {"model": model, "api": api, "stream": stream, "include_usage": bool(options.get("include_usage")),
            "temperature": temperature, "top_p": top_p, "stop": _stop(body),
            "seed": _integer(body, "seed", None, 0, 2**63 - 1)}


_COMMON_KEYS = {"model", "n", "stream", "stream_options", "temperature", "top_p", "stop", "seed", "presence_penalty",
                "frequency_penalty", "max_tokens"}


def parse_completion(body: Any) -> GenerationParams:
    """``POST /v1/completions``."""
    common = _common(body, "completions", _COMMON_KEYS | {"prompt", "logprobs", "echo", "suffix"})
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _bad("prompt", "must be one string (lists of prompts and token ids are not supported)")
    if body.get("echo"):
        raise _bad("echo", "is not supported")
    if body.get("suffix"):
        raise _bad("suffix", "is not supported")
    return GenerationParams(prompt=prompt, max_tokens=_integer(body, "max_tokens", 16, 1, MAX_TOKENS_CAP) or 16,
                            logprobs=_integer(body, "logprobs", None, 0, 20), **common)


def _messages(raw: Any) -> tuple[ChatMessage, ...]:
    if not isinstance(raw, list) or not raw:
        raise _bad("messages", "must be a non-empty list of {role, content}")
    messages = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict) or set(message) - {"role", "content", "name"}:
            raise _bad(f"messages[{i}]", "must be {role, content} (tool calls are not supported)")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise _bad(f"messages[{i}].role", f"must be one of {', '.join(_ROLES)}")
        if isinstance(content, list):  # [{"type": "text", "text": ...}]
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise _bad(f"messages[{i}].content", "only text parts are supported")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise _bad(f"messages[{i}].content", "must be a string")
        messages.append(ChatMessage("system" if role == "developer" else role, content))
    return tuple(messages)


def parse_chat(body: Any) -> GenerationParams:
    """``POST /v1/chat/completions``."""
    common = _common(body, "chat", _COMMON_KEYS | {"messages", "max_completion_tokens", "logprobs", "top_logprobs"})
    messages = _messages(body.get("messages"))
    logprobs = body.get("logprobs", False)
    if not isinstance(logprobs, bool):
        raise _bad("logprobs", "must be true or false")
    top = _integer(body, "top_logprobs", None, 0, 20)
    if top is not None and not logprobs:
        raise _bad("top_logprobs", "needs logprobs: true")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = _integer({"max_tokens": limit}, "max_tokens", 256, 1, MAX_TOKENS_CAP) or 256
    return GenerationParams(messages=messages, max_tokens=max_tokens,
                            logprobs=(top or 0) if logprobs else None, **common)


@dataclass(frozen=True)
class AuditRequest:
    """``POST /v1/attribute``: an answer to attribute without serving it (``prompt`` as the model sees
    it, or chat ``messages`` the node renders with the model's chat template)."""

    model: str
    completion: str
    prompt: str | None = None
    messages: tuple[ChatMessage, ...] = ()

    def as_generation(self) -> GenerationParams:
        """The prompt part as a request (so the node renders it exactly as it renders a served one)."""
        if self.prompt is not None:
            return GenerationParams(model=self.model, api="completions", prompt=self.prompt)
        return GenerationParams(model=self.model, api="chat", messages=self.messages)


def parse_attribute(body: Any) -> AuditRequest:
    """``POST /v1/attribute``: ``{"model", "prompt" | "messages", "completion"}``."""
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object", param=None)
    unknown = set(body) - {"model", "prompt", "messages", "completion"}
    if unknown:
        raise _bad(sorted(unknown)[0], "is not a field of an attribution request (model, prompt or messages, "
                                       "completion)")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "is required: the adapter's name (GET /v1/models lists them)")
    completion = body.get("completion")
    if not isinstance(completion, str) or not completion.strip():
        raise _bad("completion", "is required: the answer text to attribute (a non-empty string)")
    if ("prompt" in body) == ("messages" in body):
        raise _bad("prompt", "give exactly one of prompt (the text the model saw) and messages (a chat)")
    if "prompt" in body:
        if not isinstance(body["prompt"], str):
            raise _bad("prompt", "must be a string")
        return AuditRequest(model, completion, prompt=body["prompt"])
    return AuditRequest(model, completion, messages=_messages(body["messages"]))
