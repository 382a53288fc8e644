"""Adapter files → served tensors, and the residency tiers (disk → host → device slots).

Real PEFT adapters on a tiny llama; the device slots are a recording stand-in (the engine's
own slot tensors are tested in test_serving_engine.py)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import make_peft_adapter
from safetensors.torch import load_file, save_file

from loraledger.errors import InputError, LedgerError, NotFoundError
from loraledger.serving.store import AdapterStore
from loraledger.serving.weights import load_adapter_weights
from loraledger.training.adapters import adapter_hash
from loraledger.training.hf.tiny import init_tiny_model

BASE_HASH = "0x" + "ba" * 32


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return init_tiny_model(tmp_path_factory.mktemp("base") / "tiny", "llama").path


@dataclass
class Row:
    name: str
    path: str
    adapter_hash: str
    base_model_hash: str = BASE_HASH


class RecordingSlots:
    """Stands in for the engine's slot tensors: remembers what each slot holds."""

    def __init__(self) -> None:
        self.held: dict[int, str] = {}
        self.loads = 0

    def load(self, slot: int, weights) -> None:
        assert slot != 0, "slot 0 is the base"
        self.held[slot] = weights.name
        self.loads += 1

    def clear(self, slot: int) -> None:
        self.held.pop(slot, None)


@pytest.fixture(scope="module")
def adapters(base, tmp_path_factory) -> dict[str, Row]:
    root = tmp_path_factory.mktemp("adapters")
    rows = {}
    for i, name in enumerate(["alpha", "beta", "gamma", "delta"]):
        path = make_peft_adapter(base, root / name, seed=i, std=0.02)
        rows[name] = Row(name, str(path), adapter_hash(path).hash)
    return rows


def lookup_from(rows: dict[str, Row], calls: list[str] | None = None):
    def lookup(name: str) -> Row:
        if calls is not None:
            calls.append(name)
        if name not in rows:
            raise NotFoundError(f"no adapter {name}")
        return rows[name]
    return lookup


def wait_slot(store: AdapterStore, name: str, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while (slot := store.slot_for(name)) is None:
        assert time.monotonic() < deadline, f"{name} never got a slot"
        time.sleep(0.01)
    return slot


# ---- weights -------------------------------------------------------------------------------


def test_weights_keep_the_file_and_slots_fold_the_scaling_into_b(base, adapters):
    from transformers import AutoModelForCausalLM

    from loraledger.serving.lora import LoraSlots

    row = adapters["alpha"]
    weights = load_adapter_weights(row.path, name="alpha", adapter_hash=row.adapter_hash, max_rank=16)
    raw = load_file(str(Path(row.path) / "adapter_model.safetensors"))
    key = "base_model.model.model.layers.0.self_attn.q_proj"
    module = weights.modules["model.layers.0.self_attn.q_proj"]
    assert torch.equal(module.a, raw[f"{key}.lora_A.weight"])
    assert torch.equal(module.b, raw[f"{key}.lora_B.weight"]) and weights.scaling == 8 / 4
    slots = LoraSlots(AutoModelForCausalLM.from_pretrained(str(base)), max_loras=1, max_rank=16,
                      target_modules=["q_proj", "v_proj"])
    slots.load(1, weights)
    layer = slots.layers["model.layers.0.self_attn.q_proj"]
    assert torch.allclose(layer.b[1, :, :4], raw[f"{key}.lora_B.weight"] * (8 / 4)) and not layer.b[1, :, 4:].any()
    assert weights.rank == 4 and weights.target_modules == ["q_proj", "v_proj"]
    assert weights.nbytes == sum(t.numel() * 4 for t in raw.values())


def _edit_config(path: Path, **changes) -> None:
    config_path = path / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config.update(changes)
    config_path.write_text(json.dumps(config))


@pytest.mark.parametrize(("changes", "words"), [
    ({"use_dora": True}, "DoRA"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ({"rank_pattern": {"q_proj": 8}}, "per-module rank"),
    ({"bias": "lora_only"}, "biases"),
    ({"r": 64}, "above this node's maximum LoRA rank 16"),
    ({"peft_type": "IA3"}, "only LoRA adapters"),
])
def test_weights_refuse_what_the_engine_does_not_compute(adapters, tmp_path, changes, words):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(adapters["alpha"].path, copy)
    _edit_config(copy, **changes)
    with pytest.raises(InputError, match=words):
        load_adapter_weights(copy, name="copy", adapter_hash="0x", max_rank=16)


def test_weights_refuse_pickles_and_unpaired_tensors(adapters, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(adapters["alpha"].path, copy)
    (copy / "adapter_model.safetensors").rename(copy / "adapter_model.bin")
    with pytest.raises(InputError, match="pickled weights"):
        load_adapter_weights(copy, name="copy", adapter_hash="0x", max_rank=16)
    tensors = load_file(str(Path(adapters["alpha"].path) / "adapter_model.safetensors"))
    tensors.pop(next(k for k in tensors if k.endswith("lora_B.weight")))
    (copy / "adapter_model.bin").unlink()
    save_file(tensors, str(copy / "adapter_model.safetensors"))
    with pytest.raises(InputError, match="without its partner"):
        load_adapter_weights(copy, name="copy", adapter_hash="0x", max_rank=16)


# ---- store ---------------------------------------------------------------------------------


def new_store(adapters, slots=None, calls=None, **kwargs) -> AdapterStore:
    options = {"max_loras": 2, "max_cpu_loras": 3, "max_rank": 16, **kwargs}
    return AdapterStore(lookup_from(adapters, calls), slots or RecordingSlots(), base_model_hash=BASE_HASH, **options)


def test_only_registered_names_load_never_a_path(adapters):
    calls: list[str] = []
    store = new_store(adapters, calls=calls)
    for bad in ("../../etc/passwd", "/tmp/x", "Alpha", "a" * 65, ""):
        with pytest.raises(NotFoundError):
            store.check(bad)
    assert calls == []  # refused before any lookup
    with pytest.raises(NotFoundError):
        store.check("unregistered")
    assert store.slot_for("base") == 0 and store.check("base") is None
    other = {"alpha": Row("alpha", adapters["alpha"].path, adapters["alpha"].adapter_hash, base_model_hash="0x" + "00" * 32)}
    with pytest.raises(InputError, match="trained for base model"):
        new_store(other).check("alpha")


def test_cold_load_is_asynchronous_then_hits(adapters):
    slots = RecordingSlots()
    store = new_store(adapters, slots)
    assert store.slot_for("alpha") is None  # not in host memory: the load starts, the caller waits
    slot = wait_slot(store, "alpha")
    assert slots.held[slot] == "alpha"
    store.release("alpha")
    assert store.slot_for("alpha") == slot  # device hit
    store.release("alpha")
    assert store.stats.cold_loads == 1 and store.stats.host_hits == 1 and store.stats.device_hits >= 1
    store.close()


def test_device_lru_evicts_unused_unpinned_slots_only(adapters):
    slots = RecordingSlots()
    store = new_store(adapters, slots, max_loras=2, max_cpu_loras=4)
    for name in ("alpha", "beta", "gamma"):
        store.host_weights(name)
    a, b = store.slot_for("alpha"), store.slot_for("beta")  # both in use by a running sequence
    assert store.slot_for("gamma") is None  # every slot serves a running sequence: wait
    store.release("alpha")
    g = store.slot_for("gamma")
    assert g == a and slots.held[g] == "gamma" and store.stats.device_evictions == 1  # alpha (LRU, unused) left
    store.release("beta")
    store.release("gamma")
    store.pin("beta")
    assert store.slot_for("alpha") == g  # gamma (unpinned) is evicted, never the pinned beta
    assert slots.held[b] == "beta"
    with pytest.raises(InputError, match="pinned"):
        store.unload("beta")
    with pytest.raises(InputError, match="running request"):
        store.unload("alpha")
    store.release("alpha")
    assert store.unload("alpha") is True
    assert "alpha" not in store.resident()["device"] and "alpha" not in store.resident()["host"]
    store.close()


def test_host_tier_is_bounded(adapters):
    store = new_store(adapters, max_loras=1, max_cpu_loras=2)
    for name in ("alpha", "beta", "gamma", "delta"):
        store.host_weights(name)
    resident = store.resident()
    assert list(resident["host"]) == ["gamma", "delta"] and store.stats.host_evictions == 2
    assert resident["hostBytes"] == sum(resident["host"].values())
    store.close()


def test_files_changed_after_registration_are_refused(adapters, tmp_path):
    import shutil

    copy = tmp_path / "alpha"
    shutil.copytree(adapters["alpha"].path, copy)
    rows = {"alpha": Row("alpha", str(copy), adapters["alpha"].adapter_hash)}
    tensors = load_file(str(copy / "adapter_model.safetensors"))
    first = next(iter(tensors))
    tensors[first] = tensors[first] + 1
    save_file(tensors, str(copy / "adapter_model.safetensors"))
    store = new_store(rows)
    assert store.slot_for("alpha") is None
    deadline = time.monotonic() + 10
    with pytest.raises(LedgerError, match="changed after registration"):
        while time.monotonic() < deadline:
            store.slot_for("alpha")
            time.sleep(0.01)
    store.close()


def test_a_cold_load_does_not_stall_requests_for_resident_adapters(base, adapters):
    """While one adapter is read from disk (slowly here), a request for a resident adapter is
    admitted and finishes; the cold one joins when its load completes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loraledger.serving.engine import Engine
    from loraledger.serving.lora import LoraSlots
    from loraledger.serving.sampling import SamplingParams

    release = threading.Event()
    rows = dict(adapters)

    def slow_lookup(name: str) -> Row:
        if name == "beta" and threading.current_thread().name.startswith("adapter-load"):
            release.wait(10)  # the disk is slow for beta
        return lookup_from(rows)(name)

    model = AutoModelForCausalLM.from_pretrained(str(base)).eval()
    slots = LoraSlots(model, max_loras=2, max_rank=16, target_modules=["q_proj", "v_proj"])
    store = AdapterStore(slow_lookup, slots, base_model_hash=BASE_HASH, max_loras=2, max_cpu_loras=3, max_rank=16)
    store.preload("alpha")
    engine = Engine(model, AutoTokenizer.from_pretrained(str(base)), slots, slot_provider=store, base_name="base")
    greedy = SamplingParams(temperature=0, max_tokens=4)
    cold = engine.submit([5, 6, 7], adapter="beta", params=greedy)
    warm = engine.submit([5, 6, 7], adapter="alpha", params=greedy)
    for _ in range(20):
        engine.step()
        if warm.finished:
            break
    assert warm.finished and not cold.finished and "beta" in store.resident()["loading"]
    release.set()
    deadline = time.monotonic() + 10
    while not cold.finished:
        assert time.monotonic() < deadline, "the cold adapter never ran"
        engine.step()
        time.sleep(0.01)
    assert [e for e in cold.events.queue][-1].finish_reason == "length"
    store.close()


def test_per_adapter_counters_are_bounded():
    from loraledger.serving.store import StoreStats

    stats = StoreStats(max_named=3)
    for i in range(10):
        stats.count(f"a{i}", "cold_loads")
    assert stats.cold_loads == 10
    assert sorted(stats.per_adapter) == ["_other", "a0", "a1", "a2"] and stats.per_adapter["_other"]["cold_loads"] == 7


def _safetensors_bytes(header: dict, data: bytes) -> bytearray:
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return bytearray(len(encoded).to_bytes(8, "little") + encoded + data)


@pytest.mark.parametrize(("header", "data", "words"), [
    ({"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}, bytes(8), "float dtypes"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8), "do not fit"),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8), "do not fit"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [2, 10]}}, bytes(16), "do not fit"),  # misaligned
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(16), "overlap"),
    ({"a": {"dtype": "F32", "shape": "x", "data_offsets": [0, 8]}}, bytes(8), "bad header entry"),
    ([1, 2], b"", "not a JSON object"),
])
def test_safetensors_parser_refuses_what_safetensors_refuses(header, data, words):
    from loraledger.serving.weights import parse_safetensors

    with pytest.raises(InputError, match=words):
        parse_safetensors(_safetensors_bytes(header, data), "x.safetensors")
    with pytest.raises(InputError, match="header"):
        parse_safetensors(bytearray(b"\xff" * 16), "x.safetensors")


def test_a_cold_load_reads_the_file_once_and_holds_its_size(adapters):
    """The weights are views of the one buffer that was hashed (A as stored, B scaled in place):
    the host tier holds the file's tensor bytes, not a copy beside it."""
    row = adapters["alpha"]
    store = new_store(adapters)
    weights = store.host_weights("alpha")
    store.close()
    file_size = (Path(row.path) / "adapter_model.safetensors").stat().st_size
    tensors = [t for m in weights.modules.values() for t in (m.a, m.b)]
    first = min(t.data_ptr() for t in tensors)
    assert max(t.data_ptr() + t.nbytes for t in tensors) - first < file_size  # all inside one buffer
    reference = load_adapter_weights(row.path, name="alpha", adapter_hash=row.adapter_hash, max_rank=16)
    for module, pair in weights.modules.items():
        assert torch.equal(pair.a, reference.modules[module].a) and torch.equal(pair.b, reference.modules[module].b)
    header = int.from_bytes((Path(row.path) / "adapter_model.safetensors").read_bytes()[:8], "little")
    assert weights.nbytes == file_size - 8 - header  # every data byte is a tensor byte, held once


def test_loads_follow_the_queue_and_never_evict_a_waiting_requests_adapter(base, tmp_path):
    """Sixty requests for twenty distinct adapters with room for four in host memory and two
    on the device: every adapter is loaded once (no load is evicted before its requests ran)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loraledger.serving.engine import Engine
    from loraledger.serving.lora import LoraSlots
    from loraledger.serving.sampling import SamplingParams

    path = make_peft_adapter(base, tmp_path / "one", seed=5, std=0.02)
    digest = adapter_hash(path).hash
    names = [f"n{i:02d}" for i in range(20)]
    rows = {name: Row(name, str(path), digest) for name in names}
    model = AutoModelForCausalLM.from_pretrained(str(base)).eval()
    slots = LoraSlots(model, max_loras=2, max_rank=16, target_modules=["q_proj", "v_proj"])
    store = AdapterStore(lookup_from(rows), slots, base_model_hash=BASE_HASH, max_loras=2, max_cpu_loras=4, max_rank=16)
    engine = Engine(model, AutoTokenizer.from_pretrained(str(base)), slots, slot_provider=store, max_running=4)
    params = SamplingParams(temperature=0, max_tokens=2, ignore_eos=True)
    handles = [engine.submit([5, 6, 7], adapter=names[i % 20], params=params) for i in range(60)]
    deadline = time.monotonic() + 60
    while not all(h.finished for h in handles):
        assert time.monotonic() < deadline, "requests never finished"
        engine.step()
        assert len(store.resident()["host"]) <= 4 and len(store.resident()["device"]) <= 2
        if not engine.running:
            time.sleep(0.002)  # waiting on a load
    store.close()
    assert all(list(h.events.queue)[-1].finish_reason == "length" for h in handles)
    # Requests for the same adapter 20 apart: each adapter loads once per pass of the queue.
    assert store.stats.cold_loads <= 3 * 20 and store.stats.host_evictions <= store.stats.cold_loads
