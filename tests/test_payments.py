"""Payers pay from deposits: the PaymentVault's Deposited events credited once, after their
confirmations, through shallow and deep reorganisations; requests set aside what they may cost
(402 past the balance); answers debited in their record's transaction; each epoch's takings
released by the vault and posted, once, whatever step a crash stopped at; ``GET /v1/payers``.

Real anvil, real contracts, real SQLite; no mocks."""

from __future__ import annotations

import threading

import httpx
import pytest
from conftest import deployed_settings, serve

from loraledger.api import create_app
from loraledger.db import make_engine, session_scope
from loraledger.errors import ChainError, PaymentRequired
from loraledger.node.context import create_tables, open_node
from loraledger.payments.balances import PayerBalances
from loraledger.payments.follower import DepositFollower
from loraledger.records.kinds import DepositRecord, FeeRecord, InferenceRecord
from loraledger.records.ledger import RecordLedger
from loraledger.serving.pricing import Price
from loraledger.serving.recorder import Answered, InferenceRecorder

OPEN = 10**18


@pytest.fixture(scope="module")
def world(anvil, accounts, artifacts, tmp_path_factory):
    root = tmp_path_factory.mktemp("payments")
    settings = deployed_settings(anvil, accounts[0], artifacts, root)
    node = open_node(settings, operator=accounts[0])
    assert node.vault is not None and node.balances.required
    token = node.contracts.token
    for payer in accounts[5:9]:
        node.contracts.client.transact(accounts[0], token.functions.transfer(payer.address, 100 * OPEN),
                                       what="fund a payer")
    return {"node": node, "settings": settings, "root": root}


def _mine(node, blocks: int = 1) -> None:
    for _ in range(blocks):
        node.contracts.client.w3.provider.make_request("evm_mine", [])


def _rpc(node, method: str, params: list) -> object:
    return node.contracts.client.w3.provider.make_request(method, params)["result"]


def _fresh_follower(node, tmp_path, *, confirmations: int) -> DepositFollower:
    """A follower on a ledger database of its own (the module's node keeps its own books)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    create_tables(engine)
    return DepositFollower(engine, RecordLedger(engine), node.vault, PayerBalances(engine), confirmations=confirmations,
                           start_block=node.contracts.deployment.contracts["PaymentVault"].block)


def test_deposits_are_credited_once_after_their_confirmations(world, accounts, tmp_path):
    node = world["node"]
    follower = _fresh_follower(node, tmp_path, confirmations=2)
    payer, friend, third = accounts[5], accounts[6], accounts[7]
    node.vault.deposit(payer, 5 * OPEN)
    assert follower.poll() == []  # its block has one confirmation of the two required
    _mine(node)
    [credited] = follower.poll()
    assert isinstance(credited, DepositRecord) and (credited.payer, credited.sender, credited.amount) == (
        payer.address, payer.address, 5 * OPEN)
    assert follower.poll() == []  # read once
    node.vault.deposit(friend, 2 * OPEN, payer=third.address)  # depositFor: credited to the payer named
    node.vault.deposit_with_permit(friend, 3 * OPEN, deadline=2**40)  # one transaction, a permit
    _mine(node)
    later = follower.poll()
    assert [(r.payer, r.sender, r.amount) for r in later] == [(third.address, friend.address, 2 * OPEN),
                                                              (friend.address, friend.address, 3 * OPEN)]
    balances = follower.balances
    assert balances.account(payer.address).balance == 5 * OPEN
    assert balances.account(third.address).to_json()["deposited"] == str(2 * OPEN)
    kinds = [record.kind for record in follower.records.range(0, follower.records.size())]
    assert kinds == ["deposit"] * 3


def test_a_reorg_within_the_confirmations_never_credits_the_lost_deposit(world, accounts, tmp_path):
    node = world["node"]
    follower = _fresh_follower(node, tmp_path, confirmations=2)
    follower.poll()  # everything confirmed so far
    snapshot = _rpc(node, "evm_snapshot", [])
    node.vault.deposit(accounts[8], 7 * OPEN)  # mined, then undone by the reorg below
    assert follower.poll() == []
    assert _rpc(node, "evm_revert", [snapshot]) is True
    node.vault.deposit(accounts[8], 1 * OPEN)
    _mine(node)
    credited = follower.poll()
    assert [(r.payer, r.amount) for r in credited if r.payer == accounts[8].address] == [(accounts[8].address, OPEN)]


def test_a_reorg_deeper_than_the_confirmations_is_reported_with_the_lost_deposit(world, accounts, tmp_path):
    node = world["node"]
    follower = _fresh_follower(node, tmp_path, confirmations=1)
    follower.poll()
    snapshot = _rpc(node, "evm_snapshot", [])
    receipt = node.vault.deposit(accounts[8], 2 * OPEN)
    [lost] = follower.poll()
    assert _rpc(node, "evm_revert", [snapshot]) is True
    _mine(node, 3)
    with pytest.raises(ChainError) as raised:
        follower.poll()
    assert lost.tx_hash in raised.value.message and "reorganised" in raised.value.message
    assert raised.value.details["lost"] == ["0x" + bytes(receipt["transactionHash"]).hex()]


def test_requests_set_aside_what_they_may_cost_and_are_refused_past_the_balance(tmp_path, accounts):
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    create_tables(engine)
    balances = PayerBalances(engine)
    payer = accounts[5].address
    with pytest.raises(PaymentRequired) as nothing:
        balances.reserve(payer, 1, price={"model": "m"})
    assert nothing.value.details["balance"] == "0" and nothing.value.details["needed"] == "1"
    assert "may cost up to 0.000000000000000001 OPEN" in nothing.value.message
    with session_scope(engine) as session:
        balances.credit(session, payer=payer, amount=10)
    first = balances.reserve(payer, 6)
    with pytest.raises(PaymentRequired) as short:  # 4 left while the first is in flight
        balances.reserve(payer, 5)
    assert (short.value.details["available"], short.value.details["reserved"]) == ("4", "6")
    with session_scope(engine) as session:
        balances.debit(session, payer=payer, inference_seq=0, model="m", adapter_hash=None, amount=3,
                       prompt_tokens=2, completion_tokens=1)
    first.release()
    first.release()  # idempotent
    account = balances.account(payer)
    assert (account.balance, account.reserved, account.available, account.answers) == (7, 0, 7, 1)
    with session_scope(engine) as session:  # the same name, another adapter (re-registered): its own line
        balances.debit(session, payer=payer, inference_seq=1, model="m", adapter_hash="0x" + "aa" * 32, amount=2,
                       prompt_tokens=1, completion_tokens=1)
    assert [(u["adapterHash"], u["answers"], u["spent"]) for u in balances.usage(payer)] == [
        (None, 1, "3"), ("0x" + "aa" * 32, 1, "2")]
    with session_scope(engine) as session:
        balances.credit(session, payer=payer, amount=2)
    # Many threads at once cannot set aside more than the balance.
    granted, refused = [], []

    def take() -> None:
        try:
            granted.append(balances.reserve(payer, 2))
        except PaymentRequired:
            refused.append(1)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(granted), len(refused)) == (3, 5)
    assert PayerBalances(engine, required=False).reserve(payer, 10**30).amount == 0  # the operator funds everything


def _answer(payer: str, *, prompt_tokens: int, completion_tokens: int, model: str = "tiny") -> Answered:
    return Answered(model=model, adapter_hash=None, base_model_hash="0x" + "11" * 32, prompt="Hi", output="Hello",
                    prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, finish_reason="stop",
                    sampling={"max_tokens": 8}, payer=payer, price=Price(1000 * OPEN, 2000 * OPEN),
                    queue_ms=0, first_token_ms=1, total_ms=2, backend="builtin", api="completions")


def test_answers_are_debited_and_each_epoch_is_funded_from_the_vault_once(world, accounts):
    node, operator = world["node"], accounts[0]
    payer = accounts[5].address
    follower = node.deposit_follower()
    node.vault.deposit(accounts[5], 10 * OPEN)
    follower.poll()
    deposited = node.vault.deposited(payer)  # this one and the first test's
    assert node.balances.account(payer).balance == deposited == 15 * OPEN
    recorder = InferenceRecorder(node.records, operator=operator.address, balances=node.balances)
    try:
        first = recorder.record(_answer(payer, prompt_tokens=2, completion_tokens=3))
        second = recorder.record(_answer(payer, prompt_tokens=1, completion_tokens=1, model="other"))
    finally:
        recorder.close()
    assert isinstance(first, InferenceRecord)
    spent = first.fee + second.fee
    assert (first.fee, second.fee) == (8 * OPEN, 3 * OPEN)  # 1 OPEN a token in, 2 out
    account = node.balances.account(payer)
    assert (account.spent, account.balance, account.answers) == (spent, deposited - spent, 2)
    usage = {u["model"]: u for u in node.balances.usage(payer)}
    assert usage["tiny"]["spent"] == str(first.fee) and usage["other"]["completionTokens"] == 1

    # A crash after the vault released but before the post: the next run posts without releasing again.
    operator_before = node.contracts.balance_of(operator.address)
    row = node.manager.seal()
    assert node.manager.takings(row.number) == spent
    node.manager._release(row, operator)
    assert node.vault.released_for(row.number) == spent
    node.manager._release(row, operator)  # again: the vault already released it, nothing is sent
    [confirmed] = node.manager.advance()
    assert confirmed.number == row.number and confirmed.status == "confirmed"
    assert node.vault.released_for(row.number) == spent
    epoch_total = int(confirmed.total)
    # The epoch's fees came from the vault: the operator paid only what was not taken from deposits.
    fees = sum(r.fee for r in node.records.range(row.start_seq, row.end_seq) if isinstance(r, FeeRecord))
    assert epoch_total >= fees == spent
    assert node.contracts.balance_of(operator.address) == operator_before - (epoch_total - spent)
    assert node.manager.close() is None  # nothing new: no second release, no second post


def test_the_payer_endpoint_shows_balance_spent_and_usage(world, accounts):
    node = world["node"]
    url, server, thread = serve(create_app(world["settings"], node=node))
    try:
        body = httpx.get(f"{url}/v1/payers/{accounts[5].address.lower()}").json()
        assert body["payer"] == accounts[5].address and body["depositsRequired"] is True
        assert int(body["balance"]) == int(body["deposited"]) - int(body["spent"]) > 0
        assert {u["model"] for u in body["usage"]} == {"tiny", "other"} and body["vault"] == node.vault.address
        [epoch] = httpx.get(f"{url}/v1/epochs").json()  # its takings: what the vault released to fund it
        assert int(epoch["takings"]) == node.vault.released_for(1) == int(body["spent"])
        bad = httpx.get(f"{url}/v1/payers/0x1234")
        assert bad.status_code == 400 and "address" in bad.json()["message"]
        nobody = httpx.get(f"{url}/v1/payers/{accounts[9].address}").json()
        assert (nobody["balance"], nobody["usage"]) == ("0", [])
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_deposit_record_cannot_be_appended_through_the_admin_endpoint(world, accounts):
    node = world["node"]
    from pydantic import SecretStr

    settings = world["settings"].model_copy(update={"admin_token": SecretStr("t0ken")})
    url, server, thread = serve(create_app(settings, node=node))
    try:
        before = node.records.size()
        forged = {"kind": "deposit", "timestamp": 1, "payer": accounts[9].address, "sender": accounts[9].address,
                  "amount": "1000", "chain_id": 31337, "vault": node.vault.address, "tx_hash": "0x" + "ab" * 32,
                  "log_index": 0, "block_number": 1, "block_hash": "0x" + "cd" * 32}
        refused = httpx.post(f"{url}/v1/records", json=forged, headers={"Authorization": "Bearer t0ken"})
        assert refused.status_code == 400 and "written by the node" in refused.json()["message"]
        assert node.records.size() == before and node.balances.account(accounts[9].address).balance == 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
