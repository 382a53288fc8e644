"""`loraledger fees import`: JSON-lines fee records, all or nothing, errors name the line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from loraledger.db import make_engine
from loraledger.records.ledger import RecordLedger

A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
OP = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def run(tmp_path, *args):
    env = dict(os.environ, LORALEDGER_DATA_DIR=str(tmp_path / "data"), LORALEDGER_DEPLOYMENTS_DIR=str(tmp_path / "none"))
    return subprocess.run([sys.executable, "-m", "loraledger", *args], env=env, capture_output=True, text=True, timeout=60)


def line(**fields) -> str:
    return json.dumps({"payer": A, "fee": "1000", "weights": {B: 1}, "operator": OP, **fields}) + "\n"


def size(tmp_path) -> int:
    return RecordLedger(make_engine(f"sqlite:///{tmp_path / 'data' / 'ledger.sqlite'}")).size()


def test_import_appends_every_line(tmp_path):
    path = tmp_path / "fees.jsonl"
    path.write_text(line(ref="1") + "\n" + line(ref="2", developer=A))
    result = run(tmp_path, "fees", "import", str(path))
    assert result.returncode == 0, result.stderr
    assert "appended 2 fee records (seq 0..1)" in result.stdout
    assert size(tmp_path) == 2


@pytest.mark.parametrize(
    "text,needle",
    [
        (line() + '{"payer": "0x12", "fee": "1", "operator": "' + OP + '"}\n', "line 2"),
        (line() + line(fee="-4"), "line 2"),
        (line() + "not json\n", "line 2: not JSON"),
        (line() + "[1, 2]\n", "line 2: expected a JSON object"),
        (line(kind="reward_grant"), "line 1"),
        ("\n\n", "no records"),
        (json.dumps({"payer": A, "fee": "1"}) + "\n", "no operator given"),
    ],
)
def test_a_bad_line_rejects_the_whole_file(tmp_path, text, needle):
    path = tmp_path / "fees.jsonl"
    path.write_text(text)
    result = run(tmp_path, "fees", "import", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert needle in result.stderr, result.stderr
    assert size(tmp_path) == 0  # nothing was appended


def test_missing_file(tmp_path):
    result = run(tmp_path, "fees", "import", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 3 and "does not exist" in result.stderr
