// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Fixture} from "./utils/Fixture.sol";
import {AttributionLedger} from "../src/AttributionLedger.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {OpenToken} from "../src/OpenToken.sol";
import {ICommonErrors, IRootErrors} from "../src/interfaces/ICommonErrors.sol";
import {IAttributionLedger} from "../src/interfaces/IAttributionLedger.sol";
import {IRewardDistributor} from "../src/interfaces/IRewardDistributor.sol";

contract AttributionLedgerTest is Fixture {
    bytes32 internal constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    bytes32 internal constant DEFAULT_ADMIN_ROLE = 0x00;

    address internal stranger;

    bytes32 internal constant LOG_ROOT = keccak256("log root");
    bytes32 internal constant REWARDS_ROOT = keccak256("rewards root");
    bytes32 internal constant DATA_HASH = keccak256("data");
    string internal constant URI = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi/epoch-1.json";

    function setUp() public {
        deploySystem();
        stranger = makeAddr("stranger");
    }

    function postAs(address caller, uint64 epoch, uint64 logSize, bytes32 rewardsRoot, uint256 total) internal {
        vm.prank(caller);
        ledger.postEpoch(epoch, logSize, LOG_ROOT, rewardsRoot, total, 42, URI, DATA_HASH);
    }

    // ------------------------------------------------------------------ deployment

    function test_Constructor() public view {
        vm.assertEq(address(ledger.token()), address(token));
        vm.assertEq(address(ledger.distributor()), address(distributor));
        vm.assertEq(uint256(ledger.currentEpoch()), 0);
        vm.assertEq(ledger.totalFunded(), 0);
        (uint16 c, uint16 d, uint16 o) = ledger.feeSplit();
        vm.assertEq(uint256(c), 7000);
        vm.assertEq(uint256(d), 2000);
        vm.assertEq(uint256(o), 1000);
        vm.assertEq(ledger.OPERATOR_ROLE(), OPERATOR_ROLE);
        vm.assertTrue(ledger.hasRole(DEFAULT_ADMIN_ROLE, admin));
        vm.assertTrue(ledger.hasRole(OPERATOR_ROLE, operator));
        vm.assertFalse(ledger.hasRole(OPERATOR_ROLE, admin));
    }

    function test_ConstructorEmitsFeeSplit() public {
        vm.expectEmit();
        emit IAttributionLedger.FeeSplitUpdated(5000, 3000, 2000);
        new AttributionLedger(admin, token, 5000, 3000, 2000);
    }

    function test_RevertWhen_ConstructorInvalidFeeSplit() public {
        vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.InvalidFeeSplit.selector, 5000, 3000, 1000));
        new AttributionLedger(admin, token, 5000, 3000, 1000);
    }

    function test_RevertWhen_ConstructorZeroAdmin() public {
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        new AttributionLedger(address(0), token, 7000, 2000, 1000);
    }

    function test_RevertWhen_ConstructorZeroToken() public {
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        new AttributionLedger(admin, IERC20(address(0)), 7000, 2000, 1000);
    }

    // ------------------------------------------------------------------ setDistributor

    function freshLedger() internal returns (AttributionLedger l, RewardDistributor d) {
        l = new AttributionLedger(admin, token, 7000, 2000, 1000);
        d = new RewardDistributor(token, address(l));
    }

    function test_SetDistributor() public {
        (AttributionLedger l, RewardDistributor d) = freshLedger();
        vm.expectEmit(address(l));
        emit IAttributionLedger.DistributorSet(address(d));
        vm.prank(admin);
        l.setDistributor(d);
        vm.assertEq(address(l.distributor()), address(d));
    }

    function test_RevertWhen_SetDistributorNotAdmin() public {
        (AttributionLedger l, RewardDistributor d) = freshLedger();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, operator, DEFAULT_ADMIN_ROLE
            )
        );
        vm.prank(operator);
        l.setDistributor(d);
    }

    function test_RevertWhen_SetDistributorZero() public {
        (AttributionLedger l,) = freshLedger();
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        vm.prank(admin);
        l.setDistributor(IRewardDistributor(address(0)));
    }

    function test_RevertWhen_SetDistributorTwice() public {
        vm.expectRevert(IAttributionLedger.DistributorAlreadySet.selector);
        vm.prank(admin);
        ledger.setDistributor(distributor);
    }

    function test_RevertWhen_SetDistributorForOtherLedger() public {
        (AttributionLedger l,) = freshLedger();
        // `distributor` takes roots from the fixture's ledger, not from `l`.
        vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.InvalidDistributor.selector, distributor));
        vm.prank(admin);
        l.setDistributor(distributor);
    }

    function test_RevertWhen_SetDistributorOtherToken() public {
        (AttributionLedger l,) = freshLedger();
        OpenToken other = new OpenToken(admin, 1);
        RewardDistributor d = new RewardDistributor(other, address(l));
        vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.InvalidDistributor.selector, d));
        vm.prank(admin);
        l.setDistributor(d);
    }

    // ------------------------------------------------------------------ postEpoch

    function test_PostEpoch() public {
        vm.warp(1_800_000_000);
        vm.expectEmit(address(ledger));
        emit IAttributionLedger.EpochPosted(1, 1000, LOG_ROOT, REWARDS_ROOT, 500e18, 42, URI, DATA_HASH);
        vm.expectEmit(address(token));
        emit IERC20.Transfer(operator, address(distributor), 500e18);
        vm.expectEmit(address(distributor));
        emit IRewardDistributor.MerkleRootUpdated(1, REWARDS_ROOT);
        postAs(operator, 1, 1000, REWARDS_ROOT, 500e18);

        vm.assertEq(uint256(ledger.currentEpoch()), 1);
        vm.assertEq(ledger.totalFunded(), 500e18);
        vm.assertEq(token.balanceOf(address(distributor)), 500e18);
        vm.assertEq(token.balanceOf(operator), SUPPLY - 500e18);
        vm.assertEq(distributor.merkleRoot(), REWARDS_ROOT);
        vm.assertEq(uint256(distributor.epoch()), 1);

        IAttributionLedger.EpochInfo memory info = ledger.getEpoch(1);
        vm.assertEq(uint256(info.logSize), 1000);
        vm.assertEq(uint256(info.recordCount), 42);
        vm.assertEq(uint256(info.postedAt), 1_800_000_000);
        vm.assertEq(info.logRoot, LOG_ROOT);
        vm.assertEq(info.rewardsRoot, REWARDS_ROOT);
        vm.assertEq(info.epochTotal, 500e18);
        vm.assertEq(info.dataHash, DATA_HASH);
        vm.assertEq(info.dataURI, URI);
    }

    function test_PostEpochSequence() public {
        postAs(operator, 1, 1000, REWARDS_ROOT, 500e18);
        postAs(operator, 2, 1000, keccak256("r2"), 0); // same log size and no new funding are fine
        postAs(operator, 3, 2500, keccak256("r3"), 250e18);
        vm.assertEq(uint256(ledger.currentEpoch()), 3);
        vm.assertEq(ledger.totalFunded(), 750e18);
        vm.assertEq(token.balanceOf(address(distributor)), 750e18);
        vm.assertEq(distributor.merkleRoot(), keccak256("r3"));
        vm.assertEq(uint256(distributor.epoch()), 3);
        vm.assertEq(uint256(ledger.getEpoch(2).epochTotal), 0);
        vm.assertEq(uint256(ledger.getEpoch(3).logSize), 2500);
    }

    function test_PostEpochByAnotherOperator() public {
        address second = makeAddr("second operator");
        vm.startPrank(admin);
        ledger.grantRole(OPERATOR_ROLE, second);
        vm.stopPrank();
        vm.prank(operator);
        vm.assertTrue(token.transfer(second, 10e18));
        vm.prank(second);
        token.approve(address(ledger), 10e18);
        postAs(second, 1, 1, REWARDS_ROOT, 10e18);
        vm.assertEq(token.balanceOf(address(distributor)), 10e18);
        vm.assertEq(token.allowance(second, address(ledger)), 0);
    }

    function test_RevertWhen_PostEpochNotOperator() public {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, admin, OPERATOR_ROLE)
        );
        postAs(admin, 1, 1000, REWARDS_ROOT, 0);
    }

    function test_RevertWhen_PostEpochRevokedOperator() public {
        vm.prank(admin);
        ledger.revokeRole(OPERATOR_ROLE, operator);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, operator, OPERATOR_ROLE)
        );
        postAs(operator, 1, 1000, REWARDS_ROOT, 0);
    }

    function test_RevertWhen_PostEpochZero() public {
        vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.EpochOutOfOrder.selector, 1, 0));
        postAs(operator, 0, 1000, REWARDS_ROOT, 0);
    }

    function test_RevertWhen_PostEpochSkipped() public {
        vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.EpochOutOfOrder.selector, 1, 2));
        postAs(operator, 2, 1000, REWARDS_ROOT, 0);
    }

    function test_RevertWhen_PostEpochRepeated() public {
        postAs(operator, 1, 1000, REWARDS_ROOT, 0);
        vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.EpochOutOfOrder.selector, 2, 1));
        postAs(operator, 1, 1000, REWARDS_ROOT, 0);
    }

    function test_RevertWhen_PostEpochLogShrank() public {
        postAs(operator, 1, 1000, REWARDS_ROOT, 0);
        vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.LogShrank.selector, 1000, 999));
        postAs(operator, 2, 999, REWARDS_ROOT, 0);
    }

    function test_RevertWhen_PostEpochZeroRewardsRoot() public {
        vm.expectRevert(IRootErrors.ZeroRoot.selector);
        postAs(operator, 1, 1000, bytes32(0), 0);
    }

    function test_RevertWhen_PostEpochDistributorNotSet() public {
        (AttributionLedger l,) = freshLedger();
        vm.prank(admin);
        l.grantRole(OPERATOR_ROLE, operator);
        vm.expectRevert(IAttributionLedger.DistributorNotSet.selector);
        vm.prank(operator);
        l.postEpoch(1, 1, LOG_ROOT, REWARDS_ROOT, 0, 0, URI, DATA_HASH);
    }

    function test_RevertWhen_PostEpochNoAllowance() public {
        vm.prank(operator);
        token.approve(address(ledger), 1e18);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(ledger), 1e18, 2e18)
        );
        postAs(operator, 1, 1000, REWARDS_ROOT, 2e18);
        vm.assertEq(uint256(ledger.currentEpoch()), 0);
    }

    function test_RevertWhen_PostEpochInsufficientBalance() public {
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, operator, SUPPLY, SUPPLY + 1)
        );
        postAs(operator, 1, 1000, REWARDS_ROOT, SUPPLY + 1);
    }

    /// @dev Posting cost does not depend on how many records or accounts the epoch covers: only roots are
    /// posted, so two epochs differing only in `recordCount` cost the same.
    function test_PostEpochGasIndependentOfRecordCount() public {
        vm.prank(operator);
        ledger.postEpoch(1, 10, LOG_ROOT, REWARDS_ROOT, 1e18, 1, URI, DATA_HASH);
        vm.prank(operator);
        ledger.postEpoch(2, 20, LOG_ROOT, REWARDS_ROOT, 1e18, 5, URI, DATA_HASH);
        uint256 small = vm.lastCallGas().gasTotalUsed;
        vm.prank(operator);
        ledger.postEpoch(3, 30, LOG_ROOT, REWARDS_ROOT, 1e18, 9_000_000, URI, DATA_HASH);
        uint256 large = vm.lastCallGas().gasTotalUsed;
        vm.assertEq(small, large);
    }

    // ------------------------------------------------------------------ views

    function test_RevertWhen_GetEpochUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.UnknownEpoch.selector, 0));
        ledger.getEpoch(0);
        vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.UnknownEpoch.selector, 1));
        ledger.getEpoch(1);
        postAs(operator, 1, 1000, REWARDS_ROOT, 0);
        ledger.getEpoch(1);
        vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.UnknownEpoch.selector, 2));
        ledger.getEpoch(2);
    }

    // ------------------------------------------------------------------ fee split

    function test_SetFeeSplit() public {
        vm.expectEmit(address(ledger));
        emit IAttributionLedger.FeeSplitUpdated(6000, 2500, 1500);
        vm.prank(admin);
        ledger.setFeeSplit(6000, 2500, 1500);
        (uint16 c, uint16 d, uint16 o) = ledger.feeSplit();
        vm.assertEq(uint256(c), 6000);
        vm.assertEq(uint256(d), 2500);
        vm.assertEq(uint256(o), 1500);
    }

    function test_SetFeeSplitAllToOneParty() public {
        vm.prank(admin);
        ledger.setFeeSplit(0, 10_000, 0);
        (, uint16 d,) = ledger.feeSplit();
        vm.assertEq(uint256(d), 10_000);
    }

    function test_RevertWhen_SetFeeSplitNotAdmin() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, operator, DEFAULT_ADMIN_ROLE
            )
        );
        vm.prank(operator);
        ledger.setFeeSplit(6000, 2500, 1500);
    }

    function test_RevertWhen_SetFeeSplitInvalid() public {
        vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.InvalidFeeSplit.selector, 6000, 2500, 1501));
        vm.prank(admin);
        ledger.setFeeSplit(6000, 2500, 1501);
    }

    function test_RevertWhen_FeeSplitUnchanged() public {
        // The split set at deployment.
        vm.expectRevert(IAttributionLedger.FeeSplitUnchanged.selector);
        vm.prank(admin);
        ledger.setFeeSplit(7000, 2000, 1000);
        // A split set later.
        vm.prank(admin);
        ledger.setFeeSplit(6000, 2500, 1500);
        vm.expectRevert(IAttributionLedger.FeeSplitUnchanged.selector);
        vm.prank(admin);
        ledger.setFeeSplit(6000, 2500, 1500);
        // The same shares in another order are a change.
        vm.prank(admin);
        ledger.setFeeSplit(6000, 1500, 2500);
    }

    function test_RevertWhen_SetFeeSplitOverflowingSum() public {
        // 65535 + 65535 + 14002 wraps to 10,000 in 16 bits; the sum must be computed without wrapping.
        vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.InvalidFeeSplit.selector, 65535, 65535, 14002));
        vm.prank(admin);
        ledger.setFeeSplit(65535, 65535, 14002);
    }

    /// @dev Any split summing to 10,000 is accepted and stored, but for the current one; any other is rejected.
    function testFuzz_SetFeeSplit(uint16 c, uint16 d, uint16 o) public {
        vm.prank(admin);
        if (c == 7000 && d == 2000 && o == 1000) {
            vm.expectRevert(IAttributionLedger.FeeSplitUnchanged.selector);
            ledger.setFeeSplit(c, d, o);
        } else if (uint256(c) + d + o == 10_000) {
            ledger.setFeeSplit(c, d, o);
            (uint16 c2, uint16 d2, uint16 o2) = ledger.feeSplit();
            vm.assertEq(uint256(c2), c);
            vm.assertEq(uint256(d2), d);
            vm.assertEq(uint256(o2), o);
        } else {
            vm.expectRevert(abi.encodeWithSelector(IAttributionLedger.InvalidFeeSplit.selector, c, d, o));
            ledger.setFeeSplit(c, d, o);
        }
    }

    /// @dev Valid splits drawn directly (two cut points in [0, 10,000]) are always accepted, but for the current one.
    function testFuzz_SetFeeSplitValid(uint16 x, uint16 y) public {
        uint256 a = bound(x, 0, 10_000);
        uint256 b = bound(y, 0, 10_000);
        (uint256 lo, uint256 hi) = a < b ? (a, b) : (b, a);
        vm.prank(admin);
        if (lo == 7000 && hi == 9000) vm.expectRevert(IAttributionLedger.FeeSplitUnchanged.selector);
        // All three are in [0, 10,000], so the casts are exact.
        // forge-lint: disable-next-line(unsafe-typecast)
        ledger.setFeeSplit(uint16(lo), uint16(hi - lo), uint16(10_000 - hi));
        (uint16 c, uint16 d, uint16 o) = ledger.feeSplit();
        vm.assertEq(uint256(c) + d + o, 10_000);
    }

    /// @dev Random sequences of posts: funding accumulates exactly and the distributor follows the ledger.
    function testFuzz_PostEpochs(uint256 seed, uint8 count) public {
        uint256 n = bound(count, 1, 12);
        uint256 total;
        uint64 logSize;
        for (uint64 e = 1; e <= n; ++e) {
            uint256 amount = uint256(keccak256(abi.encode(seed, e))) % 1_000_000e18;
            logSize += uint64(uint256(keccak256(abi.encode(seed, "log", e))) % 1000);
            bytes32 root = keccak256(abi.encode(seed, "root", e));
            postAs(operator, e, logSize, root, amount);
            total += amount;
            vm.assertEq(ledger.totalFunded(), total);
            vm.assertEq(token.balanceOf(address(distributor)), total);
            vm.assertEq(distributor.merkleRoot(), root);
            vm.assertEq(uint256(distributor.epoch()), e);
            vm.assertEq(uint256(ledger.currentEpoch()), e);
        }
    }
}
