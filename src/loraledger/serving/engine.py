"""The batched multi-LoRA engine: continuous batching over one base model and its adapter slots.

Each :meth:`Engine.step` (synchronous, deterministic for a given order of submissions):

1. takes in what was submitted since the last step and drops cancelled requests (their rows
   and adapter holds are freed);
2. admits waiting requests while ``max_running`` and the token budget allow and their adapter
   has a slot (:class:`~loraledger.serving.scheduler.Scheduler`), and prefills them; each gets
   its first token from the prefill logits;
3. runs ONE decode forward for every running sequence, whatever its adapter, over the running
   batch's persistent KV cache (:class:`~loraledger.serving.kvcache.BatchKV`: a sequence joins
   it after its prefill and leaves it when it finishes), samples each row with its own
   parameters and appends the token;
4. retires finished sequences (max_tokens, end-of-sequence, stop string, the model's context)
   and emits one :class:`~loraledger.serving.requests.OutputEvent` per request that changed.

:meth:`Engine.submit` may be called from any thread (the tokenizer is guarded by a lock and
submissions reach the step through a queue); :class:`~loraledger.serving.loop.EngineLoop`
drives ``step`` on a background thread.
"""

from __future__ import annotations

import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Sequence as Seq
from typing import Any

import torch
from torch import nn

from ..errors import InputError, LoraLedgerError
from .kvcache import BatchKV
from .lora import LoraSlots
from .requests import OutputEvent, Request, RequestHandle
from .runner import ModelRunner
from .sampling import SampledToken, SamplingParams, sample
from .scheduler import BASE_MODEL, Scheduler, Sequence, SlotProvider
from .text import TextTracker

__all__ = ["Engine"]


def _eos_ids(model: nn.Module, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)


class Engine:
    """Serves one base model (``model``, ``tokenizer``) with the adapters in ``slots``.

    ``max_running``: sequences decoded together; ``max_batch_tokens``: tokens one step may
    compute (prompts prefilled + one per running sequence); ``slot_provider``: where adapters are
    resident (:class:`~loraledger.serving.scheduler.SlotProvider`); ``base_name``: the adapter
    name that means the base model; ``prefill``: ``"auto"`` (left-padded batches of similar
    lengths), ``"batched"`` (one left-padded forward) or ``"single"``; ``seed``: seeds of requests that bring none.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, slots: LoraSlots | None, *, max_running: int = 16,
                 max_batch_tokens: int = 4096, slot_provider: SlotProvider, base_name: str = BASE_MODEL,
                 prefill: str = "auto", seed: int = 0) -> None:
        self.tokenizer = tokenizer
        self.runner = ModelRunner(model, slots, prefill=prefill)
        #: The running sequences' KV cache; ``self._rows[i]`` is the sequence in its row ``i``.
        self.kv = BatchKV(self.runner.num_layers)
        self._rows: list[Sequence] = []
        self.scheduler = Scheduler(slot_provider, max_running=max_running, max_batch_tokens=max_batch_tokens)
        self.base_name = base_name
        self.eos_ids = _eos_ids(model, tokenizer)
        config = model.config.get_text_config()
        self.max_model_len = int(getattr(config, "max_position_embeddings", 0) or getattr(config, "n_positions", 0)
                                 or 2**31)
        self._seeds = random.Random(seed)
        self._tokenizer_lock = threading.Lock()
        self._inbox: queue.SimpleQueue[Sequence] = queue.SimpleQueue()
        self._ids = 0
        self._wake: Callable[[], None] | None = None
        #: Distinct adapters (base included) in each decode step so far: for tests and metrics.
        self.steps = 0
        self.last_step_adapters: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ submit
    def submit(self, prompt: str | Seq[int], *, adapter: str | None = None, params: SamplingParams | None = None,
               request_id: str | None = None,
               on_event: Callable[[OutputEvent], None] | None = None) -> RequestHandle:
        """Queue a request (any thread); InputError for a prompt the engine can never run."""
        params = params or SamplingParams()
        if isinstance(prompt, str):
            with self._tokenizer_lock:
                prompt_ids = tuple(int(i) for i in self.tokenizer(prompt)["input_ids"])
        else:
            prompt_ids = tuple(int(i) for i in prompt)
        if not prompt_ids:
            raise InputError("the prompt is empty")
        if len(prompt_ids) + 1 > self.scheduler.max_batch_tokens:
            raise InputError(f"the prompt has {len(prompt_ids)} tokens, more than this engine's batch budget "
                             f"({self.scheduler.max_batch_tokens - 1})", prompt_tokens=len(prompt_ids))
        if len(prompt_ids) >= self.max_model_len:
            raise InputError(f"the prompt has {len(prompt_ids)} tokens; the model's context is {self.max_model_len}",
                             prompt_tokens=len(prompt_ids))
        if adapter is not None and (not isinstance(adapter, str) or not adapter):
            raise InputError(f"adapter must be a non-empty name, got {adapter!r}")
        if request_id is None:
            self._ids += 1
            request_id = f"req-{self._ids}-{uuid.uuid4().hex[:8]}"
        request = Request(request_id, prompt_ids, adapter, params)
        handle = RequestHandle(request, on_event, wake=self._wake)
        seed = params.seed if params.seed is not None else self._seeds.randrange(2**63)
        seq = Sequence(request=request, handle=handle,
                       text=TextTracker(self.tokenizer, prompt_ids, params.stop, self._tokenizer_lock),
                       generator=torch.Generator().manual_seed(seed),
                       adapter=adapter or self.base_name)
        self._inbox.put(seq)
        if self._wake is not None:
            self._wake()
        return handle

    def has_work(self) -> bool:
        return not self._inbox.empty() or len(self.scheduler) > 0

    @property
    def running(self) -> int:
        return len(self.scheduler.running)

    @property
    def waiting(self) -> int:
        return len(self.scheduler.waiting)

    # ------------------------------------------------------------------ step
    def step(self) -> list[OutputEvent]:
        """One scheduling step (see the module docstring); the events it emitted, in order."""
        while not self._inbox.empty():
            self.scheduler.add(self._inbox.get_nowait())
        touched: list[Sequence] = []
        for seq in self.scheduler.cancelled():
            self._finish(seq, "cancelled")
            touched.append(seq)
        admitted, refused = self.scheduler.admit()
        now = time.monotonic()
        for seq in admitted:
            seq.handle.admitted_at = now
        for seq, exc in refused:
            self._finish(seq, "error", exc.message)
            touched.append(seq)
        batch: list[Sequence] = []
        try:
            if admitted:
                batch = admitted
                logits, caches = self.runner.prefill([s.request.prompt_ids for s in admitted],
                                                     [s.slot or 0 for s in admitted])
                for seq, kv in zip(admitted, caches):
                    seq.row = self.kv.add(kv)
                    self._rows.append(seq)
                del caches  # the prefill's own cache is freed once copied into the batch
                self._append(admitted, logits)
                touched.extend(admitted)
            batch = list(self._rows)
            if batch:
                self.last_step_adapters = frozenset(s.adapter for s in batch)
                logits = self.runner.decode([s.output_ids[-1] for s in batch], self.kv, [s.slot or 0 for s in batch])
                self._append(batch, logits)
                touched.extend(batch)
                self.steps += 1
        except LoraLedgerError as exc:
            # The batch's caches may be half-updated: its requests fail, the engine goes on.
            for seq in batch:
                self._finish(seq, "error", exc.message)
            touched.extend(batch)
        for name in self.scheduler.active_adapters():
            self.scheduler.provider.touch(name)
        events = []
        for seq in dict.fromkeys(touched):  # once each, in order
            event = self._event(seq)
            if event is not None:
                events.append(event)
        return events

    def _append(self, seqs: list[Sequence], logits: torch.Tensor) -> None:
        tokens = sample(logits, [s.request.params for s in seqs], [s.generator for s in seqs])
        for seq, token in zip(seqs, tokens):
            self._add_token(seq, token)

    def _add_token(self, seq: Sequence, token: SampledToken) -> None:
        params = seq.request.params
        seq.output_ids.append(token.token_id)
        seq.new_ids.append(token.token_id)
        if token.logprob is not None:
            seq.new_logprobs.append(token.logprob)
        if token.token_id in self.eos_ids and not params.ignore_eos:
            self._finish(seq, "stop")
        elif seq.text.push(token.token_id):
            self._finish(seq, "stop")
        elif len(seq.output_ids) >= params.max_tokens or seq.prompt_len + len(seq.output_ids) >= self.max_model_len:
            self._finish(seq, "length")

    def _finish(self, seq: Sequence, reason: str, error: str | None = None) -> None:
        if seq.finished:
            return
        seq.finish_reason = reason
        seq.error = error
        if seq.row is not None:  # its row of the batch cache is freed: the last row moves into it
            moved = self.kv.remove(seq.row)
            last = self._rows.pop()
            if moved is not None:
                self._rows[seq.row] = last
                last.row = seq.row
            seq.row = None
        self.scheduler.retire(seq)

    def _event(self, seq: Sequence) -> OutputEvent | None:
        if seq.handle.finished or (not seq.new_ids and not seq.finished):
            return None
        event = OutputEvent(
            request_id=seq.request.request_id, text=seq.text.take(final=seq.finished), token_ids=tuple(seq.new_ids),
            finished=seq.finished, finish_reason=seq.finish_reason, prompt_tokens=seq.prompt_len,
            completion_tokens=len(seq.output_ids), logprobs=tuple(seq.new_logprobs), error=seq.error,
            stop=seq.text.stopped_by if seq.finish_reason == "stop" else None)
        seq.new_ids.clear()
        seq.new_logprobs.clear()
        seq.handle._emit(event)
        return event

    def reset_running(self, error: str) -> list[OutputEvent]:
        """Fail every running request and drop the batch cache whole: the way out when a step left
        the cache in a state that freeing rows one by one cannot undo."""
        self.kv.clear()
        self._rows.clear()
        seqs = list(self.scheduler.running)
        for seq in seqs:
            seq.row = None
            self._finish(seq, "error", error)
        return [e for e in (self._event(s) for s in seqs) if e is not None]

    # ------------------------------------------------------------------ shutdown
    def abort_all(self, reason: str = "cancelled", error: str | None = None, *,
                  running_only: bool = False) -> list[OutputEvent]:
        """Finish every running request, and unless ``running_only`` every queued one too."""
        seqs = list(self.scheduler.running)
        if not running_only:
            while not self._inbox.empty():
                self.scheduler.add(self._inbox.get_nowait())
            seqs += list(self.scheduler.waiting)
        for seq in seqs:
            self._finish(seq, reason, error)
        return [e for e in (self._event(s) for s in seqs) if e is not None]
