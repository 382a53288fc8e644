"""Generation on another server: an OpenAI-compatible upstream with LoRA (vLLM ``--enable-lora``,
LoRAX, or another loraledger node), where the adapter's name is the request's ``model``.

A node that outgrows one machine keeps doing its own part — resolving the model against its
ledger, rendering the prompt the way training did, checking the payer's key, pricing, and
recording every answer — while :class:`UpstreamBackend` sends the rendered prompt to
``POST {upstream}/v1/completions`` with ``stream: true`` and turns the server-sent events into
the same :class:`~loraledger.serving.requests.OutputEvent` stream the built-in engine emits. The
token counts are the upstream's own (its final usage chunk), so the fee is what was computed.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from typing import Any

import httpx

from ..errors import ChainError, ConfigError, InputError, NotFoundError, Overloaded, Unauthorized
from .requests import OutputEvent
from .sampling import SamplingParams

__all__ = ["UpstreamBackend", "UpstreamHandle"]

log = logging.getLogger("loraledger.serving")


class UpstreamHandle:
    """One request on the upstream: the same surface as the engine's ``RequestHandle``
    (``events``, ``cancel()``, ``request_id``, ``admitted_at``)."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.events: queue.Queue[OutputEvent] = queue.Queue()
        self.admitted_at: float | None = None
        self.finished = False
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()


def _refusal(status: int, body: Any) -> Exception:
    error = body.get("error") if isinstance(body, dict) else None
    message = (error.get("message") if isinstance(error, dict) else None) or f"the upstream answered {status}"
    if status == 404:
        return NotFoundError(f"the upstream does not serve this model: {message}")
    if status == 400:
        return InputError(f"the upstream refused the request: {message}")
    if status in (401, 403):
        return Unauthorized(f"the upstream refused this node's key: {message}")
    if status == 429:
        return Overloaded(f"the upstream is at capacity: {message}", retry_after=1)
    return ConfigError(f"the upstream failed ({status}): {message}")


class UpstreamBackend:
    """Sends requests to ``base_url`` (``.../v1`` is appended) with ``api_key`` as its bearer token."""

    def __init__(self, base_url: str, *, api_key: str | None = None, base_model: str, timeout: float = 600.0,
                 max_model_len: int = 2**31) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        #: The upstream's name for the base model (used when the base itself answers).
        self.base_model = base_model
        self.timeout = timeout
        self.max_model_len = max_model_len
        self.name = f"upstream:{self.base_url}"
        self.running = 0
        self.waiting = 0
        self._lock = threading.Lock()

    def submit(self, prompt: str, *, adapter: str | None, params: SamplingParams) -> UpstreamHandle:
        """Start the request on a worker thread; its events arrive on the handle."""
        handle = UpstreamHandle(f"up-{uuid.uuid4().hex[:12]}")
        body: dict[str, Any] = {"model": adapter or self.base_model, "prompt": prompt, "max_tokens": params.max_tokens,
                                "temperature": params.temperature, "top_p": params.top_p, "stream": True,
                                "stream_options": {"include_usage": True}}
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        threading.Thread(target=self._run, args=(handle, body), name=f"upstream-{handle.request_id}",
                         daemon=True).start()
        return handle

    def _run(self, handle: UpstreamHandle, body: dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        prompt_tokens = completion_tokens = 0
        finish: str | None = None
        with self._lock:
            self.running += 1
        try:
            with httpx.stream("POST", f"{self.base_url}/v1/completions", json=body, headers=headers,
                              timeout=self.timeout) as response:
                if response.status_code != 200:
                    response.read()
                    try:
                        error_body = response.json()
                    except ValueError:
                        error_body = None
                    raise _refusal(response.status_code, error_body)
                handle.admitted_at = time.monotonic()
                for line in response.iter_lines():
                    if handle.cancelled:
                        finish = "cancelled"
                        break  # leaving the with-block closes the connection: the upstream cancels too
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if "error" in chunk and not chunk.get("choices"):
                        raise ConfigError(f"the upstream failed mid-answer: {chunk['error'].get('message')}")
                    usage = chunk.get("usage")
                    if usage:
                        prompt_tokens = int(usage.get("prompt_tokens", prompt_tokens))
                        completion_tokens = int(usage.get("completion_tokens", completion_tokens))
                    for choice in chunk.get("choices", []):
                        text = choice.get("text") or ""
                        if text:
                            handle.events.put(OutputEvent(handle.request_id, text, (), False, None, prompt_tokens,
                                                          completion_tokens))
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
            reason = finish if finish in ("stop", "length", "cancelled") else "stop"
            handle.events.put(OutputEvent(handle.request_id, "", (), True, reason, prompt_tokens, completion_tokens))
        except (httpx.HTTPError, OSError) as exc:
            error = f"the upstream {self.base_url} cannot be reached ({type(exc).__name__})"
            handle.events.put(OutputEvent(handle.request_id, "", (), True, "error", prompt_tokens, completion_tokens,
                                          error=error))
        except (ConfigError, InputError, NotFoundError, Unauthorized, Overloaded, ChainError) as exc:
            handle.events.put(OutputEvent(handle.request_id, "", (), True, "error", prompt_tokens, completion_tokens,
                                          error=exc.message))
        finally:
            handle.finished = True
            with self._lock:
                self.running -= 1
