"""Reward maths (pure): cumulative balances and the reward tree.

Balances are cumulative over all epochs: an account's leaf in epoch N holds everything it
has ever earned, so only the newest root matters and a claim pays ``cumulative − claimed``.
The reward tree is an OpenZeppelin StandardMerkleTree over ``(address, uint256)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import InputError
from .merkle import StandardMerkleTree

REWARD_LEAF_ENCODING = ["address", "uint256"]


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
