"""Datanets end to end on a real anvil and SQLite: create, signed contributions, dedup,
review, snapshot published on chain, on-chain row proof, export."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlmodel import Session, select

from loraledger.chain.client import ChainClient
from loraledger.chain.contracts import DatanetRegistryContract, all_packaged_abis
from loraledger.chain.deploy import Deployer
from loraledger.datanets.content import content_hash, parse_rows
from loraledger.datanets.contribution import Contribution, sign_contribution
from loraledger.datanets.service import DatanetService
from loraledger.datanets.tables import DatanetEntryRow, UsedNonceRow
from loraledger.db import make_engine
from loraledger.errors import InputError, NotFoundError
from loraledger.node.context import create_tables
from loraledger.records.ledger import RecordLedger


@pytest.fixture
def service(anvil, artifacts, accounts, tmp_path):
    client = ChainClient(anvil.url, error_abis=all_packaged_abis())
    deployment = Deployer(client, accounts[0], artifacts, tmp_path / "31337.json", redeploy=True).run()
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    create_tables(engine)
    registry = DatanetRegistryContract(client, deployment.address("DatanetRegistry"))
    return DatanetService(engine, RecordLedger(engine), registry)


def jsonl(*pairs: tuple[str, str]) -> bytes:
    return "".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in pairs).encode()


def contribute(service, datanet_id, account, data: bytes, *, nonce=None, license="CC-BY-4.0", deadline=2**40):
    schema = service.get(datanet_id).row_schema
    contribution = Contribution(datanet_id, account.address, content_hash(parse_rows(data, schema)), license,
                                service.next_nonce(account.address) if nonce is None else nonce, deadline)
    return service.contribute(datanet_id, data, contribution, sign_contribution(account, service.domain, contribution))


def test_three_contributors_snapshot_and_prove_on_chain(service, accounts, tmp_path):
    dn = service.create(accounts[0], owner=accounts[1].address, name="med-qa", row_schema="instruction",
                        licenses=["CC-BY-4.0", "cc0-1.0"], policy="auto", near_duplicate_pct=80)
    size = service.records.size()
    results = [
        contribute(service, dn.id, accounts[2], jsonl(("What is aspirin?", "An NSAID used against pain and fever."),
                                                       ("Define tachycardia.", "A resting heart rate above 100 bpm."))),
        contribute(service, dn.id, accounts[3], jsonl(("What is insulin?", "A hormone that lowers blood glucose.")),
                   license="CC0-1.0"),
        contribute(service, dn.id, accounts[4], jsonl(("What does the liver do?", "It filters blood and makes bile."))),
    ]
    assert all(r.status == "accepted" for r in results)
    assert service.records.size() == size + 3 + 3  # per batch: its contribution and one decision for its rows
    decisions = service.records.of_kind("rows_decision")[-3:]
    assert [(d.contributor, d.decision, d.decided_by) for d in decisions] == \
        [(a.address, "accepted", None) for a in (accounts[2], accounts[3], accounts[4])]
    assert [list(d.row_hashes) for d in decisions] == [r.row_hashes for r in results]
    snap = service.snapshot(dn.id, accounts[0])
    assert snap.version == 1 and snap.row_count == 4
    assert service.registry.snapshot_root(dn.id, 1) == snap.root
    manifest = json.loads(snap.manifest)
    assert manifest["contributors"] == {accounts[2].address: 2, accounts[3].address: 1, accounts[4].address: 1}

    proof = service.row_proof(dn.id, 1, results[0].row_hashes[1])
    assert proof["verifiedOnChain"] is True and proof["contributor"] == accounts[2].address
    # the same proof does not prove the row for somebody else
    assert not service.registry.verify_row(dn.id, 1, proof["rowHash"], accounts[3].address, proof["proof"])
    with pytest.raises(NotFoundError):
        service.row_proof(dn.id, 1, "0x" + "00" * 32)

    rows_path, manifest_path = service.export(dn.id, 1, tmp_path / "export")
    lines = [json.loads(line) for line in rows_path.read_text().splitlines()]
    assert len(lines) == 4 and {"prompt", "completion", "row_hash", "contributor"} <= set(lines[0])
    assert json.loads(manifest_path.read_text())["root"] == snap.root

    with pytest.raises(InputError, match="nothing changed"):
        service.snapshot(dn.id, accounts[0])
    contribute(service, dn.id, accounts[2], jsonl(("What is a vaccine?", "A preparation that trains immunity.")))
    assert service.snapshot(dn.id, accounts[0]).version == 2


def test_a_batch_with_a_duplicate_is_refused_whole(service, accounts):
    dn = service.create(accounts[0], owner=accounts[1].address, name="d", row_schema="instruction",
                        licenses=["MIT"], near_duplicate_pct=80)
    question = "What is the capital of France, and what is it famous for?"
    answer = "Paris is the capital of France; it is famous for the Eiffel Tower, the Louvre and its cafes."
    first = contribute(service, dn.id, accounts[2], jsonl((question, answer)), license="MIT")
    size = service.records.size()
    nonce = service.next_nonce(accounts[3].address)
    batch = jsonl(("A brand new question here?", "A brand new answer."),
                  (question.upper(), "  " + answer.replace(" ", "   ")))  # the same row after normalisation
    with pytest.raises(InputError) as info:
        contribute(service, dn.id, accounts[3], batch, nonce=nonce, license="MIT")
    assert "row 2" in str(info.value) and "exact duplicate" in str(info.value)
    assert info.value.details["rows"][0]["duplicateOf"] == first.row_hashes[0]
    assert service.records.size() == size  # nothing recorded
    with Session(service.engine) as session:  # and the nonce is still free
        assert session.exec(select(UsedNonceRow).where(UsedNonceRow.contributor == accounts[3].address)).first() is None

    near = jsonl((question, answer.replace("cafes", "bistros")))
    with pytest.raises(InputError, match="near duplicate"):
        contribute(service, dn.id, accounts[3], near, license="MIT")
    rivers = "The longest rivers of Spain are the Tagus, the Ebro, the Douro, the Guadiana and the Guadalquivir."
    within = jsonl(("Which are the longest rivers in Spain?", rivers),
                   ("Which are the longest rivers in Spain?", rivers.replace("longest", "largest")))
    with pytest.raises(InputError, match="another row of this batch"):
        contribute(service, dn.id, accounts[3], within, license="MIT")


def test_signature_refusals(service, accounts):
    dn = service.create(accounts[0], owner=accounts[1].address, name="s", row_schema="text", licenses=["MIT"])
    data = b'{"text": "The mitochondria is the powerhouse of the cell."}\n'
    rows = parse_rows(data, "text")
    c = Contribution(dn.id, accounts[2].address, content_hash(rows), "MIT", 7, 2**40)
    signature = sign_contribution(accounts[2], service.domain, c)
    with pytest.raises(InputError, match="not the contributor"):
        service.contribute(dn.id, data, c, sign_contribution(accounts[3], service.domain, c))
    with pytest.raises(InputError, match="signature covers"):
        service.contribute(dn.id, b'{"text": "Something else entirely."}\n', c, signature)
    with pytest.raises(InputError, match="licen"):
        bad = Contribution(dn.id, accounts[2].address, content_hash(rows), "GPL-3.0", 8, 2**40)
        service.contribute(dn.id, data, bad, sign_contribution(accounts[2], service.domain, bad))
    expired = Contribution(dn.id, accounts[2].address, content_hash(rows), "MIT", 9, 5)
    with pytest.raises(InputError, match="deadline"):
        service.contribute(dn.id, data, expired, sign_contribution(accounts[2], service.domain, expired))
    assert service.contribute(dn.id, data, c, signature).status == "accepted"
    with pytest.raises(InputError, match="nonce"):  # a replay of the same signed batch
        service.contribute(dn.id, data, c, signature)


def test_owner_review(service, accounts):
    dn = service.create(accounts[0], owner=accounts[1].address, name="r", row_schema="text", licenses=["MIT"],
                        policy="review")
    a = contribute(service, dn.id, accounts[2], b'{"text": "Row one is about apples and pears."}\n', license="MIT")
    b = contribute(service, dn.id, accounts[3], b'{"text": "Row two is about cars and trains."}\n', license="MIT")
    assert a.status == b.status == "pending"
    with pytest.raises(InputError, match="no accepted rows"):
        service.snapshot(dn.id, accounts[0])
    service.review(dn.id, a.row_hashes, accept=True, decided_by=accounts[1].address)
    service.review(dn.id, b.row_hashes, accept=False, decided_by=accounts[1].address, reason="off topic")
    with pytest.raises(InputError, match="not pending"):
        service.review(dn.id, b.row_hashes, accept=True, decided_by=accounts[1].address)
    assert service.counts(dn.id) == {"accepted": 1, "rejected": 1}
    assert service.snapshot(dn.id, accounts[0]).row_count == 1
    # a rejected row's content may be contributed again
    again = contribute(service, dn.id, accounts[4], b'{"text": "Row two is about cars and trains."}\n', license="MIT")
    assert again.status == "pending"
    # one review of rows of two contributors: one decision record each, rows in the order named (each once)
    c = contribute(service, dn.id, accounts[2], b'{"text": "Row three: lemons."}\n{"text": "Row four: limes."}\n',
                   license="MIT")
    size = service.records.size()
    named = [c.row_hashes[1], again.row_hashes[0], c.row_hashes[0], c.row_hashes[1]]
    assert service.review(dn.id, named, accept=True, decided_by=accounts[1].address) == 3
    decisions = service.records.of_kind("rows_decision")[-2:]
    assert service.records.size() == size + 2
    assert [(d.contributor, list(d.row_hashes), d.decided_by) for d in decisions] == [
        (accounts[2].address, [c.row_hashes[1], c.row_hashes[0]], accounts[1].address),
        (accounts[4].address, again.row_hashes, accounts[1].address)]


@pytest.mark.parametrize("kwargs,needle", [
    ({"row_schema": "csv"}, "unknown row schema"),
    ({"policy": "sometimes"}, "policy"),
    ({"licenses": []}, "at least one allowed licence"),
    ({"near_duplicate_pct": 0}, "1..100"),
    ({"name": "  "}, "needs a name"),
    ({"owner": "0x1234"}, "40 hex digits"),
])
def test_bad_datanet_definitions(service, accounts, kwargs, needle):
    args = dict(owner=accounts[1].address, name="x", row_schema="text", licenses=["MIT"])
    args.update(kwargs)
    with pytest.raises(InputError, match=needle):
        service.create(accounts[0], **args)


def test_export_reads_with_hugging_face_datasets(service, accounts, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="the `datasets` package (test extra) is not installed")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dn = service.create(accounts[0], owner=accounts[1].address, name="chat", row_schema="chat", licenses=["MIT"])
    rows = [{"messages": [{"role": "user", "content": f"Question number {i} about topic {i * 7}?"},
                          {"role": "assistant", "content": f"Answer {i}: it depends on {i * 13} things."}]}
            for i in range(5)]
    contribute(service, dn.id, accounts[2], "".join(json.dumps(r) + "\n" for r in rows).encode(), license="MIT")
    service.snapshot(dn.id, accounts[0])
    rows_path, manifest_path = service.export(dn.id, 1, tmp_path / "out")
    loaded = datasets.load_dataset("json", data_files=str(rows_path), split="train", cache_dir=str(tmp_path / "hf"))
    assert loaded.num_rows == 5
    assert set(loaded.column_names) == {"messages", "row_hash", "contributor"}
    assert loaded[0]["messages"][0]["role"] == "user"
    assert json.loads(manifest_path.read_text())["rowCount"] == 5


def test_a_spent_nonce_is_refused_by_the_write_itself_on_both_databases(anvil, artifacts, accounts, tmp_path, db_url):
    """The nonce is checked by its insert (no read first): a batch whose rows were rejected passes the
    duplicate checks, so only the key on (contributor, nonce) refuses its replay; nothing is written."""
    client = ChainClient(anvil.url, error_abis=all_packaged_abis())
    deployment = Deployer(client, accounts[0], artifacts, tmp_path / "31337.json", redeploy=True).run()
    engine = make_engine(db_url)
    create_tables(engine)
    records = RecordLedger(engine)
    service = DatanetService(engine, records, DatanetRegistryContract(client, deployment.address("DatanetRegistry")))
    dn = service.create(accounts[0], owner=accounts[1].address, name="n", row_schema="text", licenses=["MIT"],
                        policy="review")
    data = b'{"text": "Row one is about apples and pears."}\n'
    rows = parse_rows(data, "text")
    contribution = Contribution(dn.id, accounts[2].address, content_hash(rows), "MIT", 3, 2**40)
    signature = sign_contribution(accounts[2], service.domain, contribution)
    first = service.contribute(dn.id, data, contribution, signature)
    service.review(dn.id, first.row_hashes, accept=False, decided_by=accounts[1].address, reason="off topic")
    size = records.size()
    with pytest.raises(InputError, match="nonce 3 .* was already used"):
        service.contribute(dn.id, data, contribution, signature)
    assert records.size() == size and RecordLedger(engine).size() == size
    fresh = Contribution(dn.id, accounts[2].address, content_hash(rows), "MIT", 4, 2**40)
    assert service.contribute(dn.id, data, fresh, sign_contribution(accounts[2], service.domain, fresh)).status == "pending"
    engine.dispose()


def test_a_batch_is_stored_row_by_row_in_its_order_on_both_databases(anvil, artifacts, accounts, tmp_path, db_url):
    """PostgreSQL takes a batch's rows in one INSERT ... SELECT FROM unnest(...), SQLite as an
    executemany: the same rows either way, each with its content, in the batch's order (ids)."""
    client = ChainClient(anvil.url, error_abis=all_packaged_abis())
    deployment = Deployer(client, accounts[0], artifacts, tmp_path / "31337.json", redeploy=True).run()
    engine = make_engine(db_url)
    create_tables(engine)
    service = DatanetService(engine, RecordLedger(engine),
                             DatanetRegistryContract(client, deployment.address("DatanetRegistry")))
    texts = ["Zebras sleep standing up in open grassland.", "Apples ripen faster next to bananas, it's said.",
             "Mount Kea's summit hosts twelve telescopes.", "Ünïcode row: naïve café, 東京, emoji 🚀.",
             "A row with \"quotes\", a backslash \\ and a tab\tinside."]
    data = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts).encode()
    for policy, status in (("review", "pending"), ("auto", "accepted")):
        dn = service.create(accounts[0], owner=accounts[1].address, name=policy, row_schema="text", licenses=["MIT"],
                            policy=policy)
        result = contribute(service, dn.id, accounts[2], data, license="MIT")
        with Session(engine) as session:
            stored = session.exec(select(DatanetEntryRow).where(DatanetEntryRow.datanet_id == dn.id)
                                  .order_by(DatanetEntryRow.id)).all()
        assert [(row.row_hash, json.loads(row.content)["text"]) for row in stored] == \
            list(zip(result.row_hashes, texts))
        assert {(row.contributor, row.status, row.contribution_seq, row.reason, row.decided_at == row.created_at)
                for row in stored} == {(accounts[2].address, status, result.seq, None, policy == "auto")}
        assert result.status == status and [row.row_hash for row in service.pending(dn.id)] == \
            (result.row_hashes if policy == "review" else [])
    engine.dispose()


def test_a_row_a_concurrent_batch_took_is_refused_by_the_insert_on_both_databases(anvil, artifacts, accounts, tmp_path,
                                                                                   db_url):
    """Two services on one database (two node processes): each screens a batch against its own dedup
    index, so only the database's live-row index sees that the other took a row meanwhile. The
    loser records nothing and keeps its nonce; once the row is rejected, its content may come again."""
    client = ChainClient(anvil.url, error_abis=all_packaged_abis())
    deployment = Deployer(client, accounts[0], artifacts, tmp_path / "31337.json", redeploy=True).run()
    engine = make_engine(db_url)
    create_tables(engine)
    registry = DatanetRegistryContract(client, deployment.address("DatanetRegistry"))
    first = DatanetService(engine, RecordLedger(engine), registry)
    dn = first.create(accounts[0], owner=accounts[1].address, name="n", row_schema="text", licenses=["MIT"],
                      policy="review")
    second = DatanetService(engine, RecordLedger(engine), registry)
    contribute(second, dn.id, accounts[3], b'{"text": "A warm-up row about rivers, deltas and their silt."}\n',
               license="MIT")  # the second service's dedup index is built now, before the race
    data = b'{"text": "Row one is about apples and pears."}\n{"text": "Row two: tides follow the moon."}\n'
    won = contribute(first, dn.id, accounts[2], data, license="MIT")
    size, nonce = RecordLedger(engine).size(), second.next_nonce(accounts[4].address)
    with pytest.raises(InputError, match=r"row (0x[0-9a-f]{64}) was contributed meanwhile") as refused:
        contribute(second, dn.id, accounts[4], data, license="MIT")
    assert refused.value.message.split()[5] in won.row_hashes
    assert RecordLedger(engine).size() == size and second.next_nonce(accounts[4].address) == nonce
    with Session(engine) as session:
        assert session.exec(select(UsedNonceRow).where(UsedNonceRow.contributor == accounts[4].address)).all() == []
    stale = second.pending(dn.id)  # read before the first service decides
    first.review(dn.id, won.row_hashes, accept=False, decided_by=accounts[1].address, reason="off topic")
    second.pending = lambda _: stale
    size = RecordLedger(engine).size()
    with pytest.raises(InputError, match="was rejected meanwhile: nothing recorded"):
        second.review(dn.id, won.row_hashes, accept=True, decided_by=accounts[1].address)
    assert RecordLedger(engine).size() == size
    del second.pending
    again = contribute(second, dn.id, accounts[4], data, license="MIT")
    assert again.status == "pending" and again.row_hashes == won.row_hashes
    engine.dispose()


def test_two_near_duplicate_batches_arriving_together_let_one_in(service, accounts):
    """The API calls contribute from many threads: the second of two near-duplicate batches is
    screened after the first is recorded and indexed (the datanet's lock), so it is refused, even
    though it arrived while the first was being written."""
    dn = service.create(accounts[0], owner=accounts[1].address, name="n", row_schema="text", licenses=["MIT"],
                        policy="auto", near_duplicate_pct=80)
    text = "Aspirin, an NSAID, treats pain, fever and inflammation, and in low doses it thins the blood."
    first, second = (f'{{"text": "{t}"}}\n'.encode() for t in (text, text.replace("treats", "eases")))
    writing = threading.Event()
    append_many = service.records.append_many

    def slow_append(new, **kwargs):  # the first batch's write takes a while: the second arrives meanwhile
        writing.set()
        time.sleep(0.3)
        return append_many(new, **kwargs)

    service.records.append_many = slow_append
    results: dict[str, object] = {}

    def send(name, account, data):
        try:
            results[name] = contribute(service, dn.id, account, data, license="MIT")
        except InputError as exc:
            results[name] = exc

    one = threading.Thread(target=send, args=("first", accounts[2], first))
    one.start()
    assert writing.wait(10)
    two = threading.Thread(target=send, args=("second", accounts[3], second))
    two.start()
    one.join(20)
    two.join(20)
    assert results["first"].status == "accepted"
    assert isinstance(results["second"], InputError) and "near duplicate of an accepted" in str(results["second"])
    assert service.counts(dn.id).get("accepted") == 1
