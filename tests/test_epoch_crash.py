"""Money path under crashes and reorgs, on a real anvil with real processes.

Each failpoint SIGKILLs a real `loraledger epoch close` at one line; a plain restart must
finish the epoch without posting twice, skipping an epoch or paying anyone twice. A post
removed by a reorg (anvil evm_snapshot/evm_revert) is detected and sent again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from conftest import cli_environment, start_anvil

from loraledger.chain.client import ChainClient
from loraledger.chain.contracts import LedgerContracts, all_packaged_abis
from loraledger.chain.deploy import Deployer
from loraledger.db import make_engine
from loraledger.epochs.machine import EpochManager
from loraledger.epochs.store import EpochFileStore
from loraledger.epochs.tables import EpochStatus
from loraledger.failpoints import FAILPOINTS
from loraledger.node.context import create_tables
from loraledger.records.kinds import FeeRecord
from loraledger.records.ledger import RecordLedger


def fee_lines(accounts, fee: int, n: int, ref: str) -> str:
    payer, dev = accounts[5], accounts[4]
    return "".join(
        json.dumps({"payer": payer.address, "fee": str(fee + i), "ref": f"{ref}-{i}", "developer": dev.address,
                    "weights": {accounts[1].address: 3, accounts[2].address: 1 + i}}) + "\n"
        for i in range(n)
    )


def cli(env, *args, failpoint: str | None = None) -> subprocess.CompletedProcess:
    full = dict(env)
    if failpoint:
        full["LORALEDGER_FAILPOINTS"] = failpoint
    return subprocess.run([sys.executable, "-m", "loraledger", *args], env=full, capture_output=True, text=True, timeout=180)


@pytest.fixture
def chain_node(artifacts, accounts, tmp_path):
    """A fresh anvil with the contracts deployed, and a CLI environment for one node."""
    node = start_anvil()
    client = ChainClient(node.url, error_abis=all_packaged_abis())
    deployments = tmp_path / "deployments"
    deployment = Deployer(client, accounts[0], artifacts, deployments / "31337.json").run()
    env = cli_environment(node.url, tmp_path, operator=accounts[0], deployments=deployments)
    yield env, LedgerContracts(client, deployment), tmp_path
    node.process.kill()


@pytest.mark.parametrize("point", FAILPOINTS)
def test_kill_at_any_failpoint_then_restart(chain_node, accounts, point):
    env, contracts, tmp_path = chain_node
    operator = accounts[0].address
    start_balance = contracts.balance_of(operator)
    (tmp_path / "f1.jsonl").write_text(fee_lines(accounts, 10**18, 4, "a"))
    assert cli(env, "fees", "import", str(tmp_path / "f1.jsonl")).returncode == 0

    killed = cli(env, "epoch", "close", failpoint=point)
    assert killed.returncode == -signal.SIGKILL, (point, killed.stdout, killed.stderr)

    restarted = cli(env, "epoch", "close")
    assert restarted.returncode == 0, restarted.stderr
    status = json.loads(cli(env, "epoch", "status", "--json").stdout)
    assert [e["status"] for e in status["epochs"]] == ["confirmed"]
    total = int(status["epochs"][0]["total"])
    assert total == sum(10**18 + i for i in range(4))
    assert contracts.current_epoch() == 1
    assert contracts.total_funded() == total  # funded once
    assert contracts.balance_of(operator) == start_balance - total
    assert len(contracts.epoch_post_blocks()) == 1  # one EpochPosted event

    # The next epoch follows without a gap, and nothing is paid twice.
    (tmp_path / "f2.jsonl").write_text(fee_lines(accounts, 5 * 10**17, 2, "b"))
    assert cli(env, "fees", "import", str(tmp_path / "f2.jsonl")).returncode == 0
    assert cli(env, "epoch", "close").returncode == 0
    assert contracts.current_epoch() == 2
    assert contracts.total_funded() == total + 2 * 5 * 10**17 + 1
    verify = cli(env, "verify")
    assert verify.returncode == 0, verify.stderr


def test_close_with_nothing_new_does_not_post(chain_node, accounts):
    env, contracts, tmp_path = chain_node
    out = cli(env, "epoch", "close")
    assert out.returncode == 0 and "nothing to seal" in out.stdout
    assert contracts.current_epoch() == 0


def _manager(contracts, accounts, tmp_path, confirmations):
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    create_tables(engine)
    records = RecordLedger(engine)
    manager = EpochManager(engine, records, EpochFileStore(tmp_path / "epochs"), contracts, operator=accounts[0],
                           lock_path=tmp_path / "epochs.lock", confirmations=confirmations, timeout=30)
    return records, manager


def test_post_dropped_by_a_reorg_is_sent_again(chain_node, accounts):
    _, contracts, tmp_path = chain_node
    w3 = contracts.client.w3
    records, manager = _manager(contracts, accounts, tmp_path, confirmations=2)
    records.append_many([
        FeeRecord(timestamp=1, payer=accounts[5].address, fee=10**18, weights={accounts[1].address: 1},
                  developer=accounts[4].address, operator=accounts[0].address),
    ])
    row = manager.seal()
    manager.contracts.ensure_allowance(accounts[0], int(row.total), what="test")
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    manager.submit(row)
    assert contracts.current_epoch() == 1
    assert manager.confirm(manager._get(1)) is False  # mined, one confirmation of two

    w3.provider.make_request("evm_revert", [snapshot])  # the block with the post is gone
    assert contracts.current_epoch() == 0
    assert manager.confirm(manager._get(1)) is True  # detected: back to sealed
    assert manager._get(1).status == EpochStatus.SEALED

    manager.submit(manager._get(1))  # the stored transaction is re-broadcast
    w3.provider.make_request("anvil_mine", ["0x1"])
    assert manager.confirm(manager._get(1)) is True
    assert manager._get(1).status == EpochStatus.CONFIRMED
    assert contracts.current_epoch() == 1
    assert contracts.total_funded() == int(row.total)


def test_confirmation_waits_for_depth(chain_node, accounts):
    _, contracts, tmp_path = chain_node
    records, manager = _manager(contracts, accounts, tmp_path, confirmations=3)
    records.append_many([
        FeeRecord(timestamp=1, payer=accounts[5].address, fee=7, weights={}, operator=accounts[0].address),
    ])
    row = manager.seal()
    manager.submit(row)
    assert manager.confirm(manager._get(1)) is False
    contracts.client.w3.provider.make_request("anvil_mine", ["0x2"])
    assert manager.confirm(manager._get(1)) is True
    assert manager._get(1).status == EpochStatus.CONFIRMED


def test_a_ledger_is_bound_to_one_deployment(chain_node, accounts, artifacts):
    from loraledger.errors import ConfigError

    _, contracts, tmp_path = chain_node
    _manager(contracts, accounts, tmp_path, confirmations=1)
    other = Deployer(contracts.client, accounts[0], artifacts, tmp_path / "other.json", redeploy=True).run()
    with pytest.raises(ConfigError, match="posts to AttributionLedger"):
        _manager(LedgerContracts(contracts.client, other), accounts, tmp_path, confirmations=1)


def test_epochs_on_postgresql_survive_a_kill(chain_node, accounts, pg_server):
    """The same money path with the ledger in a real PostgreSQL database."""
    from pg import create_database

    env, contracts, tmp_path = chain_node
    env = dict(env, LORALEDGER_DATABASE_URL=create_database(pg_server, "epochs_kill"))
    (tmp_path / "f1.jsonl").write_text(fee_lines(accounts, 10**18, 3, "pg"))
    assert cli(env, "fees", "import", str(tmp_path / "f1.jsonl")).returncode == 0
    assert cli(env, "epoch", "close", failpoint="submit.after_sign").returncode == -signal.SIGKILL
    assert cli(env, "epoch", "close").returncode == 0
    assert contracts.current_epoch() == 1 and len(contracts.epoch_post_blocks()) == 1
    assert not (tmp_path / "data" / "ledger.sqlite").exists()  # the ledger really lives in PostgreSQL
    assert cli(env, "verify").returncode == 0


def test_a_post_that_reverts_on_chain_is_signed_again_once_fixed(anvil, accounts, artifacts, tmp_path):
    """Signed and stored, then the operator loses its role before broadcast: the mined post
    reverts, the epoch goes back to sealed, and after the fix a new post goes through."""
    from conftest import tool

    admin, operator = accounts[0], accounts[6]
    client = ChainClient(anvil.url, error_abis=all_packaged_abis())
    deployment = Deployer(client, admin, artifacts, tmp_path / "deployments" / "31337.json", operator=operator.address).run()
    contracts = LedgerContracts(client, deployment)
    contracts.client.transact(admin, contracts.token.functions.transfer(operator.address, 10**21), what="fund operator")
    env = cli_environment(anvil.url, tmp_path, operator=operator)
    (tmp_path / "f.jsonl").write_text(fee_lines(accounts, 10**18, 2, "rv"))  # operator: the deployment's
    assert cli(env, "fees", "import", str(tmp_path / "f.jsonl")).returncode == 0
    assert cli(env, "epoch", "close", failpoint="submit.after_sign").returncode == -signal.SIGKILL

    ledger = deployment.address("AttributionLedger")
    role = "0x" + contracts.ledger.functions.OPERATOR_ROLE().call().hex()
    cast = [tool("cast"), "send", ledger, "--rpc-url", anvil.url, "--private-key", "0x" + admin.key.hex()]
    subprocess.run([*cast, "revokeRole(bytes32,address)", role, operator.address], check=True, capture_output=True)
    failed = cli(env, "epoch", "close")  # re-broadcasts the stored post, which now reverts
    assert failed.returncode == 5 and "reverted on chain" in failed.stderr, failed.stderr
    status = json.loads(cli(env, "epoch", "status", "--json").stdout)
    assert status["epochs"][0]["status"] == "sealed" and status["chainEpoch"] == 0

    subprocess.run([*cast, "grantRole(bytes32,address)", role, operator.address], check=True, capture_output=True)
    assert cli(env, "epoch", "close").returncode == 0
    assert contracts.current_epoch() == 1 and len(contracts.epoch_post_blocks()) == 1
