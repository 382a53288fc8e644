"""The serving record kinds: an inference and a price, validated, canonical, parsed back."""

from __future__ import annotations

import json

import pytest

from loraledger.errors import InputError
from loraledger.records.kinds import InferenceRecord, PriceRecord, parse_record, record_hash
from loraledger.rewards.split import FeeSplit, increments_from_records

H = "0x" + "11" * 32
PAYER = "0x" + "22" * 20


def inference(**changes) -> InferenceRecord:
    fields = {"timestamp": 1, "request_id": "ab" * 16, "model": "qa-lora", "adapter_hash": H, "base_model_hash": H, "prompt_hash": H,
              "output_hash": H, "prompt_tokens": 12, "completion_tokens": 7, "finish_reason": "stop",
              "sampling": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 16, "seed": None}, "payer": PAYER,
              "input_per_1k": 1000, "output_per_1k": 3000, "fee": 33, "queue_ms": 1, "first_token_ms": 20,
              "total_ms": 90, "backend": "builtin", "api": "chat"}
    return InferenceRecord(**{**fields, **changes})


def test_an_inference_record_round_trips_through_its_canonical_json():
    record = inference().with_seq(3)
    text = json.dumps(record.model_dump(mode="json"))
    again = parse_record(text)
    assert again == record and record_hash(again) == record_hash(record)
    assert record.model_dump(mode="json")["fee"] == "33"  # wei as a decimal string


@pytest.mark.parametrize(("changes", "field"), [
    ({"finish_reason": "done"}, "finish_reason"),
    ({"prompt_tokens": -1}, "prompt_tokens"),
    ({"fee": "1.5"}, "fee"),
    ({"api": "embeddings"}, "api"),
    ({"model": ""}, "model"),
    ({"request_id": "../x"}, "request_id"),
    ({"sampling": {"x" * 40: 1}}, "sampling"),
])
def test_bad_inference_fields_are_named(changes, field):
    with pytest.raises(InputError, match=field):
        inference(**changes)


def test_price_and_inference_records_earn_nothing_by_themselves():
    price = PriceRecord(timestamp=1, model="qa-lora", adapter_hash=H, input_per_1k=10, output_per_1k=20, set_by=PAYER)
    assert increments_from_records([price, inference()], FeeSplit(7000, 2000, 1000)) == []
