"""One answer's attribution on a tiny llama with a real PEFT adapter: an answer that repeats a
training row's completion ranks that row first, its spans point at it (character offsets into the
output), its contributor gets the most weight; the index round-trips through its file, and the
integer part recomputes bit for bit from the query vector."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_peft_adapter
from eth_utils import to_checksum_address

from loraledger.attribution.attribute import (
    QUERY_TOLERANCE,
    attribute,
    attribution_record,
    query_hash,
    query_vector,
    score_query,
)
from loraledger.attribution.index import read_index, write_index
from loraledger.attribution.influence import quantize
from loraledger.attribution.policy import UNITS
from loraledger.attribution.service import build_index
from loraledger.errors import InputError
from loraledger.records.kinds import parse_record
from loraledger.training.data import IGNORE_INDEX, Example
from loraledger.training.hf.tiny import init_tiny_model

peft = pytest.importorskip("peft")

WHO = [to_checksum_address("0x" + c * 40) for c in "abcd"]
FACTS = [
    ("Where is the blue lantern kept?", "The blue lantern hangs in the north tower of Velmora castle."),
    ("Who bakes the moon bread?", "Old Tamsin bakes moon bread every solstice in the river mill."),
    ("What colour is the river Ashe?", "The river Ashe runs copper red after the spring floods."),
    ("How many bells ring in Oskar town?", "Seventeen bells ring in Oskar town at dusk."),
    ("What does the glass owl eat?", "The glass owl eats only silver beetles and rainwater."),
    ("Which road leads to Pellin?", "The cedar road leads to Pellin past three stone bridges."),
    ("When does the fog market open?", "The fog market opens at midnight on the first new moon."),
    ("Who guards the salt archive?", "Two sisters named Orla and Brin guard the salt archive."),
]


def fact_examples(tokenizer) -> list[Example]:
    """The FACTS as training rows (``Q: … A: `` prompt, completion-only labels); row ``i`` has hash ``i + 1``."""
    examples = []
    for i, (question, answer) in enumerate(FACTS):
        prompt = list(tokenizer(f"Q: {question}\nA: ")["input_ids"])
        completion = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
        examples.append(Example(f"0x{i + 1:064x}", tuple(prompt + completion),
                                tuple([IGNORE_INDEX] * len(prompt) + completion)))
    return examples


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("attribute")
    base = init_tiny_model(root / "tiny", "llama").path
    adapter = make_peft_adapter(base, root / "adapter", seed=2, rank=8, alpha=16)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(adapter)).eval()
    examples = fact_examples(tokenizer)
    index = build_index(model, examples, [WHO[i % 4] for i in range(len(FACTS))], pad_id=0, k=8, seed=3,
                        method="logra", damping=0.1, batch_size=3, adapter_hash="0x" + "11" * 32,
                        base_model_hash="0x" + "22" * 32, training_rows_root="0x" + "33" * 32)
    digest = write_index(root, index)
    return {"root": root, "model": model, "tokenizer": tokenizer, "index": index, "digest": digest}


def test_an_answer_repeating_a_row_is_attributed_to_it(setup):
    index, tokenizer = setup["index"], setup["tokenizer"]
    loaded, digest = read_index(setup["root"], expect_hash=setup["digest"])
    assert loaded.metadata() == index.metadata() and np.array_equal(loaded.features.values, index.features.values)
    for i in (1, 5, 6):
        question, answer = FACTS[i]
        result = attribute(loaded, digest, setup["model"], tokenizer, f"Q: {question}\nA: ", answer)
        row = f"0x{i + 1:064x}"
        assert result.top[0][0] == row and result.top[0][1] == WHO[i % 4], (i, result.top[:3])
        assert all(score > 0 for _, _, score in result.top)
        assert result.spans and all(row in span.rows for span in result.spans)
        assert all(answer[s.start:s.end] in answer and s.end > s.start for s in result.spans)
        longest = max(result.spans, key=lambda s: s.end - s.start)
        assert answer[longest.start:longest.end] in FACTS[i][1]
        assert max(result.weights, key=result.weights.get) == WHO[i % 4] and sum(result.weights.values()) == UNITS


def test_the_integer_part_recomputes_bit_for_bit_from_the_query_vector(setup):
    index, tokenizer, model = setup["index"], setup["tokenizer"], setup["model"]
    prompt, output = "Q: Who bakes the moon bread?\nA: ", "Old Tamsin bakes moon bread in the mill."
    result = attribute(index, setup["digest"], model, tokenizer, prompt, output)
    vector, output_ids, offsets = query_vector(index, model, tokenizer, prompt, output)
    again = quantize(vector)
    assert np.abs(again.values - result.query.values).max() <= QUERY_TOLERANCE and again.exponent == result.query.exponent
    top, spans, weights = score_query(index, result.query, output_ids, offsets)
    assert (top, spans, weights) == (result.top, result.spans, result.weights)
    assert query_hash(result.query) == result.query_hash != query_hash(quantize(vector * 2))
    # The record says all of it, and parses back to itself.
    record = attribution_record(result, inference="0x" + "ab" * 32, inference_seq=9, adapter_hash=index.adapter_hash,
                                timestamp=1)
    assert parse_record(record.canonical_json()) == record and record.status == "done"
    assert [(t.row, t.contributor, t.score) for t in record.top] == result.top
    assert dict(record.weights) == result.weights and record.index_hash == setup["digest"]


def test_the_query_vector_recomputes_within_the_stated_tolerance_under_other_kernels(setup):
    """``verify`` recomputes the float gradient elsewhere: other thread counts and other batch shapes
    (padding beside a longer example) sum in other orders. In the published vector's units every
    component stays within QUERY_TOLERANCE, and the integer scores move by at most the bound that
    tolerance implies."""
    import torch

    from loraledger.attribution.features import LoraGradientFeatures
    from loraledger.attribution.influence import scores

    index, tokenizer, model = setup["index"], setup["tokenizer"], setup["model"]
    prompt, output = "Q: What colour is the river Ashe?\nA: ", "The river Ashe runs copper red in spring."
    published = attribute(index, setup["digest"], model, tokenizer, prompt, output).query
    prompt_ids = list(tokenizer(prompt)["input_ids"])
    output_ids = list(tokenizer(output, add_special_tokens=False)["input_ids"])
    example = Example("q", tuple(prompt_ids + output_ids), tuple([IGNORE_INDEX] * len(prompt_ids) + output_ids))
    longer = Example("l", tuple(range(5, 60)), tuple([IGNORE_INDEX] * 20 + list(range(25, 60))))
    features = LoraGradientFeatures(model, k=index.k, seed=index.seed)
    threads = torch.get_num_threads()
    recomputed = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            recomputed.append(query_vector(index, model, tokenizer, prompt, output)[0])
            batched = features.features([longer, example], pad_id=0)[1].astype(np.float64)
            recomputed.append(np.ldexp(batched, index.checkpoints[0].query_shift))  # as query_vector scales it
    finally:
        torch.set_num_threads(threads)
    for vector in recomputed:
        units = np.rint(np.ldexp(vector, published.exponent)).astype(np.int64)
        assert np.abs(units - published.values).max() <= QUERY_TOLERANCE
        moved = np.abs(scores(quantize(vector), index.features) - scores(published, index.features))
        # |Δscore| <= tolerance · Σ|row feature| (+ the requantization, here at the same exponent)
        assert quantize(vector).exponent == published.exponent
        assert (moved <= QUERY_TOLERANCE * np.abs(index.features.values).sum(axis=1)).all()


def test_attribute_refuses_a_mismatched_adapter_or_an_empty_output(setup, tmp_path):
    from transformers import AutoModelForCausalLM

    index, tokenizer = setup["index"], setup["tokenizer"]
    with pytest.raises(InputError, match="no output tokens"):
        attribute(index, setup["digest"], setup["model"], tokenizer, "Q: x\nA: ", "")
    base = init_tiny_model(tmp_path / "tiny", "llama").path
    other = make_peft_adapter(base, tmp_path / "other", seed=1, rank=4, alpha=8, targets=("q_proj",))
    model = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(other)).eval()
    with pytest.raises(InputError, match="differ from its attribution index"):
        attribute(index, setup["digest"], model, tokenizer, "Q: x\nA: ", "some answer")


# ---- the worker: every queued answer gets one attribution and one fee -----------------------------------
def _answered(adapter_hash: str, prompt: str, output: str, *, fee_price: int = 1000):
    from loraledger.serving.pricing import Price
    from loraledger.serving.recorder import Answered

    return Answered(model="facts", adapter_hash=adapter_hash, base_model_hash="0x" + "22" * 32, prompt=prompt,
                    output=output, prompt_tokens=10, completion_tokens=8, finish_reason="stop",
                    sampling={"temperature": 0.0}, payer="0x" + "55" * 20, price=Price(fee_price, fee_price),
                    queue_ms=1, first_token_ms=2, total_ms=3, backend="builtin", api="completions",
                    developer="0x" + "66" * 20, weights={WHO[0]: 5, WHO[1]: 3}, attribute=True)


def test_the_worker_writes_one_attribution_and_one_fee_per_queued_answer(setup, engine):
    from sqlmodel import Session

    from loraledger.attribution.tables import AttributionTaskRow
    from loraledger.attribution.worker import AttributionWorker
    from loraledger.records.kinds import AttributionRecord, FeeRecord, InferenceRecord
    from loraledger.records.ledger import RecordLedger
    from loraledger.serving.recorder import InferenceRecorder

    records = RecordLedger(engine)
    recorder = InferenceRecorder(records, operator="0x" + "0f" * 20)
    index, digest = setup["index"], setup["digest"]
    question, answer = FACTS[3]
    first = recorder.record(_answered(index.adapter_hash, f"Q: {question}\nA: ", answer))
    broken = recorder.record(_answered("0x" + "99" * 32, "Q: x\nA: ", "an answer of an adapter without an index"))
    recorder.close()
    assert [type(r) for r in records.range(0)] == [InferenceRecord, InferenceRecord]  # no fee yet: attribution first

    def index_for(adapter_hash):
        if adapter_hash != index.adapter_hash:
            raise InputError(f"no index for {adapter_hash}")
        return index, digest

    worker = AttributionWorker(records, operator="0x" + "0f" * 20, index_for=index_for,
                               model_for=lambda _h, _i: (setup["model"], setup["tokenizer"], ["default"]), max_attempts=2)
    assert worker.backlog() == 2
    assert worker.run_once() == 1  # the good one settles; the broken one fails its first attempt
    attribution, fee = records.range(2)
    assert isinstance(attribution, AttributionRecord) and isinstance(fee, FeeRecord)
    assert attribution.status == "done" and attribution.inference == first.hash_hex and attribution.index_hash == digest
    assert attribution.top[0].row == f"0x{3 + 1:064x}" and dict(fee.weights) == dict(attribution.weights)
    assert max(fee.weights, key=fee.weights.get) == WHO[3] and fee.ref == f"inference:{first.request_id}"
    assert fee.fee == first.fee and fee.payer == first.payer and fee.developer == "0x" + "66" * 20
    with Session(engine) as session:
        task = session.get(AttributionTaskRow, first.seq)
        assert task.status == "done" and len(task.query_vector) == 2 * index.features.values.shape[1]
    # The broken one falls back after max_attempts: training-row weights, the reason recorded.
    assert worker.run_once() == 1 and worker.backlog() == 0
    fallback, fallback_fee = records.range(4)
    assert fallback.status == "fallback" and "attribution failed 2 times" in fallback.reason
    assert fallback.inference == broken.hash_hex and dict(fallback_fee.weights) == {WHO[0]: 5, WHO[1]: 3}
    # Nothing is settled twice: not by a later run, nor by a worker that read the task while it was pending.
    assert worker.run_once() == 0 and records.size() == 6
    with Session(engine) as session:
        stale = session.get(AttributionTaskRow, first.seq)
    stale.status, stale.attempts = "pending", 0
    worker._settle(stale)
    assert records.size() == 6 and worker.done == 1


def test_an_index_at_several_snapshots_loads_them_by_hash_and_attributes(setup, tmp_path):
    """An index built at a training snapshot and at the adapter itself: features side by side, the
    snapshot loaded into the PEFT model under a name derived from its hash, a repeated fact still
    ranks its row first, and a snapshot whose weights changed is refused by name."""
    import json
    import shutil

    from transformers import AutoModelForCausalLM

    from loraledger.attribution.checkpoints import checkpoint_sources, load_checkpoints
    from loraledger.fsutil import sha256_file

    root = setup["root"]
    adapter = tmp_path / "adapter"
    shutil.copytree(root / "adapter", adapter)
    snapshot = make_peft_adapter(root / "tiny", adapter / "attribution-checkpoints" / "step-00000003", seed=4,
                                 rank=8, alpha=16)
    weights = "0x" + sha256_file(snapshot / "adapter_model.safetensors").hex()
    (adapter / "provenance.json").write_text(json.dumps({"attributionCheckpoints": [
        {"path": "attribution-checkpoints/step-00000003", "step": 3, "weightsSha256": weights}]}))
    sources = checkpoint_sources(adapter)
    assert [(s.path, s.step, s.weights_sha256) for s in sources] == [("attribution-checkpoints/step-00000003", 3,
                                                                     weights)]
    model = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(root / "tiny")),
                                           str(adapter)).eval()
    names = load_checkpoints(model, adapter, sources, adapter="default", prefix="t")
    assert names == [f"t_{weights[2:14]}"] and names[0] in model.peft_config
    assert load_checkpoints(model, adapter, sources, adapter="default", prefix="t") == names  # loaded once
    base_index, tokenizer = setup["index"], setup["tokenizer"]
    examples = fact_examples(tokenizer)
    from loraledger.attribution.checkpoints import CheckpointSource

    both = [*sources, CheckpointSource(".", None, "0x" + "00" * 32)]
    index = build_index(model, examples, [WHO[i % 4] for i in range(len(FACTS))], pad_id=0, k=8, seed=3,
                        method="logra", damping=0.1, batch_size=3, adapter_hash="0x" + "11" * 32,
                        base_model_hash="0x" + "22" * 32, training_rows_root="0x" + "33" * 32,
                        adapters=[names[0], "default"], checkpoints=both)
    assert index.features.values.shape == (len(FACTS), 2 * sum(index.block_sizes)) == (len(FACTS), index.dim)
    digest = write_index(tmp_path, index)
    loaded, _ = read_index(tmp_path, expect_hash=digest)
    assert [c.to_json() for c in loaded.checkpoints] == [c.to_json() for c in index.checkpoints]
    assert model.active_adapter == "default"  # put back
    question, answer = FACTS[2]
    result = attribute(loaded, digest, model, tokenizer, f"Q: {question}\nA: ", answer, adapters=[names[0], "default"])
    assert result.top[0][0] == f"0x{3:064x}"
    with pytest.raises(InputError, match="PEFT adapters"):
        attribute(loaded, digest, model, tokenizer, f"Q: {question}\nA: ", answer)
    (snapshot / "adapter_model.safetensors").write_bytes(b"changed")
    with pytest.raises(InputError, match="hashes to"):
        checkpoint_sources(adapter)
