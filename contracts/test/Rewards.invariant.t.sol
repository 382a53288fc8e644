// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {InvariantBase} from "./utils/InvariantBase.sol";
import {Fixture} from "./utils/Fixture.sol";
import {RewardsHandler} from "./invariant/RewardsHandler.sol";

/// @notice Invariants of the ledger + distributor under random posting, claiming and attacks
/// (see {RewardsHandler}).
contract RewardsInvariantTest is InvariantBase, Fixture {
    RewardsHandler internal handler;

    function setUp() public {
        deploySystem();
        handler = new RewardsHandler(token, ledger, distributor, admin, operator);
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](8);
        selectors[0] = RewardsHandler.postEpoch.selector;
        selectors[1] = RewardsHandler.claim.selector;
        selectors[2] = RewardsHandler.claimMany.selector;
        selectors[3] = RewardsHandler.attackPostEpoch.selector;
        selectors[4] = RewardsHandler.attackSetMerkleRoot.selector;
        selectors[5] = RewardsHandler.attackSetFeeSplit.selector;
        selectors[6] = RewardsHandler.adminSetFeeSplit.selector;
        selectors[7] = RewardsHandler.postEpoch.selector; // posting twice as likely: more epochs per run
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @dev Total claimed, counted both from Claimed amounts and from the actors' balances, never exceeds
    /// what the ledger funded.
    function invariant_ClaimedNeverExceedsFunded() public view {
        uint256 funded = ledger.totalFunded();
        vm.assertLe(handler.ghostClaimed(), funded, "claimed > funded");
        uint256 balances;
        for (uint256 i; i < handler.ACTORS(); ++i) {
            balances += token.balanceOf(handler.actors(i));
        }
        vm.assertEq(balances, handler.ghostClaimed(), "balances != claimed");
        vm.assertLe(balances, funded, "balances > funded");
    }

    /// @dev The distributor holds exactly what was funded and not yet claimed; the ledger's tally is exact.
    function invariant_DistributorHoldsUnclaimed() public view {
        vm.assertEq(ledger.totalFunded(), handler.ghostFunded(), "totalFunded");
        vm.assertEq(
            token.balanceOf(address(distributor)), ledger.totalFunded() - handler.ghostClaimed(), "distributor balance"
        );
    }

    /// @dev No account is ever paid more than its latest cumulative amount, and `claimed` is exactly what it
    /// was paid.
    function invariant_NoAccountOverpaid() public view {
        for (uint256 i; i < handler.ACTORS(); ++i) {
            address a = handler.actors(i);
            uint256 paid = handler.ghostPaid(i);
            vm.assertEq(distributor.claimed(a), paid, "claimed != paid");
            vm.assertEq(token.balanceOf(a), paid, "balance != paid");
            vm.assertLe(paid, handler.ghostCumulative(i), "overpaid");
        }
    }

    /// @dev Epoch and root only move forward, in step between ledger and distributor, and the root is the last
    /// one posted.
    function invariant_EpochsMoveForward() public view {
        vm.assertEq(uint256(ledger.currentEpoch()), uint256(distributor.epoch()), "ledger/distributor epoch");
        vm.assertEq(uint256(distributor.epoch()), uint256(handler.ghostEpoch()), "epoch");
        vm.assertEq(distributor.merkleRoot(), handler.ghostRoot(), "root");
        vm.assertEq(handler.epochRegressions(), 0, "epoch went backwards");
        if (handler.ghostEpoch() > 0) {
            vm.assertEq(ledger.getEpoch(handler.ghostEpoch()).rewardsRoot, handler.ghostRoot(), "stored root");
        }
    }

    /// @dev Only the operator posts epochs, only the ledger sets roots, only the admin changes fees.
    function invariant_OnlyAuthorizedChanges() public view {
        vm.assertEq(handler.unauthorizedPosts(), 0, "non-operator posted");
        vm.assertEq(handler.unauthorizedRootChanges(), 0, "non-ledger set a root");
        vm.assertEq(handler.unauthorizedFeeChanges(), 0, "non-admin changed fees");
        (uint16 c, uint16 d, uint16 o) = ledger.feeSplit();
        vm.assertEq(uint256(c), uint256(handler.ghostFeeSplit(0)), "contributors bps");
        vm.assertEq(uint256(d), uint256(handler.ghostFeeSplit(1)), "developer bps");
        vm.assertEq(uint256(o), uint256(handler.ghostFeeSplit(2)), "operator bps");
        vm.assertEq(uint256(c) + d + o, 10_000, "fee split sum");
    }

    /// @dev Invalid proofs are never paid and valid ones never refused while something is owed.
    function invariant_ProofsDecideClaims() public view {
        vm.assertEq(handler.invalidClaimsAccepted(), 0, "invalid claim paid");
        vm.assertEq(handler.validClaimsRejected(), 0, "valid claim refused");
    }
}
