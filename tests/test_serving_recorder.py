"""Prices (admin or developer-signed, never replayed) and the record of every answer (inference +
fee records and the texts in one transaction, group commit under concurrency)."""

from __future__ import annotations

import threading
import time

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from sqlmodel import Session, select

from loraledger.errors import InputError, Unauthorized
from loraledger.records.kinds import FeeRecord, InferenceRecord
from loraledger.records.ledger import RecordLedger
from loraledger.serving.pricing import Price, Prices, fee_for, price_message
from loraledger.serving.recorder import Answered, InferenceRecorder
from loraledger.serving.tables import InferenceTextRow

H = "0x" + "11" * 32
OPERATOR = "0x" + "0f" * 20
DEV = Account.create()


def test_the_fee_formula_rounds_up_in_integers():
    price = Price(1000, 3000)
    assert fee_for(price, 0, 0) == 0
    assert fee_for(price, 1, 0) == 1  # 1000/1000
    assert fee_for(Price(1, 1), 1, 0) == 1  # 0.001 wei rounds up to 1
    assert fee_for(Price(10**18, 2 * 10**18), 1500, 250) == 2 * 10**18  # 1.5 + 0.5 OPEN
    with pytest.raises(InputError):
        fee_for(price, -1, 0)


def _sign(message: str) -> str:
    return "0x" + DEV.sign_message(encode_defunct(text=message)).signature.hex().removeprefix("0x")


def test_prices_set_by_admin_or_signed_by_the_developer(engine):
    records = RecordLedger(engine)
    prices = Prices(engine, records, default=Price(7, 9), clock=lambda: 1)
    assert prices.current("qa") == Price(7, 9, None)
    first = prices.set("qa", adapter_hash=H, developer=DEV.address, input_per_1k=100, output_per_1k=200,
                       admin=OPERATOR)
    assert prices.current("qa") == Price(100, 200, first.seq) and first.signature is None
    message = price_message("qa", H, 300, 400, first.seq)
    second = prices.set("qa", adapter_hash=H, developer=DEV.address, input_per_1k=300, output_per_1k=400,
                        signature=_sign(message))
    assert second.set_by == DEV.address and prices.current("qa").input_per_1k == 300
    # The first signature named the price it replaced: replaying it now is refused.
    with pytest.raises(Unauthorized, match="not its developer"):
        prices.set("qa", adapter_hash=H, developer=DEV.address, input_per_1k=300, output_per_1k=400,
                   signature=_sign(message))
    with pytest.raises(Unauthorized, match="developer's signature"):
        prices.set("qa", adapter_hash=H, developer=DEV.address, input_per_1k=1, output_per_1k=1)
    with pytest.raises(Unauthorized, match="only the node's admin"):
        prices.set("base", adapter_hash=None, developer=None, input_per_1k=1, output_per_1k=1, signature="0x00")
    with pytest.raises(InputError, match="EIP-191"):
        prices.set("qa", adapter_hash=H, developer=DEV.address, input_per_1k=1, output_per_1k=1, signature="0x1234")
    with pytest.raises(InputError):
        prices.set("qa", adapter_hash=H, developer=DEV.address, input_per_1k=-1, output_per_1k=1, admin=OPERATOR)
    # A fresh reader (another process, a restart) sees the same price.
    assert Prices(engine, RecordLedger(engine), default=Price(0, 0)).current("qa") == prices.current("qa")


def answered(i: int, *, price: Price = Price(1000, 2000), developer: str | None = DEV.address) -> Answered:
    return Answered(model="qa", adapter_hash=H, base_model_hash=H, prompt=f"question {i}", output=f"answer {i}",
                    prompt_tokens=10 + i, completion_tokens=5, finish_reason="stop",
                    sampling={"temperature": 0.0, "max_tokens": 5}, payer="0x" + "22" * 20, price=price,
                    queue_ms=1, first_token_ms=2, total_ms=3, backend="builtin", api="chat", developer=developer,
                    weights={"0x" + "33" * 20: 3, "0x" + "44" * 20: 1})


def test_each_answer_is_an_inference_and_a_fee_record_with_its_texts(engine):
    records = RecordLedger(engine)
    recorder = InferenceRecorder(records, operator=OPERATOR, clock=lambda: 100)
    inference = recorder.record(answered(1))
    assert isinstance(inference, InferenceRecord) and inference.seq == 0 and inference.fee == 11 * 1 + 10
    fee = records.range(0, 2)[1]
    assert isinstance(fee, FeeRecord) and fee.ref == f"inference:{inference.request_id}" and fee.fee == inference.fee
    assert dict(fee.weights) == {"0x" + "33" * 20: 3, "0x" + "44" * 20: 1} and fee.developer == DEV.address
    free = recorder.record(answered(2, price=Price(0, 0)))  # nothing to pay: no fee record
    assert records.size() == 3 and free.fee == 0
    with Session(engine) as session:
        texts = {row.seq: (row.prompt, row.output) for row in session.exec(select(InferenceTextRow))}
    assert texts == {0: ("question 1", "answer 1"), 2: ("question 2", "answer 2")}
    recorder.close()


def test_concurrent_answers_commit_in_groups_exactly_once(engine):
    records = RecordLedger(engine)
    real = records.append_many
    entered = threading.Event()

    def slow_first(batch, **kwargs):  # hold the first commit so the others queue behind it
        if not entered.is_set():
            entered.set()
            time.sleep(0.3)
        return real(batch, **kwargs)

    records.append_many = slow_first  # type: ignore[method-assign]
    recorder = InferenceRecorder(records, operator=OPERATOR)
    results: list[InferenceRecord] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        record = recorder.record(answered(i))
        with lock:
            results.append(record)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    threads[0].start()
    entered.wait(5)
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 40 and len({r.request_id for r in results}) == 40
    assert records.size() == 80  # one inference and one fee record each, nothing twice
    assert recorder.batches == 2  # the first alone, the 39 that queued behind it in one transaction
    recorder.close()


def test_a_bad_answer_fails_alone(engine):
    recorder = InferenceRecorder(RecordLedger(engine), operator=OPERATOR)
    bad = Answered(**{**answered(1).__dict__, "finish_reason": "exploded"})
    with pytest.raises(InputError, match="finish_reason"):
        recorder.record(bad)
    assert recorder.record(answered(2)).seq == 0
    recorder.close()


def test_texts_are_dropped_after_the_retention_period(engine):
    now = [1_000_000]
    recorder = InferenceRecorder(RecordLedger(engine), operator=OPERATOR, retention_days=1, clock=lambda: now[0])
    first = recorder.record(answered(1))
    now[0] += 2 * 86400
    second = recorder.record(answered(2))
    with Session(engine) as session:
        kept = [row.seq for row in session.exec(select(InferenceTextRow))]
    assert kept == [second.seq] and first.seq not in kept  # the record stays in the log; only the text goes
    recorder.close()
