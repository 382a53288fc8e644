"""The record ledger on real databases: a SQLite file and a private PostgreSQL server.

Every test that touches a database runs on both backends; the PostgreSQL ones are
skipped (with the reason) when no server can be started here (see ``tests/pg.py``).
Nothing is mocked: tampering is done with SQL on the real database, concurrency with
real threads and real processes.
"""

from __future__ import annotations

import multiprocessing
import socket
import sqlite3
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from loraledger.attribution.tables import InferenceTextRow
from loraledger.crypto.translog import MerkleLog, leaf_hash, verify_consistency, verify_inclusion
from loraledger.db import fetch_rows, make_engine, read_scope, send, session_scope
from loraledger.errors import InputError, LedgerError, NotFoundError
from loraledger.node.context import create_tables
from loraledger.records.kinds import FeeRecord, Record, RewardGrantRecord, canonical_json, record_hash
from loraledger.records.ledger import RecordLedger, fold_leaves, frontier_root
from loraledger.records.tables import LogStateRow, RecordRow

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
OPERATOR = "0x" + "0f" * 20


def grant(i: int, memo: str | None = None) -> RewardGrantRecord:
    return RewardGrantRecord(account=ALICE, amount=10**18 + i, source="test", memo=memo, timestamp=1_700_000_000 + i)


def fee(i: int) -> FeeRecord:
    return FeeRecord(
        payer=BOB,
        fee=str(3 * 10**30 + i),
        weights={ALICE: 600_000, BOB: 400_000},
        operator=OPERATOR,
        ref=f"inférence ✓ {i}",  # non-ASCII: the body must round-trip as UTF-8
        timestamp=1_700_000_000 + i,
    )


def expected_root(records: list[Record]) -> bytes:
    return MerkleLog.from_leaf_hashes(leaf_hash(record_hash(r)) for r in records).root()


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def ledger(engine) -> RecordLedger:
    return RecordLedger(engine)


def execute(engine, sql: str, **params) -> None:
    with session_scope(engine) as session:
        session.execute(text(sql), params)


def db_seqs(engine) -> list[int]:
    with read_scope(engine) as conn:
        return [row[0] for row in conn.execute(text("SELECT seq FROM records ORDER BY seq"))]


# ------------------------------------------------------------------------------ appending


def test_append_assigns_gap_free_seqs_and_the_log_root(ledger, engine):
    assert ledger.size() == 0
    assert ledger.state() == {"size": 0, "root": "0x" + MerkleLog().root().hex()}
    first = [ledger.append(grant(i)) for i in range(3)]
    batch = ledger.append_many([fee(3), grant(4, memo="m"), fee(5), grant(6)])
    records = first + batch
    assert [r.seq for r in records] == list(range(7))
    originals = [grant(0), grant(1), grant(2), fee(3), grant(4, memo="m"), fee(5), grant(6)]
    for i, (record, original) in enumerate(zip(records, originals, strict=True)):
        assert record == original.with_seq(i)
        assert record.model_fields_set == original.with_seq(i).model_fields_set
    assert [r.timestamp for r in records] == [1_700_000_000 + i for i in range(7)]  # kept
    assert records[3] == fee(3).with_seq(3)
    assert ledger.size() == 7 and len(ledger) == 7
    assert ledger.root() == expected_root(records)
    assert ledger.state() == {"size": 7, "root": "0x" + expected_root(records).hex()}
    assert ledger.root(3) == expected_root(records[:3])

    # Reads give back equal records; the stored body is exactly the hashed bytes.
    assert [ledger.get(i) for i in range(7)] == records
    assert ledger.range(2, 5) == records[2:5]
    assert ledger.range(0) == records
    assert ledger.range(5, 100) == records[5:]
    assert ledger.range(9, 12) == []
    assert ledger.get_by_hash(records[4].hash_hex) == records[4]
    assert ledger.get_by_hash(records[4].hash_hex.upper().replace("0X", "0x")) == records[4]
    with read_scope(engine) as conn:
        rows = conn.execute(text("SELECT seq, kind, timestamp, hash, body, epoch FROM records ORDER BY seq")).all()
    for row, record in zip(rows, records, strict=True):
        assert row.body.encode("utf-8") == canonical_json(record)
        assert row.hash == record.hash_hex
        assert (row.kind, row.timestamp, row.epoch) == (record.kind, record.timestamp, None)
    with read_scope(engine) as conn:
        state = conn.execute(text("SELECT size, root FROM log_state WHERE id = 1")).one()
    assert (state.size, state.root) == (7, "0x" + expected_root(records).hex())

    with pytest.raises(NotFoundError):
        ledger.get(7)
    with pytest.raises(NotFoundError):
        ledger.get_by_hash("0x" + "00" * 32)
    with pytest.raises(InputError):
        ledger.get_by_hash("0x1234")
    with pytest.raises(InputError):
        ledger.get(-1)
    assert ledger.append_many([]) == []


def test_records_with_a_seq_or_not_records_are_refused(ledger, engine):
    ledger.append(grant(0))
    with pytest.raises(InputError, match="already has seq"):
        ledger.append_many([grant(1), grant(2).with_seq(5)])
    with pytest.raises(InputError, match="not a record"):
        ledger.append_many([grant(1), {"kind": "reward_grant"}])  # type: ignore[list-item]
    with pytest.raises(InputError):
        ledger.append_many(grant(1))  # type: ignore[arg-type]
    assert ledger.size() == 1 and db_seqs(engine) == [0]


def test_reopening_rebuilds_the_identical_log(ledger, db_url):
    records = ledger.append_many([grant(i) for i in range(25)])
    other = RecordLedger(make_engine(db_url))
    assert other.state() == ledger.state()
    assert other.root(13) == expected_root(records[:13])
    # ... and carries on from where the first left off.
    assert other.append(grant(25)).seq == 25
    assert RecordLedger(make_engine(db_url)).root() == expected_root([*records, grant(25).with_seq(25)])


def test_create_tables_adds_an_index_a_table_from_an_older_version_lacks(engine):
    """create_all creates no index on a table that exists; create_tables adds the missing ones
    (a database from before the live-row index gets it), and a second run changes nothing."""
    from sqlalchemy import inspect

    def indexes() -> set[str]:
        with engine.connect() as conn:
            return {ix["name"] for ix in inspect(conn).get_indexes("datanet_rows")}

    assert "ux_datanet_rows_live" in indexes()
    execute(engine, "DROP INDEX ux_datanet_rows_live")
    assert "ux_datanet_rows_live" not in indexes()
    create_tables(engine)
    create_tables(engine)
    assert "ux_datanet_rows_live" in indexes()


def test_a_missing_log_state_row_is_rebuilt_from_the_records(ledger, engine):
    records = ledger.append_many([grant(i) for i in range(10)])
    execute(engine, "DELETE FROM log_state")
    reopened = RecordLedger(engine)
    assert reopened.root() == expected_root(records)
    with read_scope(engine) as conn:
        state = conn.execute(text("SELECT size, root, frontier FROM log_state WHERE id = 1")).one()
    assert (state.size, state.root) == (10, "0x" + expected_root(records).hex())
    assert reopened.append(grant(10)).seq == 10


def test_a_corrupted_log_state_root_is_detected_at_open_and_at_append(ledger, engine):
    ledger.append_many([grant(i) for i in range(6)])
    good = ledger.state()["root"]
    bad = "0x" + "ee" * 32
    execute(engine, "UPDATE log_state SET root = :root WHERE id = 1", root=bad)
    with pytest.raises(LedgerError) as info:
        RecordLedger(engine)
    assert bad in str(info.value) and good in str(info.value)
    with pytest.raises(LedgerError, match="inconsistent"):
        ledger.append(grant(6))
    assert db_seqs(engine) == list(range(6))


def test_a_tampered_record_hash_is_detected_at_open(ledger, engine):
    ledger.append_many([grant(i) for i in range(6)])
    execute(engine, "UPDATE records SET hash = :h WHERE seq = 2", h="0x" + "ab" * 32)
    with pytest.raises(LedgerError, match="inconsistent"):
        RecordLedger(engine)


def test_removed_or_extra_rows_are_detected_at_open(ledger, engine):
    records = ledger.append_many([grant(i) for i in range(6)])
    execute(engine, "DELETE FROM records WHERE seq = 5")
    with pytest.raises(LedgerError, match="5 \\(root"):
        RecordLedger(engine)
    execute(engine, "DELETE FROM records WHERE seq = 2")
    with pytest.raises(LedgerError, match="gap"):
        RecordLedger(engine)
    assert ledger.root() == expected_root(records)


def test_a_tampered_body_is_detected_on_read_and_by_verify(ledger, engine):
    records = ledger.append_many([grant(i) for i in range(8)])
    assert ledger.verify() == 8
    assert RecordLedger(engine, verify=True).size() == 8
    forged = canonical_json(grant(99).with_seq(3)).decode()
    execute(engine, "UPDATE records SET body = :b WHERE seq = 3", b=forged)
    with pytest.raises(LedgerError, match="record 3 is corrupt"):
        ledger.get(3)
    with pytest.raises(LedgerError, match="record 3 is corrupt"):
        ledger.range(0, 8)
    with pytest.raises(LedgerError, match="record 3 is corrupt"):
        ledger.verify()
    # Opening only checks hashes against the root (fast); verify=True audits bodies too.
    assert RecordLedger(engine).root() == expected_root(records)
    with pytest.raises(LedgerError, match="record 3 is corrupt"):
        RecordLedger(engine, verify=True)
    # A body and hash rewritten together no longer match the log.
    execute(
        engine, "UPDATE records SET hash = :h WHERE seq = 3", h="0x" + record_hash(grant(99).with_seq(3)).hex()
    )
    with pytest.raises(LedgerError, match="not the one in the log"):
        ledger.get(3)
    # Columns that disagree with the body are caught by verify.
    execute(engine, "UPDATE records SET body = :b, hash = :h WHERE seq = 3",
            b=canonical_json(records[3]).decode(), h=records[3].hash_hex)
    execute(engine, "UPDATE records SET timestamp = 5 WHERE seq = 4")
    with pytest.raises(LedgerError, match="record 4 is corrupt.*timestamp"):
        ledger.verify()


def test_inclusion_and_consistency_proofs_verify(ledger):
    records = ledger.append_many([grant(i) if i % 3 else fee(i) for i in range(37)])
    for size in (1, 2, 5, 8, 16, 17, 36, 37):
        root = ledger.root(size)
        assert root == expected_root(records[:size])
        for seq in sorted({0, size // 2, size - 1}):
            proof = ledger.inclusion_proof(seq, size)
            assert verify_inclusion(leaf_hash(records[seq].hash), seq, size, proof.path, root)
            assert proof.verify(root)
            assert not verify_inclusion(leaf_hash(records[seq].hash), seq, size, proof.path, b"\0" * 32)
    proof = ledger.inclusion_proof(36)
    assert proof.size == 37 and proof.verify(ledger.root())
    for first, second in [(0, 5), (1, 37), (5, 16), (16, 37), (20, 20), (7, 36)]:
        proof = ledger.consistency_proof(first, second)
        assert verify_consistency(first, second, ledger.root(first), ledger.root(second), proof.path)
    assert ledger.consistency_proof(9).verify(ledger.root(9), ledger.root())
    with pytest.raises(NotFoundError):
        ledger.inclusion_proof(37)
    with pytest.raises(NotFoundError):
        ledger.inclusion_proof(3, 38)
    with pytest.raises(NotFoundError):
        ledger.consistency_proof(3, 38)
    with pytest.raises(NotFoundError):
        ledger.consistency_proof(38)
    with pytest.raises(NotFoundError):
        ledger.root(38)


def test_a_failed_transaction_writes_nothing_and_leaves_memory_alone(ledger, engine):
    ledger.append_many([grant(i) for i in range(4)])
    before = ledger.state()
    # A row (written behind the ledger's back, far away) holding the hash the third record
    # of the next batch will get: the batch fails on the unique hash in its middle.
    clash = grant(12).with_seq(4 + 2)
    execute(
        engine,
        "INSERT INTO records (seq, kind, timestamp, hash, body) VALUES (1000, 'x', 0, :h, '{}')",
        h=clash.hash_hex,
    )
    with pytest.raises(LedgerError, match="nothing was written"):
        ledger.append_many([grant(10), grant(11), grant(12), grant(13)])
    assert ledger.state() == before
    assert db_seqs(engine) == [0, 1, 2, 3, 1000]
    with read_scope(engine) as conn:
        assert conn.execute(text("SELECT size FROM log_state")).scalar_one() == 4

    # An exception inside the caller's part of the transaction rolls everything back too.
    seen = []

    def fail(session, stamped):
        seen.extend(r.seq for r in stamped)
        assert session.execute(text("SELECT count(*) FROM records")).scalar_one() == 4 + len(stamped)
        raise RuntimeError("balance update failed")

    execute(engine, "DELETE FROM records WHERE seq = 1000")
    with pytest.raises(RuntimeError, match="balance update failed"):
        ledger.append_many([grant(20), grant(21)], in_transaction=fail)
    assert seen == [4, 5]
    assert ledger.state() == before and db_seqs(engine) == [0, 1, 2, 3]

    # The ledger carries on with the next seqs.
    done = ledger.append_many([grant(10), grant(11), grant(12)])
    assert [r.seq for r in done] == [4, 5, 6]
    assert RecordLedger(engine).state() == ledger.state()


def test_in_transaction_sees_the_stamped_records(ledger, engine):
    calls = []
    out = ledger.append(grant(0), in_transaction=lambda session, stamped: calls.append(stamped))
    assert calls == [[out]] and out.seq == 0


def test_sync_loads_what_other_ledgers_appended(ledger, engine, db_url):
    other = RecordLedger(make_engine(db_url))
    records = other.append_many([grant(i) for i in range(5)])
    assert ledger.size() == 0  # memory is as of its last look
    assert ledger.sync() == 5 and ledger.root() == other.root()
    more = other.append_many([grant(i) for i in range(5, 9)])
    assert ledger.get(7) == more[2]  # reads beyond memory sync first
    assert ledger.inclusion_proof(8).verify(other.root())
    assert ledger.append(grant(9)).seq == 9  # an append catches up as well
    assert ledger.root() == expected_root([*records, *more, grant(9).with_seq(9)])


def test_appends_of_two_processes_in_turn_each_catch_up_with_the_other(engine, db_url):
    """On PostgreSQL an append first assumes the log is as its process last saw it (one round
    trip); when another process has appended since, that attempt fails whole and the append runs
    again from the locked state. Its writes-only callback's rows land once, with the final seqs."""
    first, second = RecordLedger(engine), RecordLedger(make_engine(db_url))
    texts = InferenceTextRow.__table__  # any table: the callback writes a row per record

    def copy(session, stamped):
        send(session.connection(), insert(texts), [
            {"seq": r.seq, "prompt": r.kind, "output": r.hash_hex, "created_at": 0} for r in stamped])

    appended = []
    for i in range(8):
        ledger = (first, second)[i % 2]
        appended += ledger.append_many([grant(2 * i), grant(2 * i + 1)], in_transaction=copy, writes_only=True)
    assert [r.seq for r in appended] == list(range(16))
    assert first.sync() == second.sync() == 16 and first.root() == second.root() == expected_root(appended)
    assert db_seqs(engine) == list(range(16))
    with read_scope(engine) as conn:
        assert conn.execute(select(texts.c.seq, texts.c.output).order_by(texts.c.seq)).all() == [
            (r.seq, r.hash_hex) for r in appended]
    assert RecordLedger(engine, verify=True).root() == first.root()


# ------------------------------------------------------------------------------ concurrency


def test_threads_appending_at_once_get_gap_free_unique_seqs(engine):
    shared = RecordLedger(engine)
    ledgers = [shared, shared, RecordLedger(engine), RecordLedger(engine)]
    per_thread = 200
    results: list[list[int]] = [[] for _ in ledgers]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(ledgers))

    def work(k: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                record = grant(k * 1000 + i, memo=f"thread {k}")
                results[k].append(ledgers[k].append(record).seq)
                time.sleep(0.001)  # let the others in (see _append_in_process)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(ledgers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    total = per_thread * len(ledgers)
    assert sorted(s for r in results for s in r) == list(range(total))
    assert all(r == sorted(r) for r in results)
    assert all(r != list(range(r[0], r[0] + per_thread)) for r in results), "no interleaving"
    assert db_seqs(engine) == list(range(total))
    roots = {led.sync() and led.root() for led in ledgers}
    fresh = RecordLedger(engine, verify=True)
    assert roots == {fresh.root()}
    assert fresh.root() == expected_root(fresh.range(0))


def _append_in_process(url: str, tag: int, count: int, barrier, queue) -> None:
    try:
        ledger = RecordLedger(make_engine(url))
        barrier.wait(timeout=60)
        seqs = []
        # Half one by one, half in batches of 10, interleaved with the other process.
        # (The pause lets the other in: SQLite's busy handler polls, so a process that
        # appends back to back would otherwise keep the lock to itself.)
        for i in range(count):
            if i % 20 < 10:
                seqs.append(ledger.append(grant(tag * 1000 + i, memo=f"process {tag}")).seq)
            elif i % 20 == 10:
                batch = [grant(tag * 1000 + j, memo=f"process {tag}") for j in range(i, i + 10)]
                seqs.extend(r.seq for r in ledger.append_many(batch))
            time.sleep(0.002)
        queue.put((tag, seqs, ledger.root(len(seqs) and max(seqs) + 1).hex()))
    except BaseException as exc:  # noqa: BLE001 (sent to the parent)
        queue.put((tag, repr(exc), None))


def test_processes_appending_at_once_get_gap_free_unique_seqs(engine, db_url):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    queue = ctx.Queue()
    count = 200
    procs = [ctx.Process(target=_append_in_process, args=(db_url, tag, count, barrier, queue)) for tag in (1, 2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    for tag, seqs, _ in results:
        assert isinstance(seqs, list), f"process {tag} failed: {seqs}"
        assert len(seqs) == count and seqs == sorted(seqs)
    assert sorted(s for _, seqs, _ in results for s in seqs) == list(range(2 * count))
    assert all(seqs != list(range(seqs[0], seqs[0] + count)) for _, seqs, _ in results), "no interleaving"
    assert db_seqs(engine) == list(range(2 * count))
    ledger = RecordLedger(engine, verify=True)
    assert ledger.size() == 2 * count
    # Each process's root at its last seq is a prefix root of the final log.
    for _, seqs, root in results:
        assert ledger.root(max(seqs) + 1).hex() == root
    records = ledger.range(0)
    assert ledger.root() == expected_root(records)
    assert {r.memo for r in records} == {"process 1", "process 2"}


# ------------------------------------------------------------------------------ errors


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def test_malformed_or_unreachable_databases_are_clear_ledger_errors(tmp_path):
    for url, expect in [
        ("not a url", "malformed database URL"),
        ("sqlite:///" + str(tmp_path / "no" / "such" / "dir" / "ledger.db"), "unable to open database file"),
        (f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{_closed_port()}/ledger", "cannot open the ledger database"),
        ("mysql://u@localhost/db", "unsupported database"),
        ("postgresql+nosuchdriver://u@localhost/db", "driver not available"),
    ]:
        with pytest.raises(LedgerError, match="cannot open the ledger database") as info:
            make_engine(url)
        message = str(info.value)
        assert expect in message
        assert "s3cret" not in message and "\n" not in message


def test_a_database_without_the_tables_is_a_clear_error(db_url):
    with pytest.raises(LedgerError, match="create the tables first"):
        RecordLedger(make_engine(db_url))


def test_session_scope_commits_or_rolls_back(engine):
    with session_scope(engine) as session:
        session.add(LogStateRow(size=0, root="0x" + "00" * 32, frontier="[]"))
    with pytest.raises(RuntimeError):
        with session_scope(engine) as session:
            session.add(RecordRow(seq=0, kind="k", timestamp=1, hash="0x" + "11" * 32, body="{}"))
            session.flush()
            raise RuntimeError("boom")
    with pytest.raises(LedgerError, match="ledger database error"):
        with session_scope(engine) as session:
            session.add(LogStateRow(size=1, root="0x" + "00" * 32, frontier="[]"))  # duplicate id
    with read_scope(engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM records")).scalar_one() == 0
        assert conn.execute(text("SELECT size FROM log_state")).all() == [(0,)]


def _record_row(seq: int) -> dict:
    return {"seq": seq, "kind": "k", "timestamp": 1, "hash": "0x%064x" % seq, "body": "{}"}


def test_a_pipelined_session_reads_its_own_writes_and_commits_all_or_nothing(engine):
    """``session_scope(pipelined=True)`` (one psycopg pipeline on PostgreSQL, a plain transaction on
    SQLite): a read through ``fetch_rows`` sees the writes queued before it, the writes after it go
    out with the COMMIT, and a refusal or an exception leaves nothing written."""
    rows = RecordRow.__table__
    count = select(func.count()).select_from(rows)

    def stored() -> list[int]:
        with read_scope(engine) as conn:
            return [seq for (seq,) in conn.execute(select(rows.c.seq).order_by(rows.c.seq))]

    with session_scope(engine, pipelined=True) as session:
        conn = session.connection()
        conn.execute(insert(rows), [_record_row(0), _record_row(1)])
        assert [tuple(row) for row in fetch_rows(conn, count)] == [(2,)]
        assert [tuple(row) for row in fetch_rows(conn, select(rows.c.seq, rows.c.hash).where(
            rows.c.seq.in_([1, 7]), rows.c.kind == "k"))] == [(1, "0x%064x" % 1)]  # an IN list, expanded
        conn.execute(insert(rows), [_record_row(2)])
    assert stored() == [0, 1, 2]

    # A refusal (seq 1 is taken) is offered to `refused`, after the rollback; its answer is raised.
    offered = []
    with pytest.raises(InputError, match="seq 1 is taken"):
        with session_scope(engine, pipelined=True,
                           refused=lambda exc: offered.append(exc) or InputError("seq 1 is taken")) as session:
            conn = session.connection()
            conn.execute(insert(rows), [_record_row(10)])
            conn.execute(insert(rows), [_record_row(1)])
            conn.execute(insert(rows), [_record_row(11)])
    assert [type(exc) for exc in offered] == [IntegrityError] and stored() == [0, 1, 2]
    with pytest.raises(LedgerError, match="ledger database error"):  # `refused` has nothing to say: a LedgerError
        with session_scope(engine, pipelined=True, refused=lambda exc: None) as session:
            session.connection().execute(insert(rows), [_record_row(12), _record_row(2)])
    with pytest.raises(RuntimeError, match="boom"):
        with session_scope(engine, pipelined=True) as session:
            session.connection().execute(insert(rows), [_record_row(13)])
            raise RuntimeError("boom")
    assert stored() == [0, 1, 2]

    # The pooled connection is a transactional one again afterwards (not left in autocommit).
    with pytest.raises(RuntimeError, match="after a flush"):
        with session_scope(engine) as session:
            session.add(RecordRow(**_record_row(14)))
            session.flush()
            raise RuntimeError("after a flush")
    assert stored() == [0, 1, 2]


def test_a_pooled_postgres_connection_lost_while_idle_is_replaced(pg_server, monkeypatch):
    """Pinged when handed out after more than PING_AFTER_IDLE_S idle: a connection the server dropped
    is replaced, not used. One lost in the moment since its last use fails its statement once, with
    a clear LedgerError and nothing written, and the next call gets a fresh connection."""
    from pg import create_database

    import loraledger.db as db

    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.3)
    url = create_database(pg_server, "idle_ping")
    engine = make_engine(url)
    create_tables(engine)
    ledger = RecordLedger(engine)
    ledger.append(grant(0))
    admin = make_engine(url)

    def drop_the_pool_connections() -> None:
        with admin.connect() as conn:
            dropped = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND datname = current_database() AND backend_type = 'client backend'")).scalar_one()
        assert dropped == 1

    drop_the_pool_connections()
    time.sleep(0.5)
    assert ledger.append(grant(1)).seq == 1  # pinged, found dead, replaced

    drop_the_pool_connections()  # and used at once, within the window
    with pytest.raises(LedgerError, match=r"cannot append 1 record\(s\) \(nothing was written\)"):
        ledger.append(grant(2))
    assert ledger.append(grant(2)).seq == 2 and RecordLedger(engine).size() == 3
    admin.dispose()
    engine.dispose()


def test_sqlite_pragmas(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 32_768


def test_sqlite_write_transactions_take_the_lock_at_begin_and_reads_do_not(tmp_path):
    path = tmp_path / "l.db"
    eng = make_engine(f"sqlite:///{path}")
    create_tables(eng)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with session_scope(eng) as session:
            session.connection()  # BEGIN (IMMEDIATE), before any statement
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        with read_scope(eng) as conn:
            conn.execute(text("SELECT count(*) FROM records")).scalar_one()
            other.execute("BEGIN IMMEDIATE")  # a reader does not hold writers up
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_in_memory_sqlite_works_for_quick_use():
    eng = make_engine("sqlite://")
    create_tables(eng)
    ledger = RecordLedger(eng)
    assert [r.seq for r in ledger.append_many([grant(0), grant(1)])] == [0, 1]
    assert RecordLedger(eng).root() == ledger.root()


# ------------------------------------------------------------------------------ pure helpers


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 70), st.integers(0, 70))
def test_fold_leaves_matches_the_merkle_log(first, more):
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(first + more)]
    log = MerkleLog.from_leaf_hashes(leaves[:first])
    frontier = log.frontier()
    folded = fold_leaves(frontier, leaves[first:])
    assert log.frontier() == frontier  # pure
    full = MerkleLog.from_leaf_hashes(leaves)
    assert folded == full.frontier()
    assert frontier_root(folded) == full.root()


def test_stamping_a_record_equals_validating_it_with_its_seq():
    """The ledger stamps seqs without re-validating (``_stamp``): for every kind of record the result
    is what ``with_seq`` gives, fields set, dumps, canonical bytes and copies included."""
    import pydantic

    from loraledger.records.kinds import (
        ContributionRecord,
        FeeRecord,
        InferenceRecord,
        PriceRecord,
        RewardGrantRecord,
        RowDecisionRecord,
        canonical_json,
    )
    from loraledger.records.ledger import _stamp

    a, b = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    records = [
        FeeRecord(timestamp=8, payer=b, fee=1000, weights={a: 2, b: 1}, developer=b, operator=a, ref="x"),
        RewardGrantRecord(timestamp=1, account=a, amount=5, source="sha256:one", memo=None),
        RowDecisionRecord(timestamp=2, datanet_id=1, row_hash="0x" + "ab" * 32, contributor=a, decision="accepted"),
        PriceRecord(timestamp=9, model="模型", input_per_1k=1, output_per_1k=2, set_by=a),
        InferenceRecord(timestamp=7, request_id="ab" * 16, model="médical-qa", adapter_hash=None,
                        base_model_hash="0x" + "11" * 32, prompt_hash="0x" + "22" * 32, output_hash="0x" + "33" * 32,
                        prompt_tokens=3, completion_tokens=4, finish_reason="stop",
                        sampling={"temperature": 0.7, "top_p": 1e-21, "max_tokens": 8, "seed": None}, payer=b,
                        input_per_1k=10, output_per_1k=20, fee=11, queue_ms=0, total_ms=5, backend="builtin", api="chat"),
        ContributionRecord(timestamp=3, datanet_id=1, contributor=a, content_hash="0x" + "44" * 32, license="MIT",
                           nonce=4, deadline=99, signature="0x" + "55" * 65, row_hashes=("0x" + "66" * 32,)),
    ]
    for record in records:
        stamped, validated = _stamp(record, 7), record.with_seq(7)
        assert stamped == validated and stamped.seq == 7 and record.seq is None
        assert stamped.model_fields_set == validated.model_fields_set
        assert stamped.model_dump() == validated.model_dump()
        assert canonical_json(stamped) == canonical_json(validated)
        assert stamped.model_copy(update={"seq": 8}) == validated.with_seq(8)
        with pytest.raises(pydantic.ValidationError, match="frozen"):
            stamped.seq = 9  # still frozen
