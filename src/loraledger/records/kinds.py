"""Records: every event the node keeps, and their canonical encoding (pure core: no I/O).

A record is a frozen pydantic model. Its ``kind`` names its class (the discriminator);
``seq`` is its sequence number, assigned by the ledger when the record is appended (the
record's 0-based index in the ledger's Merkle log; ``None`` before); ``timestamp`` is unix
seconds, UTC; ``version`` is the record format version.

Canonical form and hash
-----------------------
``canonical_json(record)`` is the RFC 8785 (JSON Canonicalization Scheme) encoding of
the record's JSON-mode dict: keys sorted by UTF-16 code units, no whitespace, minimal
string escaping, UTF-8. Every field is present (an absent optional field is ``null``).
JSON cannot carry integers above 2**53 safely (I-JSON, RFC 7493), so wei amounts are
decimal strings (:data:`Wei`); every other integer is bounded to ``[0, 2**53)``.

``record_hash(record)`` is ``keccak256(canonical_json(record))``. It covers the whole
record as appended: ``kind``, ``version``, ``seq`` and ``timestamp`` as well as the
kind's own fields, so the same event appended twice has two hashes, and a record's hash
changes when the ledger assigns its ``seq``. ``log_leaf(record)`` (the data appended to
the RFC 9162 log in :mod:`loraledger.crypto.translog`) is that 32-byte hash, so a client
holding a record, or only its hash, can check its inclusion in a published root.

Addresses are normalised to their EIP-55 checksummed form before hashing, so two
spellings of one address give one hash. Changing a kind's fields changes its canonical
form: bump ``version`` (and accept the old one) rather than editing a kind in place.

Adding a kind
-------------
Subclass :class:`Record` with a ``Literal`` kind; the class registers itself::

    class SlashRecord(Record):
        kind: Literal["slash"] = "slash"
        account: Address
        amount: Wei

Input errors
------------
Constructing or parsing a record with bad fields raises
:class:`~loraledger.errors.InputError` (never a bare pydantic ``ValidationError``) with
one line naming the fields, e.g. ``invalid fee record: payer: address ... has an
invalid EIP-55 checksum``, and ``details["errors"]`` listing ``{"field", "message"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator

from ..crypto.canonical import canonicalize, strict_loads
from ..crypto.merkle.hashing import keccak256
from ..errors import InputError
from .fields import (
    Address,
    Bytes32,
    SafeUint,
    Text,
    Wei,
    Weights,
    short_repr,
    validation_error,
)

__all__ = [
    "AdapterRecord",
    "BenchmarkRecord",
    "ContributionRecord",
    "DatanetCreatedRecord",
    "DepositRecord",
    "FeeRecord",
    "InferenceRecord",
    "PriceRecord",
    "RECORD_KINDS",
    "Record",
    "RewardGrantRecord",
    "RowDecisionRecord",
    "RowsDecisionRecord",
    "SnapshotRecord",
    "canonical_json",
    "log_leaf",
    "parse_record",
    "record_from_dict",
    "record_hash",
]

# ------------------------------------------------------------------------------ records

#: kind -> record class; filled in as subclasses of :class:`Record` are defined.
RECORD_KINDS: dict[str, type[Record]] = {}


class _RecordMeta(type(BaseModel)):  # type: ignore[misc]
    """Turns a ``ValidationError`` from ``SomeRecord(...)`` into an ``InputError``.

    (A custom ``__init__`` would not do: pydantic then routes ``model_validate`` through
    it and wraps whatever it raises in a ``ValidationError`` again.)
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(cls.model_fields["kind"].default, str):
            raise TypeError(f"{cls.__name__} is abstract; construct a concrete kind such as FeeRecord")
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as exc:
            raise validation_error(exc, f"{cls._kind_name()} record") from exc


class Record(BaseModel, metaclass=_RecordMeta):
    """Base of every record. Subclass with ``kind: Literal["..."] = "..."``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Format versions this class accepts; the first is the one new records get.
    SUPPORTED_VERSIONS: ClassVar[tuple[int, ...]] = (1,)

    kind: str
    seq: SafeUint | None = None
    timestamp: SafeUint
    version: Annotated[int, Strict()] = 1

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        kind = cls.model_fields["kind"].default
        if not isinstance(kind, str) or not kind:
            return  # an intermediate base class without a kind of its own: not registered
        existing = RECORD_KINDS.get(kind)
        same = existing is not None and (existing.__module__, existing.__qualname__) == (cls.__module__, cls.__qualname__)
        if existing is not None and not same:  # (same: the module was reloaded)
            raise TypeError(f"record kind {kind!r} is already taken by {existing.__name__}")
        RECORD_KINDS[kind] = cls

    @classmethod
    def _kind_name(cls) -> str:
        default = cls.model_fields["kind"].default
        return default if isinstance(default, str) else "record"

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:  # type: ignore[override]
        """Validate ``obj`` as this kind; ``InputError`` on bad fields."""
        if cls is Record:
            return record_from_dict(obj)  # type: ignore[return-value]
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise validation_error(exc, f"{cls._kind_name()} record") from exc

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any) -> Self:  # type: ignore[override]
        """Parse JSON as this kind; ``InputError`` on bad JSON or fields."""
        if cls is Record:
            return parse_record(json_data)  # type: ignore[return-value]
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as exc:
            raise validation_error(exc, f"{cls._kind_name()} record") from exc

    @field_validator("version")
    @classmethod
    def _supported_version(cls, value: int) -> int:
        if value not in cls.SUPPORTED_VERSIONS:
            supported = ", ".join(str(v) for v in cls.SUPPORTED_VERSIONS)
            raise ValueError(f"unsupported format version {value} (supported: {supported})")
        return value

    # ----------------------------------------------------------------- helpers

    def to_dict(self) -> dict[str, Any]:
        """The JSON-mode dict (wei amounts as strings), as hashed."""
        return self.model_dump(mode="json")

    def canonical_json(self) -> bytes:
        """RFC 8785 bytes of :meth:`to_dict`."""
        return canonical_json(self)

    @property
    def hash(self) -> bytes:
        """``keccak256(canonical_json(self))``, 32 bytes."""
        return record_hash(self)

    @property
    def hash_hex(self) -> str:
        """:attr:`hash` as 0x + 64 lowercase hex digits."""
        return "0x" + record_hash(self).hex()

    def with_seq(self, seq: int) -> Self:
        """A copy with ``seq`` set (validated; the ledger calls this when appending)."""
        return type(self).model_validate({**self.model_dump(), "seq": seq})


def _positive_amount(value: int) -> int:
    if value <= 0:
        raise ValueError("amount must be positive")
    return value


class FeeRecord(Record):
    """A fee paid for an inference: who paid, how much, and how it is attributed."""

    kind: Literal["fee"] = "fee"
    #: Who paid the fee.
    payer: Address
    #: The fee, in wei.
    fee: Wei
    #: Attribution weights of the data contributors (may be empty).
    weights: Weights
    #: The adapter's developer, if any.
    developer: Address | None = None
    #: The node operator who served the inference.
    operator: Address
    #: A reference, e.g. the inference id.
    ref: Text | None = None


class RewardGrantRecord(Record):
    """A direct reward grant (``loraledger rewards post FILE``)."""

    kind: Literal["reward_grant"] = "reward_grant"
    #: Who receives the grant.
    account: Address
    #: The amount, in wei; positive.
    amount: Wei
    #: Where the grant comes from, e.g. the sha256 of the reward list file.
    source: Annotated[Text, Field(min_length=1)]
    #: Free text.
    memo: Text | None = None

    _positive = field_validator("amount")(classmethod(lambda cls, value: _positive_amount(value)))


class DepositRecord(Record):
    """A payer's deposit into the ``PaymentVault``, credited by the node once its ``Deposited`` event
    had the node's confirmations. One per event (``tx_hash``, ``log_index``); it earns nothing by
    itself: the payer's answers spend it (their ``inference`` records' fees)."""

    kind: Literal["deposit"] = "deposit"
    #: Whose balance is credited.
    payer: Address
    #: Who sent the tokens (the payer, or whoever deposited for them).
    sender: Address
    #: The amount, in wei; positive.
    amount: Wei
    chain_id: SafeUint
    vault: Address
    tx_hash: Bytes32
    log_index: SafeUint
    block_number: SafeUint
    block_hash: Bytes32

    _positive = field_validator("amount")(classmethod(lambda cls, value: _positive_amount(value)))


# ------------------------------------------------------------------------- datanets

RowSchema = Literal["text", "instruction", "chat"]


class DatanetCreatedRecord(Record):
    """A datanet was created: its owner and its rules."""

    kind: Literal["datanet_created"] = "datanet_created"
    #: The id in DatanetRegistry.
    datanet_id: SafeUint
    owner: Address
    name: Annotated[Text, Field(min_length=1)]
    #: The row shape: plain text, prompt/completion pairs, or OpenAI chat messages.
    row_schema: RowSchema
    #: SPDX licence ids contributions may carry.
    licenses: tuple[Text, ...]
    #: "auto": rows are accepted when they pass validation; "review": the owner decides.
    policy: Literal["auto", "review"]
    #: Near-duplicate threshold, Jaccard similarity in percent (100: exact duplicates only).
    near_duplicate_pct: Annotated[int, Strict(), Field(ge=1, le=100)]


class ContributionRecord(Record):
    """A signed batch of rows (EIP-712 ``Contribution``) that passed validation."""

    kind: Literal["contribution"] = "contribution"
    datanet_id: SafeUint
    contributor: Address
    #: keccak256 of the batch as signed.
    content_hash: Bytes32
    license: Text
    nonce: SafeUint
    deadline: SafeUint
    #: The contributor's EIP-712 signature (0x, 65 bytes).
    signature: Text
    #: Normalised row hashes of the batch, in order.
    row_hashes: tuple[Bytes32, ...]


class RowDecisionRecord(Record):
    """A row accepted or rejected (automatically, or by the datanet's owner)."""

    kind: Literal["row_decision"] = "row_decision"
    datanet_id: SafeUint
    row_hash: Bytes32
    contributor: Address
    decision: Literal["accepted", "rejected"]
    reason: Text | None = None
    #: The row it duplicates, for duplicate refusals.
    duplicate_of: Bytes32 | None = None
    #: Who decided: the owner, or None for the automatic policy.
    decided_by: Address | None = None


class RowsDecisionRecord(Record):
    """Rows of one contributor accepted or rejected together: a batch accepted by a datanet's
    automatic policy, or the rows an owner decided on in one review. One record for the batch, not
    one per row (which made a 500-row contribution 501 records); :class:`RowDecisionRecord`, one
    row's decision, is what earlier logs hold."""

    kind: Literal["rows_decision"] = "rows_decision"
    datanet_id: SafeUint
    #: The rows decided, in the order of their contribution (or of the review).
    row_hashes: Annotated[tuple[Bytes32, ...], Field(min_length=1)]
    contributor: Address
    decision: Literal["accepted", "rejected"]
    reason: Text | None = None
    #: Who decided: the owner, or None for the automatic policy.
    decided_by: Address | None = None


class SnapshotRecord(Record):
    """Version ``version`` of a datanet: its accepted rows frozen under a Merkle root."""

    kind: Literal["snapshot"] = "snapshot"
    datanet_id: SafeUint
    #: The snapshot's version (``version`` is the record format's).
    snapshot_version: SafeUint
    #: OZ StandardMerkleTree root over (bytes32 rowHash, address contributor).
    root: Bytes32
    row_count: SafeUint
    parent_version: SafeUint | None = None
    #: keccak256 of the manifest's RFC 8785 JSON.
    manifest_hash: Bytes32


# ------------------------------------------------------------------------- adapters

#: A finite metric value (JSON has no NaN or infinity).
Metric = Annotated[float, Field(allow_inf_nan=False)]


class AdapterRecord(Record):
    """A LoRA adapter entered the node: trained here from a datanet snapshot, or imported.

    ``provenance_hash`` is keccak256 of the RFC 8785 form of the adapter's
    ``provenance.json``; the hashes here are the ones registered in ``AdapterRegistry``.
    An ``external`` adapter has no datanet fields and is never credited to contributors.
    """

    kind: Literal["adapter"] = "adapter"
    #: The adapter's name; its on-chain id is ``keccak256(name)``.
    name: Annotated[Text, Field(min_length=1, max_length=64)]
    adapter_id: Bytes32
    adapter_hash: Bytes32
    base_model_hash: Bytes32
    provenance_hash: Bytes32
    #: Who developed it (the adapter developer's share of fees goes here).
    developer: Address
    source: Literal["trained", "external"]
    datanet_id: SafeUint | None = None
    snapshot_version: SafeUint | None = None
    snapshot_root: Bytes32 | None = None
    #: OZ StandardMerkleTree root over (bytes32 rowHash, address contributor) of the rows
    #: the adapter was trained on (the training split of the snapshot).
    training_rows_root: Bytes32 | None = None
    training_row_count: SafeUint | None = None


class BenchmarkRecord(Record):
    """One model's scores on one evaluation set (the base model when ``adapter_hash`` is null)."""

    kind: Literal["benchmark"] = "benchmark"
    #: keccak256 of the RFC 8785 JSON list of the eval rows' hashes, in order.
    eval_set_hash: Bytes32
    eval_examples: SafeUint
    base_model_hash: Bytes32
    adapter_hash: Bytes32 | None = None
    adapter_name: Text | None = None
    #: Mean loss per completion token.
    loss: Metric
    #: exp(loss); null when it overflows.
    perplexity: Metric | None = None
    exact_match: Metric | None = None
    rouge_l: Metric | None = None


# -------------------------------------------------------------------------- serving


class PriceRecord(Record):
    """The price of a model served by the node, in wei of OPEN per 1,000 tokens, from now on.

    Set by the adapter's developer (``signature``: EIP-191 over the canonical price) or by the
    node's admin (``signature`` null); every fee names the price record it applied, so each
    fee can be recomputed from the log alone."""

    kind: Literal["price"] = "price"
    #: The adapter's name, or the base model's served name.
    model: Annotated[Text, Field(min_length=1, max_length=64)]
    #: Hash of the priced adapter (null for the base model).
    adapter_hash: Bytes32 | None = None
    input_per_1k: Wei
    output_per_1k: Wei
    #: Who set it: the adapter's developer, or the node's operator for an admin change.
    set_by: Address
    signature: Annotated[Text, Field(max_length=200)] | None = None


class InferenceRecord(Record):
    """One finished (or cancelled) request the node answered, committed before the answer ends.

    Texts are not in the record, only their keccak256 hashes; the node keeps the texts (for
    attribution, with a retention setting). The request's ``fee`` record (appended in the same
    transaction, right after it) has ``ref = "inference:<request_id>"``."""

    kind: Literal["inference"] = "inference"
    #: The node's id of the request (random, 32 hex digits): what the fee record refers to.
    request_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    #: The served name: an adapter's name, or the base model's.
    model: Annotated[Text, Field(min_length=1, max_length=64)]
    #: Null when the base model answered.
    adapter_hash: Bytes32 | None = None
    base_model_hash: Bytes32
    #: keccak256 of the prompt as the model saw it (chat template applied), UTF-8.
    prompt_hash: Bytes32
    #: keccak256 of the output text, UTF-8.
    output_hash: Bytes32
    prompt_tokens: SafeUint
    completion_tokens: SafeUint
    #: ``stop``, ``length``, ``cancelled`` or ``error``.
    finish_reason: Literal["stop", "length", "cancelled", "error"]
    #: The sampling parameters as used (temperature, top_p, max_tokens, seed, stop count...).
    sampling: dict[Annotated[str, Field(max_length=32)], float | int | bool | None]
    payer: Address
    #: Seq of the price record applied (null: the node's default price).
    price_seq: SafeUint | None = None
    input_per_1k: Wei
    output_per_1k: Wei
    fee: Wei
    #: Milliseconds: waiting, to the first token, in all.
    queue_ms: SafeUint
    first_token_ms: SafeUint | None = None
    total_ms: SafeUint
    #: ``builtin`` or the upstream server that generated the answer.
    backend: Annotated[Text, Field(min_length=1, max_length=200)]
    #: ``completions`` or ``chat``.
    api: Literal["completions", "chat"]


# ---------------------------------------------------------------------- attribution


class AttributionIndexRecord(Record):
    """An adapter's attribution index was built: the file beside the adapter (``attribution.safetensors``)
    whose sha256 is ``index_hash`` holds its training rows' projected, preconditioned gradient
    features and the exact-span index over their tokens, with the parameters that made them."""

    kind: Literal["attribution_index"] = "attribution_index"
    adapter_name: Annotated[Text, Field(min_length=1, max_length=64)]
    adapter_hash: Bytes32
    base_model_hash: Bytes32
    #: sha256 of the index file.
    index_hash: Bytes32
    #: The adapter's training rows (the same root as its adapter record).
    training_rows_root: Bytes32
    row_count: SafeUint
    #: The preconditioner: ``logra`` (damped inverse covariance), ``datainf`` or ``identity``.
    method: Literal["logra", "datainf", "identity"]
    projection_k: Annotated[int, Strict(), Field(ge=1, le=4096)]
    projection_seed: SafeUint
    damping: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class AttributedRow(BaseModel):
    """A training row among an answer's most influential, with its integer score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    row: Bytes32
    contributor: Address
    #: ``score · 2^-score_exponent`` is the real-valued influence (positive: only those are kept).
    score: SafeUint


class AttributedSpanField(BaseModel):
    """Characters ``[start, end)`` of the output found verbatim in the training rows ``rows``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: SafeUint
    end: SafeUint
    rows: Annotated[tuple[Bytes32, ...], Field(min_length=1, max_length=16)]


class AttributionRecord(Record):
    """Which training rows shaped one answer and how its contributors share the fee.

    ``status`` ``done``: scored against the adapter's index (``index_hash``) under ``policy``; the
    query vector (its sha256 ``query_hash``; the node serves the vector) recomputes every score.
    ``fallback``: attribution failed for good (``reason``), and the weights are the adapter's
    training rows per contributor. The inference's fee record carries the same ``weights``."""

    kind: Literal["attribution"] = "attribution"
    #: The inference record's hash and seq.
    inference: Bytes32
    inference_seq: SafeUint
    adapter_hash: Bytes32
    index_hash: Bytes32 | None = None
    policy: Literal["loraledger-attribution-v1"] = "loraledger-attribution-v1"
    status: Literal["done", "fallback"]
    query_hash: Bytes32 | None = None
    score_exponent: Annotated[int, Strict(), Field(ge=-1100, le=1100)] | None = None
    top: Annotated[tuple[AttributedRow, ...], Field(max_length=64)] = ()
    spans: Annotated[tuple[AttributedSpanField, ...], Field(max_length=256)] = ()
    weights: Weights
    reason: Annotated[Text, Field(max_length=500)] | None = None


# ------------------------------------------------------------------------- functions


def record_from_dict(data: Any) -> Record:
    """The record of the kind ``data["kind"]`` names, validated; ``InputError`` otherwise."""
    if isinstance(data, Record):
        return data
    if not isinstance(data, Mapping):
        raise InputError(f"a record must be a JSON object, got {type(data).__name__}")
    if "kind" not in data:
        raise InputError("record has no 'kind'", known_kinds=sorted(RECORD_KINDS))
    kind = data["kind"]
    cls = RECORD_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(sorted(RECORD_KINDS))
        raise InputError(f"unknown record kind {short_repr(kind)} (known: {known})", known_kinds=sorted(RECORD_KINDS))
    return cls.model_validate(dict(data))



def parse_record(data: str | bytes | bytearray) -> Record:
    """Parse a record from JSON text (any key order or whitespace); ``InputError`` if bad.

    Duplicate keys, NaN and Infinity are rejected.
    """
    return record_from_dict(strict_loads(data, what="record JSON"))


def canonical_json(record: Record) -> bytes:
    """RFC 8785 bytes of ``record.model_dump(mode="json")``: what :func:`record_hash` hashes."""
    return canonicalize(record.model_dump(mode="json"))


def record_hash(record: Record) -> bytes:
    """``keccak256(canonical_json(record))``: covers every field, ``seq`` and ``timestamp`` too."""
    return keccak256(canonical_json(record))


def log_leaf(record: Record) -> bytes:
    """The 32-byte record hash: the data the ledger appends to its RFC 9162 log.

    The record must have its ``seq`` (``InputError`` otherwise): a log leaf is the hash
    of the record as appended.
    """
    if record.seq is None:
        raise InputError(f"{record.kind} record has no seq yet; the ledger assigns it when appending")
    return record_hash(record)
