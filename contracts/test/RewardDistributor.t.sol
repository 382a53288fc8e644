// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Fixture} from "./utils/Fixture.sol";
import {Merkle} from "./utils/Merkle.sol";
import {MisbehavingToken} from "./mocks/MockTokens.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {ICommonErrors} from "../src/interfaces/ICommonErrors.sol";
import {IRewardDistributor} from "../src/interfaces/IRewardDistributor.sol";

contract RewardDistributorTest is Fixture {
    address internal alice;
    address internal bob;
    address internal carol;
    address internal dave;
    address internal relayer;

    address[] internal accts;
    uint256[] internal amts;

    function setUp() public {
        deploySystem();
        alice = makeAddr("alice");
        bob = makeAddr("bob");
        carol = makeAddr("carol");
        dave = makeAddr("dave");
        relayer = makeAddr("relayer");
    }

    // ------------------------------------------------------------------ helpers

    function set(address a, uint256 amount) internal {
        accts.push(a);
        amts.push(amount);
    }

    /// @dev Posts the tree of the accounts pushed with {set} and funds it with `funding`.
    function postCurrent(uint256 funding) internal returns (bytes32[] memory tree) {
        tree = rewardsTree(accts, amts);
        post(tree[0], funding);
    }

    /// @dev alice 100, bob 50, carol 25, dave 5 (in OPEN), funded exactly.
    function postFour() internal returns (bytes32[] memory tree) {
        set(alice, 100e18);
        set(bob, 50e18);
        set(carol, 25e18);
        set(dave, 5e18);
        tree = postCurrent(180e18);
    }

    /// @dev A multiproof for `who` (each with its amount in `accts`/`amts`), with the leaf data in proof order.
    function batch(bytes32[] memory tree, address[] memory who)
        internal
        view
        returns (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f)
    {
        uint256[] memory indices = new uint256[](who.length);
        for (uint256 i; i < who.length; ++i) {
            indices[i] = Merkle.indexOf(tree, Merkle.leaf(who[i], amountOf(who[i])));
        }
        bytes32[] memory leaves;
        (leaves, p, f,) = Merkle.multiProof(tree, indices);
        a = new address[](leaves.length);
        c = new uint256[](leaves.length);
        for (uint256 k; k < leaves.length; ++k) {
            for (uint256 i; i < accts.length; ++i) {
                if (Merkle.leaf(accts[i], amts[i]) == leaves[k]) (a[k], c[k]) = (accts[i], amts[i]);
            }
        }
    }

    function amountOf(address a) internal view returns (uint256) {
        for (uint256 i; i < accts.length; ++i) {
            if (accts[i] == a) return amts[i];
        }
        revert("not set");
    }

    function list(address a) internal pure returns (address[] memory l) {
        l = new address[](1);
        l[0] = a;
    }

    function list(address a, address b) internal pure returns (address[] memory l) {
        l = new address[](2);
        (l[0], l[1]) = (a, b);
    }

    function list(address a, address b, address c) internal pure returns (address[] memory l) {
        l = new address[](3);
        (l[0], l[1], l[2]) = (a, b, c);
    }

    // ------------------------------------------------------------------ deployment

    function test_Constructor() public view {
        vm.assertEq(address(distributor.token()), address(token));
        vm.assertEq(distributor.ledger(), address(ledger));
        vm.assertEq(distributor.merkleRoot(), bytes32(0));
        vm.assertEq(uint256(distributor.epoch()), 0);
        vm.assertEq(distributor.claimed(alice), 0);
    }

    function test_RevertWhen_ConstructorZeroToken() public {
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        new RewardDistributor(IERC20(address(0)), address(ledger));
    }

    function test_RevertWhen_ConstructorZeroLedger() public {
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        new RewardDistributor(token, address(0));
    }

    // ------------------------------------------------------------------ setMerkleRoot

    function test_SetMerkleRoot() public {
        vm.expectEmit(address(distributor));
        emit IRewardDistributor.MerkleRootUpdated(1, bytes32(uint256(7)));
        vm.prank(address(ledger));
        distributor.setMerkleRoot(bytes32(uint256(7)), 1);
        vm.assertEq(distributor.merkleRoot(), bytes32(uint256(7)));
        vm.assertEq(uint256(distributor.epoch()), 1);

        // Epochs may skip ahead; they only have to increase.
        vm.prank(address(ledger));
        distributor.setMerkleRoot(bytes32(uint256(8)), 5);
        vm.assertEq(uint256(distributor.epoch()), 5);
    }

    function test_RevertWhen_SetMerkleRootNotLedger() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.NotLedger.selector, operator));
        vm.prank(operator);
        distributor.setMerkleRoot(bytes32(uint256(7)), 1);
    }

    function test_RevertWhen_SetMerkleRootEpochZero() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.EpochNotIncreasing.selector, 0, 0));
        vm.prank(address(ledger));
        distributor.setMerkleRoot(bytes32(uint256(7)), 0);
    }

    function test_RevertWhen_SetMerkleRootEpochNotIncreasing() public {
        vm.startPrank(address(ledger));
        distributor.setMerkleRoot(bytes32(uint256(7)), 3);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.EpochNotIncreasing.selector, 3, 3));
        distributor.setMerkleRoot(bytes32(uint256(8)), 3);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.EpochNotIncreasing.selector, 3, 2));
        distributor.setMerkleRoot(bytes32(uint256(8)), 2);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ claim

    function test_Claim() public {
        bytes32[] memory tree = postFour();
        bytes32[] memory proof = proofOf(tree, alice, 100e18);

        vm.expectEmit(address(distributor));
        emit IRewardDistributor.Claimed(alice, 100e18, 100e18);
        vm.expectEmit(address(token));
        emit IERC20.Transfer(address(distributor), alice, 100e18);
        vm.prank(alice);
        distributor.claim(alice, 100e18, proof);

        vm.assertEq(token.balanceOf(alice), 100e18);
        vm.assertEq(distributor.claimed(alice), 100e18);
        vm.assertEq(token.balanceOf(address(distributor)), 80e18);
    }

    function test_ClaimByRelayerPaysAccount() public {
        bytes32[] memory tree = postFour();
        vm.prank(relayer);
        distributor.claim(bob, 50e18, proofOf(tree, bob, 50e18));
        vm.assertEq(token.balanceOf(bob), 50e18);
        vm.assertEq(token.balanceOf(relayer), 0);
    }

    function test_ClaimCumulativeAcrossEpochs() public {
        bytes32[] memory tree = postFour();
        distributor.claim(alice, 100e18, proofOf(tree, alice, 100e18));

        // Epoch 2: alice's cumulative total rises to 130, bob's to 80 (bob never claimed epoch 1).
        amts[0] = 130e18;
        amts[1] = 80e18;
        tree = postCurrent(60e18);

        vm.expectEmit(address(distributor));
        emit IRewardDistributor.Claimed(alice, 30e18, 130e18);
        distributor.claim(alice, 130e18, proofOf(tree, alice, 130e18));
        vm.expectEmit(address(distributor));
        emit IRewardDistributor.Claimed(bob, 80e18, 80e18);
        distributor.claim(bob, 80e18, proofOf(tree, bob, 80e18));

        vm.assertEq(token.balanceOf(alice), 130e18);
        vm.assertEq(token.balanceOf(bob), 80e18);
        vm.assertEq(distributor.claimed(alice), 130e18);
        vm.assertEq(token.balanceOf(address(distributor)), 240e18 - 210e18);
    }

    function test_ClaimSingleLeafTree() public {
        set(alice, 1e18);
        bytes32[] memory tree = postCurrent(1e18);
        vm.assertEq(tree.length, 1);
        distributor.claim(alice, 1e18, new bytes32[](0));
        vm.assertEq(token.balanceOf(alice), 1e18);
    }

    function test_ClaimOddDepthProof() public {
        // Five leaves: proofs of length 2 and 3 (odd and even step counts).
        postFour();
        set(makeAddr("erin"), 7e18);
        bytes32[] memory tree = postCurrent(7e18);
        for (uint256 i; i < accts.length; ++i) {
            distributor.claim(accts[i], amts[i], proofOf(tree, accts[i], amts[i]));
            vm.assertEq(token.balanceOf(accts[i]), amts[i]);
        }
    }

    function test_RevertWhen_ClaimBeforeAnyRoot() public {
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claim(alice, 1, new bytes32[](0));
    }

    function test_RevertWhen_ClaimWrongAmount() public {
        bytes32[] memory tree = postFour();
        bytes32[] memory proof = proofOf(tree, alice, 100e18);
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claim(alice, 100e18 + 1, proof);
    }

    function test_RevertWhen_ClaimWrongAccount() public {
        bytes32[] memory tree = postFour();
        bytes32[] memory proof = proofOf(tree, alice, 100e18);
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claim(bob, 100e18, proof);
    }

    function test_RevertWhen_ClaimTamperedProof() public {
        bytes32[] memory tree = postFour();
        bytes32[] memory proof = proofOf(tree, alice, 100e18);
        proof[1] = bytes32(uint256(proof[1]) ^ 1);
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claim(alice, 100e18, proof);
    }

    function test_RevertWhen_ClaimTruncatedProof() public {
        bytes32[] memory tree = postFour();
        bytes32[] memory proof = proofOf(tree, alice, 100e18);
        assembly {
            mstore(proof, 1)
        }
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claim(alice, 100e18, proof);
    }

    function test_RevertWhen_ClaimInnerNodeAsLeaf() public {
        // A second-preimage attempt: present an inner node's children as (account, amount).
        bytes32[] memory tree = postFour();
        address fakeAccount = address(uint160(uint256(tree[1])));
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claim(fakeAccount, uint256(tree[2]), new bytes32[](0));
    }

    function test_RevertWhen_ClaimOldRoot() public {
        bytes32[] memory tree = postFour();
        bytes32[] memory oldProof = proofOf(tree, alice, 100e18);
        amts[0] = 130e18;
        postCurrent(30e18);
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claim(alice, 100e18, oldProof);
    }

    function test_RevertWhen_ClaimTwice() public {
        bytes32[] memory tree = postFour();
        bytes32[] memory proof = proofOf(tree, alice, 100e18);
        distributor.claim(alice, 100e18, proof);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.NothingToClaim.selector, alice));
        distributor.claim(alice, 100e18, proof);
    }

    function test_RevertWhen_ClaimZeroAmountLeaf() public {
        set(alice, 0);
        set(bob, 1e18);
        bytes32[] memory tree = postCurrent(1e18);
        bytes32[] memory proof = proofOf(tree, alice, 0);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.NothingToClaim.selector, alice));
        distributor.claim(alice, 0, proof);
    }

    function test_RevertWhen_ClaimUnderfunded() public {
        set(alice, 100e18);
        set(bob, 50e18);
        bytes32[] memory tree = postCurrent(120e18);
        distributor.claim(alice, 100e18, proofOf(tree, alice, 100e18));
        // The token's own error is bubbled up.
        vm.expectRevert(
            abi.encodeWithSignature(
                "ERC20InsufficientBalance(address,uint256,uint256)", address(distributor), 20e18, 50e18
            )
        );
        distributor.claim(bob, 50e18, proofOf(tree, bob, 50e18));
        vm.assertEq(distributor.claimed(bob), 0);
    }

    // ------------------------------------------------------------------ claim: OpenZeppelin JS vectors

    /// @dev Root and proofs produced by `@openzeppelin/merkle-tree` 1.0.8 (`StandardMerkleTree.of(values,
    /// ["address", "uint256"])`), so the on-chain leaf encoding is checked against the reference library.
    function test_ClaimOpenZeppelinVectors() public {
        bytes32 root = 0x72b3846c8af54f58c0fb1cd21092ec23105171a9cb2cd2d06cdab8f09b8f5dac;
        post(root, 200_000e18);

        bytes32[] memory p = new bytes32[](3);
        p[0] = 0x46078e31d77e74968442440eca60d00fbc00b2f2bcbfe12806acd7771a62c813;
        p[1] = 0xeb02c421cfa48976e66dfb29120745909ea3a0f843456c263cf8f1253483e283;
        p[2] = 0x8d00bd8d33bd92e6ade0ba2d87958d59727515200df528502b93c99dd3fa0256;
        distributor.claim(0x4444444444444444444444444444444444444444, 123456789012345678901234, p);

        bytes32[] memory q = new bytes32[](2);
        q[0] = 0xc3d2e29c8ded2ca4aa700f83273d097a3fb1683f4b5f291a8ee7d74ff26fc6b3;
        q[1] = 0x480f5f8694b8134f65d0db20bc90e8561adcb440d2f60ec6e6e028eaa1fc9e91;
        distributor.claim(0x2222222222222222222222222222222222222222, 2500000000000000000, q);

        vm.assertEq(token.balanceOf(0x4444444444444444444444444444444444444444), 123456789012345678901234);
        vm.assertEq(token.balanceOf(0x2222222222222222222222222222222222222222), 2500000000000000000);
    }

    /// @dev `getMultiProof([0, 2, 3])` from `@openzeppelin/merkle-tree` for the same tree.
    function test_ClaimManyOpenZeppelinVectors() public {
        post(0x72b3846c8af54f58c0fb1cd21092ec23105171a9cb2cd2d06cdab8f09b8f5dac, 200_000e18);
        address[] memory a = new address[](3);
        uint256[] memory c = new uint256[](3);
        (a[0], c[0]) = (0x4444444444444444444444444444444444444444, 123456789012345678901234);
        (a[1], c[1]) = (0x3333333333333333333333333333333333333333, 1);
        (a[2], c[2]) = (0x1111111111111111111111111111111111111111, 5000000000000000000);
        bytes32[] memory p = new bytes32[](2);
        p[0] = 0x46078e31d77e74968442440eca60d00fbc00b2f2bcbfe12806acd7771a62c813;
        p[1] = 0xb92c48e9d7abe27fd8dfd6b5dfdbfb1c9a463f80c712b66f3a5180a090cccafc;
        bool[] memory f = new bool[](4);
        (f[0], f[1], f[2], f[3]) = (false, false, true, true);
        distributor.claimMany(a, c, p, f);
        for (uint256 i; i < 3; ++i) {
            vm.assertEq(token.balanceOf(a[i]), c[i]);
        }
    }

    // ------------------------------------------------------------------ claimMany

    function test_ClaimMany() public {
        bytes32[] memory tree = postFour();
        (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) =
            batch(tree, list(alice, carol, dave));
        for (uint256 i; i < a.length; ++i) {
            vm.expectEmit(address(distributor));
            emit IRewardDistributor.Claimed(a[i], c[i], c[i]);
        }
        vm.prank(relayer);
        distributor.claimMany(a, c, p, f);
        vm.assertEq(token.balanceOf(alice), 100e18);
        vm.assertEq(token.balanceOf(carol), 25e18);
        vm.assertEq(token.balanceOf(dave), 5e18);
        vm.assertEq(token.balanceOf(bob), 0);
        vm.assertEq(distributor.claimed(carol), 25e18);
        vm.assertEq(token.balanceOf(address(distributor)), 50e18);
    }

    function test_ClaimManyWholeTree() public {
        bytes32[] memory tree = postFour();
        (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) = batch(tree, accts);
        vm.assertEq(p.length, 0);
        distributor.claimMany(a, c, p, f);
        vm.assertEq(token.balanceOf(address(distributor)), 0);
    }

    function test_ClaimManySingleLeaf() public {
        bytes32[] memory tree = postFour();
        (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) = batch(tree, list(bob));
        distributor.claimMany(a, c, p, f);
        vm.assertEq(token.balanceOf(bob), 50e18);
    }

    function test_ClaimManySingleLeafTree() public {
        set(alice, 1e18);
        postCurrent(1e18);
        distributor.claimMany(list(alice), toArray(1e18), new bytes32[](0), new bool[](0));
        vm.assertEq(token.balanceOf(alice), 1e18);
    }

    function test_ClaimManySkipsAlreadyClaimed() public {
        bytes32[] memory tree = postFour();
        distributor.claim(carol, 25e18, proofOf(tree, carol, 25e18));
        (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) =
            batch(tree, list(alice, carol, dave));
        vm.recordLogs();
        distributor.claimMany(a, c, p, f);
        // Two Claimed + two Transfer events: carol is skipped.
        vm.assertEq(vm.getRecordedLogs().length, 4);
        vm.assertEq(token.balanceOf(carol), 25e18);
        vm.assertEq(token.balanceOf(alice), 100e18);
        vm.assertEq(token.balanceOf(dave), 5e18);
    }

    function test_ClaimManyAllClaimedIsNoop() public {
        bytes32[] memory tree = postFour();
        (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) = batch(tree, list(alice, bob));
        distributor.claimMany(a, c, p, f);
        uint256 before = token.balanceOf(address(distributor));
        distributor.claimMany(a, c, p, f);
        vm.assertEq(token.balanceOf(address(distributor)), before);
        vm.assertEq(token.balanceOf(alice), 100e18);
    }

    /// @dev The same leaf twice in one tree (a builder bug or a malicious tree): a batch proving both copies
    /// pays the account once.
    function test_ClaimManyDuplicateLeafPaidOnce() public {
        set(alice, 10e18);
        set(alice, 10e18);
        set(bob, 3e18);
        bytes32[] memory tree = postCurrent(23e18);
        uint256[] memory indices = new uint256[](3);
        uint256 found;
        bytes32 aliceLeaf = Merkle.leaf(alice, 10e18);
        for (uint256 i = tree.length - 3; i < tree.length; ++i) {
            indices[found++] = i;
        }
        (bytes32[] memory leaves, bytes32[] memory p, bool[] memory f,) = Merkle.multiProof(tree, indices);
        address[] memory a = new address[](3);
        uint256[] memory c = new uint256[](3);
        for (uint256 k; k < 3; ++k) {
            (a[k], c[k]) = leaves[k] == aliceLeaf ? (alice, 10e18) : (bob, 3e18);
        }
        vm.recordLogs();
        distributor.claimMany(a, c, p, f);
        vm.assertEq(vm.getRecordedLogs().length, 4);
        vm.assertEq(token.balanceOf(alice), 10e18);
        vm.assertEq(token.balanceOf(bob), 3e18);
        vm.assertEq(token.balanceOf(address(distributor)), 10e18);
    }

    /// @dev Two different leaves for one account in one batch: the account ends up with the larger amount,
    /// exactly as two separate claims would give it, never the sum.
    function test_ClaimManyTwoLeavesSameAccount() public {
        set(alice, 10e18);
        set(alice, 15e18);
        set(bob, 3e18);
        bytes32[] memory tree = postCurrent(28e18);
        uint256[] memory indices = new uint256[](3);
        for (uint256 i; i < 3; ++i) {
            indices[i] = tree.length - 1 - i;
        }
        (bytes32[] memory leaves, bytes32[] memory p, bool[] memory f,) = Merkle.multiProof(tree, indices);
        address[] memory a = new address[](3);
        uint256[] memory c = new uint256[](3);
        for (uint256 k; k < 3; ++k) {
            if (leaves[k] == Merkle.leaf(alice, 10e18)) (a[k], c[k]) = (alice, 10e18);
            else if (leaves[k] == Merkle.leaf(alice, 15e18)) (a[k], c[k]) = (alice, 15e18);
            else (a[k], c[k]) = (bob, 3e18);
        }
        distributor.claimMany(a, c, p, f);
        vm.assertEq(token.balanceOf(alice), 15e18);
        vm.assertEq(distributor.claimed(alice), 15e18);
        vm.assertEq(token.balanceOf(bob), 3e18);
    }

    function test_RevertWhen_ClaimManyLengthMismatch() public {
        bytes32[] memory tree = postFour();
        (address[] memory a,, bytes32[] memory p, bool[] memory f) = batch(tree, list(alice, bob));
        vm.expectRevert(IRewardDistributor.LengthMismatch.selector);
        distributor.claimMany(a, toArray(100e18), p, f);
    }

    function test_RevertWhen_ClaimManyEmpty() public {
        postFour();
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claimMany(new address[](0), new uint256[](0), new bytes32[](1), new bool[](0));
    }

    function test_RevertWhen_ClaimManyWrongAmount() public {
        bytes32[] memory tree = postFour();
        (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) =
            batch(tree, list(alice, bob, dave));
        c[1] += 1;
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claimMany(a, c, p, f);
    }

    function test_RevertWhen_ClaimManyWrongOrder() public {
        bytes32[] memory tree = postFour();
        (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) =
            batch(tree, list(alice, bob, dave));
        (a[0], a[1]) = (a[1], a[0]);
        (c[0], c[1]) = (c[1], c[0]);
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claimMany(a, c, p, f);
    }

    function test_RevertWhen_ClaimManyFlagsTooLong() public {
        bytes32[] memory tree = postFour();
        (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) =
            batch(tree, list(alice, bob, dave));
        bool[] memory longer = new bool[](f.length + 1);
        for (uint256 i; i < f.length; ++i) {
            longer[i] = f[i];
        }
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claimMany(a, c, p, longer);
    }

    function test_RevertWhen_ClaimManyProofNotConsumed() public {
        // Lengths balance (3 leaves + 1 proof == 3 flags + 1) but all-true flags never read the proof.
        bytes32[] memory tree = postFour();
        (address[] memory a, uint256[] memory c,,) = batch(tree, list(alice, bob, dave));
        bool[] memory f = new bool[](3);
        (f[0], f[1], f[2]) = (true, true, true);
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claimMany(a, c, new bytes32[](1), f);
    }

    function test_RevertWhen_ClaimManyReadsUncomputedHash() public {
        // 1 leaf + 2 proof == 2 flags + 1, but flags [true, false] make step 0 read a second queue item
        // that does not exist yet.
        bytes32[] memory tree = postFour();
        bool[] memory f = new bool[](2);
        (f[0], f[1]) = (true, false);
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claimMany(list(alice), toArray(100e18), proofOf(tree, alice, 100e18), f);
    }

    function test_RevertWhen_ClaimManyProofOverrun() public {
        // Lengths balance only if a flag is "true", but an all-false run would read past the proof.
        bytes32[] memory tree = postFour();
        bytes32[] memory p = proofOf(tree, alice, 100e18);
        (address[] memory a, uint256[] memory c,,) = batch(tree, list(alice, bob));
        // 2 leaves + 2 proof == 3 flags + 1; all-false consumes 3 proof elements.
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claimMany(a, c, p, new bool[](3));
    }

    function test_RevertWhen_ClaimManyDirtyFlag() public {
        bytes32[] memory tree = postFour();
        (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) =
            batch(tree, list(alice, bob, dave));
        bytes memory data = abi.encodeCall(distributor.claimMany, (a, c, p, f));
        // Rewrite the last flag word (a `true`) to 2: not a clean bool.
        vm.assertEq(uint8(data[data.length - 1]), 1);
        data[data.length - 1] = bytes1(uint8(2));
        (bool ok, bytes memory ret) = address(distributor).call(data);
        vm.assertFalse(ok);
        vm.assertEq(ret, abi.encodeWithSelector(IRewardDistributor.InvalidProof.selector));
    }

    function test_RevertWhen_ClaimManyDirtyAddress() public {
        set(alice, 1e18);
        postCurrent(1e18);
        bytes memory data =
            abi.encodeCall(distributor.claimMany, (list(alice), toArray(1e18), new bytes32[](0), new bool[](0)));
        // accounts[0] is the word after the four head offsets and the accounts length: set a high byte.
        data[4 + 5 * 32] = 0x01;
        (bool ok, bytes memory ret) = address(distributor).call(data);
        vm.assertFalse(ok);
        vm.assertEq(ret, abi.encodeWithSelector(IRewardDistributor.InvalidProof.selector));
        vm.assertEq(token.balanceOf(alice), 0);
    }

    function test_RevertWhen_ClaimManyBeforeAnyRoot() public {
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claimMany(list(alice), toArray(1), new bytes32[](0), new bool[](0));
    }

    // ------------------------------------------------------------------ token failures

    function misbehaving(MisbehavingToken.Mode mode) internal returns (RewardDistributor d, bytes32[] memory tree) {
        MisbehavingToken bad = new MisbehavingToken();
        bad.setMode(mode);
        d = new RewardDistributor(IERC20(address(bad)), address(this));
        set(alice, 1e18);
        set(bob, 2e18);
        tree = rewardsTree(accts, amts);
        d.setMerkleRoot(tree[0], 1);
    }

    function test_RevertWhen_TokenReturnsFalse() public {
        (RewardDistributor d, bytes32[] memory tree) = misbehaving(MisbehavingToken.Mode.ReturnFalse);
        vm.expectRevert(IRewardDistributor.TransferFailed.selector);
        d.claim(alice, 1e18, proofOf(tree, alice, 1e18));
        vm.assertEq(d.claimed(alice), 0);
    }

    function test_RevertWhen_TokenReturnsNothing() public {
        (RewardDistributor d, bytes32[] memory tree) = misbehaving(MisbehavingToken.Mode.ReturnNothing);
        vm.expectRevert(IRewardDistributor.TransferFailed.selector);
        d.claim(alice, 1e18, proofOf(tree, alice, 1e18));
    }

    function test_RevertWhen_TokenReverts() public {
        (RewardDistributor d, bytes32[] memory tree) = misbehaving(MisbehavingToken.Mode.Revert);
        vm.expectRevert(abi.encodeWithSelector(MisbehavingToken.Nope.selector, alice, 1e18));
        d.claim(alice, 1e18, proofOf(tree, alice, 1e18));
    }

    function test_RevertWhen_TokenReturnsFalseInBatch() public {
        (RewardDistributor d, bytes32[] memory tree) = misbehaving(MisbehavingToken.Mode.ReturnFalse);
        (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) = batch(tree, list(alice, bob));
        vm.expectRevert(IRewardDistributor.TransferFailed.selector);
        d.claimMany(a, c, p, f);
    }

    function test_ClaimWithWellBehavedMock() public {
        (RewardDistributor d, bytes32[] memory tree) = misbehaving(MisbehavingToken.Mode.ReturnTrue);
        d.claim(alice, 1e18, proofOf(tree, alice, 1e18));
        vm.assertEq(d.claimed(alice), 1e18);
    }

    // ------------------------------------------------------------------ fuzz

    /// @dev Random cumulative amounts for up to 16 accounts over several epochs, claimed at random moments
    /// through `claim` or `claimMany`: everyone ends with exactly their latest cumulative amount and the
    /// distributor with exactly the unclaimed remainder.
    function testFuzz_CumulativeClaims(uint256 seed, uint8 accountCount, uint8 epochCount) public {
        uint256 n = bound(accountCount, 1, 16);
        uint256 epochs = bound(epochCount, 1, 6);
        for (uint256 i; i < n; ++i) {
            set(address(uint160(uint256(keccak256(abi.encode(seed, "account", i))))), 0);
        }
        uint256 funded;
        for (uint256 e; e < epochs; ++e) {
            uint256 added;
            for (uint256 i; i < n; ++i) {
                uint256 inc = uint256(keccak256(abi.encode(seed, e, i))) % 1_000_000e18;
                if (inc % 4 == 0) inc = 0; // some accounts earn nothing this epoch
                amts[i] += inc;
                added += inc;
            }
            funded += added;
            bytes32[] memory tree = postCurrent(added);
            // Claim for a random subset: odd seeds one by one, even seeds as one batch.
            uint256 mask = uint256(keccak256(abi.encode(seed, "mask", e)));
            if (mask % 2 == 1) {
                for (uint256 i; i < n; ++i) {
                    if ((mask >> (i + 1)) & 1 == 1 && amts[i] > distributor.claimed(accts[i])) {
                        distributor.claim(accts[i], amts[i], proofOf(tree, accts[i], amts[i]));
                    }
                }
            } else {
                uint256 count;
                for (uint256 i; i < n; ++i) {
                    if ((mask >> (i + 1)) & 1 == 1) count++;
                }
                if (count > 0) {
                    address[] memory who = new address[](count);
                    count = 0;
                    for (uint256 i; i < n; ++i) {
                        if ((mask >> (i + 1)) & 1 == 1) who[count++] = accts[i];
                    }
                    (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) = batch(tree, who);
                    distributor.claimMany(a, c, p, f);
                }
            }
        }
        // Finally everyone claims whatever is left under the last root.
        bytes32[] memory last = rewardsTree(accts, amts);
        uint256 paid;
        for (uint256 i; i < n; ++i) {
            if (amts[i] > distributor.claimed(accts[i])) {
                distributor.claim(accts[i], amts[i], proofOf(last, accts[i], amts[i]));
            }
            vm.assertEq(token.balanceOf(accts[i]), amts[i]);
            vm.assertEq(distributor.claimed(accts[i]), amts[i]);
            paid += amts[i];
        }
        vm.assertEq(paid, funded);
        vm.assertEq(token.balanceOf(address(distributor)), 0);
        vm.assertEq(ledger.totalFunded(), funded);
    }

    /// @dev Any proof for an amount other than the leaf's is rejected, whatever the amount.
    function testFuzz_RevertWhen_ClaimWrongAmount(uint256 amount) public {
        bytes32[] memory tree = postFour();
        vm.assume(amount != 100e18);
        bytes32[] memory proof = proofOf(tree, alice, 100e18);
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claim(alice, amount, proof);
    }

    /// @dev For random trees and random subsets, the multiproof our helper builds verifies under
    /// OpenZeppelin's `MerkleProof` (so the helper is faithful) and pays out through `claimMany`.
    function testFuzz_ClaimManyMatchesOpenZeppelin(uint256 seed, uint8 size, uint16 subset) public {
        uint256 n = bound(size, 1, 16);
        for (uint256 i; i < n; ++i) {
            set(
                address(uint160(uint256(keccak256(abi.encode(seed, i))))),
                1 + uint256(keccak256(abi.encode(seed, "amt", i))) % 1e24
            );
        }
        uint256 total;
        for (uint256 i; i < n; ++i) {
            total += amts[i];
        }
        bytes32[] memory tree = postCurrent(total);
        uint256 count;
        for (uint256 i; i < n; ++i) {
            if ((subset >> i) & 1 == 1) count++;
        }
        vm.assume(count > 0);
        address[] memory who = new address[](count);
        count = 0;
        for (uint256 i; i < n; ++i) {
            if ((subset >> i) & 1 == 1) who[count++] = accts[i];
        }
        (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) = batch(tree, who);
        bytes32[] memory leaves = new bytes32[](a.length);
        for (uint256 k; k < a.length; ++k) {
            leaves[k] = Merkle.leaf(a[k], c[k]);
        }
        vm.assertTrue(MerkleProof.multiProofVerify(p, f, tree[0], leaves));
        distributor.claimMany(a, c, p, f);
        for (uint256 k; k < a.length; ++k) {
            vm.assertEq(token.balanceOf(a[k]), c[k]);
        }
    }

    /// @dev Flipping any one flag of a valid multiproof never pays out.
    function testFuzz_RevertWhen_ClaimManyFlippedFlag(uint256 which) public {
        bytes32[] memory tree = postFour();
        (address[] memory a, uint256[] memory c, bytes32[] memory p, bool[] memory f) =
            batch(tree, list(alice, carol, dave));
        which = bound(which, 0, f.length - 1);
        f[which] = !f[which];
        vm.expectRevert(IRewardDistributor.InvalidProof.selector);
        distributor.claimMany(a, c, p, f);
    }

    function toArray(uint256 x) internal pure returns (uint256[] memory l) {
        l = new uint256[](1);
        l[0] = x;
    }
}
