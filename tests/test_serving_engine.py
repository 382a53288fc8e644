"""The batched multi-LoRA engine on tiny random models: rows of a mixed batch (several adapters and
the base, different prompt lengths) give PEFT's single-adapter logits and greedy tokens; seeds,
stop strings, finish reasons, slot limits, cancellation and the background loop."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from loraledger.errors import InputError
from loraledger.serving.engine import Engine
from loraledger.serving.kvcache import BatchKV
from loraledger.serving.loop import EngineLoop
from loraledger.serving.lora import LoraSlots
from loraledger.serving.runner import ModelRunner, prefill_groups
from loraledger.serving.sampling import SamplingParams
from loraledger.serving.scheduler import StaticSlots
from loraledger.serving.text import TextTracker
from loraledger.serving.weights import AdapterWeights, LoraModuleWeights, load_adapter_weights
from loraledger.training.hf.tiny import init_tiny_model

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MAX_RANK = 8
#: (rank, alpha, rslora, which targets) of the adapters made for each family.
ADAPTERS = {"a1": (2, 4, False, 0), "a2": (4, 8, True, 1), "a3": (8, 8, False, 2)}
TARGETS = {
    "llama": [["q_proj", "v_proj"], ["q_proj", "k_proj", "o_proj", "down_proj"], ["v_proj", "gate_proj", "up_proj"]],
    "qwen2": [["q_proj", "v_proj"], ["k_proj", "o_proj", "up_proj"], ["q_proj", "v_proj", "down_proj"]],
    "gpt2": [["c_attn"], ["c_attn", "c_proj"], ["c_fc", "c_proj"]],
}


class Family:
    def __init__(self, root: Path, family: str) -> None:
        self.base = init_tiny_model(root / "base", family).path
        self.adapters: dict[str, Path] = {}
        for i, (name, (rank, alpha, rslora, targets)) in enumerate(ADAPTERS.items()):
            model = self.load()
            config = peft.LoraConfig(r=rank, lora_alpha=alpha, use_rslora=rslora, lora_dropout=0.0,
                                     target_modules=TARGETS[family][targets])
            wrapped = peft.get_peft_model(model, config)
            gen = torch.Generator().manual_seed(100 + i)
            with torch.no_grad():  # B random too, so every adapter changes the output
                for pname, param in wrapped.named_parameters():
                    if "lora_" in pname:
                        param.copy_(torch.randn(param.shape, generator=gen) * 0.3)
            wrapped.save_pretrained(root / name)
            self.adapters[name] = root / name
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.base)
        self.weights = {name: load_adapter_weights(path, name=name, adapter_hash="0" * 64, max_rank=MAX_RANK)
                        for name, path in self.adapters.items()}

    def load(self):
        return transformers.AutoModelForCausalLM.from_pretrained(self.base, dtype=torch.float32).to(DEVICE).eval()

    def peft_model(self):
        names = list(self.adapters)
        model = peft.PeftModel.from_pretrained(self.load(), self.adapters[names[0]], adapter_name=names[0])
        for name in names[1:]:
            model.load_adapter(self.adapters[name], adapter_name=name)
        return model.eval()

    def engine(self, *, max_loras: int = 3, max_running: int = 8, max_batch_tokens: int = 512, **kwargs):
        model = self.load()
        slots = LoraSlots(model, max_loras=max_loras, max_rank=MAX_RANK)
        provider = StaticSlots(slots, self.weights)
        return Engine(model, self.tokenizer, slots, slot_provider=provider, max_running=max_running,
                      max_batch_tokens=max_batch_tokens, **kwargs)


@pytest.fixture(scope="module")
def families(tmp_path_factory) -> dict[str, Family]:
    root = tmp_path_factory.mktemp("serving")
    return {family: Family(root / family, family) for family in ("llama", "qwen2", "gpt2")}


def prompts_of(lengths, seed=0, vocab=300):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=gen).tolist() for n in lengths]


def reference_logits(ref, adapter: str | None, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        inputs = torch.tensor([ids], device=DEVICE)
        if adapter is None:
            with ref.disable_adapter():
                return ref(inputs).logits[0, -1].float()
        ref.set_adapter(adapter)
        return ref(inputs).logits[0, -1].float()


def run(engine: Engine) -> None:
    while engine.has_work():
        engine.step()


def collect(handle):
    events = list(handle.events.queue)
    assert events and events[-1].finished and all(not e.finished for e in events[:-1])
    return events, "".join(e.text for e in events), [t for e in events for t in e.token_ids]


# ---- (a) logits of a mixed batch = PEFT's single-adapter forward, every step ---------------
@pytest.mark.parametrize(("family", "op"), [("llama", "group"), ("llama", "gather"), ("qwen2", "group"),
                                            ("gpt2", "group")])
def test_mixed_batch_logits_match_peft_every_step(families, family, op):
    fam = families[family]
    ref = fam.peft_model()
    model = fam.load()
    slots = LoraSlots(model, max_loras=3, max_rank=MAX_RANK, op=op)
    names = list(fam.weights)
    for slot, name in enumerate(names, start=1):
        slots.load(slot, fam.weights[name])
    runner = ModelRunner(model, slots)
    # Rows: base, a1, a2, a3, a2 again; different prompt lengths; two rows join after 3 steps and
    # row 1 leaves after 5 (the last row moves into its place in the batch cache).
    plan = [(None, 0), ("a1", 1), ("a2", 2), ("a3", 3), ("a2", 2)]
    prompts = prompts_of([5, 11, 3, 8, 14], seed=1)
    start, late = [0, 1, 2], [3, 4]
    seqs = {i: list(prompts[i]) for i in range(5)}
    batch = BatchKV(runner.num_layers)
    rows: list[int] = []  # rows[r] = the sequence in batch row r
    worst = 0.0

    def check(which, logits):
        nonlocal worst
        for row, i in enumerate(which):
            expected = reference_logits(ref, plan[i][0], seqs[i])
            worst = max(worst, (logits[row] - expected).abs().max().item())

    def join(which):
        logits, kvs = runner.prefill([prompts[i] for i in which], [plan[i][1] for i in which])
        for i, kv in zip(which, kvs):
            assert batch.add(kv) == len(rows)
            rows.append(i)
        check(which, logits)

    join(start)
    gen = torch.Generator().manual_seed(7)
    for step in range(8):
        if step == 3:
            join(late)
        if step == 5:
            moved = batch.remove(rows.index(1))
            assert moved == len(rows) - 1
            rows[rows.index(1)] = rows.pop()
        forced = torch.randint(3, 300, (len(rows),), generator=gen).tolist()  # teacher forcing
        for i, token in zip(rows, forced):
            seqs[i].append(token)
        logits = runner.decode(forced, batch, [plan[i][1] for i in rows])
        check(rows, logits)
        assert batch.lengths == [len(seqs[i]) for i in rows]
    assert worst < 1e-4, worst
    # The adapters do change the output (else the comparison above would prove nothing).
    assert (reference_logits(ref, "a1", seqs[1]) - reference_logits(ref, None, seqs[1])).abs().max() > 1e-2


# ---- (b) greedy = PEFT generate, with other adapters in the batch --------------------------
@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
def test_greedy_generation_matches_peft_generate(families, family):
    fam = families[family]
    engine = fam.engine()
    prompts = prompts_of([6, 13, 4, 9], seed=2)
    adapters = [None, "a1", "a2", "a3"]
    greedy = SamplingParams(temperature=0, max_tokens=10)
    handles = [engine.submit(p, adapter=a, params=greedy) for p, a in zip(prompts, adapters)]
    engine.step()
    late = engine.submit(prompts_of([7], seed=3)[0], adapter="a2", params=greedy)  # joins mid-flight
    run(engine)
    ref = fam.peft_model()
    for prompt, adapter, handle in [*zip(prompts, adapters, handles), (prompts_of([7], seed=3)[0], "a2", late)]:
        events, text, tokens = collect(handle)
        inputs = torch.tensor([prompt], device=DEVICE)
        with torch.no_grad():
            if adapter is None:
                with ref.disable_adapter():
                    out = ref.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=10,
                                       do_sample=False)
            else:
                ref.set_adapter(adapter)
                out = ref.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=10,
                                   do_sample=False)
        assert tokens == out[0, len(prompt):].tolist(), adapter
        assert events[-1].completion_tokens == len(tokens) and events[-1].prompt_tokens == len(prompt)


# ---- (c) seeds --------------------------------------------------------------------------------
def test_same_seed_same_text_alone_or_batched(families):
    fam = families["llama"]
    params = SamplingParams(temperature=0.9, top_p=0.9, max_tokens=12, seed=1234)
    prompt = "The quick brown fox"
    alone = fam.engine()
    handle = alone.submit(prompt, adapter="a2", params=params)
    run(alone)
    busy = fam.engine()
    others = [busy.submit(p, adapter=a, params=SamplingParams(temperature=1.0, max_tokens=15, seed=s))
              for p, a, s in [("Hello there", "a1", 1), ("Water boils at", None, 2), ("In 1969, two", "a3", 3)]]
    busy.step()
    batched = busy.submit(prompt, adapter="a2", params=params)
    others.append(busy.submit("The capital of France", adapter="a2", params=SamplingParams(max_tokens=5)))
    run(busy)
    _, text_alone, tokens_alone = collect(handle)
    _, text_batched, tokens_batched = collect(batched)
    assert tokens_alone == tokens_batched and text_alone == text_batched
    # A different seed samples something else (the seed is what decides).
    other = fam.engine()
    handle = other.submit(prompt, adapter="a2", params=SamplingParams(temperature=0.9, top_p=0.9, max_tokens=12,
                                                                      seed=99))
    run(other)
    assert collect(handle)[2] != tokens_alone


# ---- (d) finish reasons, stop strings, logprobs ---------------------------------------------
def test_max_tokens_stop_strings_and_eos(families):
    fam = families["llama"]
    prompt = "Please summarise the following"
    engine = fam.engine()
    full = engine.submit(prompt, adapter="a2", params=SamplingParams(temperature=0, max_tokens=20,
                                                                     logprobs=True, top_logprobs=3))
    run(engine)
    events, text, tokens = collect(full)
    assert events[-1].finish_reason == "length" and len(tokens) == 20 and events[-1].completion_tokens == 20
    logprobs = [lp for e in events for lp in e.logprobs]
    assert [lp.token_id for lp in logprobs] == tokens
    for lp in logprobs:  # greedy: the chosen token is the most likely one
        assert len(lp.top) == 3 and lp.top[0][0] == lp.token_id and lp.top[0][1] == pytest.approx(lp.logprob)
        assert lp.top[0][1] >= lp.top[1][1] >= lp.top[2][1] and lp.logprob <= 0

    # A stop string from the middle of that text: the output ends right before it.
    stop = next(text[i:i + 2] for i in range(len(text) // 2, len(text) - 1)
                if text[i:i + 2].isprintable() and text[i:i + 2].strip() and text.find(text[i:i + 2]) > 0)
    engine = fam.engine()
    cut = engine.submit(prompt, adapter="a2", params=SamplingParams(temperature=0, max_tokens=20,
                                                                    stop=("\x00never", stop)))
    run(engine)
    events, stopped_text, _ = collect(cut)
    assert events[-1].finish_reason == "stop" and events[-1].stop == stop
    assert stopped_text == text[:text.find(stop)]
    assert all(stop not in e.text for e in events)

    # End of sequence: pretend the 5th greedy token is EOS; it ends the output and adds no text.
    engine = fam.engine()
    engine.eos_ids = frozenset({tokens[4]})
    first = tokens.index(tokens[4])
    eos = engine.submit(prompt, adapter="a2", params=SamplingParams(temperature=0, max_tokens=20))
    run(engine)
    events, eos_text, eos_tokens = collect(eos)
    assert events[-1].finish_reason == "stop" and eos_tokens == tokens[:first + 1]
    assert eos_text == fam.tokenizer.decode(tokens[:first], skip_special_tokens=True)


def test_text_tracker_holds_back_a_possible_stop_string(families):
    tok = families["llama"].tokenizer
    ids = tok("The river flows north")["input_ids"]
    tracker = TextTracker(tok, [], stop=["flows south"])
    sent, seen = "", []
    for token in ids:
        assert not tracker.push(token)
        sent += tracker.take(final=False)
        seen.append((tracker.text, sent))
    # While the text ends in "flows" it might still become "flows south": that part waits.
    assert ("The river flows", "The river ") in seen
    assert sent + tracker.take(final=True) == "The river flows north"
    tracker = TextTracker(tok, [], stop=["flows south"])
    assert any(tracker.push(t) for t in tok("The river flows south today")["input_ids"])
    assert tracker.text == "The river " and tracker.stopped_by == "flows south"


# ---- (e) never more adapters than slots ------------------------------------------------------
def test_requests_wait_for_a_slot_and_all_finish(families):
    fam = families["qwen2"]
    weights = dict(fam.weights)
    # A fourth adapter: a1's weights under another name (its output must then equal a1's).
    weights["a4"] = AdapterWeights("a4", "1" * 64, weights["a1"].rank, weights["a1"].modules, weights["a1"].scaling)
    model = fam.load()
    slots = LoraSlots(model, max_loras=2, max_rank=MAX_RANK)
    provider = StaticSlots(slots, weights)
    engine = Engine(model, fam.tokenizer, slots, slot_provider=provider, max_running=6, max_batch_tokens=512)
    greedy = SamplingParams(temperature=0, max_tokens=6)
    order = ["a1", "a2", "a3", "a4", None, "a3", "a1", "a4"]
    prompts = prompts_of([5, 6, 7, 8, 9, 4, 5, 6], seed=4)
    handles = [engine.submit(p, adapter=a, params=greedy) for p, a in zip(prompts, order)]
    steps = 0
    while engine.has_work():
        engine.step()
        steps += 1
        adapters = {s.adapter for s in engine.scheduler.running} - {"base"}
        assert len(adapters) <= 2
        assert len(engine.last_step_adapters - {"base"}) <= 2
        assert steps < 100
    assert provider.loads > 2 and all(h == 0 for h in provider.holds.values())
    # Every request finished, and with the tokens an engine with a slot per adapter gives.
    roomy = fam.engine(max_loras=3)
    expected = []
    for p, a in zip(prompts, order):
        h = roomy.submit(p, adapter="a1" if a == "a4" else a, params=greedy)
        run(roomy)
        expected.append(collect(h)[2])
    assert [collect(h)[2] for h in handles] == expected
    assert all(collect(h)[0][-1].finish_reason == "length" for h in handles)


# ---- (f) cancel ---------------------------------------------------------------------------------
def test_cancel_frees_the_row(families):
    fam = families["gpt2"]
    engine = fam.engine(max_running=2)
    long = SamplingParams(temperature=0, max_tokens=50)
    first = engine.submit("Hello there", adapter="a1", params=long)
    second = engine.submit("Water boils at", adapter="a2", params=long)
    third = engine.submit("The library opens", adapter="a3", params=SamplingParams(temperature=0, max_tokens=3))
    engine.step()
    assert engine.running == 2 and engine.waiting == 1
    first.cancel()
    events = engine.step()
    assert events[0].request_id == first.request_id and events[0].finish_reason == "cancelled"
    assert {s.adapter for s in engine.scheduler.running} == {"a2", "a3"}
    assert engine.scheduler.provider.holds["a1"] == 0
    second.cancel()
    run(engine)
    assert collect(second)[0][-1].finish_reason == "cancelled"
    assert collect(third)[0][-1].finish_reason == "length" and len(collect(third)[2]) == 3
    assert engine.running == 0 and engine.waiting == 0


# ---- the background loop ------------------------------------------------------------------------
def test_engine_loop_serves_threads_and_stops(families):
    fam = families["llama"]
    engine = fam.engine()
    seen: list[str] = []
    with EngineLoop(engine) as loop:
        handles: list = []

        def client(adapter):
            handles.append(loop.submit("The quick brown fox", adapter=adapter,
                                       params=SamplingParams(temperature=0, max_tokens=8),
                                       on_event=lambda e: seen.append(e.request_id)))

        threads = [threading.Thread(target=client, args=(a,)) for a in ("a1", "a2", None)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results = {h.request.adapter: [t for e in h for t in e.token_ids] for h in handles}
        endless = loop.submit("Hello", adapter="a3", params=SamplingParams(max_tokens=10_000, ignore_eos=True))
        endless.get(timeout=30)
    assert all(len(tokens) == 8 for tokens in results.values())
    assert list(endless)[-1].finish_reason == "cancelled"  # stopping the loop ends what is left
    assert len(seen) >= 6


def test_rows_leave_after_the_batch_cache_grew_inside_a_decode(families):
    """Long generations outgrow the batch cache's room, so a decode step reallocates it (inside
    inference mode); rows finishing afterwards are freed from it, and the outputs are those of
    each request run alone."""
    fam = families["llama"]
    greedy = [SamplingParams(temperature=0, max_tokens=n, ignore_eos=True) for n in (120, 90, 100)]
    prompts = prompts_of([4, 9, 6], seed=8)
    engine = fam.engine()
    handles = [engine.submit(p, adapter=a, params=g) for p, a, g in zip(prompts, ("a1", None, "a2"), greedy)]
    run(engine)
    assert engine.kv.rows == 0 and engine.kv.keys == []
    for handle, prompt, adapter, params in zip(handles, prompts, ("a1", None, "a2"), greedy):
        alone = fam.engine()
        expected = alone.submit(prompt, adapter=adapter, params=params)
        run(alone)
        events, _, tokens = collect(handle)
        assert events[-1].finish_reason == "length" and tokens == collect(expected)[2]


def test_reset_running_fails_the_batch_and_the_engine_goes_on(families):
    fam = families["llama"]
    engine = fam.engine()
    params = SamplingParams(temperature=0, max_tokens=20)
    handles = [engine.submit(p, adapter=a, params=params) for p, a in zip(prompts_of([4, 6], seed=9), ("a1", None))]
    engine.step()
    assert engine.kv.rows == 2
    events = engine.reset_running("the batch cache failed")
    assert [e.finish_reason for e in events] == ["error", "error"] and engine.kv.rows == 0 and not engine.running
    assert all(list(h.events.queue)[-1].error == "the batch cache failed" for h in handles)
    after = engine.submit([5, 6, 7], adapter="a2", params=SamplingParams(temperature=0, max_tokens=3))
    run(engine)
    assert collect(after)[0][-1].finish_reason == "length"


def test_engine_loop_builds_and_runs_calls_on_its_own_thread(families):
    """The model is made on the engine's thread and operator calls run there between steps (one
    thread for every torch kernel); errors of either reach the caller."""
    fam = families["llama"]
    threads: dict[str, threading.Thread] = {}

    def make():
        threads["make"] = threading.current_thread()
        return fam.engine()

    loop = EngineLoop.build(make, name="engine-under-test")
    try:
        assert threads["make"].name == "engine-under-test" and threads["make"] is not threading.current_thread()
        handle = loop.submit("Hello", adapter="a1", params=SamplingParams(temperature=0, max_tokens=4))
        assert loop.call(threading.current_thread) is threads["make"]
        with pytest.raises(ZeroDivisionError):
            loop.call(lambda: 1 / 0)
        assert list(handle)[-1].finish_reason == "length"
    finally:
        loop.stop()
    assert loop.call(lambda: 7) == 7  # stopped: runs in the caller
    with pytest.raises(InputError, match="no model"):
        EngineLoop.build(lambda: (_ for _ in ()).throw(InputError("no model here")))


# ---- refusals --------------------------------------------------------------------------------------
def test_bad_adapters_and_requests_are_refused(families):
    fam = families["llama"]
    model = fam.load()
    slots = LoraSlots(model, max_loras=2, max_rank=4)
    a = torch.zeros(2, 64)
    bad_module = AdapterWeights("x", "", 2, {"model.layers.0.self_attn.nope": LoraModuleWeights(a, torch.zeros(64, 2))})
    with pytest.raises(InputError, match="no target layer"):
        slots.load(1, bad_module)
    bad_shape = AdapterWeights("x", "", 2, {"model.layers.0.self_attn.q_proj": LoraModuleWeights(a, torch.zeros(5, 2))})
    with pytest.raises(InputError, match="q_proj"):
        slots.load(1, bad_shape)
    with pytest.raises(InputError, match="rank 8"):
        slots.load(1, fam.weights["a3"])
    with pytest.raises(InputError, match="slot"):
        slots.load(0, fam.weights["a1"])
    for bad in ({"temperature": -1}, {"top_p": 0}, {"max_tokens": 0}, {"stop": [""]}, {"top_logprobs": 3}):
        with pytest.raises(InputError):
            SamplingParams(**bad)
    engine = fam.engine(max_batch_tokens=16)
    with pytest.raises(InputError, match="budget"):
        engine.submit(list(range(3, 40)))
    with pytest.raises(InputError, match="empty"):
        engine.submit([])
    unknown = engine.submit("Hello", adapter="nobody")
    run(engine)
    event = collect(unknown)[0][-1]
    assert event.finish_reason == "error" and "unknown adapter" in event.error


def test_auto_op_follows_the_measured_crossover_per_device(families):
    """op="auto": on a CPU the group loop below GATHER_FROM_GROUPS adapters in a forward, on CUDA
    only for one adapter (bench_lora_ops on an H200); the base rows are no group; a fixed op stays."""
    from loraledger.serving.lora import GATHER_FROM_GROUPS, GATHER_FROM_GROUPS_CUDA
    from loraledger.serving.lora_ops import RowGroups

    slots = LoraSlots(families["llama"].load(), max_loras=8, max_rank=MAX_RANK)

    def op(row_slots, device):
        slots.device = torch.device(device)  # the rule only; the kernels on CUDA: scripts/check_cuda.sh
        return slots.op_for(RowGroups.of(row_slots, "cpu"))

    assert (GATHER_FROM_GROUPS, GATHER_FROM_GROUPS_CUDA) == (4, 2)
    assert [op([0, 0, *range(1, n + 1)], "cpu") for n in (1, 3, 4, 8)] == ["group", "group", "gather", "gather"]
    assert [op([0, *range(1, n + 1)], "cuda") for n in (1, 2, 8)] == ["group", "gather", "gather"]
    assert op([0, 0], "cuda") == "group" and op([1, 1, 1, 0], "cuda") == "group"
    fixed = LoraSlots(families["llama"].load(), max_loras=8, max_rank=MAX_RANK, op="gather")
    assert fixed.op_for(RowGroups.of([1], "cpu")) == "gather"


def test_prefill_groups_keep_padding_small():
    assert prefill_groups([10, 11, 12, 9]) == [[3, 0, 1, 2]]
    assert prefill_groups([8, 200, 30, 40, 12]) == [[0, 4], [2, 3], [1]]


def test_batch_kv_keeps_every_row_through_joins_leaves_and_growth():
    """Rows join with caches of different lengths, leave from the middle, and grow past the
    buffer's room many times (each reallocation moves the live block): every row's cache stays
    exactly its own tokens, in order."""
    layers, heads, dim = 2, 3, 4
    batch = BatchKV(layers)
    rng = torch.Generator().manual_seed(3)
    expected: list[list[torch.Tensor]] = []  # per row, per layer: keys [heads, n, dim] (values = -keys)

    def join(length):
        keys = [torch.randn(heads, length, dim, generator=rng) for _ in range(layers)]
        assert batch.add(tuple((k, -k) for k in keys)) == len(expected)
        expected.append(keys)

    @torch.inference_mode()  # as the model's forward runs in the runner
    def step():
        cache = batch.decode_cache(None)
        for layer in range(layers):
            new = torch.randn(len(expected), heads, 1, dim, generator=rng)
            keys, values = cache.layers[layer].update(new, -new)
            assert keys.shape == (len(expected), heads, batch.width + 1, dim)
            assert torch.equal(values, -keys)
            expected_layer = [torch.cat([expected[r][layer], new[r]], dim=1) for r in range(len(expected))]
            for r in range(len(expected)):
                expected[r][layer] = expected_layer[r]
        batch.advance()

    for length in (5, 1, 40):
        join(length)
    for i in range(300):
        step()
        if i % 37 == 0:
            join(1 + i % 90)
        if i % 53 == 52 and len(expected) > 1:
            row = len(expected) // 2
            moved = batch.remove(row)
            assert moved == len(expected) - 1
            expected[row] = expected.pop()
    assert batch.rows == len(expected) >= 4
    for row, keys in enumerate(expected):
        kv = batch.sequence(row)
        for layer in range(layers):
            assert torch.equal(kv[layer][0], keys[layer]) and torch.equal(kv[layer][1], -keys[layer])
    while batch.rows:
        batch.remove(0)
    assert batch.keys == [] and batch.end == 0  # idle: the buffers are freed
