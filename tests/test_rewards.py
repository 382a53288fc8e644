"""The fee split: FeeSplit, split_fee, allocate_fees, increments_from_records (pure, no chain)."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import pytest
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from loraledger.errors import InputError
from loraledger.records.kinds import FeeRecord, RewardGrantRecord
from loraledger.rewards.split import FeeSplit, add_increments, allocate_fees, increments_from_records, split_fee

# Checksummed addresses. B, C and D are chosen so that plain string order ("0xC" < "0xb")
# differs from lowercase hex order (b < c < d): ties must follow the lowercase order.
A = to_checksum_address("0x" + "a" * 40)  # 0xaAaA...
B = to_checksum_address("0x" + "b" * 40)  # 0xbBbB...
C = to_checksum_address("0x" + "c" * 40)  # 0xCcCC...
D = to_checksum_address("0x" + "d" * 40)  # 0xDDdD...
E = to_checksum_address("0x" + "e" * 40)  # 0xEeee...
OP = to_checksum_address("0x" + "1" * 40)
DEV = to_checksum_address("0x" + "2" * 40)
PAYER = to_checksum_address("0x" + "9" * 40)

DEFAULT = FeeSplit(7000, 2000, 1000)


def fee_record(fee: int, weights: dict[str, int], developer: str | None, operator: str) -> FeeRecord:
    return FeeRecord(timestamp=1, payer=PAYER, fee=fee, weights=weights, developer=developer, operator=operator)


# ------------------------------------------------------------------------------ FeeSplit


def test_fee_split_round_trips() -> None:
    split = FeeSplit(7000, 2000, 1000)
    assert split.as_tuple() == (7000, 2000, 1000)
    assert FeeSplit.from_tuple((7000, 2000, 1000)) == split
    assert split.to_json() == {"contributorsBps": 7000, "developerBps": 2000, "operatorBps": 1000}
    assert FeeSplit.from_json(split.to_json()) == split
    assert FeeSplit(0, 0, 10_000).as_tuple() == (0, 0, 10_000)
    assert FeeSplit(10_000, 0, 0).as_tuple() == (10_000, 0, 0)
    with pytest.raises(AttributeError):
        split.developer_bps = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "parts",
    [
        (7000, 2000, 999),
        (7000, 2000, 1001),
        (10_001, -1, 0),
        (0, 0, 0),
        (5000.0, 2500, 2500),
        ("5000", 2500, 2500),
        (True, 4999, 5000),
        (20_000, -5000, -5000),
    ],
)
def test_fee_split_rejects_invalid(parts: tuple) -> None:
    with pytest.raises(InputError) as info:
        FeeSplit(*parts)
    assert "fee split" in str(info.value)
    assert "contributors=" in str(info.value) and "operator=" in str(info.value)


def test_fee_split_error_names_the_values() -> None:
    with pytest.raises(InputError, match=r"contributors=7000, developer=2000, operator=999 \(sum 9999\)"):
        FeeSplit(7000, 2000, 999)


def test_fee_split_from_tuple_and_json_errors() -> None:
    with pytest.raises(InputError):
        FeeSplit.from_tuple((7000, 3000))
    with pytest.raises(InputError):
        FeeSplit.from_tuple(7000)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="missing"):
        FeeSplit.from_json({"contributorsBps": 7000, "developerBps": 3000})
    with pytest.raises(InputError, match="unexpected"):
        FeeSplit.from_json({"contributorsBps": 7000, "developerBps": 2000, "operatorBps": 1000, "x": 0})
    with pytest.raises(InputError):
        FeeSplit.from_json({"contributorsBps": "7000", "developerBps": 2000, "operatorBps": 1000})
    with pytest.raises(InputError):
        FeeSplit.from_json([7000, 2000, 1000])


# ------------------------------------------------------------------------------ worked examples


def test_one_wei_goes_to_largest_remainder() -> None:
    # ideals: A, B, C 7/30 each (0.233); developer 0.2; operator 0.1. One wei left: A
    # wins the three-way tie among the largest remainders (lowest address).
    assert split_fee(1, {A: 1, B: 1, C: 1}, DEV, OP, DEFAULT) == {A: 1}
    # no developer: the operator's ideal is 0.1 + 0.2 = 0.3 > 0.233, so it takes the wei
    assert split_fee(1, {A: 1, B: 1, C: 1}, None, OP, DEFAULT) == {OP: 1}


def test_three_way_tie_follows_lowercase_address_order() -> None:
    # C (0xCc..) sorts before B (0xbB..) as a plain string, but after it in lowercase hex.
    # fee 100: contributors 70/3 = 23.33 each, developer 20, operator 10; 1 wei left.
    assert split_fee(100, {D: 1, C: 1, B: 1}, DEV, OP, DEFAULT) == {B: 24, C: 23, D: 23, DEV: 20, OP: 10}
    # fee 200: 140/3 = 46.67 each, developer 40, operator 20; 2 wei left: B then C.
    assert split_fee(200, {D: 1, C: 1, B: 1}, DEV, OP, DEFAULT) == {B: 47, C: 47, D: 46, DEV: 40, OP: 20}


def test_fee_not_divisible() -> None:
    # 12345 wei, split 60/25/15, weights A:3 B:7.
    # A 2222.1, B 5184.9, developer 3086.25, operator 1851.75 -> floors sum 12343;
    # the 2 wei left go to B (.9) and the operator (.75).
    split = FeeSplit(6000, 2500, 1500)
    parts = split_fee(12345, {A: 3, B: 7}, DEV, OP, split)
    assert parts == {A: 2222, B: 5185, DEV: 3086, OP: 1852}
    assert sum(parts.values()) == 12345


def test_exact_division() -> None:
    assert split_fee(10_000, {A: 1, B: 3}, DEV, OP, DEFAULT) == {A: 1750, B: 5250, DEV: 2000, OP: 1000}


def test_overlapping_roles_add_up() -> None:
    # the operator is also a contributor: 350 + 100
    assert split_fee(1000, {A: 1, OP: 1}, DEV, OP, DEFAULT) == {A: 350, DEV: 200, OP: 450}
    # the developer is also the operator
    assert split_fee(1000, {A: 1}, OP, OP, DEFAULT) == {A: 700, OP: 300}
    # one address in every role gets everything
    assert split_fee(1000, {OP: 5}, OP, OP, DEFAULT) == {OP: 1000}
    # fee 7, weights A:1 OP:2, no developer: A 1.633; OP 3.267 + 1.4 + 0.7 = 5.367.
    # Floors 1 + 5, the 1 wei left goes to A (.633 > .367).
    assert split_fee(7, {A: 1, OP: 2}, None, OP, DEFAULT) == {A: 2, OP: 5}


def test_empty_or_zero_weights() -> None:
    # the contributors' share goes to the developer...
    assert split_fee(1000, {}, DEV, OP, DEFAULT) == {DEV: 900, OP: 100}
    assert split_fee(1000, {A: 0, B: 0}, DEV, OP, DEFAULT) == {DEV: 900, OP: 100}
    # ...or, with no developer, to the operator
    assert split_fee(1000, {}, None, OP, DEFAULT) == {OP: 1000}
    # 7 wei: developer 6.3, operator 0.7 -> 6 + 0, 1 left to the operator (.7 > .3)
    assert split_fee(7, {}, DEV, OP, DEFAULT) == {DEV: 6, OP: 1}


def test_no_developer() -> None:
    assert split_fee(1000, {A: 1}, None, OP, DEFAULT) == {A: 700, OP: 300}
    assert split_fee(1000, {A: 1}, "", OP, DEFAULT) == {A: 700, OP: 300}


def test_zero_amounts_are_omitted() -> None:
    assert split_fee(0, {A: 1}, DEV, OP, DEFAULT) == {}
    assert split_fee(1000, {A: 1, B: 0}, DEV, OP, DEFAULT) == {A: 700, DEV: 200, OP: 100}
    assert split_fee(1000, {A: 1}, DEV, OP, FeeSplit(10_000, 0, 0)) == {A: 1000}
    assert split_fee(1000, {A: 1}, DEV, OP, FeeSplit(0, 0, 10_000)) == {OP: 1000}
    assert split_fee(2, {A: 1, B: 1, C: 1}, None, OP, FeeSplit(10_000, 0, 0)) == {A: 1, B: 1}


def test_result_is_sorted_by_account() -> None:
    parts = split_fee(10**18, {E: 1, A: 2, C: 3}, DEV, OP, DEFAULT)
    assert list(parts) == sorted(parts)


def test_huge_fee_is_exact() -> None:
    fee = 2**256 - 1
    parts = split_fee(fee, {A: 2**52, B: 1, C: 3}, DEV, OP, DEFAULT)
    assert sum(parts.values()) == fee


@pytest.mark.parametrize(
    ("fee", "weights", "message"),
    [
        (-1, {A: 1}, "fee must not be negative"),
        (1.5, {A: 1}, "integer"),
        (True, {A: 1}, "integer"),
        (10, {A: -1}, "must not be negative"),
        (10, {A: 1.0}, "integer"),
        (0, {A: -1}, "must not be negative"),
    ],
)
def test_split_fee_rejects_bad_input(fee: object, weights: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        split_fee(fee, weights, DEV, OP, DEFAULT)  # type: ignore[arg-type]


def test_split_fee_rejects_two_spellings_of_one_address() -> None:
    with pytest.raises(InputError, match="two spellings"):
        split_fee(100, {A: 1, A.lower(): 1}, DEV, OP, DEFAULT)
    with pytest.raises(InputError, match="two spellings"):
        split_fee(100, {OP.lower().replace("0x", "0X"): 1}, DEV, OP, DEFAULT)


# ------------------------------------------------------------------------------ properties

POOL = [to_checksum_address(f"0x{i:040x}") for i in range(1, 7)] + [A, B, C, D, E, OP]

splits = st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)).map(
    lambda ab: FeeSplit(min(ab), max(ab) - min(ab), 10_000 - max(ab))
)
fees = st.one_of(st.integers(0, 1000), st.integers(0, 2**200))
weight_values = st.one_of(st.integers(0, 3), st.integers(0, 2**40))
weight_maps = st.dictionaries(st.sampled_from(POOL), weight_values, max_size=10)
developers = st.one_of(st.none(), st.sampled_from(POOL))
operators = st.sampled_from(POOL)


def ideal_shares(fee: int, weights: dict[str, int], developer: str | None, operator: str, split: FeeSplit) -> dict[str, Fraction]:
    """Exact ideal share per address (roles summed), straight from the documented rules."""
    ideal: dict[str, Fraction] = {}

    def give(account: str, amount: Fraction) -> None:
        ideal[account] = ideal.get(account, Fraction(0)) + amount

    contributors = Fraction(fee * split.contributors_bps, 10_000)
    total = sum(weights.values())
    if total:
        for account, weight in weights.items():
            give(account, contributors * weight / total)
    else:
        give(developer or operator, contributors)
    give(developer or operator, Fraction(fee * split.developer_bps, 10_000))
    give(operator, Fraction(fee * split.operator_bps, 10_000))
    return ideal


def reference_split(fee: int, weights: dict[str, int], developer: str | None, operator: str, split: FeeSplit) -> dict[str, int]:
    """Largest remainder with Fractions: the slow, obviously correct version."""
    ideal = ideal_shares(fee, weights, developer, operator, split)
    parts = {account: int(share) for account, share in ideal.items()}
    left = fee - sum(parts.values())
    order = sorted(ideal, key=lambda account: (-(ideal[account] - parts[account]), account.lower()))
    for account in order[:left]:
        parts[account] += 1
    return {account: parts[account] for account in sorted(parts) if parts[account]}


@settings(max_examples=400, deadline=None)
@given(fees, weight_maps, developers, operators, splits)
def test_split_properties(fee: int, weights: dict[str, int], developer: str | None, operator: str, split: FeeSplit) -> None:
    parts = split_fee(fee, weights, developer, operator, split)
    # exact: the parts sum to the fee, every part positive (zero parts are omitted)
    assert sum(parts.values()) == fee
    assert all(amount > 0 for amount in parts.values())
    assert list(parts) == sorted(parts)
    # each party strictly within 1 wei of its exact ideal share
    ideal = ideal_shares(fee, weights, developer, operator, split)
    assert set(parts) <= set(ideal)
    for account, share in ideal.items():
        assert abs(parts.get(account, 0) - share) < 1, (account, parts.get(account, 0), share)
    # identical to the Fraction-based reference
    assert parts == reference_split(fee, weights, developer, operator, split)


@settings(max_examples=200, deadline=None)
@given(fees, weight_maps, developers, operators, splits, st.randoms(use_true_random=False))
def test_split_is_independent_of_dict_order(fee, weights, developer, operator, split, rnd) -> None:
    items = list(weights.items())
    rnd.shuffle(items)
    assert split_fee(fee, dict(items), developer, operator, split) == split_fee(fee, weights, developer, operator, split)
    assert split_fee(fee, dict(reversed(items)), developer, operator, split) == split_fee(
        fee, weights, developer, operator, split
    )


@settings(max_examples=200, deadline=None)
@given(fees, weight_maps, developers, operators, splits)
def test_larger_weight_never_gets_less(fee, weights, developer, operator, split) -> None:
    parts = split_fee(fee, weights, developer, operator, split)
    # pure contributors only: an address with another role also gets that role's share
    pure = [account for account in weights if account not in (developer, operator)]
    for a in pure:
        for b in pure:
            if weights[a] > weights[b]:
                assert parts.get(a, 0) >= parts.get(b, 0)
            elif weights[a] == weights[b]:
                assert abs(parts.get(a, 0) - parts.get(b, 0)) <= 1


# ------------------------------------------------------------------------------ many records


def test_allocate_fees_sums_records() -> None:
    records = [
        fee_record(1000, {A: 1, OP: 1}, DEV, OP),  # A 350, OP 450, DEV 200
        fee_record(1000, {}, None, OP),  # OP 1000
        fee_record(0, {A: 1}, DEV, OP),  # nothing
        fee_record(100, {D: 1, C: 1, B: 1}, DEV, OP),  # B 24, C 23, D 23, DEV 20, OP 10
    ]
    totals = allocate_fees(records, DEFAULT)
    assert totals == {A: 350, B: 24, C: 23, D: 23, DEV: 220, OP: 1460}
    assert list(totals) == sorted(totals)
    assert sum(totals.values()) == 2100
    assert allocate_fees([], DEFAULT) == {}
    assert allocate_fees(iter(records), DEFAULT) == totals


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2**100), weight_maps, developers, operators), max_size=8),
    splits,
)
def test_allocate_fees_total_is_sum_of_fees(rows, split) -> None:
    records = [fee_record(*row) for row in rows]
    totals = allocate_fees(records, split)
    assert sum(totals.values()) == sum(record.fee for record in records)
    assert all(amount > 0 for amount in totals.values())
    # the same as adding up the per-record splits
    assert totals == add_increments({}, increments_from_records(records, split))


def test_allocate_fees_rejects_other_records() -> None:
    grant = RewardGrantRecord(timestamp=1, account=A, amount=5, source="test")
    with pytest.raises(InputError, match="fee records"):
        allocate_fees([grant], DEFAULT)


def test_increments_from_mixed_records() -> None:
    records = [
        fee_record(1000, {A: 1}, DEV, OP),
        RewardGrantRecord(timestamp=1, account=B, amount=5, source="list"),
        SimpleNamespace(kind="something-else", account=C, amount=99),  # any other kind: nothing
        fee_record(10, {}, None, B),
    ]
    increments = increments_from_records(records, DEFAULT)
    assert increments == [(OP, 100), (DEV, 200), (A, 700), (B, 5), (B, 10)]  # per fee: accounts sorted
    assert add_increments({A: 1}, increments) == {A: 701, B: 15, DEV: 200, OP: 100}
