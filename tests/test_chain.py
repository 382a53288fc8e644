"""The chain edge against a real anvil: deploy, idempotency, revert decoding, bad RPCs."""

from __future__ import annotations

import json

import pytest
from conftest import free_port, start_anvil

from loraledger.chain.client import ChainClient
from loraledger.chain.compile import all_abis
from loraledger.chain.contracts import LedgerContracts, packaged_abi
from loraledger.chain.deploy import CONTRACT_NAMES, OPERATOR_ROLE, Deployer, load_deployment
from loraledger.errors import ChainError, ConfigError, InputError, NotFoundError, TransactionReverted


def test_packaged_abis_match_the_compiled_contracts(artifacts):
    for name in CONTRACT_NAMES:
        assert packaged_abi(name) == artifacts[name].abi, (
            f"src/loraledger/chain/abi/{name}.json is stale: run scripts/export_abis.py"
        )


def test_deployment_file_records_every_contract(deployment, accounts):
    deployed, path, client = deployment
    raw = json.loads(path.read_text())
    assert raw["chainId"] == client.chain_id == 31337
    assert raw["complete"] is True
    assert set(raw["contracts"]) == set(CONTRACT_NAMES)
    for name, entry in raw["contracts"].items():
        assert client.has_code(entry["address"]), name
        assert entry["buildHash"].startswith("0x") and entry["txHash"].startswith("0x")
    assert raw["deployBlock"] == min(c["block"] for c in raw["contracts"].values())
    assert load_deployment(path).contracts == deployed.contracts


def test_wiring_and_roles(deployment, accounts):
    deployed, _, client = deployment
    contracts = LedgerContracts(client, deployed)
    assert contracts.ledger.functions.distributor().call() == deployed.address("RewardDistributor")
    assert contracts.distributor.functions.ledger().call() == deployed.address("AttributionLedger")
    assert contracts.fee_split() == (7000, 2000, 1000)
    for name in ("AttributionLedger", "DatanetRegistry", "AdapterRegistry", "PaymentVault"):
        contract = client.contract(deployed.address(name), packaged_abi(name))
        assert contract.functions.hasRole(OPERATOR_ROLE, accounts[0].address).call()
    vault = client.contract(deployed.address("PaymentVault"), packaged_abi("PaymentVault"))
    assert vault.functions.token().call() == deployed.address("OpenToken")


def test_second_deploy_reuses_everything(deployment, artifacts, accounts):
    deployed, path, client = deployment
    before = path.read_bytes()
    block = client.w3.eth.block_number
    again = Deployer(client, accounts[0], artifacts, path).run()
    assert again.contracts == deployed.contracts
    assert path.read_bytes() == before
    assert client.w3.eth.block_number == block  # not a single transaction


def test_interrupted_deploy_resumes(artifacts, accounts, tmp_path):
    node = start_anvil()
    try:
        client = ChainClient(node.url, error_abis=all_abis(artifacts))
        path = tmp_path / "31337.json"
        partial = Deployer(client, accounts[0], {k: v for k, v in artifacts.items()}, path)
        # Simulate a crash after two contracts: deploy them, then stop.
        deployment = partial._start()
        token = partial._ensure(deployment, "OpenToken", accounts[0].address, 10**24)
        partial._ensure(deployment, "AttributionLedger", accounts[0].address, token, 7000, 2000, 1000)
        assert json.loads(path.read_text())["complete"] is False
        with pytest.raises(ConfigError, match="incomplete"):
            load_deployment(path)
        resumed = Deployer(client, accounts[0], artifacts, path).run()
        assert resumed.complete
        assert resumed.address("OpenToken") == token  # reused, not redeployed
    finally:
        node.process.kill()


def test_a_deployment_from_before_a_new_contract_gets_it_and_keeps_the_rest(artifacts, accounts, tmp_path):
    """A complete deployment recorded before PaymentVault existed: deploying again adds the vault
    (with its operator role) and reuses every other contract."""
    node = start_anvil()
    try:
        client = ChainClient(node.url, error_abis=all_abis(artifacts))
        path = tmp_path / "31337.json"
        first = Deployer(client, accounts[0], artifacts, path).run()
        raw = json.loads(path.read_text())
        del raw["contracts"]["PaymentVault"]
        path.write_text(json.dumps(raw))
        upgraded = Deployer(client, accounts[0], artifacts, path).run()
        assert upgraded.complete and upgraded.address("PaymentVault") != first.address("PaymentVault")
        assert {n: c for n, c in upgraded.contracts.items() if n != "PaymentVault"} == \
            {n: c for n, c in first.contracts.items() if n != "PaymentVault"}
        vault = client.contract(upgraded.address("PaymentVault"), packaged_abi("PaymentVault"))
        assert vault.functions.hasRole(OPERATOR_ROLE, accounts[0].address).call()
        assert load_deployment(path).address("PaymentVault") == upgraded.address("PaymentVault")
    finally:
        node.process.kill()


def test_reset_chain_gets_a_fresh_deployment_and_changed_code_is_refused(artifacts, accounts, tmp_path):
    path = tmp_path / "31337.json"
    first = start_anvil()
    try:
        Deployer(ChainClient(first.url), accounts[0], artifacts, path).run()
    finally:
        first.process.kill()
    second = start_anvil("--chain-id", "31337")
    try:
        client = ChainClient(second.url)
        # burn nonce 0 of the deployer so that new addresses differ from the recorded ones
        client.w3.eth.send_transaction({"from": accounts[0].address, "to": accounts[1].address, "value": 1})
        fresh = Deployer(client, accounts[0], artifacts, path).run()
        assert fresh.complete and client.has_code(fresh.address("RewardDistributor"))
        raw = json.loads(path.read_text())
        raw["contracts"]["OpenToken"]["buildHash"] = "0x" + "00" * 32
        path.write_text(json.dumps(raw))
        with pytest.raises(ConfigError, match="other sources"):
            Deployer(client, accounts[0], artifacts, path).run()
        assert Deployer(client, accounts[0], artifacts, path, redeploy=True).run().complete
    finally:
        second.process.kill()


def test_reverts_are_decoded_custom_errors(deployment, accounts):
    deployed, _, client = deployment
    contracts = LedgerContracts(client, deployed)
    stranger = accounts[7]
    with pytest.raises(TransactionReverted) as info:
        client.transact(stranger, contracts.ledger.functions.setFeeSplit(5000, 3000, 2000), what="set fee split")
    assert info.value.error_name == "AccessControlUnauthorizedAccount"
    assert info.value.error_args["account"] == stranger.address
    assert "AccessControlUnauthorizedAccount" in str(info.value)

    with pytest.raises(TransactionReverted) as info:
        client.transact(accounts[0], contracts.ledger.functions.setFeeSplit(5000, 3000, 1000), what="set fee split")
    assert info.value.error_name == "InvalidFeeSplit"

    with pytest.raises(TransactionReverted) as info:
        client.transact(stranger, contracts.distributor.functions.claim(stranger.address, 1, []), what="claim")
    assert info.value.error_name in ("InvalidProof", "NothingToClaim")


def test_unknown_epoch_read_is_a_decoded_error(deployment):
    deployed, _, client = deployment
    contracts = LedgerContracts(client, deployed)
    with pytest.raises(TransactionReverted, match="UnknownEpoch"):
        contracts.epoch(999)


def test_unreachable_rpc_is_one_clear_error():
    with pytest.raises(ChainError, match="cannot reach the chain RPC"):
        ChainClient(f"http://127.0.0.1:{free_port()}", request_timeout=2)


def test_wrong_chain_id_is_refused(anvil):
    with pytest.raises(ChainError, match="serves chain 31337"):
        ChainClient(anvil.url, expected_chain_id=1)


def test_missing_deployments_file(tmp_path):
    with pytest.raises(NotFoundError, match="contracts deploy"):
        load_deployment(tmp_path / "31337.json")


def test_malformed_deployments_file(tmp_path):
    path = tmp_path / "31337.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        load_deployment(path)


def test_bad_operator_address_is_refused(deployment, artifacts, accounts, tmp_path):
    _, _, client = deployment
    with pytest.raises(InputError, match="operator"):
        Deployer(client, accounts[0], artifacts, tmp_path / "x.json", operator="0x1234")


def test_nonce_manager_handles_back_to_back_transactions(deployment, accounts):
    deployed, _, client = deployment
    token = client.contract(deployed.address("OpenToken"), packaged_abi("OpenToken"))
    receipts = [
        client.transact(accounts[0], token.functions.transfer(accounts[8].address, 1), what=f"transfer {i}")
        for i in range(5)
    ]
    nonces = [client.w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts]
    assert nonces == list(range(nonces[0], nonces[0] + 5))
    # someone else used the key meanwhile: the manager resynchronises
    client.w3.eth.send_transaction({"from": accounts[0].address, "to": accounts[1].address, "value": 1})
    client.transact(accounts[0], token.functions.transfer(accounts[8].address, 1), what="after external tx")
    assert token.functions.balanceOf(accounts[8].address).call() == 6
