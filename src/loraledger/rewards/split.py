"""Reward maths (pure): the fee split, cumulative balances and the reward tree.

Fee split
---------
Each fee is divided between the data contributors (pro rata by attribution weight), the
adapter's developer and the node operator, in the proportions of a :class:`FeeSplit`
(basis points summing to 10 000). :func:`split_fee` divides one fee exactly (the parts
sum to the fee, to the wei, each party within 1 wei of its exact share);
:func:`allocate_fees` and :func:`increments_from_records` apply it to many records.

Balances
--------
Balances are cumulative over all epochs: an account's leaf in epoch N holds everything it
has ever earned, so only the newest root matters and a claim pays ``cumulative − claimed``.
The reward tree is an OpenZeppelin StandardMerkleTree over ``(address, uint256)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..crypto.merkle import StandardMerkleTree
from ..errors import InputError
from ..records.kinds import FeeRecord, RewardGrantRecord

__all__ = [
    "BPS",
    "REWARD_LEAF_ENCODING",
    "FeeSplit",
    "add_increments",
    "allocate_fees",
    "balances_from_tree",
    "increments_from_records",
    "reward_tree",
    "split_fee",
]

REWARD_LEAF_ENCODING = ["address", "uint256"]

#: Basis points in a whole: a :class:`FeeSplit` sums to this.
BPS = 10_000

# ------------------------------------------------------------------------------ fee split

_SPLIT_JSON_KEYS = ("contributorsBps", "developerBps", "operatorBps")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class FeeSplit:
    """How a fee is divided, in basis points: contributors, developer, operator.

    Each part is an integer in ``[0, 10_000]`` and the three sum to exactly ``10_000``;
    anything else raises :class:`~loraledger.errors.InputError`.
    """

    contributors_bps: int
    developer_bps: int
    operator_bps: int

    def __post_init__(self) -> None:
        values = self.as_tuple()
        shown = (
            f"contributors={self.contributors_bps!r}, developer={self.developer_bps!r}, "
            f"operator={self.operator_bps!r}"
        )
        if not all(_is_int(v) for v in values):
            raise InputError(f"fee split parts must be integers (basis points), got {shown}")
        if not all(0 <= v <= BPS for v in values):
            raise InputError(f"fee split parts must each be between 0 and {BPS} basis points, got {shown}")
        if sum(values) != BPS:
            raise InputError(f"fee split must sum to {BPS} basis points, got {shown} (sum {sum(values)})")

    @classmethod
    def from_tuple(cls, parts: Sequence[int]) -> FeeSplit:
        """``FeeSplit(*parts)`` from ``(contributors_bps, developer_bps, operator_bps)``."""
        try:
            contributors, developer, operator = parts
        except (TypeError, ValueError):
            raise InputError(
                f"fee split must be three basis-point values (contributors, developer, operator), got {parts!r}"
            ) from None
        return cls(contributors, developer, operator)

    def as_tuple(self) -> tuple[int, int, int]:
        """``(contributors_bps, developer_bps, operator_bps)``."""
        return (self.contributors_bps, self.developer_bps, self.operator_bps)

    def to_json(self) -> dict[str, int]:
        """``{"contributorsBps": ..., "developerBps": ..., "operatorBps": ...}``."""
        return dict(zip(_SPLIT_JSON_KEYS, self.as_tuple(), strict=True))

    @classmethod
    def from_json(cls, data: Any) -> FeeSplit:
        """Inverse of :meth:`to_json`: exactly those three keys, integer values."""
        if not isinstance(data, Mapping):
            raise InputError(f"fee split must be a JSON object, got {type(data).__name__}")
        keys = set(data)
        if keys != set(_SPLIT_JSON_KEYS):
            missing = [k for k in _SPLIT_JSON_KEYS if k not in keys]
            extra = sorted(str(k) for k in keys - set(_SPLIT_JSON_KEYS))
            raise InputError(
                f"fee split must have exactly the keys {', '.join(_SPLIT_JSON_KEYS)}"
                f" (missing: {missing or 'none'}; unexpected: {extra or 'none'})"
            )
        return cls(*(data[k] for k in _SPLIT_JSON_KEYS))


def _split_parts(
    fee: int, weights: Mapping[str, int], developer: str | None, operator: str, split: FeeSplit
) -> dict[str, int]:
    """:func:`split_fee` without the sorting: ``{account: amount > 0}`` in no set order."""
    if not _is_int(fee):
        raise InputError(f"fee must be an integer number of wei, got {fee!r}")
    if fee < 0:
        raise InputError(f"fee must not be negative, got {fee}")
    total_weight = 0
    for account, weight in weights.items():
        if not _is_int(weight):
            raise InputError(f"weight of {account} must be an integer, got {weight!r}")
        if weight < 0:
            raise InputError(f"weight of {account} must not be negative, got {weight}")
        total_weight += weight
    if not operator:
        raise InputError("a fee split needs an operator")
    if fee == 0:
        return {}

    # Every ideal share is numerator / denominator over one common denominator, so
    # shares and their fractional remainders compare as plain integers.
    shares: dict[str, int] = {}
    if total_weight:
        denominator = BPS * total_weight
        per_weight = fee * split.contributors_bps
        for account, weight in weights.items():
            if weight:
                shares[account] = per_weight * weight
        developer_share = fee * split.developer_bps * total_weight
        operator_share = fee * split.operator_bps * total_weight
    else:  # no contributors: their share goes to the developer, or else the operator
        denominator = BPS
        developer_share = fee * split.developer_bps
        operator_share = fee * split.operator_bps
        if developer:
            developer_share += fee * split.contributors_bps
        else:
            operator_share += fee * split.contributors_bps
    if developer:
        shares[developer] = shares.get(developer, 0) + developer_share
    else:  # no developer: the developer's share goes to the operator
        operator_share += developer_share
    shares[operator] = shares.get(operator, 0) + operator_share

    if len({account.lower() for account in shares}) != len(shares):
        raise InputError(
            "a fee split names one address in two spellings; use checksummed addresses: "
            + ", ".join(sorted(shares))
        )

    parts: dict[str, int] = {}
    remainders: list[tuple[int, str]] = []
    left = fee
    for account, numerator in shares.items():
        if not numerator:
            continue
        whole, remainder = divmod(numerator, denominator)
        parts[account] = whole
        left -= whole
        if remainder:
            remainders.append((remainder, account))
    if left:
        # Largest remainder first; equal remainders by address, lowercase hex ascending.
        remainders.sort(key=lambda item: (-item[0], item[1].lower()))
        for _, account in remainders[:left]:
            parts[account] += 1
    return {account: amount for account, amount in parts.items() if amount}


def split_fee(
    fee: int, weights: Mapping[str, int], developer: str | None, operator: str, split: FeeSplit
) -> dict[str, int]:
    """Divide one fee (wei) exactly: ``{account: amount}``, accounts sorted, amounts > 0.

    Ideal shares (exact rationals): the developer ``fee * developer_bps / 10_000``, the
    operator ``fee * operator_bps / 10_000``, and contributor *i* with weight *w_i* out of
    a total *W* ``fee * contributors_bps * w_i / (10_000 * W)``.

    Rules:

    * **Missing contributors.** If ``weights`` is empty or all zero, the contributors'
      share goes to the developer if there is one, else to the operator.
    * **Missing developer.** If ``developer`` is None (or empty), the developer's share
      goes to the operator.
    * **One address, several roles.** An address that is e.g. both the operator and a
      contributor is one party: its ideal share is the sum of its roles' shares, and it
      gets one entry.
    * **Rounding.** Each party gets the floor of its ideal share; the wei left over (fewer
      than the number of parties) go one each to the parties with the largest fractional
      remainders, compared exactly in integers; equal remainders go to the lower address
      (lowercase hex ascending). So the parts sum to ``fee`` exactly and each party is
      within 1 wei of its ideal share (strictly less than 1 wei away). Among pure
      contributors, a larger weight never gets less than a smaller one.
    * Zero amounts are left out (a zero-weight contributor gets no entry); ``fee == 0``
      gives ``{}``.

    Addresses must be spelled one way (checksummed, as in records); one address in two
    spellings, a negative or non-integer fee or weight raise
    :class:`~loraledger.errors.InputError`.
    """
    parts = _split_parts(fee, weights, developer, operator, split)
    return {account: parts[account] for account in sorted(parts)}


def allocate_fees(records: Iterable[FeeRecord], split: FeeSplit) -> dict[str, int]:
    """The sum of :func:`split_fee` over fee records: ``{account: amount}``, accounts sorted.

    The total equals the sum of the fees. Anything other than a :class:`FeeRecord`
    raises :class:`~loraledger.errors.InputError` (see :func:`increments_from_records`
    for mixed record lists).
    """
    totals: dict[str, int] = {}
    get = totals.get
    for record in records:
        if not isinstance(record, FeeRecord):
            raise InputError(f"allocate_fees takes fee records, got {type(record).__name__}")
        for account, amount in _split_parts(
            record.fee, record.weights, record.developer, record.operator, split
        ).items():
            totals[account] = get(account, 0) + amount
    return {account: totals[account] for account in sorted(totals)}


def increments_from_records(records: Iterable[Any], split: FeeSplit) -> list[tuple[str, int]]:
    """What each record adds to cumulative balances, as ``(account, amount)`` increments.

    In record order: a :class:`FeeRecord` gives its :func:`split_fee` parts (accounts
    sorted), a :class:`RewardGrantRecord` gives ``(account, amount)``, any other record
    kind gives nothing. Feed the result to :func:`add_increments`.
    """
    increments: list[tuple[str, int]] = []
    for record in records:
        if isinstance(record, FeeRecord):
            increments.extend(
                split_fee(record.fee, record.weights, record.developer, record.operator, split).items()
            )
        elif isinstance(record, RewardGrantRecord):
            increments.append((record.account, record.amount))
    return increments


# ------------------------------------------------------------------------------ balances


def add_increments(previous: Mapping[str, int], increments: Iterable[tuple[str, int]]) -> dict[str, int]:
    """New cumulative balances: ``previous`` plus each ``(account, amount)`` increment.

    Accounts must already be checksummed; amounts non-negative. The result is a new dict
    with accounts in sorted order (so dumps are stable).
    """
    balances = dict(previous)
    for account, amount in increments:
        if amount < 0:
            raise InputError(f"negative reward {amount} for {account}")
        balances[account] = balances.get(account, 0) + amount
    return {account: balances[account] for account in sorted(balances) if balances[account] > 0}


def reward_tree(balances: Mapping[str, int]) -> StandardMerkleTree:
    """The OZ StandardMerkleTree of ``(account, cumulativeAmount)`` for every account with a balance."""
    if not balances:
        raise InputError("no balances to put in a reward tree")
    return StandardMerkleTree.of([[account, amount] for account, amount in balances.items()], REWARD_LEAF_ENCODING)


def balances_from_tree(tree: StandardMerkleTree) -> dict[str, int]:
    """Cumulative balances read back from a reward tree (e.g. a loaded dump)."""
    if list(tree.leaf_encoding) != REWARD_LEAF_ENCODING:
        raise InputError(f"reward tree must encode {REWARD_LEAF_ENCODING}, got {list(tree.leaf_encoding)}")
    balances: dict[str, int] = {}
    for _, (account, amount) in tree.entries():
        if account in balances:
            raise InputError(f"reward tree lists {account} twice")
        balances[account] = int(amount)
    return balances
