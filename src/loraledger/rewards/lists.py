"""Parse reward lists: ``address,amount`` rows from CSV or JSON (pure, no I/O).

Accepted shapes:

* CSV with an optional header ``address,amount`` (``account`` is accepted for ``address``);
  blank lines and lines starting with ``#`` are ignored.
* JSON: a list of ``{"address": ..., "amount": ...}`` objects, a list of
  ``[address, amount]`` pairs, or an object mapping address to amount.

Amounts are integers in the token's smallest unit (wei), given as JSON integers or
decimal strings. Every problem is an ``InputError`` naming the row.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..records import fields as records


@dataclass(frozen=True)
class RewardRow:
    """One line of a reward list: pay ``amount`` wei to ``account``."""

    account: str
    amount: int


def parse_address(value: Any, *, where: str) -> str:
    """A checksummed address, or an InputError that says where and why ``value`` is not one."""
    try:
        return records.parse_address(value.strip() if isinstance(value, str) else value)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def parse_amount(value: Any, *, where: str) -> int:
    """A positive integer amount in wei from an int or a decimal string."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.startswith("-") and text[1:].isdigit():
        raise InputError(f"{where}: amount {text} is negative")
    try:
        amount = records.parse_wei(text)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    if amount == 0:
        raise InputError(f"{where}: amount is zero; leave the row out instead")
    return amount


def _rows_from_json(data: Any) -> list[tuple[str, Any, Any]]:
    if isinstance(data, dict):
        return [(f"entry {key!r}", key, value) for key, value in data.items()]
    if not isinstance(data, list):
        raise InputError("JSON reward list must be a list of {address, amount} objects or an object address→amount")
    rows = []
    for index, item in enumerate(data):
        where = f"entry {index}"
        if isinstance(item, dict):
            address = item.get("address", item.get("account"))
            if address is None or "amount" not in item:
                raise InputError(f"{where}: needs 'address' and 'amount' keys, got {sorted(item)}")
            rows.append((where, address, item["amount"]))
        elif isinstance(item, list) and len(item) == 2:
            rows.append((where, item[0], item[1]))
        else:
            raise InputError(f"{where}: expected an object or an [address, amount] pair")
    return rows


def _rows_from_csv(text: str) -> list[tuple[str, Any, Any]]:
    rows = []
    for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not fields or not "".join(fields).strip() or fields[0].strip().startswith("#"):
            continue
        cells = [f.strip() for f in fields]
        if number == 1 and cells[0].lower() in ("address", "account"):
            if len(cells) < 2 or cells[1].lower() != "amount":
                raise InputError("line 1: header must be 'address,amount'")
            continue
        if len(cells) != 2:
            raise InputError(f"line {number}: expected 2 columns (address,amount), got {len(cells)}")
        rows.append((f"line {number}", cells[0], cells[1]))
    return rows


def parse_reward_list(text: str, *, fmt: str | None = None) -> list[RewardRow]:
    """Parse a reward list; ``fmt`` is ``"csv"``, ``"json"`` or None to detect it."""
    stripped = text.lstrip()
    if fmt is None:
        fmt = "json" if stripped.startswith(("[", "{")) else "csv"
    if fmt == "json":
        try:
            raw_rows = _rows_from_json(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InputError(f"reward list is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    elif fmt == "csv":
        raw_rows = _rows_from_csv(text)
    else:
        raise InputError(f"unknown reward list format {fmt!r}: use csv or json")
    if not raw_rows:
        raise InputError("reward list is empty: it needs at least one address,amount row")
    seen: dict[str, str] = {}
    rows = []
    for where, address, amount in raw_rows:
        account = parse_address(address, where=where)
        if account in seen:
            raise InputError(f"{where}: duplicate account {account} (also at {seen[account]}); merge the rows")
        seen[account] = where
        rows.append(RewardRow(account, parse_amount(amount, where=where)))
    return rows
