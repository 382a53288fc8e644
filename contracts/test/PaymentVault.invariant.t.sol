// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {InvariantBase} from "./utils/InvariantBase.sol";
import {Fixture} from "./utils/Fixture.sol";
import {PaymentVault} from "../src/PaymentVault.sol";
import {PaymentVaultHandler} from "./invariant/PaymentVaultHandler.sol";

/// @notice Invariants of the payment vault under random deposits, releases and attacks (see
/// {PaymentVaultHandler}).
contract PaymentVaultInvariantTest is InvariantBase, Fixture {
    /// @dev What each payer starts with: enough for about a hundred maximal deposits.
    uint256 internal constant FUNDS = 100_000_000e18;

    PaymentVault internal vault;
    PaymentVaultHandler internal handler;
    address internal treasury;

    function setUp() public {
        deploySystem();
        vault = new PaymentVault(admin, token);
        bytes32 operatorRole = vault.OPERATOR_ROLE();
        vm.prank(admin);
        vault.grantRole(operatorRole, operator);
        treasury = makeAddr("treasury");
        handler = new PaymentVaultHandler(token, vault, admin, operator, treasury);
        vm.startPrank(operator);
        for (uint256 i; i < handler.PAYERS(); ++i) {
            vm.assertTrue(token.transfer(handler.payers(i), FUNDS));
        }
        vm.stopPrank();

        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](10);
        selectors[0] = PaymentVaultHandler.deposit.selector;
        selectors[1] = PaymentVaultHandler.depositFor.selector;
        selectors[2] = PaymentVaultHandler.depositWithPermit.selector;
        selectors[3] = PaymentVaultHandler.depositZero.selector;
        selectors[4] = PaymentVaultHandler.release.selector;
        selectors[5] = PaymentVaultHandler.releaseAgain.selector;
        selectors[6] = PaymentVaultHandler.releaseTooMuch.selector;
        selectors[7] = PaymentVaultHandler.attackRelease.selector;
        selectors[8] = PaymentVaultHandler.deposit.selector; // depositing and releasing twice as likely
        selectors[9] = PaymentVaultHandler.release.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @dev The vault holds exactly what was deposited and not yet released, which is what is available.
    function invariant_BalanceIsDepositedLessReleased() public view {
        uint256 balance = token.balanceOf(address(vault));
        vm.assertEq(balance, vault.totalDeposited() - vault.totalReleased(), "balance != deposited - released");
        vm.assertEq(vault.available(), balance, "available != balance");
    }

    /// @dev Every deposit is credited to exactly one of the handler's payers, exactly as the ghosts say.
    function invariant_PayerDepositsSumToTotal() public view {
        uint256 sum;
        for (uint256 i; i < handler.PAYERS(); ++i) {
            uint256 d = vault.deposited(handler.payers(i));
            vm.assertEq(d, handler.ghostDeposited(i), "deposited(payer)");
            sum += d;
        }
        vm.assertEq(sum, vault.totalDeposited(), "sum of deposited != totalDeposited");
        vm.assertEq(vault.totalDeposited(), handler.ghostTotalDeposited(), "totalDeposited");
    }

    /// @dev What was released is the sum of the released epochs' amounts, and all of it went to the recipient.
    function invariant_ReleasedIsSumOverEpochs() public view {
        uint256 sum;
        uint256 n = handler.releasedEpochCount();
        for (uint256 k; k < n; ++k) {
            uint64 epoch = handler.releasedEpochs(k);
            uint256 amount = vault.releasedFor(epoch);
            vm.assertEq(amount, handler.ghostReleasedFor(epoch), "releasedFor(epoch)");
            vm.assertTrue(amount != 0, "released epoch with zero amount");
            sum += amount;
        }
        vm.assertEq(sum, vault.totalReleased(), "sum of releasedFor != totalReleased");
        vm.assertEq(vault.totalReleased(), handler.ghostTotalReleased(), "totalReleased");
        vm.assertEq(token.balanceOf(treasury), vault.totalReleased(), "treasury balance");
        vm.assertEq(vault.releasedFor(0), 0, "epoch 0 released");
        vm.assertEq(vault.releasedFor(handler.ghostLastEpoch() + 1), 0, "future epoch released");
    }

    /// @dev Never more released than deposited: `available()` answers and never underflows.
    function invariant_AvailableNeverUnderflows() public view {
        vm.assertLe(vault.totalReleased(), vault.totalDeposited(), "released > deposited");
        vm.assertEq(vault.available(), vault.totalDeposited() - vault.totalReleased(), "available");
        vm.assertEq(handler.availableMismatches(), 0, "available() failed or disagreed after a call");
    }

    /// @dev Valid deposits and releases always go through; invalid ones never do.
    function invariant_OnlyValidCallsSucceed() public view {
        vm.assertEq(handler.validDepositsRejected(), 0, "valid deposit refused");
        vm.assertEq(handler.zeroDepositsAccepted(), 0, "zero deposit accepted");
        vm.assertEq(handler.validReleasesRejected(), 0, "valid release refused");
        vm.assertEq(handler.doubleReleases(), 0, "epoch released twice");
        vm.assertEq(handler.overReleases(), 0, "released more than available");
        vm.assertEq(handler.unauthorizedReleases(), 0, "non-operator released");
    }
}
