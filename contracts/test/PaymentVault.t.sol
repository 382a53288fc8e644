// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Fixture} from "./utils/Fixture.sol";
import {PaymentVault} from "../src/PaymentVault.sol";
import {ICommonErrors} from "../src/interfaces/ICommonErrors.sol";
import {IPaymentVault} from "../src/interfaces/IPaymentVault.sol";
import {IRewardDistributor} from "../src/interfaces/IRewardDistributor.sol";

contract PaymentVaultTest is Fixture {
    bytes32 internal constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    bytes32 internal constant DEFAULT_ADMIN_ROLE = 0x00;
    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    /// @dev What each payer starts with.
    uint256 internal constant FUNDS = 1_000_000e18;

    PaymentVault internal vault;
    address internal alice;
    address internal bob;
    address internal stranger;
    address internal treasury;

    function setUp() public {
        deploySystem();
        vault = new PaymentVault(admin, token);
        vm.prank(admin);
        vault.grantRole(OPERATOR_ROLE, operator);
        vm.label(address(vault), "vault");
        alice = makeAddr("alice");
        bob = makeAddr("bob");
        stranger = makeAddr("stranger");
        treasury = makeAddr("treasury");
        vm.startPrank(operator);
        vm.assertTrue(token.transfer(alice, FUNDS));
        vm.assertTrue(token.transfer(bob, FUNDS));
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ helpers

    function depositAs(address payer, uint256 amount) internal {
        vm.prank(payer);
        token.approve(address(vault), amount);
        vm.prank(payer);
        vault.deposit(amount);
    }

    function releaseAs(address caller, uint64 epoch, address to, uint256 amount) internal {
        vm.prank(caller);
        vault.release(epoch, to, amount);
    }

    /// @dev The EIP-712 digest of OPEN's permit for `(owner, vault, value, nonce, deadline)`.
    function permitDigest(address owner, uint256 value, uint256 nonce, uint256 deadline)
        internal
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, owner, address(vault), value, nonce, deadline));
        return keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash));
    }

    function signPermit(string memory signer, address owner, uint256 value, uint256 deadline)
        internal
        view
        returns (uint8 v, bytes32 r, bytes32 s)
    {
        return vm.sign(keyOf(signer), permitDigest(owner, value, token.nonces(owner), deadline));
    }

    function assertTotals(uint256 deposited_, uint256 released) internal view {
        vm.assertEq(vault.totalDeposited(), deposited_, "totalDeposited");
        vm.assertEq(vault.totalReleased(), released, "totalReleased");
        vm.assertEq(vault.available(), deposited_ - released, "available");
        vm.assertEq(token.balanceOf(address(vault)), deposited_ - released, "vault balance");
    }

    // ------------------------------------------------------------------ deployment

    function test_Constructor() public {
        PaymentVault v = new PaymentVault(admin, token);
        vm.assertEq(address(v.token()), address(token));
        vm.assertEq(v.totalDeposited(), 0);
        vm.assertEq(v.totalReleased(), 0);
        vm.assertEq(v.available(), 0);
        vm.assertEq(v.deposited(alice), 0);
        vm.assertEq(v.releasedFor(1), 0);
        vm.assertEq(v.OPERATOR_ROLE(), OPERATOR_ROLE);
        vm.assertTrue(v.hasRole(DEFAULT_ADMIN_ROLE, admin));
        vm.assertFalse(v.hasRole(OPERATOR_ROLE, admin));
        vm.assertFalse(v.hasRole(OPERATOR_ROLE, operator)); // granted by the admin afterwards
        vm.assertTrue(vault.hasRole(OPERATOR_ROLE, operator));
    }

    function test_RevertWhen_ConstructorZeroAdmin() public {
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        new PaymentVault(address(0), token);
    }

    function test_RevertWhen_ConstructorZeroToken() public {
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        new PaymentVault(admin, IERC20(address(0)));
    }

    // ------------------------------------------------------------------ deposit

    function test_Deposit() public {
        vm.prank(alice);
        token.approve(address(vault), 5e18);
        vm.expectEmit(address(vault));
        emit IPaymentVault.Deposited(alice, alice, 5e18, 5e18);
        vm.expectEmit(address(token));
        emit IERC20.Transfer(alice, address(vault), 5e18);
        vm.prank(alice);
        vault.deposit(5e18);

        vm.assertEq(vault.deposited(alice), 5e18);
        vm.assertEq(token.balanceOf(alice), FUNDS - 5e18);
        vm.assertEq(token.allowance(alice, address(vault)), 0);
        assertTotals(5e18, 0);
    }

    function test_DepositAccumulates() public {
        depositAs(alice, 5e18);
        vm.prank(alice);
        token.approve(address(vault), 7e18);
        vm.expectEmit(address(vault));
        emit IPaymentVault.Deposited(alice, alice, 7e18, 12e18);
        vm.prank(alice);
        vault.deposit(7e18);
        depositAs(bob, 1);

        vm.assertEq(vault.deposited(alice), 12e18);
        vm.assertEq(vault.deposited(bob), 1);
        assertTotals(12e18 + 1, 0);
    }

    function test_RevertWhen_DepositZero() public {
        vm.prank(alice);
        token.approve(address(vault), 1e18);
        vm.expectRevert(IPaymentVault.ZeroAmount.selector);
        vm.prank(alice);
        vault.deposit(0);
    }

    function test_RevertWhen_DepositNoAllowance() public {
        vm.prank(alice);
        token.approve(address(vault), 1e18);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(vault), 1e18, 2e18)
        );
        vm.prank(alice);
        vault.deposit(2e18);
        vm.assertEq(vault.deposited(alice), 0);
        assertTotals(0, 0);
    }

    function test_RevertWhen_DepositInsufficientBalance() public {
        vm.prank(alice);
        token.approve(address(vault), FUNDS + 1);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, alice, FUNDS, FUNDS + 1));
        vm.prank(alice);
        vault.deposit(FUNDS + 1);
    }

    /// @dev Tokens sent with a plain transfer are credited to no one and never become available.
    function test_DirectTransferNotCredited() public {
        depositAs(alice, 5e18);
        vm.prank(bob);
        vm.assertTrue(token.transfer(address(vault), 3e18));
        vm.assertEq(vault.deposited(bob), 0);
        vm.assertEq(vault.totalDeposited(), 5e18);
        vm.assertEq(vault.available(), 5e18);
        vm.assertEq(token.balanceOf(address(vault)), 8e18);
        vm.expectRevert(abi.encodeWithSelector(IPaymentVault.InsufficientTakings.selector, 5e18, 8e18));
        releaseAs(operator, 1, treasury, 8e18);
    }

    // ------------------------------------------------------------------ depositFor

    function test_DepositFor() public {
        vm.prank(bob);
        token.approve(address(vault), 5e18);
        vm.expectEmit(address(vault));
        emit IPaymentVault.Deposited(alice, bob, 5e18, 5e18);
        vm.expectEmit(address(token));
        emit IERC20.Transfer(bob, address(vault), 5e18);
        vm.prank(bob);
        vault.depositFor(alice, 5e18);

        vm.assertEq(vault.deposited(alice), 5e18);
        vm.assertEq(vault.deposited(bob), 0);
        vm.assertEq(token.balanceOf(alice), FUNDS);
        vm.assertEq(token.balanceOf(bob), FUNDS - 5e18);
        assertTotals(5e18, 0);
    }

    function test_DepositForAddsToOwnDeposits() public {
        depositAs(alice, 2e18);
        vm.prank(bob);
        token.approve(address(vault), 3e18);
        vm.expectEmit(address(vault));
        emit IPaymentVault.Deposited(alice, bob, 3e18, 5e18);
        vm.prank(bob);
        vault.depositFor(alice, 3e18);
        // Depositing for oneself is the same as {deposit}.
        vm.prank(alice);
        token.approve(address(vault), 1e18);
        vm.expectEmit(address(vault));
        emit IPaymentVault.Deposited(alice, alice, 1e18, 6e18);
        vm.prank(alice);
        vault.depositFor(alice, 1e18);
        vm.assertEq(vault.deposited(alice), 6e18);
        assertTotals(6e18, 0);
    }

    /// @dev A payer need not hold any OPEN to be credited.
    function test_DepositForFreshAccount() public {
        address fresh = makeAddr("fresh");
        vm.prank(bob);
        token.approve(address(vault), 1e18);
        vm.prank(bob);
        vault.depositFor(fresh, 1e18);
        vm.assertEq(vault.deposited(fresh), 1e18);
        vm.assertEq(token.balanceOf(fresh), 0);
    }

    function test_RevertWhen_DepositForZeroPayer() public {
        vm.prank(bob);
        token.approve(address(vault), 1e18);
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        vm.prank(bob);
        vault.depositFor(address(0), 1e18);
    }

    function test_RevertWhen_DepositForZeroAmount() public {
        vm.expectRevert(IPaymentVault.ZeroAmount.selector);
        vm.prank(bob);
        vault.depositFor(alice, 0);
    }

    function test_RevertWhen_DepositForNoAllowance() public {
        // Alice's allowance does not let Bob deposit from her account.
        vm.prank(alice);
        token.approve(address(vault), 1e18);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(vault), 0, 1e18)
        );
        vm.prank(bob);
        vault.depositFor(alice, 1e18);
    }

    // ------------------------------------------------------------------ depositWithPermit

    function test_DepositWithPermit() public {
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = signPermit("alice", alice, 5e18, deadline);
        vm.expectEmit(address(token));
        emit IERC20.Approval(alice, address(vault), 5e18);
        vm.expectEmit(address(vault));
        emit IPaymentVault.Deposited(alice, alice, 5e18, 5e18);
        vm.expectEmit(address(token));
        emit IERC20.Transfer(alice, address(vault), 5e18);
        vm.prank(alice);
        vault.depositWithPermit(5e18, deadline, v, r, s);

        vm.assertEq(vault.deposited(alice), 5e18);
        vm.assertEq(token.nonces(alice), 1);
        vm.assertEq(token.allowance(alice, address(vault)), 0);
        vm.assertEq(token.balanceOf(alice), FUNDS - 5e18);
        assertTotals(5e18, 0);
    }

    /// @dev Someone submits Alice's permit first (taken from the mempool): her permit call then fails, but the
    /// allowance it set is there and her deposit goes through.
    function test_DepositWithPermitFrontRun() public {
        uint256 deadline = block.timestamp;
        (uint8 v, bytes32 r, bytes32 s) = signPermit("alice", alice, 5e18, deadline);
        vm.prank(stranger);
        token.permit(alice, address(vault), 5e18, deadline, v, r, s);
        vm.assertEq(token.nonces(alice), 1);

        vm.expectEmit(address(vault));
        emit IPaymentVault.Deposited(alice, alice, 5e18, 5e18);
        vm.expectEmit(address(token));
        emit IERC20.Transfer(alice, address(vault), 5e18);
        vm.prank(alice);
        vault.depositWithPermit(5e18, deadline, v, r, s);

        vm.assertEq(vault.deposited(alice), 5e18);
        vm.assertEq(token.nonces(alice), 1);
        vm.assertEq(token.allowance(alice, address(vault)), 0);
        assertTotals(5e18, 0);
    }

    /// @dev A failed permit is tolerated whenever an earlier `approve` covers the deposit.
    function test_DepositWithPermitExistingAllowance() public {
        vm.prank(alice);
        token.approve(address(vault), 5e18);
        vm.prank(alice);
        vault.depositWithPermit(5e18, block.timestamp, 27, bytes32(uint256(1)), bytes32(uint256(2)));
        vm.assertEq(vault.deposited(alice), 5e18);
        vm.assertEq(token.nonces(alice), 0);
        assertTotals(5e18, 0);
    }

    function test_RevertWhen_DepositWithPermitWrongSigner() public {
        uint256 deadline = block.timestamp;
        // Bob's key signs Alice's permit.
        (uint8 v, bytes32 r, bytes32 s) = signPermit("bob", alice, 5e18, deadline);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612InvalidSigner.selector, bob, alice));
        vm.prank(alice);
        vault.depositWithPermit(5e18, deadline, v, r, s);
        vm.assertEq(vault.deposited(alice), 0);
        vm.assertEq(token.nonces(alice), 0);
    }

    /// @dev The permit is always the caller's own: Bob cannot deposit with Alice's signature.
    function test_RevertWhen_DepositWithPermitOfAnother() public {
        uint256 deadline = block.timestamp;
        (uint8 v, bytes32 r, bytes32 s) = signPermit("alice", alice, 5e18, deadline);
        // The vault asks for Bob's permit, whose digest Alice did not sign.
        address recovered = ecrecover(permitDigest(bob, 5e18, 0, deadline), v, r, s);
        vm.assertTrue(recovered != address(0) && recovered != bob);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612InvalidSigner.selector, recovered, bob));
        vm.prank(bob);
        vault.depositWithPermit(5e18, deadline, v, r, s);
        vm.assertEq(token.nonces(alice), 0);
    }

    /// @dev A signature for another amount recovers to some other address.
    function test_RevertWhen_DepositWithPermitOtherAmount() public {
        uint256 deadline = block.timestamp;
        (uint8 v, bytes32 r, bytes32 s) = signPermit("alice", alice, 5e18, deadline);
        address recovered = ecrecover(permitDigest(alice, 6e18, 0, deadline), v, r, s);
        vm.assertTrue(recovered != address(0) && recovered != alice);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612InvalidSigner.selector, recovered, alice));
        vm.prank(alice);
        vault.depositWithPermit(6e18, deadline, v, r, s);
    }

    function test_RevertWhen_DepositWithPermitExpired() public {
        vm.warp(1_800_000_000);
        uint256 deadline = block.timestamp - 1;
        (uint8 v, bytes32 r, bytes32 s) = signPermit("alice", alice, 5e18, deadline);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612ExpiredSignature.selector, deadline));
        vm.prank(alice);
        vault.depositWithPermit(5e18, deadline, v, r, s);
    }

    /// @dev A failed permit with an allowance that covers only part of the deposit reverts with the permit's
    /// error, not the token's allowance error.
    function test_RevertWhen_DepositWithPermitAllowanceShort() public {
        vm.prank(alice);
        token.approve(address(vault), 5e18 - 1);
        uint256 deadline = block.timestamp;
        (uint8 v, bytes32 r, bytes32 s) = signPermit("bob", alice, 5e18, deadline);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612InvalidSigner.selector, bob, alice));
        vm.prank(alice);
        vault.depositWithPermit(5e18, deadline, v, r, s);
        vm.assertEq(token.allowance(alice, address(vault)), 5e18 - 1);
    }

    /// @dev A replayed permit (already used by a deposit) with no allowance left fails.
    function test_RevertWhen_DepositWithPermitReplayed() public {
        uint256 deadline = block.timestamp;
        (uint8 v, bytes32 r, bytes32 s) = signPermit("alice", alice, 5e18, deadline);
        vm.prank(alice);
        vault.depositWithPermit(5e18, deadline, v, r, s);
        address recovered = ecrecover(permitDigest(alice, 5e18, 1, deadline), v, r, s);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612InvalidSigner.selector, recovered, alice));
        vm.prank(alice);
        vault.depositWithPermit(5e18, deadline, v, r, s);
        vm.assertEq(vault.deposited(alice), 5e18);
    }

    function test_RevertWhen_DepositWithPermitZeroAmount() public {
        uint256 deadline = block.timestamp;
        (uint8 v, bytes32 r, bytes32 s) = signPermit("alice", alice, 0, deadline);
        vm.expectRevert(IPaymentVault.ZeroAmount.selector);
        vm.prank(alice);
        vault.depositWithPermit(0, deadline, v, r, s);
    }

    function test_RevertWhen_DepositWithPermitInsufficientBalance() public {
        uint256 deadline = block.timestamp;
        (uint8 v, bytes32 r, bytes32 s) = signPermit("alice", alice, FUNDS + 1, deadline);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, alice, FUNDS, FUNDS + 1));
        vm.prank(alice);
        vault.depositWithPermit(FUNDS + 1, deadline, v, r, s);
        vm.assertEq(token.nonces(alice), 0); // the whole transaction, permit included, is undone
    }

    // ------------------------------------------------------------------ release

    function test_Release() public {
        depositAs(alice, 10e18);
        vm.expectEmit(address(vault));
        emit IPaymentVault.Released(1, treasury, 4e18);
        vm.expectEmit(address(token));
        emit IERC20.Transfer(address(vault), treasury, 4e18);
        releaseAs(operator, 1, treasury, 4e18);

        vm.assertEq(vault.releasedFor(1), 4e18);
        vm.assertEq(vault.releasedFor(2), 0);
        vm.assertEq(token.balanceOf(treasury), 4e18);
        vm.assertEq(vault.deposited(alice), 10e18); // cumulative: a release debits no payer on chain
        assertTotals(10e18, 4e18);
    }

    function test_ReleaseEverything() public {
        depositAs(alice, 10e18);
        depositAs(bob, 3e18);
        releaseAs(operator, 1, treasury, 13e18);
        assertTotals(13e18, 13e18);
        vm.expectRevert(abi.encodeWithSelector(IPaymentVault.InsufficientTakings.selector, 0, 1));
        releaseAs(operator, 2, treasury, 1);
    }

    /// @dev Epochs need not be consecutive nor increasing; each is released once.
    function test_ReleaseNonConsecutiveEpochs() public {
        depositAs(alice, 10e18);
        releaseAs(operator, 1, treasury, 1e18);
        releaseAs(operator, 5, treasury, 2e18);
        releaseAs(operator, 3, operator, 3e18);
        releaseAs(operator, type(uint64).max, treasury, 4e18);
        vm.assertEq(vault.releasedFor(1), 1e18);
        vm.assertEq(vault.releasedFor(2), 0);
        vm.assertEq(vault.releasedFor(3), 3e18);
        vm.assertEq(vault.releasedFor(4), 0);
        vm.assertEq(vault.releasedFor(5), 2e18);
        vm.assertEq(vault.releasedFor(type(uint64).max), 4e18);
        vm.assertEq(token.balanceOf(treasury), 7e18);
        assertTotals(10e18, 10e18);
    }

    function test_ReleaseByAnotherOperator() public {
        address second = makeAddr("second operator");
        vm.prank(admin);
        vault.grantRole(OPERATOR_ROLE, second);
        depositAs(alice, 1e18);
        releaseAs(second, 1, treasury, 1e18);
        vm.assertEq(vault.releasedFor(1), 1e18);
    }

    /// @dev Deposits after a release become available for the next epochs.
    function test_ReleaseInterleavedWithDeposits() public {
        depositAs(alice, 5e18);
        releaseAs(operator, 1, treasury, 5e18);
        depositAs(bob, 2e18);
        vm.expectRevert(abi.encodeWithSelector(IPaymentVault.InsufficientTakings.selector, 2e18, 3e18));
        releaseAs(operator, 2, treasury, 3e18);
        releaseAs(operator, 2, treasury, 2e18);
        assertTotals(7e18, 7e18);
    }

    function test_RevertWhen_ReleaseNotOperator() public {
        depositAs(alice, 1e18);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, OPERATOR_ROLE)
        );
        releaseAs(stranger, 1, stranger, 1e18);
        // Not even the admin, nor a payer.
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, admin, OPERATOR_ROLE)
        );
        releaseAs(admin, 1, admin, 1e18);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, OPERATOR_ROLE)
        );
        releaseAs(alice, 1, alice, 1e18);
        assertTotals(1e18, 0);
    }

    function test_RevertWhen_ReleaseRevokedOperator() public {
        depositAs(alice, 1e18);
        vm.prank(admin);
        vault.revokeRole(OPERATOR_ROLE, operator);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, operator, OPERATOR_ROLE)
        );
        releaseAs(operator, 1, treasury, 1e18);
    }

    function test_RevertWhen_ReleaseZeroEpoch() public {
        depositAs(alice, 1e18);
        vm.expectRevert(IPaymentVault.ZeroEpoch.selector);
        releaseAs(operator, 0, treasury, 1e18);
    }

    function test_RevertWhen_ReleaseToZeroAddress() public {
        depositAs(alice, 1e18);
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        releaseAs(operator, 1, address(0), 1e18);
    }

    function test_RevertWhen_ReleaseToVault() public {
        depositAs(alice, 1e18);
        vm.expectRevert(abi.encodeWithSelector(IPaymentVault.InvalidRecipient.selector, address(vault)));
        releaseAs(operator, 1, address(vault), 1e18);
    }

    function test_RevertWhen_ReleaseZeroAmount() public {
        depositAs(alice, 1e18);
        vm.expectRevert(IPaymentVault.ZeroAmount.selector);
        releaseAs(operator, 1, treasury, 0);
    }

    function test_RevertWhen_ReleaseTwice() public {
        depositAs(alice, 10e18);
        releaseAs(operator, 7, treasury, 4e18);
        vm.expectRevert(abi.encodeWithSelector(IPaymentVault.EpochAlreadyReleased.selector, 7, 4e18));
        releaseAs(operator, 7, treasury, 4e18);
        // Whatever the amount or recipient.
        vm.expectRevert(abi.encodeWithSelector(IPaymentVault.EpochAlreadyReleased.selector, 7, 4e18));
        releaseAs(operator, 7, operator, 1);
        vm.assertEq(vault.releasedFor(7), 4e18);
        assertTotals(10e18, 4e18);
    }

    function test_RevertWhen_ReleaseExceedsAvailable() public {
        depositAs(alice, 10e18);
        vm.expectRevert(abi.encodeWithSelector(IPaymentVault.InsufficientTakings.selector, 10e18, 10e18 + 1));
        releaseAs(operator, 1, treasury, 10e18 + 1);
        releaseAs(operator, 1, treasury, 6e18);
        vm.expectRevert(abi.encodeWithSelector(IPaymentVault.InsufficientTakings.selector, 4e18, 5e18));
        releaseAs(operator, 2, treasury, 5e18);
        // The failed attempt did not use up epoch 2.
        vm.assertEq(vault.releasedFor(2), 0);
        releaseAs(operator, 2, treasury, 4e18);
    }

    function test_RevertWhen_ReleaseBeforeAnyDeposit() public {
        vm.expectRevert(abi.encodeWithSelector(IPaymentVault.InsufficientTakings.selector, 0, 1));
        releaseAs(operator, 1, treasury, 1);
    }

    /// @dev The end-to-end flow: payers deposit, the operator releases an epoch's takings to itself and funds the
    /// epoch's rewards with them through the ledger, and a contributor claims.
    function test_ReleaseFundsPostEpoch() public {
        depositAs(alice, 60e18);
        vm.prank(bob);
        token.approve(address(vault), 40e18);
        vm.prank(bob);
        vault.depositFor(bob, 40e18);

        uint256 operatorBefore = token.balanceOf(operator);
        releaseAs(operator, 1, operator, 75e18);
        vm.assertEq(token.balanceOf(operator), operatorBefore + 75e18);

        address contributor = makeAddr("contributor");
        address[] memory accounts = new address[](2);
        uint256[] memory amounts = new uint256[](2);
        (accounts[0], amounts[0]) = (contributor, 50e18);
        (accounts[1], amounts[1]) = (operator, 25e18);
        bytes32[] memory tree = rewardsTree(accounts, amounts);
        post(tree[0], 75e18);
        vm.assertEq(token.balanceOf(operator), operatorBefore);
        vm.assertEq(token.balanceOf(address(distributor)), 75e18);

        vm.expectEmit(address(distributor));
        emit IRewardDistributor.Claimed(contributor, 50e18, 50e18);
        distributor.claim(contributor, 50e18, proofOf(tree, contributor, 50e18));
        vm.assertEq(token.balanceOf(contributor), 50e18);
        assertTotals(100e18, 75e18);
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_Deposit(uint256 amount) public {
        amount = bound(amount, 1, FUNDS);
        vm.prank(alice);
        token.approve(address(vault), amount);
        vm.expectEmit(address(vault));
        emit IPaymentVault.Deposited(alice, alice, amount, amount);
        vm.prank(alice);
        vault.deposit(amount);
        vm.assertEq(vault.deposited(alice), amount);
        vm.assertEq(token.balanceOf(alice), FUNDS - amount);
        assertTotals(amount, 0);
    }

    function testFuzz_DepositFor(address payer, uint256 amount) public {
        vm.assume(payer != address(0));
        amount = bound(amount, 1, FUNDS);
        vm.prank(bob);
        token.approve(address(vault), amount);
        vm.expectEmit(address(vault));
        emit IPaymentVault.Deposited(payer, bob, amount, amount);
        vm.prank(bob);
        vault.depositFor(payer, amount);
        vm.assertEq(vault.deposited(payer), amount);
        vm.assertEq(token.balanceOf(bob), FUNDS - amount);
        assertTotals(amount, 0);
    }

    /// @dev Random deposits and deposits-for among three payers: each payer's tally and the total are exact.
    function testFuzz_Deposits(uint256 seed, uint8 count) public {
        address[3] memory payers = [alice, bob, makeAddr("carol")];
        uint256[3] memory expected;
        uint256 total;
        uint256 n = bound(count, 1, 20);
        for (uint256 k; k < n; ++k) {
            uint256 r = uint256(keccak256(abi.encode(seed, k)));
            uint256 from = r % 2; // alice or bob pays
            uint256 to = (r >> 8) % 3;
            uint256 amount = 1 + (r >> 16) % (FUNDS / 32);
            vm.prank(payers[from]);
            token.approve(address(vault), amount);
            vm.prank(payers[from]);
            vault.depositFor(payers[to], amount);
            expected[to] += amount;
            total += amount;
        }
        for (uint256 i; i < 3; ++i) {
            vm.assertEq(vault.deposited(payers[i]), expected[i]);
        }
        assertTotals(total, 0);
    }

    function testFuzz_DepositWithPermit(uint248 ownerKey, uint256 amount, uint256 deadline) public {
        uint256 key = bound(uint256(ownerKey), 1, 2 ** 200);
        address owner = vm.addr(key);
        vm.assume(owner != operator && owner != address(vault));
        amount = bound(amount, 1, FUNDS);
        deadline = bound(deadline, block.timestamp, type(uint256).max);
        vm.prank(operator);
        vm.assertTrue(token.transfer(owner, amount));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, permitDigest(owner, amount, 0, deadline));
        vm.prank(owner);
        vault.depositWithPermit(amount, deadline, v, r, s);
        vm.assertEq(vault.deposited(owner), amount);
        vm.assertEq(token.balanceOf(owner), 0);
        vm.assertEq(token.nonces(owner), 1);
        assertTotals(amount, 0);
    }

    function testFuzz_Release(uint256 deposit, uint256 amount, uint64 epoch) public {
        deposit = bound(deposit, 1, FUNDS);
        amount = bound(amount, 1, deposit);
        epoch = uint64(bound(epoch, 1, type(uint64).max));
        depositAs(alice, deposit);
        vm.expectEmit(address(vault));
        emit IPaymentVault.Released(epoch, treasury, amount);
        releaseAs(operator, epoch, treasury, amount);
        vm.assertEq(vault.releasedFor(epoch), amount);
        vm.assertEq(token.balanceOf(treasury), amount);
        assertTotals(deposit, amount);
    }

    function testFuzz_RevertWhen_ReleaseExceedsAvailable(uint256 deposit, uint256 amount) public {
        deposit = bound(deposit, 1, FUNDS);
        amount = bound(amount, deposit + 1, type(uint256).max);
        depositAs(alice, deposit);
        vm.expectRevert(abi.encodeWithSelector(IPaymentVault.InsufficientTakings.selector, deposit, amount));
        releaseAs(operator, 1, treasury, amount);
        assertTotals(deposit, 0);
    }

    /// @dev Random releases over increasing, gapped epochs: each takes exactly its amount while it fits, and is
    /// refused with the exact shortfall once it does not.
    function testFuzz_Releases(uint256 seed, uint8 count) public {
        uint256 deposit = FUNDS / 2;
        depositAs(alice, deposit);
        uint256 n = bound(count, 1, 16);
        uint256 released;
        uint64 epoch;
        for (uint256 k; k < n; ++k) {
            uint256 r = uint256(keccak256(abi.encode(seed, k)));
            // 1 to 4: the cast is exact.
            // forge-lint: disable-next-line(unsafe-typecast)
            epoch += uint64(1 + r % 4);
            uint256 amount = 1 + (r >> 8) % (deposit / 4);
            if (amount > deposit - released) {
                vm.expectRevert(
                    abi.encodeWithSelector(IPaymentVault.InsufficientTakings.selector, deposit - released, amount)
                );
                releaseAs(operator, epoch, treasury, amount);
                vm.assertEq(vault.releasedFor(epoch), 0);
            } else {
                releaseAs(operator, epoch, treasury, amount);
                released += amount;
                vm.assertEq(vault.releasedFor(epoch), amount);
            }
            assertTotals(deposit, released);
        }
        vm.assertEq(token.balanceOf(treasury), released);
    }
}
