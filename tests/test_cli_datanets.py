"""`loraledger datanet ...` through real CLI processes, a real anvil and SQLite."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import cli_environment

from loraledger.chain.client import ChainClient
from loraledger.chain.deploy import Deployer


def run(env, *args, key=None):
    full = dict(env)
    if key is not None:
        full["LORALEDGER_KEY"] = "0x" + key.key.hex()
    return subprocess.run([sys.executable, "-m", "loraledger", *args], env=full, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def env(anvil, accounts, artifacts, tmp_path):
    Deployer(ChainClient(anvil.url), accounts[0], artifacts, tmp_path / "deployments" / "31337.json", redeploy=True).run()
    return cli_environment(anvil.url, tmp_path, operator=accounts[0])


def test_datanet_cli_flow(env, accounts, tmp_path):
    created = run(env, "datanet", "create", "--name", "notes", "--schema", "text", "--license", "MIT",
                  "--policy", "review", "--owner", accounts[1].address)
    assert created.returncode == 0, created.stderr
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"Field note {i}: the heron waited {i * 3} minutes by the reeds."}) + "\n"
                            for i in range(5)))
    out = run(env, "datanet", "contribute", "1", str(rows), "--license", "MIT", "--batch-size", "2", key=accounts[2])
    assert out.returncode == 0, out.stderr
    assert "5 rows recorded in datanet 1 (pending)" in out.stdout

    again = run(env, "datanet", "contribute", "1", str(rows), "--license", "MIT", key=accounts[3])
    assert again.returncode == 2 and "batch 1 of 1" in again.stderr and "duplicate" in again.stderr
    assert "Traceback" not in again.stderr
    bad_license = run(env, "datanet", "contribute", "1", str(rows), "--license", "GPL-3.0", key=accounts[3])
    assert bad_license.returncode == 2 and "licen" in bad_license.stderr

    # only the owner (or the operator) reviews
    stranger = run(env, "datanet", "review", "1", "--all-pending", key=accounts[5])
    assert stranger.returncode == 2 and "only the owner" in stranger.stderr
    reviewed = run(env, "datanet", "review", "1", "--all-pending", "--accept", key=accounts[1])
    assert reviewed.returncode == 0 and "accepted 5 rows" in reviewed.stdout

    snap = run(env, "datanet", "snapshot", "1", "--export", str(tmp_path / "v1"))
    assert snap.returncode == 0, snap.stderr
    assert "version 1: 5 rows" in snap.stdout
    exported = [json.loads(line) for line in (tmp_path / "v1" / "rows.jsonl").read_text().splitlines()]
    assert len(exported) == 5
    proof = json.loads(run(env, "datanet", "proof", "1", exported[2]["row_hash"]).stdout)
    assert proof["verifiedOnChain"] is True and proof["contributor"] == accounts[2].address

    shown = json.loads(run(env, "datanet", "show", "1", "--json").stdout)
    assert shown["latestVersion"] == 1 and shown["rows"] == {"accepted": 5}
    assert shown["domain"]["chainId"] == 31337

    missing = run(env, "datanet", "show", "9")
    assert missing.returncode == 3 and "no datanet 9" in missing.stderr
