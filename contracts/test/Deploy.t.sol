// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TestBase} from "./utils/TestBase.sol";
import {Deploy} from "../script/Deploy.s.sol";

/// @notice Runs the deployment script in-process and checks the wiring.
contract DeployTest is TestBase {
    bytes32 internal constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    function test_Deploy() public {
        // The script deploys from, and makes admin and operator, its caller (forge script's `--sender`).
        address deployer = address(this);
        Deploy.Deployment memory d = new Deploy().run();

        vm.assertEq(d.token.totalSupply(), 1_000_000_000e18);
        vm.assertEq(d.token.balanceOf(deployer), 1_000_000_000e18);
        vm.assertEq(address(d.ledger.token()), address(d.token));
        vm.assertEq(address(d.ledger.distributor()), address(d.distributor));
        vm.assertEq(address(d.distributor.token()), address(d.token));
        vm.assertEq(d.distributor.ledger(), address(d.ledger));
        (uint16 c, uint16 dev, uint16 o) = d.ledger.feeSplit();
        vm.assertEq(uint256(c) * 1e8 + uint256(dev) * 1e4 + o, 7000_2000_1000);
        vm.assertTrue(d.ledger.hasRole(0x00, deployer));
        vm.assertTrue(d.ledger.hasRole(OPERATOR_ROLE, deployer));
        vm.assertTrue(d.datanets.hasRole(OPERATOR_ROLE, deployer));
        vm.assertTrue(d.adapters.hasRole(OPERATOR_ROLE, deployer));
        vm.assertTrue(d.datanets.hasRole(0x00, deployer));
        vm.assertTrue(d.adapters.hasRole(0x00, deployer));
        vm.assertEq(address(d.vault.token()), address(d.token));
        vm.assertTrue(d.vault.hasRole(OPERATOR_ROLE, deployer));
        vm.assertTrue(d.vault.hasRole(0x00, deployer));
    }
}
