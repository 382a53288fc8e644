"""Datanets on the node: create, contribute (signed, validated, deduplicated), review,
snapshot (posted to DatanetRegistry), prove and export.

Every step appends its record to the ledger and updates the datanet tables *in the same
transaction* (``RecordLedger.append_many(..., in_transaction=...)``), so the public trail
and the working state never disagree. A contribution batch is all or nothing: one bad or
duplicate row refuses the whole batch, with a per-row report, and writes nothing.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy import ARRAY, Engine, Executable, Text, bindparam, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from ..chain.contracts import DatanetRegistryContract
from ..crypto.merkle import StandardMerkleTree
from ..db import read_session, send
from ..errors import InputError, LedgerError, NotFoundError
from ..fsutil import atomic_write_bytes, atomic_write_json
from ..records.fields import parse_address
from ..records.kinds import ContributionRecord, DatanetCreatedRecord, Record, RowsDecisionRecord, SnapshotRecord
from ..records.ledger import RecordLedger
from .content import ROW_LEAF_ENCODING, SCHEMAS, Row, content_hash, parse_rows, row_hash_and_text, row_text
from .contribution import Contribution, ContributionDomain, check_license, parse_license, verify_contribution
from .dedup import Deduplicator, Sketches
from .tables import LIVE, LIVE_ROW_INDEX, DatanetEntryRow, DatanetRow, RowStatus, SnapshotRow, UsedNonceRow

MANIFEST_FORMAT = "loraledger-datanet-snapshot-v1"


def _hex(value: bytes) -> str:
    return "0x" + value.hex()



_ENTRIES, _NONCES = DatanetEntryRow.__table__, UsedNonceRow.__table__  # type: ignore[attr-defined]
# A contribution's statements, built once (each runs per batch; a statement built per call is a
# cache key computed per call).
_LIVE_ROW = select(_ENTRIES.c.row_hash).where(
    _ENTRIES.c.datanet_id == bindparam("datanet"), LIVE,
    _ENTRIES.c.row_hash.in_(bindparam("hashes", expanding=True))).limit(1)
_ROW_HASH = re.compile(r"0x[0-9a-f]{64}")
_INSERT_NONCE = insert(_NONCES)
_INSERT_ENTRIES = insert(_ENTRIES).inline()  # no RETURNING of the new ids: nothing reads them (and a pipeline cannot)


def _insert_entries_unnest() -> Executable:
    """A batch's rows in one statement on PostgreSQL: the two columns that differ per row as two
    arrays (``unnest ... WITH ORDINALITY``, ids in the batch's order), the rest once. An
    executemany sends (and psycopg's pipeline handles) one statement per row."""
    each = func.unnest(bindparam("row_hashes", type_=ARRAY(Text)), bindparam("contents", type_=ARRAY(Text))) \
        .table_valued("row_hash", "content", with_ordinality="n").render_derived()
    same = {name: bindparam(name, type_=_ENTRIES.c[name].type) for name in
            ("datanet_id", "contributor", "status", "contribution_seq", "created_at", "decided_at", "reason")}
    columns = ["datanet_id", "row_hash", "contributor", "content", "status", "contribution_seq", "created_at",
               "decided_at", "reason"]
    source = select(*[each.c[name] if name in ("row_hash", "content") else same[name] for name in columns])
    return insert(_ENTRIES).from_select(columns, source.order_by(each.c.n))


_INSERT_ENTRIES_UNNEST = _insert_entries_unnest()


def _taken_row(engine: Engine, exc: IntegrityError, datanet_id: int, hashes: Sequence[str]) -> str:
    """The row of a refused insert that is live already: PostgreSQL names it in the error; on
    SQLite, which does not, the database is asked which of the batch's rows is live (the batch that
    took it has committed: SQLite writers take turns)."""
    named = _ROW_HASH.search(str(exc.orig))
    if named is not None:
        return named.group(0)
    with read_session(engine) as session:
        taken = session.connection().execute(_LIVE_ROW, {"datanet": datanet_id, "hashes": list(hashes)}).first()
    return taken[0] if taken is not None else "(unknown)"


@dataclass(frozen=True)
class ContributionResult:
    """An accepted batch: where its record sits in the log and what became of its rows."""

    seq: int
    row_hashes: list[str]
    status: str  # "accepted" (auto policy) or "pending" (owner review)


class DatanetService:
    """Datanets of one node, bound to one DatanetRegistry.

    Thread-safe: the API calls it from many threads. A contribution is parsed, its signature
    recovered and its rows sketched outside any lock; the duplicate screen, the append and the
    index update run under the datanet's lock, so of two batches arriving together the second is
    screened against the first (two near-duplicates cannot both get in), while a third batch is
    parsed and sketched meanwhile. Reviews of a datanet take the same lock. Across processes on
    one database the live-row index refuses exact duplicates; near-duplicates are screened
    per process.
    """

    def __init__(
        self,
        engine: Any,
        records: RecordLedger,
        registry: DatanetRegistryContract,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.engine = engine
        self.records = records
        self.registry = registry
        self.domain = ContributionDomain(registry.client.chain_id, registry.address)
        self.clock = clock
        self._dedup: dict[int, Deduplicator] = {}
        self._rules_cache: dict[int, DatanetRow] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, datanet_id: int) -> threading.Lock:
        """The lock of one datanet's duplicate index and writes (class docstring)."""
        with self._locks_guard:
            return self._locks.setdefault(datanet_id, threading.Lock())

    # ---- datanets --------------------------------------------------------------------
    def create(
        self,
        operator: LocalAccount,
        *,
        owner: str,
        name: str,
        row_schema: str,
        licenses: Sequence[str],
        policy: str = "auto",
        near_duplicate_pct: int = 85,
        metadata_uri: str = "",
    ) -> DatanetRow:
        """Register a datanet on chain (for ``owner``) and record its rules."""
        owner = parse_address(owner)
        if not name.strip():
            raise InputError("a datanet needs a name")
        if row_schema not in SCHEMAS:
            raise InputError(f"unknown row schema {row_schema!r}; use one of {', '.join(SCHEMAS)}")
        if policy not in ("auto", "review"):
            raise InputError(f"policy must be 'auto' or 'review', not {policy!r}")
        if not 1 <= near_duplicate_pct <= 100:
            raise InputError(f"near-duplicate threshold must be 1..100 percent, not {near_duplicate_pct}")
        allowed = tuple(parse_license(item) for item in licenses)
        if not allowed:
            raise InputError("a datanet needs at least one allowed licence (SPDX id, e.g. CC-BY-4.0)")
        datanet_id = self.registry.create_datanet(operator, owner, metadata_uri)
        now = int(self.clock())
        record = DatanetCreatedRecord(
            timestamp=now, datanet_id=datanet_id, owner=owner, name=name.strip(), row_schema=row_schema,
            licenses=allowed, policy=policy, near_duplicate_pct=near_duplicate_pct,
        )
        row = DatanetRow(id=datanet_id, owner=owner, name=name.strip(), row_schema=row_schema,
                         licenses=json.dumps(list(allowed)), policy=policy, near_duplicate_pct=near_duplicate_pct,
                         metadata_uri=metadata_uri, created_at=now)
        self.records.append(record, in_transaction=lambda session, _: session.add(row))
        return self.get(datanet_id)

    def get(self, datanet_id: int) -> DatanetRow:
        with read_session(self.engine) as session:
            row = session.get(DatanetRow, datanet_id)
        if row is None:
            raise NotFoundError(f"no datanet {datanet_id} on this node")
        return row

    def _rules(self, datanet_id: int) -> DatanetRow:
        """The datanet's row for its rules (schema, licences, policy, duplicate threshold), which
        never change after creation: read once per process."""
        rules = self._rules_cache.get(datanet_id)
        if rules is None:
            rules = self._rules_cache[datanet_id] = self.get(datanet_id)
        return rules

    def all(self) -> list[DatanetRow]:
        with read_session(self.engine) as session:
            return list(session.exec(select(DatanetRow).order_by(DatanetRow.id)))

    def counts(self, datanet_id: int) -> dict[str, int]:
        with read_session(self.engine) as session:
            rows = session.exec(
                select(DatanetEntryRow.status, func.count()).where(DatanetEntryRow.datanet_id == datanet_id)
                .group_by(DatanetEntryRow.status)
            )
            return {status: count for status, count in rows}

    def contributors(self, datanet_id: int) -> list[dict[str, Any]]:
        """``[{"address", "accepted", "pending", "rejected"}]`` of the datanet's contributors, most
        accepted rows first (then by address)."""
        with read_session(self.engine) as session:
            rows = session.exec(
                select(DatanetEntryRow.contributor, DatanetEntryRow.status, func.count())
                .where(DatanetEntryRow.datanet_id == datanet_id)
                .group_by(DatanetEntryRow.contributor, DatanetEntryRow.status)
            )
            counts: dict[str, dict[str, Any]] = {}
            for contributor, status, count in rows:
                entry = counts.setdefault(contributor, {"address": contributor, RowStatus.ACCEPTED: 0,
                                                        RowStatus.PENDING: 0, RowStatus.REJECTED: 0})
                entry[status] = int(count)
        return sorted(counts.values(), key=lambda entry: (-entry[RowStatus.ACCEPTED], entry["address"]))

    def rows_of(self, contributor: str) -> dict[int, dict[str, int]]:
        """``{datanet id: {status: rows}}`` of one contributor's rows, over every datanet."""
        contributor = parse_address(contributor)
        with read_session(self.engine) as session:
            rows = session.exec(
                select(DatanetEntryRow.datanet_id, DatanetEntryRow.status, func.count())
                .where(DatanetEntryRow.contributor == contributor)
                .group_by(DatanetEntryRow.datanet_id, DatanetEntryRow.status)
            )
            out: dict[int, dict[str, int]] = {}
            for datanet_id, status, count in rows:
                out.setdefault(datanet_id, {})[status] = int(count)
        return dict(sorted(out.items()))

    def snapshots(self, datanet_id: int) -> list[SnapshotRow]:
        """The datanet's snapshots, newest version first."""
        with read_session(self.engine) as session:
            return list(session.exec(select(SnapshotRow).where(SnapshotRow.datanet_id == datanet_id)
                                     .order_by(SnapshotRow.version.desc())))  # type: ignore[attr-defined]

    # ---- contributions ---------------------------------------------------------------
    def _deduplicator(self, datanet: DatanetRow) -> Deduplicator:
        """The datanet's duplicate index, rebuilt from its pending and accepted rows."""
        dedup = self._dedup.get(datanet.id)
        if dedup is None:
            datanet_id = datanet.id
            # Candidates' texts come from the database (candidates are rare), so the index holds no text.
            dedup = Deduplicator(threshold=datanet.near_duplicate_pct / 100,
                                 texts_of=lambda ids: self._row_texts(datanet_id, ids))
            with read_session(self.engine) as session:
                live = session.exec(
                    select(DatanetEntryRow).where(DatanetEntryRow.datanet_id == datanet.id,
                                                  DatanetEntryRow.status != RowStatus.REJECTED)
                    .order_by(DatanetEntryRow.id)
                )
                chunk: list[DatanetEntryRow] = []
                for entry in live:  # sketched a chunk at a time (one numpy pass each)
                    chunk.append(entry)
                    if len(chunk) == 4096:
                        _index(dedup, chunk)
                        chunk = []
                _index(dedup, chunk)
            self._dedup[datanet.id] = dedup
        return dedup

    def _row_texts(self, datanet_id: int, row_hashes: Sequence[Any]) -> dict[Any, str]:
        """``row hash -> row text`` of the datanet's live rows among ``row_hashes``."""
        with read_session(self.engine, what="reading rows for the duplicate check") as session:
            found = session.exec(select(DatanetEntryRow.row_hash, DatanetEntryRow.content).where(
                DatanetEntryRow.datanet_id == datanet_id, LIVE,  # the live-row index's own words
                DatanetEntryRow.row_hash.in_(list(row_hashes))))  # type: ignore[attr-defined]
            return {row_hash: row_text(json.loads(content)) for row_hash, content in found}

    def next_nonce(self, contributor: str) -> int:
        """The smallest nonce above every nonce ``contributor`` has used here."""
        with read_session(self.engine) as session:
            used = session.exec(select(func.max(UsedNonceRow.nonce)).where(UsedNonceRow.contributor == contributor)).one()
        return 0 if used is None else used + 1

    def _nonce_used(self, contributor: str, nonce: int) -> bool:
        with read_session(self.engine) as session:
            return session.get(UsedNonceRow, (contributor, nonce)) is not None

    def contribute(self, datanet_id: int, rows_data: bytes | str, contribution: Contribution, signature: str,
                   *, now: int | None = None) -> ContributionResult:
        """Validate and record a signed batch; all or nothing."""
        datanet = self._rules(datanet_id)
        if contribution.datanet_id != datanet_id:
            raise InputError(f"the signature is for datanet {contribution.datanet_id}, not {datanet_id}")
        rows = parse_rows(rows_data, datanet.row_schema)
        signed_hash = _hex(content_hash(rows))
        if signed_hash != contribution.content_hash:
            raise InputError(f"the rows hash to {signed_hash}, but the signature covers {contribution.content_hash}: "
                             "sign the batch exactly as uploaded")
        license_id = check_license(contribution.license, json.loads(datanet.licenses))
        # The nonce is checked once, in the write transaction below (under the ledger's lock): a
        # read here as well would cost a transaction per batch and decide nothing more.
        verify_contribution(self.domain, contribution, signature, now=int(self.clock()) if now is None else now)

        keyed = [row_hash_and_text(row) for row in rows]  # each row normalised once for both
        hashes = [_hex(digest) for digest, _ in keyed]
        lock = self._lock(datanet_id)
        with lock:
            dedup = self._deduplicator(datanet)
        # Each row is sketched once, outside the lock: screened against the index and the batch's
        # earlier rows, then indexed.
        sketches = dedup.sketch_many([text for _, text in keyed])
        with lock:
            return self._screen_and_store(datanet, dedup, contribution, signature, rows, hashes, sketches,
                                          license_id)

    def _screen_and_store(self, datanet: DatanetRow, dedup: Deduplicator, contribution: Contribution,
                          signature: str, rows: list[Row], hashes: list[str], sketches: Sketches,
                          license_id: str) -> ContributionResult:
        """The part of :meth:`contribute` under the datanet's lock."""
        datanet_id = datanet.id
        verdicts = dedup.screen_sketches(hashes, sketches)
        problems: list[dict[str, Any]] = []
        for row, found in zip(rows, verdicts, strict=True):
            if found is not None:
                where = "another row of this batch" if found.in_batch else "an accepted or pending row"
                of = hashes[found.of] if found.in_batch else found.of
                problems.append({"row": row.line, "reason": f"{found.kind} duplicate of {where}",
                                 "duplicateOf": of, "similarity": round(found.similarity, 3)})
        if problems and self._nonce_used(contribution.contributor, contribution.nonce):
            # A replayed batch is all duplicates of itself: say what it is.
            raise InputError(f"nonce {contribution.nonce} of {contribution.contributor} was already used "
                             "(replayed contribution); sign again with a fresh nonce", field="nonce")
        if problems:
            first = problems[0]
            raise InputError(
                f"batch refused, nothing recorded: {len(problems)} of {len(rows)} rows are duplicates "
                f"(first: row {first['row']}, {first['reason']} {first['duplicateOf']})",
                rows=problems,
            )

        timestamp = int(self.clock())
        auto = datanet.policy == "auto"
        new: list[Record] = [ContributionRecord(
            timestamp=timestamp, datanet_id=datanet_id, contributor=contribution.contributor,
            content_hash=contribution.content_hash, license=license_id, nonce=contribution.nonce,
            deadline=contribution.deadline, signature=signature, row_hashes=tuple(hashes),
        )]
        if auto:  # one decision for the batch: its rows are accepted together
            new.append(RowsDecisionRecord(timestamp=timestamp, datanet_id=datanet_id, row_hashes=tuple(hashes),
                                          contributor=contribution.contributor, decision="accepted"))
        status = RowStatus.ACCEPTED if auto else RowStatus.PENDING

        def store(session: Session, stamped: list[Record]) -> None:
            # Under the ledger's write lock, writes only (Core statements on the transaction's
            # connection, no ORM objects): on PostgreSQL they go out with the ledger's own and the
            # COMMIT, one round trip. (contributor, nonce) is the table's key: a spent nonce fails
            # the insert (no read first). The rows in one statement (PostgreSQL) or one executemany,
            # not an ORM object per row; the live-row index refuses a row that a concurrent batch
            # took since the dedup check.
            conn = session.connection()
            send(conn, _INSERT_NONCE, {"contributor": contribution.contributor, "nonce": contribution.nonce,
                                       "datanet_id": datanet_id})
            same = {"datanet_id": datanet_id, "contributor": contribution.contributor, "status": status,
                    "contribution_seq": stamped[0].seq, "created_at": timestamp,
                    "decided_at": timestamp if auto else None, "reason": None}
            contents = [json.dumps(row.data, ensure_ascii=False) for row in rows]
            if conn.dialect.name == "postgresql":
                send(conn, _INSERT_ENTRIES_UNNEST, {**same, "row_hashes": hashes, "contents": contents})
            else:
                send(conn, _INSERT_ENTRIES, [{**same, "row_hash": digest, "content": content}
                                             for digest, content in zip(hashes, contents, strict=True)])

        def refused(exc: IntegrityError) -> InputError | None:
            said = str(exc.orig)
            if _NONCES.name in said:
                return InputError(f"nonce {contribution.nonce} of {contribution.contributor} was already used "
                                  "(replayed contribution); sign again with a fresh nonce", field="nonce")
            if LIVE_ROW_INDEX in said or f"{_ENTRIES.name}." in said:
                return InputError(f"batch refused, nothing recorded: row "
                                  f"{_taken_row(self.engine, exc, datanet_id, hashes)} was contributed meanwhile")
            return None

        stamped = self.records.append_many(new, in_transaction=store, writes_only=True, refused=refused)
        dedup.add_many(hashes, hashes, sketches)
        return ContributionResult(stamped[0].seq, hashes, status)

    # ---- review ----------------------------------------------------------------------
    def pending(self, datanet_id: int) -> list[DatanetEntryRow]:
        with read_session(self.engine) as session:
            return list(session.exec(
                select(DatanetEntryRow).where(DatanetEntryRow.datanet_id == datanet_id,
                                              DatanetEntryRow.status == RowStatus.PENDING).order_by(DatanetEntryRow.id)
            ))

    def review(self, datanet_id: int, row_hashes: Sequence[str], *, accept: bool, decided_by: str,
               reason: str | None = None) -> int:
        """Accept or reject pending rows (the owner's decision, recorded in the log)."""
        datanet = self.get(datanet_id)
        decided_by = parse_address(decided_by)
        wanted = list(dict.fromkeys(h.lower() for h in row_hashes))  # each row once, in the order given
        if not wanted:
            raise InputError("name at least one row hash to review")
        with self._lock(datanet_id):
            return self._decide(datanet, wanted, accept=accept, decided_by=decided_by, reason=reason)

    def _decide(self, datanet: DatanetRow, wanted: list[str], *, accept: bool, decided_by: str,
                reason: str | None) -> int:
        """The part of :meth:`review` under the datanet's lock."""
        datanet_id = datanet.id
        pending = {entry.row_hash: entry for entry in self.pending(datanet_id)}
        missing = [h for h in wanted if h not in pending]
        if missing:
            raise InputError(f"not pending in datanet {datanet_id}: {', '.join(missing[:5])}", rows=missing)
        timestamp = int(self.clock())
        decision = "accepted" if accept else "rejected"
        by_contributor: dict[str, list[str]] = {}  # one decision record per contributor, rows in review order
        for h in wanted:
            by_contributor.setdefault(pending[h].contributor, []).append(h)
        new = [RowsDecisionRecord(timestamp=timestamp, datanet_id=datanet_id, row_hashes=tuple(hashes),
                                  contributor=contributor, decision=decision, reason=reason, decided_by=decided_by)
               for contributor, hashes in by_contributor.items()]

        def store(session: Session, _: list[Record]) -> None:
            for h in wanted:
                entry = session.get(DatanetEntryRow, pending[h].id)
                if entry.status != RowStatus.PENDING:  # decided by another process since the read above
                    raise InputError(f"row {h} was {entry.status} meanwhile: nothing recorded")
                entry.status = RowStatus.ACCEPTED if accept else RowStatus.REJECTED
                entry.reason = reason
                entry.decided_at = timestamp
                session.add(entry)

        self.records.append_many(new, in_transaction=store)
        if not accept:
            dedup = self._deduplicator(datanet)
            for h in wanted:
                dedup.remove(h)
        return len(wanted)

    # ---- snapshots -------------------------------------------------------------------
    def snapshot(self, datanet_id: int, operator: LocalAccount) -> SnapshotRow:
        """Freeze the accepted rows as the next version and publish its root on chain."""
        datanet = self.get(datanet_id)
        with read_session(self.engine) as session:  # hashes and owners only: contents can be large
            accepted = list(session.exec(
                select(DatanetEntryRow.row_hash, DatanetEntryRow.contributor)
                .where(DatanetEntryRow.datanet_id == datanet_id, DatanetEntryRow.status == RowStatus.ACCEPTED)
                .order_by(DatanetEntryRow.id)
            ))
        if not accepted:
            raise InputError(f"datanet {datanet_id} has no accepted rows to snapshot")
        previous = self.snapshot_row(datanet_id, datanet.latest_version) if datanet.latest_version else None
        if previous is not None and previous.row_count == len(accepted):
            raise InputError(f"nothing changed since version {previous.version}: no new accepted rows")
        tree = StandardMerkleTree.of([[entry.row_hash, entry.contributor] for entry in accepted], list(ROW_LEAF_ENCODING))
        version = datanet.latest_version + 1
        contributors: dict[str, int] = {}
        for entry in accepted:
            contributors[entry.contributor] = contributors.get(entry.contributor, 0) + 1
        manifest = {
            "format": MANIFEST_FORMAT,
            "chainId": self.domain.chain_id,
            "registry": self.registry.address,
            "datanet": datanet_id,
            "name": datanet.name,
            "schema": datanet.row_schema,
            "licenses": json.loads(datanet.licenses),
            "version": version,
            "parentVersion": datanet.latest_version or None,
            "root": tree.root,
            "rowCount": len(accepted),
            "contributors": dict(sorted(contributors.items())),
        }
        # Idempotent on chain: a crash after publishing leaves the same root there.
        if self.registry.latest_version(datanet_id) < version:
            receipt = self.registry.publish_snapshot(operator, datanet_id, version, tree.root, len(accepted))
            tx_hash = _hex(bytes(receipt["transactionHash"]))
        elif self.registry.snapshot_root(datanet_id, version) == tree.root:
            tx_hash = None
        else:
            raise LedgerError(f"version {version} of datanet {datanet_id} is on chain with another root")
        timestamp = int(self.clock())
        record = SnapshotRecord(timestamp=timestamp, datanet_id=datanet_id, snapshot_version=version, root=tree.root,
                                row_count=len(accepted), parent_version=manifest["parentVersion"],
                                manifest_hash=_hex(keccak(rfc8785.dumps(manifest))))
        snap = SnapshotRow(datanet_id=datanet_id, version=version, root=tree.root, row_count=len(accepted),
                           parent_version=manifest["parentVersion"], manifest=json.dumps(manifest),
                           tree=json.dumps(tree.dump()), created_at=timestamp, tx_hash=tx_hash)

        def store(session: Session, _: list[Record]) -> None:
            session.add(snap)
            row = session.get(DatanetRow, datanet_id)
            row.latest_version = version
            session.add(row)

        self.records.append(record, in_transaction=store)
        return self.snapshot_row(datanet_id, version)

    def resolve_version(self, datanet_id: int, version: int | None) -> int:
        """``version`` if the datanet has that snapshot, else (``None``) its latest;
        ``NotFoundError`` when there is none."""
        if version is None:
            latest = self.get(datanet_id).latest_version
            if latest == 0:
                raise NotFoundError(f"datanet {datanet_id} has no snapshot yet: run "
                                    f"`loraledger datanet snapshot {datanet_id}`")
            return latest
        self.snapshot_row(datanet_id, version)
        return version

    def snapshot_row(self, datanet_id: int, version: int) -> SnapshotRow:
        with read_session(self.engine) as session:
            snap = session.get(SnapshotRow, (datanet_id, version))
        if snap is None:
            raise NotFoundError(f"datanet {datanet_id} has no snapshot version {version}")
        return snap

    def row_proof(self, datanet_id: int, version: int, row_hash_hex: str) -> dict[str, Any]:
        """A proof that a row is in snapshot ``version``, checked against the registry on chain."""
        snap = self.snapshot_row(datanet_id, version)
        tree = StandardMerkleTree.load(json.loads(snap.tree))
        wanted = row_hash_hex.lower()
        for index, (digest, contributor) in tree.entries():
            if _hex(digest) == wanted:
                proof = tree.get_proof(index)
                return {
                    "datanetId": datanet_id, "version": version, "root": snap.root, "rowHash": wanted,
                    "contributor": contributor, "proof": proof,
                    "verifiedOnChain": self.registry.verify_row(datanet_id, version, wanted, contributor, proof),
                }
        raise NotFoundError(f"row {wanted} is not in version {version} of datanet {datanet_id}")

    def snapshot_rows(self, datanet_id: int, version: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """The rows of version ``version`` as ``(row_hash, contributor, row)``, in contribution
        order; ``LedgerError`` if the stored rows do not match the snapshot's tree."""
        snap = self.snapshot_row(datanet_id, version)
        tree = StandardMerkleTree.load(json.loads(snap.tree))
        members = {_hex(digest) for _, (digest, _) in tree.entries()}
        found = 0
        with read_session(self.engine) as session:
            entries = session.exec(
                select(DatanetEntryRow).where(DatanetEntryRow.datanet_id == datanet_id).order_by(DatanetEntryRow.id)
            )
            for entry in entries:
                if entry.row_hash in members:
                    found += 1
                    yield entry.row_hash, entry.contributor, json.loads(entry.content)
        if found != snap.row_count:
            raise LedgerError(f"version {version} lists {snap.row_count} rows but {found} were found")

    def export(self, datanet_id: int, version: int, directory: Path,
               progress: Callable[[int], None] | None = None) -> tuple[Path, Path]:
        """Write version ``version`` as ``rows.jsonl`` (the rows as contributed, plus ``row_hash``
        and ``contributor``) and ``manifest.json``: ``datasets.load_dataset("json", ...)`` reads it."""
        snap = self.snapshot_row(datanet_id, version)
        lines: list[str] = []
        for digest, contributor, row in self.snapshot_rows(datanet_id, version):
            lines.append(json.dumps({**row, "row_hash": digest, "contributor": contributor}, ensure_ascii=False))
            if progress:
                progress(1)
        rows_path, manifest_path = directory / "rows.jsonl", directory / "manifest.json"
        atomic_write_bytes(rows_path, ("\n".join(lines) + "\n").encode("utf-8"))
        atomic_write_json(manifest_path, json.loads(snap.manifest))
        return rows_path, manifest_path


def _index(dedup: Deduplicator, entries: list[DatanetEntryRow]) -> None:
    """Add stored rows to a duplicate index (one sketch pass for them all)."""
    if entries:
        texts = [row_text(json.loads(entry.content)) for entry in entries]
        dedup.add_many([entry.row_hash for entry in entries], [entry.row_hash for entry in entries],
                       dedup.sketch_many(texts))
