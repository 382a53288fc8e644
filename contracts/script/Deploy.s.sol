// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Vm, VM_ADDRESS} from "../test/utils/Vm.sol";
import {OpenToken} from "../src/OpenToken.sol";
import {AttributionLedger} from "../src/AttributionLedger.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {DatanetRegistry} from "../src/DatanetRegistry.sol";
import {AdapterRegistry} from "../src/AdapterRegistry.sol";
import {PaymentVault} from "../src/PaymentVault.sol";

/// @title Deploy
/// @notice Deploys and wires loraledger's contracts: OpenToken, AttributionLedger, RewardDistributor (wired into
/// the ledger), DatanetRegistry, AdapterRegistry and PaymentVault, and grants `OPERATOR_ROLE` on the ledger, both
/// registries and the vault.
/// @dev The broadcasting account (`--private-key`, `--account` or `--sender`) deploys and is the admin of every
/// contract. Environment (all optional):
///   OPERATOR          address given OPERATOR_ROLE (default: the deployer)
///   INITIAL_HOLDER    address that receives the OPEN supply (default: OPERATOR, who funds the epochs)
///   INITIAL_SUPPLY    OPEN supply in wei (default: 1,000,000,000e18)
///   CONTRIBUTORS_BPS, DEVELOPER_BPS, OPERATOR_BPS   fee split (default: 7000 / 2000 / 1000)
/// Example:
///   forge script contracts/script/Deploy.s.sol --rpc-url http://127.0.0.1:8545 --broadcast --private-key $KEY
contract Deploy {
    Vm private constant vm = Vm(VM_ADDRESS);

    struct Deployment {
        OpenToken token;
        AttributionLedger ledger;
        RewardDistributor distributor;
        DatanetRegistry datanets;
        AdapterRegistry adapters;
        PaymentVault vault;
    }

    function run() external returns (Deployment memory d) {
        address deployer = msg.sender;
        address operator = vm.envOr("OPERATOR", deployer);
        address holder = vm.envOr("INITIAL_HOLDER", operator);
        uint256 supply = vm.envOr("INITIAL_SUPPLY", uint256(1_000_000_000e18));
        uint16 contributorsBps = _bps("CONTRIBUTORS_BPS", 7000);
        uint16 developerBps = _bps("DEVELOPER_BPS", 2000);
        uint16 operatorBps = _bps("OPERATOR_BPS", 1000);

        vm.startBroadcast(deployer);
        d.token = new OpenToken(holder, supply);
        d.ledger = new AttributionLedger(deployer, d.token, contributorsBps, developerBps, operatorBps);
        d.distributor = new RewardDistributor(d.token, address(d.ledger));
        d.ledger.setDistributor(d.distributor);
        d.datanets = new DatanetRegistry(deployer);
        d.adapters = new AdapterRegistry(deployer);
        d.vault = new PaymentVault(deployer, d.token);
        d.ledger.grantRole(d.ledger.OPERATOR_ROLE(), operator);
        d.datanets.grantRole(d.datanets.OPERATOR_ROLE(), operator);
        d.adapters.grantRole(d.adapters.OPERATOR_ROLE(), operator);
        d.vault.grantRole(d.vault.OPERATOR_ROLE(), operator);
        vm.stopBroadcast();
    }

    /// @dev A basis-point setting from the environment; the ledger checks that the three sum to 10,000.
    function _bps(string memory name, uint256 defaultValue) private view returns (uint16) {
        uint256 value = vm.envOr(name, defaultValue);
        require(value <= 10_000, string.concat(name, " must be at most 10000"));
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint16(value);
    }
}
