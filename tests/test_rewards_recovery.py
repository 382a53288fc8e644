"""A sealed epoch whose posting failed is posted by the next run, once, and never sealed twice."""

from __future__ import annotations

import json
import subprocess

from conftest import cli_environment, tool
from test_cli_rewards import run


def test_failed_post_is_finished_by_the_next_run(anvil, accounts, tmp_path):
    operator, deployer = accounts[5], accounts[0]
    env = cli_environment(anvil.url, tmp_path, operator=deployer)
    run(env, "contracts", "deploy", "--operator", operator.address)
    env["LORALEDGER_OPERATOR_KEY"] = "0x" + operator.key.hex()  # holds no OPEN yet
    rewards = tmp_path / "r.csv"
    rewards.write_text(f"{accounts[1].address},{10**18}\n")

    failed = run(env, "rewards", "post", str(rewards), check=False)
    assert failed.returncode == 5 and "fund the operator" in failed.stderr
    epochs = tmp_path / "data" / "epochs"
    sealed = (epochs / "1.json").read_bytes()
    status = json.loads(run(env, "epoch", "status", "--json").stdout)
    assert [e["status"] for e in status["epochs"]] == ["sealed"] and status["chainEpoch"] == 0

    token = json.loads((tmp_path / "deployments" / "31337.json").read_text())["contracts"]["OpenToken"]["address"]
    subprocess.run([tool("cast"), "send", token, "transfer(address,uint256)", operator.address, str(10**20),
                    "--rpc-url", anvil.url, "--private-key", "0x" + deployer.key.hex()], check=True, capture_output=True)

    out = run(env, "rewards", "post", str(rewards)).stdout
    assert "appended before" in out  # the list was not appended twice
    assert (epochs / "1.json").read_bytes() == sealed
    status = json.loads(run(env, "epoch", "status", "--json").stdout)
    assert [e["status"] for e in status["epochs"]] == ["confirmed"] and status["chainEpoch"] == 1
    assert not (epochs / "2.json").exists()
    assert "verified 1 epoch:" in run(env, "verify").stdout
