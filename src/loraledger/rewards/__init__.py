"""Rewards: the fee split and cumulative balances (pure), reward lists (pure), fee import."""
