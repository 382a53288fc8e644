"""Records: canonical JSON (RFC 8785), hashes, validation and the kind registry."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Literal

import pytest
from Crypto.Hash import keccak as pycryptodome_keccak
from pydantic import BaseModel, ValidationError

from loraledger.crypto.canonical import MAX_SAFE_INT, canonicalize
from loraledger.crypto.translog import MerkleLog, leaf_hash, verify_inclusion
from loraledger.errors import InputError
from loraledger.records.fields import MAX_UINT256, Address, Bytes32, FrozenDict, Wei, parse_address, parse_wei
from loraledger.records.kinds import (
    RECORD_KINDS,
    FeeRecord,
    Record,
    RewardGrantRecord,
    canonical_json,
    log_leaf,
    parse_record,
    record_from_dict,
    record_hash,
)

# EIP-55 test vectors
A1 = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
A2 = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
A3 = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"
A4 = "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"


def _keccak(data: bytes) -> bytes:
    return pycryptodome_keccak.new(digest_bits=256, data=data).digest()


def fee_record(**overrides: object) -> FeeRecord:
    fields: dict[str, object] = {
        "payer": A1,
        "fee": 10**30 + 7,
        "weights": {A2: 600_000, A3: 400_000},
        "developer": A4,
        "operator": A1,
        "ref": "inf-1",
        "timestamp": 1_700_000_000,
        "seq": 41,
    }
    fields.update(overrides)
    return FeeRecord(**fields)


# ------------------------------------------------------------------------ RFC 8785


def test_canonicalize_rfc8785_example_3_2_2() -> None:
    """RFC 8785 section 3.2.2: numbers, string escaping, literals, key order."""
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()
    assert canonicalize(json.loads(source)) == expected


def test_canonicalize_rfc8785_sorting_3_2_3() -> None:
    """RFC 8785 section 3.2.3: keys sorted by UTF-16 code units (the emoji's surrogates
    sort before U+FB33)."""
    source = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    ).encode("utf-8")
    assert canonicalize(source) == expected


def test_canonicalize_integer_domain() -> None:
    assert canonicalize([MAX_SAFE_INT, -MAX_SAFE_INT, 0]) == b"[9007199254740991,-9007199254740991,0]"
    with pytest.raises(InputError):
        canonicalize(MAX_SAFE_INT + 1)
    with pytest.raises(InputError):
        canonicalize(float("nan"))


def test_fee_record_canonical_json_known_vector() -> None:
    record = fee_record(
        payer=A1.lower(),
        weights={A3.upper().replace("0X", "0x"): 2, A2: 1},
        ref='inférence €\u000f\n"x"',
    )
    expected = (
        '{"developer":"0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",'
        '"fee":"1000000000000000000000000000007",'
        '"kind":"fee",'
        '"operator":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",'
        '"payer":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",'
        '"ref":"inférence €\\u000f\\n\\"x\\"",'
        '"seq":41,'
        '"timestamp":1700000000,'
        '"version":1,'
        '"weights":{"0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB":2,"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359":1}}'
    ).encode("utf-8")
    assert canonical_json(record) == expected
    assert record.canonical_json() == expected
    assert record_hash(record) == _keccak(expected)
    assert record.hash == _keccak(expected)
    assert record.hash_hex == "0x" + _keccak(expected).hex()
    # golden value: changing the format changes this (bump version instead)
    assert record.hash_hex == "0x" + _keccak(expected).hex() == GOLDEN_FEE_HASH


GOLDEN_FEE_HASH = "0x38104d926749adb015a7323aaed15f691b914a4ebb4ac57b130d202edea8130e"


def test_reward_grant_canonical_json() -> None:
    record = RewardGrantRecord(account=A2.lower(), amount="5", source="ab" * 32, timestamp=1, seq=0)
    assert canonical_json(record) == (
        b'{"account":"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359","amount":"5","kind":"reward_grant",'
        b'"memo":null,"seq":0,"source":"' + b"ab" * 32 + b'","timestamp":1,"version":1}'
    )


# --------------------------------------------------------------------- wei amounts


@pytest.mark.parametrize("amount", [0, 1, 2**53 - 1, 2**53, 2**53 + 1, 10**18, 10**30 + 7, MAX_UINT256])
def test_big_wei_round_trips_exactly_as_strings(amount: int) -> None:
    record = fee_record(fee=amount)
    as_json = json.loads(canonical_json(record))
    assert as_json["fee"] == str(amount)
    assert record.fee == amount and isinstance(record.fee, int)
    assert record.model_dump()["fee"] == amount  # python mode keeps the int
    back = parse_record(canonical_json(record))
    assert back == record and back.fee == amount
    assert parse_record(record.model_dump_json()) == record
    # a JSON number is accepted on input too (Python's json is exact) and re-encoded as a string
    as_json["fee"] = amount
    assert canonical_json(record_from_dict(as_json)) == canonical_json(record)
    assert FeeRecord(**{**record.model_dump(), "fee": str(amount)}) == record


def test_parse_wei_and_parse_address_helpers() -> None:
    assert parse_wei("1000000000000000000000") == 10**21
    assert parse_wei(7) == 7
    for bad in (-1, "-1", "1.0", "1e18", " 1", "01", "", 1.0, True, None, MAX_UINT256 + 1):
        with pytest.raises(InputError):
            parse_wei(bad)
    assert parse_address(A1.lower()) == A1
    with pytest.raises(InputError, match="checksum"):
        parse_address(A1[:-1] + "D")


# ------------------------------------------------------------------------ stability


def test_hash_is_stable_across_dict_order_json_layout_and_address_case() -> None:
    base = fee_record()
    reordered = fee_record(weights={A3: 400_000, A2: 600_000})
    lowercase = fee_record(payer=A1.lower(), operator=A1.upper().replace("0X", "0x"),
                           weights={A3.lower(): 400_000, A2.lower(): 600_000}, developer=A4.lower())  # fmt: skip
    assert base == reordered == lowercase
    assert record_hash(base) == record_hash(reordered) == record_hash(lowercase)
    as_dict = base.to_dict()
    shuffled = json.dumps(dict(reversed(list(as_dict.items()))), indent=3)
    assert record_hash(parse_record(shuffled)) == record_hash(base)
    assert lowercase.payer == A1 and set(lowercase.weights) == {A2, A3}


def test_hash_covers_seq_timestamp_and_every_field() -> None:
    base = fee_record()
    variants = [
        fee_record(seq=42),
        fee_record(seq=None),
        fee_record(timestamp=1_700_000_001),
        fee_record(fee=10**30 + 8),
        fee_record(weights={A2: 600_000, A3: 400_001}),
        fee_record(weights={A2: 600_000, A3: 400_000, A4: 0}),
        fee_record(developer=None),
        fee_record(ref=None),
        fee_record(ref="inf-2"),
        fee_record(payer=A2),
    ]
    hashes = {record_hash(v) for v in variants}
    assert len(hashes) == len(variants) and record_hash(base) not in hashes


def test_log_leaf_is_the_record_hash_and_needs_seq() -> None:
    record = fee_record(seq=None)
    with pytest.raises(InputError, match="seq"):
        log_leaf(record)
    appended = record.with_seq(0)
    assert appended.seq == 0 and record.seq is None
    leaf = log_leaf(appended)
    assert leaf == record_hash(appended) and len(leaf) == 32
    # a client holding only the record hash checks inclusion against a published root
    log = MerkleLog()
    others = [RewardGrantRecord(account=A2, amount=i + 1, source="s", timestamp=i, seq=i + 1) for i in range(6)]
    for r in [appended, *others]:
        assert log.append(log_leaf(r)) == r.seq
    proof = log.inclusion_proof(0)
    assert verify_inclusion(leaf_hash(appended.hash), 0, log.size, proof.path, log.root())
    with pytest.raises(InputError):
        appended.with_seq(-1)


# ------------------------------------------------------------------------ immutability


def test_records_are_immutable() -> None:
    record = fee_record()
    with pytest.raises(ValidationError):
        record.fee = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        record.seq = 3  # type: ignore[misc]
    assert isinstance(record.weights, FrozenDict)
    with pytest.raises(TypeError):
        record.weights[A4] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        record.weights.update({A4: 1})
    with pytest.raises(TypeError):
        del record.weights[A2]  # type: ignore[attr-defined]
    assert hash(record) == hash(fee_record())
    assert {record, fee_record()} == {record}
    assert copy.deepcopy(record) == record
    assert pickle.loads(pickle.dumps(record)) == record
    assert record_hash(copy.deepcopy(record)) == record_hash(record)


# ------------------------------------------------------------------------ registry


def test_registry_dispatch() -> None:
    assert RECORD_KINDS["fee"] is FeeRecord
    assert RECORD_KINDS["reward_grant"] is RewardGrantRecord
    fee = fee_record()
    grant = RewardGrantRecord(account=A2, amount=10**20, source="sha256:ab", memo="thanks", timestamp=5)
    for record in (fee, grant):
        assert type(record_from_dict(record.to_dict())) is type(record)
        assert record_from_dict(record.to_dict()) == record
        assert parse_record(canonical_json(record)) == record
        assert parse_record(canonical_json(record).decode()) == record
        assert Record.model_validate(record.to_dict()) == record
        assert Record.model_validate_json(canonical_json(record)) == record
        assert record_from_dict(record) is record
    assert fee.kind == "fee" and grant.kind == "reward_grant"
    assert fee.version == 1 and grant.seq is None


def test_adding_a_kind_is_a_small_class() -> None:
    class SlashRecord(Record):
        kind: Literal["test_slash"] = "test_slash"
        account: Address
        amount: Wei

    try:
        assert RECORD_KINDS["test_slash"] is SlashRecord
        record = record_from_dict({"kind": "test_slash", "account": A1.lower(), "amount": "12", "timestamp": 3})
        assert isinstance(record, SlashRecord) and record.account == A1
        assert json.loads(canonical_json(record))["amount"] == "12"
        with pytest.raises(TypeError, match="already taken"):

            class Clash(Record):
                kind: Literal["test_slash"] = "test_slash"

    finally:
        RECORD_KINDS.pop("test_slash", None)
    with pytest.raises(TypeError, match="abstract"):
        Record(kind="fee", timestamp=1)


def test_bytes32_type() -> None:
    class Holder(BaseModel):
        value: Bytes32

    assert Holder(value="0x" + "AB" * 32).value == "0x" + "ab" * 32
    assert Holder(value=bytes(range(32))).value == "0x" + bytes(range(32)).hex()
    for bad in ("0x" + "ab" * 31, "ab" * 32, "0x" + "zz" * 32, b"\x00" * 31, 5):
        with pytest.raises(ValidationError):
            Holder(value=bad)


# ------------------------------------------------------------------------ input errors

BAD_FEE_FIELDS = [
    ({"payer": "0x123"}, "payer"),
    ({"payer": "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}, "payer"),
    ({"payer": "0x" + "g" * 40}, "payer"),
    ({"payer": A1[:-1] + "D"}, "checksum"),
    ({"payer": 1234}, "payer"),
    ({"operator": None}, "operator"),
    ({"developer": A4.replace("D", "d", 1)}, "checksum"),
    ({"fee": -1}, "negative"),
    ({"fee": "-5"}, "fee"),
    ({"fee": 1.0}, "float"),
    ({"fee": 1.5}, "float"),
    ({"fee": True}, "boolean"),
    ({"fee": "1e18"}, "fee"),
    ({"fee": "0x10"}, "fee"),
    ({"fee": None}, "fee"),
    ({"fee": MAX_UINT256 + 1}, "uint256"),
    ({"weights": {A2: 1, A2.lower(): 2}}, "twice"),
    ({"weights": {A2.upper().replace("0X", "0x"): 1, A2: 2}}, "twice"),
    ({"weights": {A2: -1}}, "weights"),
    ({"weights": {A2: 1.5}}, "weights"),
    ({"weights": {A2: True}}, "weights"),
    ({"weights": {A2: "1"}}, "weights"),
    ({"weights": {A2: 2**53}}, "weights"),
    ({"weights": {"0xnope": 1}}, "weights"),
    ({"weights": [A2]}, "weights"),
    ({"timestamp": -1}, "timestamp"),
    ({"timestamp": "1700000000"}, "timestamp"),
    ({"timestamp": 1.5}, "timestamp"),
    ({"seq": -1}, "seq"),
    ({"seq": True}, "seq"),
    ({"version": 2}, "version"),
    ({"ref": 5}, "ref"),
    ({"ref": "x" * 1025}, "ref"),
    ({"ref": "\ud800"}, "surrogate"),
    ({"kind": "reward_grant"}, "kind"),
    ({"surprise": 1}, "surprise"),
]


@pytest.mark.parametrize(("change", "needle"), BAD_FEE_FIELDS)
def test_fee_record_input_errors(change: dict[str, object], needle: str) -> None:
    fields = {**fee_record().model_dump(), **change}
    with pytest.raises(InputError, match=needle) as direct:
        FeeRecord(**fields)
    assert str(direct.value).startswith("invalid fee record: ")
    assert direct.value.details["errors"]
    fields["kind"] = "fee" if "kind" not in change else change["kind"]
    with pytest.raises(InputError):
        record_from_dict(fields)


@pytest.mark.parametrize("missing", ["payer", "fee", "weights", "operator", "timestamp"])
def test_missing_fields(missing: str) -> None:
    fields = {k: v for k, v in fee_record().model_dump().items() if k != missing}
    with pytest.raises(InputError, match=f"{missing}: is required"):
        record_from_dict(fields)


def test_optional_fields_default() -> None:
    fields = {k: v for k, v in fee_record().model_dump().items() if k not in ("developer", "ref", "seq", "version")}
    record = record_from_dict(fields)
    assert isinstance(record, FeeRecord)
    assert record.developer is None and record.ref is None and record.seq is None and record.version == 1
    assert record_from_dict({**fields, "weights": {}}).weights == {}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"amount": 0}, "positive"),
        ({"amount": "0"}, "positive"),
        ({"amount": -3}, "negative"),
        ({"amount": 2.0}, "float"),
        ({"source": ""}, "source"),
        ({"account": A2.lower()[:-1]}, "account"),
        ({"memo": ["x"]}, "memo"),
    ],
)
def test_reward_grant_input_errors(change: dict[str, object], needle: str) -> None:
    fields = {"account": A2, "amount": 1, "source": "s", "timestamp": 1, **change}
    with pytest.raises(InputError, match=needle):
        RewardGrantRecord(**fields)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"kind": "nope", "timestamp": 1}, "unknown record kind"),
        ({"kind": 3}, "unknown record kind"),
        ({"kind": None}, "unknown record kind"),
        ({"timestamp": 1}, "no 'kind'"),
        ([("kind", "fee")], "JSON object"),
        ("fee", "JSON object"),
    ],
)
def test_record_from_dict_errors(data: object, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        record_from_dict(data)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"kind": "fee", ', "not valid JSON"),
        (b"\xff", "not valid JSON"),
        ('{"kind": "fee", "kind": "fee"}', "twice"),
        ('{"kind": "fee", "fee": NaN}', "NaN"),
        ('{"kind": "fee", "fee": Infinity}', "Infinity"),
        ("[]", "JSON object"),
        ('{"kind": "mystery"}', "unknown record kind"),
    ],
)
def test_parse_record_errors(text: str | bytes, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        parse_record(text)


def test_input_error_lists_every_problem() -> None:
    with pytest.raises(InputError) as info:
        FeeRecord(payer="0x1", fee=-1, weights={}, operator=A1, timestamp=1)
    fields = [e["field"] for e in info.value.details["errors"]]
    assert fields == ["payer", "fee"]
    assert info.value.to_dict()["error"] == "invalid_input"


def _json_values():
    from hypothesis import strategies as st

    text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(["\u2028", "\x7f", "\x00", "\x1f", '"', "\\"]),
                   max_size=12)
    scalars = (st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text
               | st.floats(allow_nan=False, allow_infinity=False))
    keys = st.text(alphabet=st.characters(codec="utf-8"), max_size=6)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                        max_leaves=20)


def test_the_fast_canonical_path_writes_exactly_what_rfc8785_writes():
    """canonicalize takes json's C encoder for plain values (no floats, BMP keys): on any JSON value,
    astral keys, control characters and floats included, its bytes are rfc8785's."""
    import rfc8785
    from hypothesis import given, settings

    @settings(max_examples=1500, deadline=None, derandomize=True)
    @given(_json_values())
    def same(value) -> None:
        assert canonicalize(value) == rfc8785.dumps(value)

    same()
    for value in ({"\U0001F600": 1, "\uffff": 2, "a": 3}, {"é": [1, True, None]}, [2**53 - 1, -(2**53) + 1]):
        assert canonicalize(value) == rfc8785.dumps(value)
    with pytest.raises(InputError):
        canonicalize({"k": 2**53})  # past I-JSON: refused either way
