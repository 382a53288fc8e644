"""`loraledger node run`: the real daemon closes epochs by policy and serves the API."""

from __future__ import annotations

import time

import httpx
from conftest import cli_environment, free_port, node_process, wait_for

from loraledger.chain.client import ChainClient
from loraledger.chain.deploy import Deployer
from loraledger.epochs.machine import EpochPolicy


def test_policy_closes_on_records_or_time_whichever_first():
    policy = EpochPolicy(seconds=60, records=100)
    assert not policy.due(0, 10_000)  # nothing to seal, however long it has been
    assert not policy.due(99, 59)
    assert policy.due(100, 0)
    assert policy.due(1, 60)


def test_daemon_closes_an_epoch_when_enough_records_arrive(anvil, accounts, artifacts, tmp_path):
    deployments = tmp_path / "deployments"
    Deployer(ChainClient(anvil.url), accounts[0], artifacts, deployments / "31337.json").run()
    port = free_port()
    env = cli_environment(anvil.url, tmp_path, operator=accounts[0], deployments=deployments,
                          LORALEDGER_ADMIN_TOKEN="t0ken", LORALEDGER_EPOCH_RECORDS="3", LORALEDGER_EPOCH_SECONDS="3600")
    with node_process(env, port, tmp_path / "node.log") as node:
        url = node.url
        fee = {"kind": "fee", "timestamp": 1, "payer": accounts[5].address, "fee": "1000",
               "weights": {accounts[1].address: 1}, "operator": accounts[0].address}
        headers = {"Authorization": "Bearer t0ken"}
        httpx.post(f"{url}/v1/records", json=[fee, {**fee, "ref": "2"}], headers=headers).raise_for_status()
        time.sleep(2.5)
        assert httpx.get(f"{url}/v1/epochs").json() == []  # 2 records: below the policy's 3
        httpx.post(f"{url}/v1/records", json={**fee, "ref": "3"}, headers=headers).raise_for_status()
        epochs = wait_for(lambda: (e := httpx.get(f"{url}/v1/epochs").json()) and e[0]["status"] == "confirmed" and e,
                          60, "the epoch to be confirmed", interval=0.3)
        assert epochs[0]["records"] == 3
        reward = httpx.get(f"{url}/v1/rewards/{accounts[1].address}").json()
        assert int(reward["cumulativeAmount"]) == 3 * 700  # the contributors' 70% of each 1000-wei fee
