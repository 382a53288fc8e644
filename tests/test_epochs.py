"""Epoch files: built from records, recomputed from the files alone, tampering found by field."""

from __future__ import annotations

import copy

import pytest

from loraledger.crypto.merkle import StandardMerkleTree
from loraledger.crypto.translog import MerkleLog
from loraledger.epochs.file import EpochLink, build_epoch_file, cumulative_after, data_hash, verify_epoch_files
from loraledger.errors import InputError
from loraledger.records.kinds import FeeRecord, RewardGrantRecord, log_leaf
from loraledger.rewards.split import FeeSplit

A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
C = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DIST = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"


def grants(start: int, rows: list[tuple[str, int]], source: str) -> list[RewardGrantRecord]:
    return [
        RewardGrantRecord(seq=start + i, timestamp=1_700_000_000 + i, account=a, amount=v, source=source, memo=None)
        for i, (a, v) in enumerate(rows)
    ]


SPLIT = FeeSplit(7000, 2000, 1000)


def seal(epoch: int, log: MerkleLog, records, previous, balances_before):
    """Append ``records`` to ``log`` and build the epoch file, as the epoch manager does."""
    start = log.size
    for record in records:
        log.append(log_leaf(record))
    balances = cumulative_after(balances_before, records, SPLIT)
    epoch_file = build_epoch_file(
        epoch=epoch, chain_id=31337, ledger=LEDGER, distributor=DIST, records=records,
        log_size=log.size, log_root=log.root(), consistency_proof=log.consistency_proof(start).path,
        previous=EpochLink.of(previous) if previous else None, fee_split=SPLIT, balances=balances,
    )
    return epoch_file, balances


def two_epochs() -> list[dict]:
    log = MerkleLog()
    first, balances = seal(1, log, grants(0, [(A, 10**18), (B, 3 * 10**18)], "sha256:one"), None, {})
    fee = FeeRecord(seq=4, timestamp=1_700_000_100, payer=B, fee=1000, weights={A: 1, C: 3}, developer=B, operator=C)
    second, _ = seal(2, log, [*grants(2, [(A, 5), (C, 7 * 10**18)], "sha256:two"), fee], first, balances)
    return [first, second]


def test_cumulative_balances_and_totals():
    first, second = two_epochs()
    assert first["rewards"]["total"] == str(4 * 10**18)
    assert second["rewards"]["total"] == str(7 * 10**18 + 5 + 1000)
    assert second["rewards"]["cumulativeTotal"] == str(11 * 10**18 + 5 + 1000)
    tree = StandardMerkleTree.load(second["rewards"]["tree"])
    # the fee of 1000 wei: contributors 70% by weight 1:3 (A 175, C 525), developer B 20%, operator C 10%
    assert dict((a, int(v)) for _, (a, v) in tree.entries()) == {
        A: 10**18 + 5 + 175, B: 3 * 10**18 + 200, C: 7 * 10**18 + 525 + 100,
    }
    assert second["log"]["size"] == 5 and second["log"]["previousSize"] == 2
    assert second["feeSplit"] == {"contributorsBps": 7000, "developerBps": 2000, "operatorBps": 1000}
    assert second["previous"] == {"epoch": 1, "dataHash": data_hash(first)}


def test_untouched_files_verify_clean():
    checks = verify_epoch_files(two_epochs())
    assert [c.problems for c in checks] == [[], []]
    assert [c.record_count for c in checks] == [2, 3]


def test_building_is_deterministic():
    assert data_hash(two_epochs()[1]) == data_hash(two_epochs()[1])


TAMPERS = {
    "record amount": (lambda f: f["records"][0].__setitem__("amount", "999"), "log.root"),
    "record account": (lambda f: f["records"][1].__setitem__("account", B), "log.root"),
    "record removed": (lambda f: f["records"].pop(), "log.size"),
    "record seq": (lambda f: f["records"][0].__setitem__("seq", 9), "records[0].seq"),
    "record kind": (lambda f: f["records"][0].__setitem__("kind", "bogus"), "records[0]"),
    "log root": (lambda f: f["log"].__setitem__("root", "0x" + "11" * 32), "log.root"),
    "consistency proof": (lambda f: f["log"]["consistencyProof"].__setitem__(0, "0x" + "22" * 32), "log.consistencyProof"),
    "rewards root": (lambda f: f["rewards"].__setitem__("root", "0x" + "33" * 32), "rewards.root"),
    "rewards total": (lambda f: f["rewards"].__setitem__("total", "1"), "rewards.total"),
    "tree value": (lambda f: f["rewards"]["tree"]["values"][0]["value"].__setitem__(1, "1"), "rewards.tree"),
    "epoch number": (lambda f: f.__setitem__("epoch", 3), "epoch:"),
    "previous hash": (lambda f: f["previous"].__setitem__("dataHash", "0x" + "44" * 32), "previous.dataHash"),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_tampering_is_reported_with_epoch_and_field(name):
    files = two_epochs()
    tamper, field = TAMPERS[name]
    tamper(files[1])
    checks = verify_epoch_files(files)
    assert checks[0].problems == []
    assert any(field in p for p in checks[1].problems), checks[1].problems


def test_tampering_an_earlier_epoch_breaks_the_chain_of_hashes():
    files = two_epochs()
    files[0]["contracts"]["ledger"] = DIST  # a field no recomputation covers: only the hash chain
    checks = verify_epoch_files(files)
    assert any("previous.dataHash" in p for p in checks[1].problems)


def test_epochs_must_be_sequential_and_non_empty():
    common = dict(chain_id=1, ledger=LEDGER, distributor=DIST, log_root=b"\0" * 32, consistency_proof=[],
                  fee_split=SPLIT, balances={A: 1})
    with pytest.raises(InputError, match="cannot follow"):
        build_epoch_file(epoch=2, records=grants(0, [(A, 1)], "s"), log_size=1, previous=None, **common)
    with pytest.raises(InputError, match="no records"):
        build_epoch_file(epoch=1, records=[], log_size=0, previous=None, **common)
    with pytest.raises(InputError, match="seq"):
        build_epoch_file(epoch=1, records=grants(5, [(A, 1)], "s"), log_size=1, previous=None, **common)


def test_fee_split_in_the_file_is_the_one_recomputed():
    files = two_epochs()
    files[1]["feeSplit"] = {"contributorsBps": 10000, "developerBps": 0, "operatorBps": 0}
    problems = verify_epoch_files(files)[1].problems
    assert any("rewards.root" in p for p in problems), problems


def test_original_files_are_not_modified_by_verification():
    files = two_epochs()
    before = copy.deepcopy(files)
    verify_epoch_files(files)
    assert files == before


def test_a_streamed_epoch_is_byte_identical_to_the_built_one():
    """The node seals by streaming (StreamedEpoch); for the same records its file and data hash are
    the bytes build_epoch_file + the compact writer give, floats, non-ASCII text and every kind included."""
    import json

    from Crypto.Hash import keccak

    from loraledger.epochs.file import NothingToPay, StreamedEpoch
    from loraledger.records.kinds import InferenceRecord, PriceRecord, canonical_json

    log = MerkleLog()
    first, balances = seal(1, log, grants(0, [(A, 10**18)], "sha256:one"), None, {})
    records = [
        InferenceRecord(seq=1, timestamp=7, request_id="ab" * 16, model="médical-qa", adapter_hash=None,
                        base_model_hash="0x" + "11" * 32, prompt_hash="0x" + "22" * 32, output_hash="0x" + "33" * 32,
                        prompt_tokens=3, completion_tokens=4, finish_reason="stop",
                        sampling={"temperature": 0.7, "top_p": 1e-21, "max_tokens": 8, "seed": None}, payer=B,
                        input_per_1k=10, output_per_1k=20, fee=11, queue_ms=0, total_ms=5, backend="builtin",
                        api="chat"),
        FeeRecord(seq=2, timestamp=8, payer=B, fee=1000, weights={A: 2, C: 1}, developer=B, operator=C,
                  ref="inference:" + "ab" * 16),
        PriceRecord(seq=3, timestamp=9, model="模型", input_per_1k=1, output_per_1k=2, set_by=A),
        *grants(4, [(C, 5)], "sha256:two"),
    ]
    built, after = seal(2, log, records, first, balances)
    stream = StreamedEpoch(epoch=2, chain_id=31337, ledger=LEDGER, distributor=DIST, log_size=log.size,
                           record_count=len(records), log_root=log.root(), consistency_proof=log.consistency_proof(1).path,
                           previous=EpochLink.of(first), fee_split=SPLIT, previous_balances=balances)
    file_bytes, hasher = b"", keccak.new(digest_bits=256)
    for piece, canonical in stream.pieces((r.kind, canonical_json(r)) for r in records):
        file_bytes += piece
        hasher.update(canonical)
    assert file_bytes == (json.dumps(built, sort_keys=True, separators=(",", ":")) + "\n").encode()
    assert "0x" + hasher.hexdigest() == data_hash(built)
    assert stream.balances == after and stream.file["rewards"] == built["rewards"]

    nothing = StreamedEpoch(epoch=1, chain_id=31337, ledger=LEDGER, distributor=DIST, log_size=1, record_count=1,
                            log_root=b"\x00" * 32, consistency_proof=[], previous=None, fee_split=SPLIT,
                            previous_balances={})
    with pytest.raises(NothingToPay):
        list(nothing.pieces([("price", canonical_json(records[2].model_copy(update={"seq": 0})))]))
    out_of_order = StreamedEpoch(epoch=2, chain_id=31337, ledger=LEDGER, distributor=DIST, log_size=log.size,
                                 record_count=len(records), log_root=log.root(), consistency_proof=[],
                                 previous=EpochLink.of(first), fee_split=SPLIT, previous_balances=balances)
    with pytest.raises(InputError, match="has seq 2, expected 1"):
        list(out_of_order.pieces([(r.kind, canonical_json(r)) for r in records[1:]]))


# ---- chunked epochs ----------------------------------------------------------------------------


def _second_epoch_records():
    from loraledger.records.kinds import PriceRecord

    fee = FeeRecord(seq=2, timestamp=8, payer=B, fee=1000, weights={A: 2, C: 1}, developer=B, operator=C)
    price = PriceRecord(seq=3, timestamp=9, model="模型", input_per_1k=1, output_per_1k=2, set_by=A)
    return [*grants(1, [(B, 4)], "sha256:x"), fee, price, *grants(4, [(C, 5), (A, 6), (B, 7)], "sha256:two")]


def chunked_pair(max_bytes: int = 300):
    """Epoch 1 inline, then epoch 2 both ways: built inline and streamed as chunks (max_bytes each)."""
    from loraledger.epochs.file import StreamedEpoch
    from loraledger.records.kinds import canonical_json

    log = MerkleLog()
    first, balances = seal(1, log, grants(0, [(A, 10**18)], "sha256:one"), None, {})
    records = _second_epoch_records()
    built, _ = seal(2, log, records, first, balances)
    stream = StreamedEpoch(epoch=2, chain_id=31337, ledger=LEDGER, distributor=DIST, log_size=log.size,
                           record_count=len(records), log_root=log.root(), consistency_proof=log.consistency_proof(1).path,
                           previous=EpochLink.of(first), fee_split=SPLIT, previous_balances=balances)
    chunks = {chunk.hash: chunk for chunk in stream.chunks(((r.kind, canonical_json(r)) for r in records), max_bytes)}
    return first, built, stream, chunks


def test_a_chunked_epoch_holds_the_same_records_and_roots_and_verifies_from_its_chunks():
    import json

    from loraledger.crypto.canonical import canonicalize
    from loraledger.crypto.merkle.hashing import keccak256
    from loraledger.epochs.file import CHUNKED_FORMAT, epoch_records

    first, built, stream, chunks = chunked_pair()
    manifest = stream.file
    file_bytes, canonical = stream.manifest_bytes()
    assert json.loads(file_bytes) == manifest and file_bytes.endswith(b"\n")
    assert canonical == canonicalize(manifest) and "0x" + keccak256(canonical).hex() == data_hash(manifest)
    assert manifest["format"] == CHUNKED_FORMAT and "records" not in manifest
    assert len(manifest["chunks"]) == len(chunks) >= 3
    # every chunk is named by its bytes' hash, in seq order, and the manifest (so the data hash) lists each hash
    assert [entry["hash"] for entry in manifest["chunks"]] == list(chunks)
    assert all(entry["bytes"] == len(chunks[entry["hash"]].data) for entry in manifest["chunks"])
    assert manifest["chunks"][0]["firstSeq"] == 1 and sum(entry["records"] for entry in manifest["chunks"]) == 6
    # the same records, log, rewards and previous link as the inline epoch: only the layout differs
    assert list(epoch_records(manifest, lambda h: chunks[h].data)) == built["records"]
    for key in ("log", "rewards", "previous", "feeSplit", "contracts", "chainId", "epoch"):
        assert manifest[key] == built[key], key

    inline = verify_epoch_files([first, built])
    split = verify_epoch_files([first, manifest], lambda h: chunks[h].data)
    assert [c.problems for c in split] == [[], []]
    assert [(c.log_root, c.rewards_root, c.epoch_total, c.record_count) for c in split] == \
        [(c.log_root, c.rewards_root, c.epoch_total, c.record_count) for c in inline]
    assert split[1].data_hash == data_hash(manifest) != inline[1].data_hash


def _tamper_chunk_bytes(manifest, chunks):
    entry = manifest["chunks"][1]
    data = chunks[entry["hash"]].data
    return {**{h: c.data for h, c in chunks.items()}, entry["hash"]: data[:-2] + b" ]}"}  # same JSON, other bytes


CHUNK_TAMPERS = {
    # a chunk's bytes changed under its name
    "chunk bytes": (lambda m, c: _tamper_chunk_bytes(m, c), "chunks[1]", "hash to"),
    # a chunk missing from the store
    "chunk missing": (lambda m, c: {h: x.data for h, x in list(c.items())[:-1]}, "chunks[", "no chunk"),
    # the manifest lists two chunks swapped: each hashes right but sits in the wrong place
    "chunks swapped": (lambda m, c: m["chunks"].__setitem__(slice(0, 2), m["chunks"][1::-1]), "chunks[0]", "index"),
    # the manifest's count for a chunk is wrong
    "chunk count": (lambda m, c: m["chunks"][0].__setitem__("records", 99), "chunks[0]", "manifest says 99"),
    # a chunk's hash replaced by another well-formed one
    "chunk hash": (lambda m, c: m["chunks"][0].__setitem__("hash", "0x" + "ab" * 32), "chunks[0]", "no chunk"),
}


@pytest.mark.parametrize("name", list(CHUNK_TAMPERS))
def test_a_chunk_that_is_missing_or_does_not_match_its_manifest_is_named(name):
    from loraledger.errors import NotFoundError

    first, _, stream, chunks = chunked_pair()
    manifest = copy.deepcopy(stream.file)
    tamper, where, what = CHUNK_TAMPERS[name]
    store = tamper(manifest, chunks) or {h: c.data for h, c in chunks.items()}

    def read_chunk(chunk_hash: str) -> bytes:
        if chunk_hash not in store:
            raise NotFoundError(f"no chunk {chunk_hash}")
        return store[chunk_hash]

    problems = verify_epoch_files([first, manifest], read_chunk)[1].problems
    assert any(where in p and what in p for p in problems), problems
    assert any("log." in p or "rewards." in p for p in problems), problems  # the records it lost show as well


def test_a_chunked_epoch_without_a_chunk_reader_or_with_the_wrong_format_is_a_problem():
    first, _, stream, _ = chunked_pair()
    assert any("no chunk store" in p for p in verify_epoch_files([first, stream.file])[1].problems)
    odd = {**stream.file, "format": "loraledger-epoch-v9"}
    assert any(p.startswith("format:") for p in verify_epoch_files([first, odd])[1].problems)


def test_chunks_close_at_the_size_given_and_one_chunk_holds_a_small_epoch():
    first, built, stream, chunks = chunked_pair(max_bytes=1)
    assert [c.records for c in chunks.values()] == [1] * 6  # every record past 1 byte closes its chunk
    _, _, whole, one = chunked_pair(max_bytes=10**9)
    assert len(one) == 1 and whole.file["chunks"][0]["records"] == 6
    assert whole.file["rewards"] == built["rewards"]
    with pytest.raises(InputError, match="chunk size must be positive"):
        chunked_pair(max_bytes=0)
