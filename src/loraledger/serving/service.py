"""One base model served with every adapter registered for it: the wiring of the engine, the
residency tiers, prices, payers and the recorder (what ``loraledger node run --base DIR`` adds).

:meth:`ServingService.start` turns OpenAI-style :class:`~loraledger.serving.protocol.GenerationParams`
into an engine request: the model name is resolved (the base's served name, or a registered
adapter of this base; anything else is a 404), the prompt rendered the way training rendered it
(:func:`~loraledger.training.data.render_chat` for chat), tokenised and checked against the
context, and the price in force taken. :meth:`ServingService.finish` records the answer (its
``inference`` and ``fee`` records, committed before the caller sends the last byte).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, NotFoundError, ResourceError
from ..payments.balances import Reservation
from ..records.kinds import InferenceRecord
from ..training.data import render_chat
from ..training.factory import ModelFactory
from .engine import Engine
from .loop import EngineLoop
from .lora import LoraSlots
from .metrics import DEFAULT_MAX_MODELS, ServingMetrics
from .pricing import Price, Prices, fee_for, price_to_dict
from .protocol import GenerationParams
from .recorder import Answered, InferenceRecorder
from .requests import OutputEvent, RequestHandle
from .sampling import SamplingParams
from .store import AdapterStore
from .upstream import UpstreamBackend

__all__ = ["Generation", "ServedModel", "ServingService"]

log = logging.getLogger("loraledger.serving")

#: The attention projections of the families the engine serves: what an adapter of this node
#: may target unless the settings name others (every slot costs ``rank × (in + out)`` per layer).
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "c_attn", "c_proj")
_SERVED_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ServedModel:
    """A name the API answers to: the base model, or one registered adapter of it."""

    name: str
    adapter_hash: str | None
    developer: str | None
    #: Contributor → training rows (the fee's weights until attribution scores answers).
    weights: dict[str, int]
    created: int


@dataclass
class Generation:
    """One request on its way through the engine, and what its record needs at the end."""

    handle: RequestHandle
    params: GenerationParams
    served: ServedModel
    payer: str
    price: Price
    prompt_text: str
    prompt_tokens: int
    submitted: float
    first_token_at: float | None = None
    text_parts: list[str] = field(default_factory=list)
    completion_tokens: int = 0
    finish_reason: str | None = None
    error: str | None = None
    #: What this request set aside from its payer's deposit until its fee is debited (None: no deposits).
    reservation: Reservation | None = None

    def absorb(self, event: OutputEvent) -> None:
        """Account for one engine event."""
        if (event.token_ids or event.text) and self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.text_parts.append(event.text)
        self.completion_tokens = event.completion_tokens
        if event.finished:
            self.finish_reason = event.finish_reason
            self.error = event.error
            if event.prompt_tokens:  # the backend's own count (an upstream tokenises itself)
                self.prompt_tokens = event.prompt_tokens

    @property
    def output(self) -> str:
        return "".join(self.text_parts)


class ServingService:
    """See the module docstring. Thread-safe: the API calls it from many threads at once."""

    def __init__(self, *, model: Any, tokenizer: Any, base_name: str, base_model_hash: str, factory: ModelFactory,
                 store: AdapterStore, loop: EngineLoop | None, prices: Prices, recorder: InferenceRecorder,
                 open_payer: str | None = None, upstream: UpstreamBackend | None = None,
                 metrics_models: int = DEFAULT_MAX_MODELS) -> None:
        if (loop is None) == (upstream is None):
            raise ValueError("a serving service generates with the built-in engine or an upstream, exactly one")
        self.model = model
        self.tokenizer = tokenizer
        self.base_name = base_name
        self.base_model_hash = base_model_hash
        self.factory = factory
        self.store = store
        self.loop = loop
        self.prices = prices
        self.recorder = recorder
        self.open_payer = open_payer
        #: Who generates: the built-in engine (``loop``) or an OpenAI-compatible upstream.
        self.upstream = upstream
        self.backend = "builtin" if upstream is None else upstream.name
        #: Whether the adapter of this hash has an attribution index (its answers' fees then wait for
        #: their attribution; the node sets this when it runs the attribution worker).
        self.attributed: Callable[[str], bool] = lambda adapter_hash: False
        self.started = int(time.time())
        #: Prometheus metrics (``GET /metrics``): ``metrics_models`` models get a label of their own.
        queue_of: Any = loop.engine if loop is not None else upstream  # both count running and waiting requests
        self.metrics = ServingMetrics(store=store, engine=queue_of, recorder=recorder, base_name=base_name,
                                      max_models=metrics_models)
        self._served: dict[str, ServedModel] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, base_dir: Path, *, factory: ModelFactory, prices: Prices, recorder: InferenceRecorder,
             max_loras: int, max_cpu_loras: int, max_rank: int, target_modules: tuple[str, ...] = DEFAULT_TARGETS,
             max_running: int = 16, max_batch_tokens: int = 4096, open_payer: str | None = None,
             device: str = "auto", metrics_models: int = DEFAULT_MAX_MODELS) -> ServingService:
        """Load the base model at ``base_dir`` and start its engine."""
        from ..training.hf.basemodel import load_base_model

        base_hash = factory.hash_base(base_dir).hash
        name = _served_name(base_dir, factory)
        made: dict[str, Any] = {}

        def make() -> Engine:  # on the engine's own thread, where all its torch work runs
            loaded = made["loaded"] = load_base_model(base_dir, device=device)
            present = {n.rsplit(".", 1)[-1] for n, _ in loaded.model.named_modules()}
            slots = LoraSlots(loaded.model, max_loras=max_loras, max_rank=max_rank,
                              target_modules=[t for t in target_modules if t in present] or None)
            store = made["store"] = AdapterStore(factory.get, slots, base_model_hash=base_hash, max_loras=max_loras,
                                                 max_cpu_loras=max_cpu_loras, max_rank=max_rank, base_name=name)
            return Engine(loaded.model, loaded.tokenizer, slots, max_running=max_running,
                          max_batch_tokens=max_batch_tokens, slot_provider=store, base_name=name)

        loop = EngineLoop.build(make)
        loaded, store = made["loaded"], made["store"]
        store.run_on_device = loop.call
        log.info("serving %s (base model %s) on %s with %s adapter slots", name, base_hash, loaded.device, max_loras)
        return cls(model=loaded.model, tokenizer=loaded.tokenizer, base_name=name, base_model_hash=base_hash,
                   factory=factory, store=store, loop=loop, prices=prices, recorder=recorder, open_payer=open_payer,
                   metrics_models=metrics_models)

    @classmethod
    def open_upstream(cls, base_dir: Path, url: str, *, factory: ModelFactory, prices: Prices,
                      recorder: InferenceRecorder, api_key: str | None = None, upstream_model: str | None = None,
                      open_payer: str | None = None, metrics_models: int = DEFAULT_MAX_MODELS) -> ServingService:
        """Serve ``base_dir``'s adapters with generation on the upstream at ``url``: only the
        tokenizer is loaded here (to render prompts as training did), never the weights."""
        from transformers import AutoTokenizer

        name = _served_name(base_dir, factory)
        base_hash = factory.hash_base(base_dir).hash
        tokenizer = AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True)
        config = json.loads((base_dir / "config.json").read_text())
        upstream = UpstreamBackend(url, api_key=api_key, base_model=upstream_model or name,
                                   max_model_len=int(config.get("max_position_embeddings") or config.get("n_positions")
                                                     or 2**31))
        store = AdapterStore(factory.get, _NoSlots(), base_model_hash=base_hash, max_loras=1, max_cpu_loras=1,
                             max_rank=1, base_name=name)
        log.info("serving %s (base model %s) with generation on %s", name, base_hash, upstream.base_url)
        return cls(model=None, tokenizer=tokenizer, base_name=name, base_model_hash=base_hash, factory=factory,
                   store=store, loop=None, prices=prices, recorder=recorder, open_payer=open_payer, upstream=upstream,
                   metrics_models=metrics_models)

    # ---- models ----------------------------------------------------------------------
    def models(self) -> list[ServedModel]:
        """The base and every registered adapter of this base model."""
        out = [self.resolve(self.base_name)]
        for row in self.factory.all():
            if row.base_model_hash == self.base_model_hash:
                out.append(self.resolve(row.name))
        return out

    def resolve(self, name: str) -> ServedModel:
        """The model called ``name``: NotFoundError for anything that is not served here."""
        with self._lock:
            cached = self._served.get(name)
        if cached is not None:
            return cached
        row = self.store.check(name)  # NotFoundError / InputError (another base) before any file is read
        if row is None:
            served = ServedModel(self.base_name, None, None, {}, self.started)
        else:
            weights: dict[str, int] = {}
            if row.source == "trained":
                contributors = self.factory.provenance(name).get("trainingRows", {}).get("contributors", {})
                weights = {address: int(count) for address, count in contributors.items()}
            served = ServedModel(row.name, row.adapter_hash, row.developer, weights, int(row.created_at))
        with self._lock:
            self._served[name] = served
        return served

    # ---- requests --------------------------------------------------------------------
    def payer_of(self, key: str | None, keys: Any) -> str:
        """Who pays: the key's payer; without a key, the open payer if the node was started so."""
        if key is None and self.open_payer is not None:
            return self.open_payer
        return keys.authenticate(key)

    @property
    def max_model_len(self) -> int:
        """The model's context, in tokens (prompt and answer)."""
        return self.loop.engine.max_model_len if self.loop is not None else self.upstream.max_model_len

    def prompt(self, params: GenerationParams) -> tuple[str, list[int]]:
        """The prompt as the model sees it (chat messages through the chat template) and its token ids."""
        if params.api == "chat":
            messages = [{"role": m.role, "content": m.content} for m in params.messages]
            text = render_chat(self.tokenizer, messages, generation_prompt=True)
            return text, list(self.tokenizer.encode(text, add_special_tokens=False))
        assert params.prompt is not None
        return params.prompt, list(self.tokenizer.encode(params.prompt))

    def start(self, params: GenerationParams, payer: str) -> Generation:
        """Submit ``params`` to the engine (see the module docstring); the caller reads
        ``generation.handle.events`` and then calls :meth:`finish`."""
        served = self.resolve(params.model)
        prompt_text, ids = self.prompt(params)
        context = self.max_model_len
        if len(ids) + params.max_tokens > context:
            raise InputError(f"the prompt has {len(ids)} tokens and max_tokens is {params.max_tokens}: more than "
                             f"the model's context of {context} tokens", param="max_tokens")
        sampling = SamplingParams(temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens,
                                  stop=params.stop, seed=params.seed, logprobs=params.logprobs is not None,
                                  top_logprobs=params.logprobs or 0)
        adapter = None if served.adapter_hash is None else served.name
        price = self.prices.current(served.name)
        balances = self.recorder.balances
        # The most this request can cost, set aside from the payer's deposit before it is queued (402 if short).
        reservation = None if balances is None else balances.reserve(
            payer, fee_for(price, len(ids), params.max_tokens), price=price_to_dict(served.name, price))
        submitted = time.monotonic()
        try:
            if self.upstream is not None:
                handle: Any = self.upstream.submit(prompt_text, adapter=adapter, params=sampling)
            else:
                try:
                    handle = self.loop.submit(ids, adapter=adapter, params=sampling)
                except RuntimeError as exc:  # the loop is stopping
                    raise ResourceError(f"the engine is not accepting requests: {exc}") from None
        except BaseException:
            if reservation is not None:
                reservation.release()
            raise
        return Generation(handle, params, served, payer, price, prompt_text, len(ids), submitted,
                          reservation=reservation)

    def finish(self, generation: Generation) -> InferenceRecord:
        """Record the answer (blocks until its records are committed), then count it in the metrics."""
        now = time.monotonic()
        reason = generation.finish_reason or "cancelled"
        first = generation.first_token_at
        admitted = generation.handle.admitted_at  # None: it never left the queue
        answered = Answered(
            model=generation.served.name, adapter_hash=generation.served.adapter_hash,
            base_model_hash=self.base_model_hash, prompt=generation.prompt_text, output=generation.output,
            prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens,
            finish_reason=reason if reason in ("stop", "length", "cancelled", "error") else "error",
            sampling=generation.params.sampling(), payer=generation.payer, price=generation.price,
            queue_ms=int(((now if admitted is None else admitted) - generation.submitted) * 1000),
            first_token_ms=None if first is None else int((first - generation.submitted) * 1000),
            total_ms=int((now - generation.submitted) * 1000), backend=self.backend, api=generation.params.api,
            developer=generation.served.developer, weights=generation.served.weights,
            attribute=generation.served.adapter_hash is not None and self.attributed(generation.served.adapter_hash))
        try:
            record = self.recorder.record(answered)
        finally:
            if generation.reservation is not None:  # debited with the record (or nothing was written)
                generation.reservation.release()
        self.metrics.observe(answered, submitted=generation.submitted, admitted=admitted, first_token=first,
                             finished=now)
        return record

    def waiting(self) -> tuple[int, int]:
        """(requests waiting, requests that can run at once): what the API's capacity check reads."""
        if self.loop is None:
            return 0, 1  # the upstream answers 429 itself when it is full
        engine = self.loop.engine
        return engine.waiting, engine.scheduler.max_running

    def close(self) -> None:
        if self.loop is not None:
            self.loop.stop()
        self.store.close()
        self.recorder.close()


def _served_name(base_dir: Path, factory: ModelFactory) -> str:
    """The API name of the base model: its directory's name (not an adapter's)."""
    name = base_dir.name.lower()
    if not _SERVED_NAME.fullmatch(name):
        raise InputError(f"the base model directory's name {base_dir.name!r} is not a usable model name "
                         "([a-z0-9][a-z0-9._-]{0,63}); rename the directory")
    try:
        factory.get(name)
    except NotFoundError:
        return name
    raise InputError(f"an adapter is named {name!r} like the base model directory; rename the directory")


class _NoSlots:
    """The device tier of a node whose generation runs upstream: nothing is loaded here."""

    def load(self, slot: int, weights: Any) -> None:
        raise InputError("this node generates on an upstream server: load adapters there")

    def clear(self, slot: int) -> None:
        return None
