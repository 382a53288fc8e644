"""Epoch files: build them and check them (pure: no I/O, no chain).

An epoch file is everything needed to recompute what the node posted for an epoch:

``{"format", "epoch", "chainId", "contracts", "records", "log", "rewards", "feeSplit", "previous"}``

* ``records`` — the epoch's records (canonical JSON objects), in sequence order;
* ``log`` — ``size`` and ``root`` of the RFC 9162 record log after this epoch, and a
  consistency proof from the previous epoch's size;
* ``rewards`` — the OZ StandardMerkleTree dump of cumulative balances, its ``root``, the
  epoch's ``total`` (the OPEN funded on posting, = the sum of cumulative increases) and the
  ``cumulativeTotal``;
* ``previous`` — the previous epoch number and its data hash, chaining the files.

The data hash posted on chain is keccak256 of the file's RFC 8785 canonical JSON, so a
file that differs by one byte of meaning is detected. From the files alone (no database)
``verify_epoch_files`` recomputes every posted value.

**Chunked epochs.** An epoch too large to publish as one file (the store decides: 100 MB of
records by default) is written as a *manifest* of format ``loraledger-epoch-chunked-v1``: the
same fields, with ``chunks`` in place of ``records``, one entry per chunk in seq order:
``{"hash", "firstSeq", "records", "bytes"}``. A chunk is a content-addressed file whose bytes
are the RFC 8785 JSON ``{"epoch", "firstSeq", "format": "loraledger-epoch-chunk-v1", "index",
"records"}`` and whose name is ``hash`` = keccak256 of those bytes. The manifest lists every
chunk's hash, and the data hash is over the manifest, so it covers every record: a reader
checks each chunk's bytes against its hash and needs nothing else. :func:`epoch_records` reads
the records of either form.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..crypto.canonical import canonicalize
from ..crypto.merkle import StandardMerkleTree
from ..crypto.merkle.hashing import keccak256
from ..crypto.translog import MerkleLog, verify_consistency
from ..errors import InputError, LedgerError, NotFoundError
from ..records.kinds import Record, log_leaf, record_from_dict, record_hash
from ..rewards.split import FeeSplit, add_increments, balances_from_tree, increments_from_records, reward_tree

EPOCH_FORMAT = "loraledger-epoch-v1"
#: A manifest: an epoch file whose records are in content-addressed chunks (module docstring).
CHUNKED_FORMAT = "loraledger-epoch-chunked-v1"
#: One chunk of a chunked epoch's records.
CHUNK_FORMAT = "loraledger-epoch-chunk-v1"
ZERO_HASH = "0x" + "00" * 32
CHUNK_HASH = re.compile(r"0x[0-9a-f]{64}")

#: Returns the bytes of the chunk whose hash is given (``NotFoundError`` when there is none).
ChunkReader = Callable[[str], bytes]


def data_hash(epoch_file: Mapping[str, Any]) -> str:
    """keccak256 of the epoch file's RFC 8785 canonical JSON (the ``dataHash`` posted on chain)."""
    return "0x" + keccak256(canonicalize(epoch_file)).hex()


@dataclass(frozen=True)
class EpochChunk:
    """One content-addressed chunk of a chunked epoch: its bytes (RFC 8785 JSON, module docstring)
    and the manifest entry that names it."""

    index: int
    first_seq: int
    records: int
    data: bytes

    @functools.cached_property
    def hash(self) -> str:
        return "0x" + keccak256(self.data).hex()

    def entry(self) -> dict[str, Any]:
        return {"hash": self.hash, "firstSeq": self.first_seq, "records": self.records, "bytes": len(self.data)}


def chunk_bytes(epoch: int, index: int, first_seq: int, bodies: Sequence[bytes]) -> bytes:
    """The RFC 8785 bytes of a chunk holding ``bodies`` (the records' canonical JSON), keys in order."""
    return (b'{"epoch":%d,"firstSeq":%d,"format":"%s","index":%d,"records":['
            % (epoch, first_seq, CHUNK_FORMAT.encode(), index) + b",".join(bodies) + b"]}")


def _chunk_records(epoch: Any, index: int, entry: Any, read_chunk: ChunkReader) -> list[Any]:
    where = f"chunks[{index}]"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("hash"), str) \
            or not CHUNK_HASH.fullmatch(entry["hash"]):
        raise InputError(f"{where}: not a chunk entry with a hash (0x + 64 lowercase hex digits)")
    where += f" ({entry['hash']})"
    try:
        data = read_chunk(entry["hash"])
    except (InputError, NotFoundError, LedgerError) as exc:  # missing or unreadable
        raise InputError(f"{where}: {exc}") from None
    actual = "0x" + keccak256(data).hex()
    if actual != entry["hash"]:
        raise InputError(f"{where}: the chunk's bytes hash to {actual}")
    try:
        chunk = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{where}: not JSON") from None
    if not isinstance(chunk, dict) or not isinstance(chunk.get("records"), list):
        raise InputError(f"{where}: not a chunk object with records")
    for name, expected in (("format", CHUNK_FORMAT), ("epoch", epoch), ("index", index),
                           ("firstSeq", entry.get("firstSeq"))):
        if chunk.get(name) != expected:
            raise InputError(f"{where}: {name} is {chunk.get(name)!r}, the manifest says {expected!r}")
    if len(chunk["records"]) != entry.get("records"):
        raise InputError(f"{where}: holds {len(chunk['records'])} records, the manifest says {entry.get('records')!r}")
    return chunk["records"]


def epoch_records(epoch_file: Mapping[str, Any], read_chunk: ChunkReader | None = None) -> Iterator[Any]:
    """The records of an epoch file as JSON values, in order: inline, or read chunk by chunk through
    ``read_chunk`` with each chunk checked against the hash its manifest lists (one chunk in memory
    at a time). ``InputError`` names the first chunk that is missing or does not match."""
    if epoch_file.get("format") != CHUNKED_FORMAT:
        records = epoch_file.get("records", [])
        yield from records if isinstance(records, list) else ()
        return
    chunks = epoch_file.get("chunks")
    if not isinstance(chunks, list):
        raise InputError("chunks: a chunked epoch file needs a list of chunks")
    if read_chunk is None:
        raise InputError("chunks: this epoch's records are in chunk files, and no chunk store was given")
    for index, entry in enumerate(chunks):
        yield from _chunk_records(epoch_file.get("epoch"), index, entry, read_chunk)


@dataclass(frozen=True)
class EpochLink:
    """What an epoch takes from the one before it: its number, data hash and cumulative total."""

    epoch: int
    data_hash: str
    cumulative_total: int

    @classmethod
    def of(cls, epoch_file: dict[str, Any]) -> EpochLink:
        return cls(epoch_file["epoch"], data_hash(epoch_file), int(epoch_file["rewards"]["cumulativeTotal"]))


def build_epoch_file(
    *,
    epoch: int,
    chain_id: int,
    ledger: str,
    distributor: str,
    records: Sequence[Record],
    log_size: int,
    log_root: bytes,
    consistency_proof: Sequence[bytes],
    previous: EpochLink | None,
    fee_split: FeeSplit,
    balances: Mapping[str, int],
) -> dict[str, Any]:
    """Seal ``records`` (the last ``len(records)`` entries of a log of ``log_size``) into epoch ``epoch``.

    ``balances`` are the cumulative balances after this epoch (see
    :func:`cumulative_after`); ``consistency_proof`` proves the log at the previous
    epoch's size is a prefix of this one; ``previous`` links to the previous epoch (None
    for epoch 1).
    """
    expected = 1 if previous is None else previous.epoch + 1
    if epoch != expected:
        raise InputError(f"epoch {epoch} cannot follow epoch {expected - 1}")
    if not records:
        raise InputError(f"epoch {epoch} has no records")
    previous_size = log_size - len(records)
    for offset, record in enumerate(records):
        if record.seq != previous_size + offset:
            raise InputError(f"record {record_hash(record).hex()} has seq {record.seq}, expected {previous_size + offset}")
    tree = reward_tree(balances)
    cumulative_total = sum(balances.values())
    previous_total = previous.cumulative_total if previous else 0
    if cumulative_total < previous_total:
        raise InputError(f"cumulative rewards cannot shrink ({previous_total} → {cumulative_total})")
    return {
        "format": EPOCH_FORMAT,
        "epoch": epoch,
        "chainId": chain_id,
        "contracts": {"ledger": ledger, "distributor": distributor},
        "records": [record.model_dump(mode="json") for record in records],
        "log": {
            "previousSize": previous_size,
            "size": log_size,
            "root": "0x" + log_root.hex(),
            "consistencyProof": ["0x" + h.hex() for h in consistency_proof],
        },
        "rewards": {
            "root": tree.root,
            "total": str(cumulative_total - previous_total),
            "cumulativeTotal": str(cumulative_total),
            "accounts": len(balances),
            "tree": tree.dump(),
        },
        "feeSplit": fee_split.to_json(),
        "previous": {"epoch": epoch - 1, "dataHash": previous.data_hash if previous else ZERO_HASH},
    }


#: How the node writes an epoch file (``fsutil.atomic_write_json(..., compact=True)``): key-sorted,
#: compact, ASCII, and a newline at the end. The data hash is over the RFC 8785 form instead.
_FILE_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


class NothingToPay(InputError):
    """No account has a balance after these records: there is no reward tree, so no epoch to post."""


class StreamedEpoch:
    """An epoch file built while its records stream by, in memory bounded by the accounts, not the
    records (pure: the caller reads the records and writes the bytes).

    :meth:`pieces` takes ``(kind, canonical body)`` of the epoch's records in seq order and yields
    ``(file bytes, canonical bytes)``: concatenated, the first are exactly the file
    :func:`build_epoch_file` + the compact writer produce, and the second are exactly the file's
    RFC 8785 form, whose keccak256 is the data hash (RFC 8785 orders the top-level keys as the
    file does, and ``records`` comes before ``rewards``, which is folded on the way: only ``fee``
    and ``reward_grant`` records are parsed). After the last piece, :attr:`file` holds the file's
    small fields (everything but ``records``) for the epoch's row."""

    def __init__(self, *, epoch: int, chain_id: int, ledger: str, distributor: str, log_size: int,
                 record_count: int, log_root: bytes, consistency_proof: Sequence[bytes], previous: EpochLink | None,
                 fee_split: FeeSplit, previous_balances: Mapping[str, int]) -> None:
        expected = 1 if previous is None else previous.epoch + 1
        if epoch != expected:
            raise InputError(f"epoch {epoch} cannot follow epoch {expected - 1}")
        if record_count <= 0:
            raise InputError(f"epoch {epoch} has no records")
        self.previous = previous
        self.fee_split = fee_split
        self.previous_balances = dict(previous_balances)
        self.first_seq = log_size - record_count
        self.record_count = record_count
        self.file: dict[str, Any] = {
            "format": EPOCH_FORMAT,
            "epoch": epoch,
            "chainId": chain_id,
            "contracts": {"ledger": ledger, "distributor": distributor},
            "log": {"previousSize": self.first_seq, "size": log_size, "root": "0x" + log_root.hex(),
                    "consistencyProof": ["0x" + h.hex() for h in consistency_proof]},
            "feeSplit": fee_split.to_json(),
            "previous": {"epoch": epoch - 1, "dataHash": previous.data_hash if previous else ZERO_HASH},
        }
        self.balances: dict[str, int] | None = None

    def _fold(self, kind: str, value: Any, count: int, earned: dict[str, int]) -> None:
        """Check the ``count``-th record's seq and add what it earns to ``earned``."""
        if kind in _PAYING_KINDS:
            for account, amount in increments_from_records([record_from_dict(value)], self.fee_split):
                if amount < 0:
                    raise InputError(f"negative reward {amount} for {account}")
                earned[account] = earned.get(account, 0) + amount
        if value.get("seq") != self.first_seq + count:
            raise InputError(f"record {count} of epoch {self.file['epoch']} has seq {value.get('seq')}, "
                             f"expected {self.first_seq + count}")

    def _finish(self, count: int, earned: dict[str, int]) -> None:
        """After the last record: the balances and the ``rewards`` field."""
        if count != self.record_count:
            raise InputError(f"epoch {self.file['epoch']} was given {count} records, expected {self.record_count}")
        self.balances = add_increments(self.previous_balances, earned.items())
        if not self.balances:
            raise NothingToPay(f"epoch {self.file['epoch']}: no account has earned anything yet")
        tree = reward_tree(self.balances)
        cumulative_total = sum(self.balances.values())
        previous_total = self.previous.cumulative_total if self.previous else 0
        if cumulative_total < previous_total:
            raise InputError(f"cumulative rewards cannot shrink ({previous_total} → {cumulative_total})")
        self.file["rewards"] = {"root": tree.root, "total": str(cumulative_total - previous_total),
                                "cumulativeTotal": str(cumulative_total), "accounts": len(self.balances),
                                "tree": tree.dump()}

    def pieces(self, bodies: Iterable[tuple[str, bytes]]) -> Iterator[tuple[bytes, bytes]]:
        head = sorted(self.file)  # the keys before "records" in both orders (all ASCII, all < "records")
        assert head[-1] < "records"
        yield (("{" + "".join(f'"{key}":{_FILE_JSON.encode(self.file[key])},' for key in head)
               + '"records":[').encode("ascii"),
               b"{" + b"".join(b'"' + key.encode() + b'":' + canonicalize(self.file[key]) + b"," for key in head)
               + b'"records":[')
        earned: dict[str, int] = {}
        count = 0
        for kind, body in bodies:
            comma = b"," if count else b""
            value = json.loads(body)
            self._fold(kind, value, count, earned)
            yield comma + _FILE_JSON.encode(value).encode("ascii"), comma + body
            count += 1
        self._finish(count, earned)
        yield (('],"rewards":' + _FILE_JSON.encode(self.file["rewards"]) + "}\n").encode("ascii"),
               b'],"rewards":' + canonicalize(self.file["rewards"]) + b"}")

    def chunks(self, bodies: Iterable[tuple[str, bytes]], max_bytes: int) -> Iterator[EpochChunk]:
        """The chunked form: takes what :meth:`pieces` takes and yields the chunks in order, each
        closed once it holds ``max_bytes`` of records (so at most that plus one record; one chunk in
        memory at a time). After the last chunk, :attr:`file` is the whole manifest: write it with
        :meth:`manifest_bytes`."""
        if max_bytes <= 0:
            raise InputError(f"chunk size must be positive, got {max_bytes}")
        epoch = self.file["epoch"]
        entries: list[dict[str, Any]] = []
        earned: dict[str, int] = {}
        count, first, size = 0, self.first_seq, 0
        held: list[bytes] = []
        for kind, body in bodies:
            self._fold(kind, json.loads(body), count, earned)
            held.append(body)
            size += len(body) + 1
            count += 1
            if size >= max_bytes:
                chunk = EpochChunk(len(entries), first, len(held), chunk_bytes(epoch, len(entries), first, held))
                entries.append(chunk.entry())
                yield chunk
                first, size, held = first + len(held), 0, []
        if held:
            chunk = EpochChunk(len(entries), first, len(held), chunk_bytes(epoch, len(entries), first, held))
            entries.append(chunk.entry())
            yield chunk
        self._finish(count, earned)
        self.file["format"] = CHUNKED_FORMAT
        self.file["chunks"] = entries

    def manifest_bytes(self) -> tuple[bytes, bytes]:
        """``(file bytes, RFC 8785 bytes)`` of a chunked epoch's manifest, after :meth:`chunks`."""
        if self.file.get("format") != CHUNKED_FORMAT or "rewards" not in self.file:
            raise InputError("the manifest is written after its chunks")
        return (_FILE_JSON.encode(self.file) + "\n").encode("ascii"), canonicalize(self.file)


_PAYING_KINDS = frozenset({"fee", "reward_grant"})


def cumulative_after(previous: Mapping[str, int], records: Sequence[Record], fee_split: FeeSplit) -> dict[str, int]:
    """Cumulative balances after adding what ``records`` earn under ``fee_split``."""
    return add_increments(previous, increments_from_records(records, fee_split))


@dataclass
class EpochCheck:
    """What one epoch file says, recomputed from the files alone, and what is wrong with it."""

    epoch: int
    log_size: int
    log_root: str
    rewards_root: str
    epoch_total: int
    record_count: int
    data_hash: str
    #: The file's ``feeSplit`` as written (to compare with the split on chain).
    fee_split: Any = None
    problems: list[str] = field(default_factory=list)


def verify_epoch_files(files: Iterable[Mapping[str, Any]], read_chunk: ChunkReader | None = None) -> list[EpochCheck]:
    """Recompute every epoch from its records, in order, and report each mismatch by field.

    Checks per epoch: numbering and the ``previous`` hash chain; record parsing and
    sequence numbers; log size and root; the consistency proof from the previous epoch;
    cumulative balances recomputed from the records equal the tree dump; the tree root;
    the epoch total; for a chunked epoch, each chunk against the hash its manifest lists
    (``read_chunk`` reads them). The returned roots and totals are the recomputed values, to be
    compared with the chain. Records are folded as they are read: memory holds one file (or one
    manifest and one chunk) and the balances, not an epoch's parsed records.
    """
    checks: list[EpochCheck] = []
    log = MerkleLog()
    balances: dict[str, int] = {}
    cumulative_before = 0
    previous_hash = ZERO_HASH
    for position, epoch_file in enumerate(files):
        number = epoch_file.get("epoch")
        problems: list[str] = []
        if epoch_file.get("format") not in (EPOCH_FORMAT, CHUNKED_FORMAT):
            problems.append(f"format: {epoch_file.get('format')!r} is neither {EPOCH_FORMAT} nor {CHUNKED_FORMAT}")
        if number != position + 1:
            problems.append(f"epoch: expected {position + 1}, file says {number}")
        if epoch_file.get("previous", {}).get("dataHash") != previous_hash:
            problems.append("previous.dataHash: does not match the previous epoch file")
        try:
            split: FeeSplit | None = FeeSplit.from_json(epoch_file.get("feeSplit"))
        except (InputError, TypeError, KeyError, AttributeError) as exc:
            problems.append(f"feeSplit: {exc}")
            split = None
        old_size, old_root = log.size, log.root()
        earned: dict[str, int] = {}
        count = 0
        records = epoch_records(epoch_file, read_chunk)
        while True:
            try:
                raw = next(records)
            except StopIteration:
                break
            except InputError as exc:  # a chunk missing or not matching its hash: its records are not there
                problems.append(str(exc))
                break
            index, count = count, count + 1
            try:
                record = record_from_dict(raw)
                leaf = log_leaf(record)
            except InputError as exc:
                problems.append(f"records[{index}]: {exc}")
                continue
            if record.seq != log.size:
                problems.append(f"records[{index}].seq: expected {log.size}, file says {record.seq}")
            log.append(leaf)
            if split is not None:
                for account, amount in increments_from_records([record], split):
                    earned[account] = earned.get(account, 0) + amount
        log_info = epoch_file.get("log", {})
        new_root = "0x" + log.root().hex()
        if log_info.get("size") != log.size:
            problems.append(f"log.size: recomputed {log.size}, file says {log_info.get('size')}")
        if log_info.get("root") != new_root:
            problems.append(f"log.root: recomputed {new_root}, file says {log_info.get('root')}")
        try:
            proof = [bytes.fromhex(h.removeprefix("0x")) for h in log_info.get("consistencyProof", [])]
            consistent = verify_consistency(old_size, log.size, old_root, log.root(), proof)
        except (ValueError, InputError):
            consistent = False
        if not consistent:
            problems.append(f"log.consistencyProof: does not prove size {old_size} → {log.size}")
        if split is not None:
            try:
                balances = add_increments(balances, earned.items())
            except InputError as exc:
                problems.append(f"rewards: {exc}")
        rewards = epoch_file.get("rewards", {})
        recomputed_root = reward_tree(balances).root if balances else ZERO_HASH
        if rewards.get("root") != recomputed_root:
            problems.append(f"rewards.root: recomputed {recomputed_root}, file says {rewards.get('root')}")
        try:
            dumped = balances_from_tree(StandardMerkleTree.load(rewards.get("tree")))
            if dumped != balances:
                wrong = sorted(a for a in set(dumped) | set(balances) if dumped.get(a) != balances.get(a))
                problems.append(f"rewards.tree: balances differ from the records for {', '.join(wrong[:5])}")
        except (InputError, TypeError, KeyError) as exc:
            problems.append(f"rewards.tree: unreadable dump ({exc})")
        cumulative_total = sum(balances.values())
        epoch_total = cumulative_total - cumulative_before
        if str(cumulative_total) != rewards.get("cumulativeTotal"):
            problems.append(f"rewards.cumulativeTotal: recomputed {cumulative_total}, file says {rewards.get('cumulativeTotal')}")
        if str(epoch_total) != rewards.get("total"):
            problems.append(f"rewards.total: recomputed {epoch_total} (= {cumulative_total} − {cumulative_before}), file says {rewards.get('total')}")
        previous_hash = data_hash(epoch_file)
        checks.append(
            EpochCheck(
                epoch=position + 1,
                log_size=log.size,
                log_root=new_root,
                rewards_root=recomputed_root,
                epoch_total=epoch_total,
                record_count=count,
                data_hash=previous_hash,
                fee_split=epoch_file.get("feeSplit"),
                problems=problems,
            )
        )
        cumulative_before = cumulative_total
    return checks
