"""One account's earnings per adapter, recomputed from epoch files (claims.earnings; pure, no chain)."""

from __future__ import annotations

import pytest

from loraledger.claims.earnings import AdapterEarning, account_earnings
from loraledger.crypto.translog import MerkleLog
from loraledger.epochs.file import EpochLink, build_epoch_file, cumulative_after
from loraledger.errors import InputError
from loraledger.records.kinds import FeeRecord, InferenceRecord, RewardGrantRecord, log_leaf
from loraledger.rewards.split import FeeSplit, split_fee

A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
DEV = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
OP = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
PAYER = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DIST = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
ADAPTER_HASH = "0x" + "a1" * 32


def inference(seq: int, request_id: str, model: str, adapter_hash: str | None) -> InferenceRecord:
    return InferenceRecord(
        seq=seq, timestamp=1_700_000_000, request_id=request_id, model=model, adapter_hash=adapter_hash,
        base_model_hash="0x" + "b2" * 32, prompt_hash="0x" + "01" * 32, output_hash="0x" + "02" * 32, prompt_tokens=5,
        completion_tokens=7, finish_reason="stop", sampling={}, payer=PAYER, input_per_1k=1, output_per_1k=1, fee=1000,
        queue_ms=0, total_ms=1, backend="builtin", api="chat")


def fee(seq: int, amount: int, weights: dict[str, int], ref: str | None, developer: str | None = DEV) -> FeeRecord:
    return FeeRecord(seq=seq, timestamp=1_700_000_000, payer=PAYER, fee=amount, weights=weights, developer=developer,
                     operator=OP, ref=ref)


def epochs(batches: list[tuple[list, FeeSplit]]) -> list[dict]:
    """Epoch files of ``batches`` (records with seqs from 0, and the split each epoch seals)."""
    log, files, balances, previous = MerkleLog(), [], {}, None
    for number, (records, split) in enumerate(batches, 1):
        start = log.size
        for record in records:
            log.append(log_leaf(record))
        balances = cumulative_after(balances, records, split)
        previous = build_epoch_file(
            epoch=number, chain_id=31337, ledger=LEDGER, distributor=DIST, records=records, log_size=log.size,
            log_root=log.root(), consistency_proof=log.consistency_proof(start).path,
            previous=EpochLink.of(previous) if previous else None, fee_split=split, balances=balances)
        files.append(previous)
    return files


FIRST, SECOND = FeeSplit(7000, 2000, 1000), FeeSplit(5000, 3000, 2000)
RID1, RID2, RID3 = "1" * 32, "2" * 32, "3" * 32


@pytest.fixture
def files() -> list[dict]:
    return epochs([
        ([inference(0, RID1, "med-qa-lora", ADAPTER_HASH), fee(1, 10**18, {A: 2, B: 1}, f"inference:{RID1}"),
          inference(2, RID2, "med-qa-lora", ADAPTER_HASH),  # attributed later: its fee is in epoch 2
          inference(3, RID3, "base", None), fee(4, 999, {}, f"inference:{RID3}", developer=None),
          RewardGrantRecord(seq=5, timestamp=1, account=A, amount=77, source="sha256:x")], FIRST),
        ([fee(6, 3 * 10**18 + 1, {A: 1, DEV: 1}, f"inference:{RID2}"), fee(7, 500, {A: 1}, "batch-7"),
          fee(8, 300, {A: 1}, "inference:" + "f" * 32)], SECOND),
    ])


def test_each_fee_is_split_as_its_epoch_split_it_and_grouped_by_model(files):
    earned = account_earnings(files, A)
    adapter = split_fee(10**18, {A: 2, B: 1}, DEV, OP, FIRST)[A] + split_fee(3 * 10**18 + 1, {A: 1, DEV: 1}, DEV, OP,
                                                                             SECOND)[A]
    unnamed = split_fee(500, {A: 1}, DEV, OP, SECOND)[A] + split_fee(300, {A: 1}, DEV, OP, SECOND)[A]
    assert earned.by_model == (AdapterEarning("med-qa-lora", ADAPTER_HASH, ("contributor",), 2, adapter),
                               AdapterEarning(None, None, ("contributor",), 2, unnamed))
    assert earned.grants == 77 and earned.epochs == (1, 2)
    assert earned.total == adapter + unnamed + 77 == earned.tree_amount


def test_roles_and_the_base_model(files):
    developer = account_earnings(files, DEV)
    assert [(e.model, e.roles) for e in developer.by_model] == [("med-qa-lora", ("contributor", "developer")),
                                                                  (None, ("developer",))]
    assert developer.total == developer.tree_amount
    operator = account_earnings(files, OP)
    base = next(e for e in operator.by_model if e.model == "base")
    assert base.adapter_hash is None and base.amount == 999 and base.roles == ("operator",)  # no developer, no weights
    assert operator.total == operator.tree_amount


def test_an_account_that_earned_nothing_and_bad_input(files):
    nobody = account_earnings(files, PAYER.lower())
    assert nobody.account == PAYER and nobody.by_model == () and nobody.total == 0 == nobody.tree_amount
    assert account_earnings([], A).total == 0 and account_earnings([], A).epochs == ()
    with pytest.raises(InputError):
        account_earnings(files, "0x1234")
    broken = [{**files[0], "feeSplit": {"contributorsBps": 1}}]
    with pytest.raises(InputError, match="epoch 1"):
        account_earnings(broken, A)
