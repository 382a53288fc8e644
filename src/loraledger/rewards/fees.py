"""Fee records from JSON lines, appended to the ledger all or nothing.

Each line: ``{"payer": addr, "fee": wei, "weights": {addr: int}, "developer": addr?,
"operator": addr?, "ref": str?}``. A line without ``operator`` is credited to the node's
operator. Any bad line rejects the whole file, naming the line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import InputError, NotFoundError
from ..records.kinds import FeeRecord, Record, record_from_dict
from ..records.ledger import RecordLedger


def parse_fee_lines(text: str, *, default_operator: str | None, timestamp: int) -> list[FeeRecord]:
    records: list[FeeRecord] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {number}: not JSON ({exc.msg})") from None
        if not isinstance(raw, dict):
            raise InputError(f"line {number}: expected a JSON object")
        raw = {"kind": "fee", "timestamp": timestamp, "weights": {}, **raw}
        if raw.get("operator") is None:
            if default_operator is None:
                raise InputError(
                    f"line {number}: no operator given, and no single deployment to take it from "
                    "(set LORALEDGER_CHAIN_ID, or give \"operator\" on each line)"
                )
            raw["operator"] = default_operator
        try:
            record = record_from_dict(raw)
        except InputError as exc:
            raise InputError(f"line {number}: {exc}") from None
        if not isinstance(record, FeeRecord):
            raise InputError(f"line {number}: expected a fee record, got kind {record.kind!r}")
        records.append(record)
    if not records:
        raise InputError("the fee file has no records")
    return records


def import_fee_file(records: RecordLedger, path: Path, *, default_operator: str | None) -> list[Record]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"fee file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read fee file {path}: {exc}") from None
    return records.append_many(parse_fee_lines(text, default_operator=default_operator, timestamp=int(time.time())))
