// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TestBase} from "./TestBase.sol";
import {OpenToken} from "../../src/OpenToken.sol";
import {AttributionLedger} from "../../src/AttributionLedger.sol";
import {RewardDistributor} from "../../src/RewardDistributor.sol";
import {Merkle} from "./Merkle.sol";

/// @title Fixture
/// @notice Deploys token, ledger and distributor in the production order and wires them.
abstract contract Fixture is TestBase {
    uint256 internal constant SUPPLY = 1_000_000_000e18;

    address internal admin;
    address internal operator;
    OpenToken internal token;
    AttributionLedger internal ledger;
    RewardDistributor internal distributor;

    function deploySystem() internal {
        admin = makeAddr("admin");
        operator = makeAddr("operator");
        token = new OpenToken(operator, SUPPLY);
        ledger = new AttributionLedger(admin, token, 7000, 2000, 1000);
        distributor = new RewardDistributor(token, address(ledger));
        vm.startPrank(admin);
        ledger.setDistributor(distributor);
        ledger.grantRole(ledger.OPERATOR_ROLE(), operator);
        vm.stopPrank();
        vm.prank(operator);
        token.approve(address(ledger), type(uint256).max);
        vm.label(address(token), "OPEN");
        vm.label(address(ledger), "ledger");
        vm.label(address(distributor), "distributor");
    }

    /// @dev The StandardMerkleTree of `(accounts[i], amounts[i])` (leaves sorted, as `StandardMerkleTree.of`).
    function rewardsTree(address[] memory accounts, uint256[] memory amounts)
        internal
        pure
        returns (bytes32[] memory tree)
    {
        bytes32[] memory leaves = new bytes32[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) {
            leaves[i] = Merkle.leaf(accounts[i], amounts[i]);
        }
        tree = Merkle.build(Merkle.sort(leaves));
    }

    function proofOf(bytes32[] memory tree, address account, uint256 amount) internal pure returns (bytes32[] memory) {
        return Merkle.proofFor(tree, Merkle.leaf(account, amount));
    }

    /// @dev Posts the next epoch as the operator, funding it with `epochTotal`.
    function post(bytes32 rewardsRoot, uint256 epochTotal) internal returns (uint64 epoch) {
        epoch = ledger.currentEpoch() + 1;
        vm.prank(operator);
        ledger.postEpoch(
            epoch,
            uint64(epoch) * 100,
            keccak256(abi.encode("log", epoch)),
            rewardsRoot,
            epochTotal,
            100,
            "ipfs://epoch",
            keccak256(abi.encode("data", epoch))
        );
    }
}
