// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Vm} from "./utils/Vm.sol";
import {Fixture} from "./utils/Fixture.sol";
import {Merkle} from "./utils/Merkle.sol";

/// @dev Gas benchmarks for the claim paths. Each test measures the distributor call's own frame with
/// `vm.lastCallGas()` and checks the whole-transaction figure: 21,000 + calldata (EIP-2028) + execution. The
/// distributor is the transaction's `to`, so it is warm, as in a real transaction; everything else the call
/// touches is cold unless set up by an earlier transaction (`setUp`). Set-up work runs with gas metering
/// paused so that `forge snapshot` records mostly the call itself.
abstract contract GasBase is Fixture {
    /// @dev Logged so that `forge test -vvvv` shows the numbers next to the targets.
    event log_gas(string what, uint256 execution, uint256 wholeTransaction, uint256 target);

    /// @dev A 100,000-leaf tree is 17 levels deep.
    uint256 internal constant DEPTH = 17;
    uint256 internal constant TX_BASE = 21_000;

    /// @dev Whole-transaction targets. They sit below what the fixed costs allow (per fresh account: two
    /// fresh slots, cold token and root, the token's Transfer and our Claimed event, OpenZeppelin ERC-20's own
    /// overhead and the calldata), so they are logged, not asserted.
    uint256 internal constant FIRST_CLAIM_TARGET = 90_000;
    uint256 internal constant REPEAT_CLAIM_TARGET = 56_000;
    uint256 internal constant CLAIM_MANY_PER_ACCOUNT_TARGET = 50_000;

    /// @dev Regression guards: measured (solc 0.8.30, via-IR, 1,000,000 optimizer runs) plus ~0.1%. A change
    /// that makes a claim path more expensive fails here.
    uint256 internal constant FIRST_CLAIM_LIMIT = 91_800;
    uint256 internal constant REPEAT_CLAIM_LIMIT = 57_600;
    uint256 internal constant CLAIM_MANY_PER_ACCOUNT_LIMIT = 50_750;
    uint256 internal constant CLAIM_MANY_DEEP_PER_ACCOUNT_LIMIT = 51_100;

    /// @dev `DEPTH` pseudo-random siblings; folding a leaf through them gives a root with a valid 17-step proof.
    function siblings(bytes32 salt, uint256 depth) internal pure returns (bytes32[] memory s) {
        s = new bytes32[](depth);
        for (uint256 i; i < depth; ++i) {
            s[i] = keccak256(abi.encode(salt, i));
        }
    }

    /// @dev Whole-transaction gas of the last call, given its calldata.
    function txGas(bytes memory data) internal view returns (uint256 execution, uint256 total) {
        execution = vm.lastCallGas().gasTotalUsed;
        total = TX_BASE + calldataGas(data) + execution;
    }
}

/// @notice First claim by a wallet that never held OPEN, 17-element proof.
contract GasClaimFirstTest is GasBase {
    uint256 internal constant AMOUNT = 1_234_567_891_234_567_891_234;
    address internal alice;
    bytes32 internal salt = "first";

    function setUp() public {
        deploySystem();
        alice = makeAddr("alice");
        post(Merkle.fold(Merkle.leaf(alice, AMOUNT), siblings(salt, DEPTH)), 10_000_000e18);
    }

    function test_Gas_ClaimFirst() public {
        vm.pauseGasMetering();
        bytes32[] memory p = siblings(salt, DEPTH);
        vm.resumeGasMetering();
        distributor.claim(alice, AMOUNT, p);
        vm.pauseGasMetering();
        (uint256 execution, uint256 total) = txGas(abi.encodeCall(distributor.claim, (alice, AMOUNT, p)));
        emit log_gas("first claim", execution, total, FIRST_CLAIM_TARGET);
        vm.assertLe(total, FIRST_CLAIM_LIMIT, "first claim");
        vm.assertEq(token.balanceOf(alice), AMOUNT);
    }
}

/// @notice Second claim by the same wallet (it still holds its first payout), 17-element proof.
contract GasClaimRepeatTest is GasBase {
    uint256 internal constant FIRST = 1_234_567_891_234_567_891_234;
    uint256 internal constant SECOND = 2_469_135_782_469_135_782_468;
    address internal alice;
    bytes32 internal salt1 = "first";
    bytes32 internal salt2 = "second";

    function setUp() public {
        deploySystem();
        alice = makeAddr("alice");
        post(Merkle.fold(Merkle.leaf(alice, FIRST), siblings(salt1, DEPTH)), 10_000_000e18);
        distributor.claim(alice, FIRST, siblings(salt1, DEPTH));
        post(Merkle.fold(Merkle.leaf(alice, SECOND), siblings(salt2, DEPTH)), 10_000_000e18);
    }

    function test_Gas_ClaimRepeat() public {
        vm.pauseGasMetering();
        bytes32[] memory p = siblings(salt2, DEPTH);
        vm.resumeGasMetering();
        distributor.claim(alice, SECOND, p);
        vm.pauseGasMetering();
        (uint256 execution, uint256 total) = txGas(abi.encodeCall(distributor.claim, (alice, SECOND, p)));
        emit log_gas("repeat claim", execution, total, REPEAT_CLAIM_TARGET);
        vm.assertLe(total, REPEAT_CLAIM_LIMIT, "repeat claim");
        vm.assertEq(token.balanceOf(alice), SECOND);
    }
}

/// @dev 100 fresh accounts with realistic amounts, and the batch for a multiproof over them.
abstract contract GasClaimManyBase is GasBase {
    uint256 internal constant N = 100;

    address[] internal accounts;
    uint256[] internal amounts;

    function makeAccounts() internal {
        for (uint256 i; i < N; ++i) {
            accounts.push(address(uint160(uint256(keccak256(abi.encode("claimer", i))))));
            amounts.push((i + 1) * 1e18 + uint256(keccak256(abi.encode("amount", i))) % 1e18);
        }
    }

    function leaves() internal view returns (bytes32[] memory l) {
        l = new bytes32[](N);
        for (uint256 i; i < N; ++i) {
            l[i] = Merkle.leaf(accounts[i], amounts[i]);
        }
    }

    /// @dev Puts the accounts and amounts in the order of the multiproof's `leaves`.
    function ordered(bytes32[] memory proofLeaves)
        internal
        view
        returns (address[] memory a, uint256[] memory c, uint256 total)
    {
        a = new address[](proofLeaves.length);
        c = new uint256[](proofLeaves.length);
        for (uint256 k; k < proofLeaves.length; ++k) {
            for (uint256 i; i < N; ++i) {
                if (Merkle.leaf(accounts[i], amounts[i]) == proofLeaves[k]) {
                    (a[k], c[k]) = (accounts[i], amounts[i]);
                    total += amounts[i];
                }
            }
        }
    }

    function measure(
        string memory what,
        address[] memory a,
        uint256[] memory c,
        bytes32[] memory p,
        bool[] memory f,
        uint256 total,
        uint256 limitPerAccount
    ) internal {
        vm.resumeGasMetering();
        distributor.claimMany(a, c, p, f);
        vm.pauseGasMetering();
        (uint256 execution, uint256 whole) = txGas(abi.encodeCall(distributor.claimMany, (a, c, p, f)));
        emit log_gas(what, execution, whole, CLAIM_MANY_PER_ACCOUNT_TARGET * N);
        emit log_gas("  per account", execution / N, whole / N, CLAIM_MANY_PER_ACCOUNT_TARGET);
        vm.assertLe(whole, limitPerAccount * N, what);
        vm.assertEq(token.balanceOf(address(distributor)), 10_000_000e18 - total);
        for (uint256 i; i < N; ++i) {
            vm.assertEq(token.balanceOf(a[i]), c[i]);
        }
    }
}

/// @notice `claimMany` for 100 fresh accounts that make up the whole tree.
contract GasClaimManyTest is GasClaimManyBase {
    bytes32[] internal tree;

    function setUp() public {
        deploySystem();
        makeAccounts();
        tree = Merkle.build(Merkle.sort(leaves()));
        post(tree[0], 10_000_000e18);
    }

    function test_Gas_ClaimMany100() public {
        vm.pauseGasMetering();
        bytes32[] memory t = tree;
        uint256[] memory indices = new uint256[](N);
        for (uint256 i; i < N; ++i) {
            indices[i] = t.length - 1 - i;
        }
        (bytes32[] memory l, bytes32[] memory p, bool[] memory f,) = Merkle.multiProof(t, indices);
        (address[] memory a, uint256[] memory c, uint256 total) = ordered(l);
        measure("claimMany, 100 accounts = whole tree", a, c, p, f, total, CLAIM_MANY_PER_ACCOUNT_LIMIT);
    }
}

/// @notice `claimMany` for 100 fresh accounts that sit next to each other in a 17-level tree: a 128-leaf
/// subtree (the 100 claimers and 28 others) under 10 more levels.
contract GasClaimManyDeepTest is GasClaimManyBase {
    uint256 internal constant SUBTREE = 128;
    bytes32[] internal tree;
    bytes32 internal salt = "upper";

    function setUp() public {
        deploySystem();
        makeAccounts();
        bytes32[] memory l = new bytes32[](SUBTREE);
        bytes32[] memory mine = leaves();
        for (uint256 i; i < SUBTREE; ++i) {
            // Small numbers: the cast is exact.
            // forge-lint: disable-next-line(unsafe-typecast)
            l[i] = i < N ? mine[i] : Merkle.leaf(address(uint160(0xbeef + i)), i * 1e18);
        }
        tree = Merkle.build(Merkle.sort(l));
        post(Merkle.fold(tree[0], siblings(salt, DEPTH - 7)), 10_000_000e18);
    }

    function test_Gas_ClaimMany100Deep() public {
        vm.pauseGasMetering();
        bytes32[] memory t = tree;
        bytes32[] memory mine = leaves();
        uint256[] memory indices = new uint256[](N);
        for (uint256 i; i < N; ++i) {
            indices[i] = Merkle.indexOf(t, mine[i]);
        }
        (bytes32[] memory l, bytes32[] memory sub, bool[] memory subFlags,) = Merkle.multiProof(t, indices);
        // Continue the subtree multiproof up the 10 upper levels: one proof element and one `false` flag each.
        bytes32[] memory upper = siblings(salt, DEPTH - 7);
        bytes32[] memory p = new bytes32[](sub.length + upper.length);
        bool[] memory f = new bool[](subFlags.length + upper.length);
        for (uint256 i; i < sub.length; ++i) {
            p[i] = sub[i];
        }
        for (uint256 i; i < upper.length; ++i) {
            p[sub.length + i] = upper[i];
        }
        for (uint256 i; i < subFlags.length; ++i) {
            f[i] = subFlags[i];
        }
        (address[] memory a, uint256[] memory c, uint256 total) = ordered(l);
        measure("claimMany, 100 adjacent accounts, 17 levels", a, c, p, f, total, CLAIM_MANY_DEEP_PER_ACCOUNT_LIMIT);
    }
}

/// @notice `postEpoch` of the first epoch (fresh funding, root and epoch slots), with a 66-character data URI.
/// The cost does not depend on the number of records or accounts: only roots are posted.
contract GasPostEpochTest is GasBase {
    string internal constant URI = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

    function setUp() public virtual {
        deploySystem();
    }

    function postCall(uint64 epoch) internal returns (bytes memory data) {
        data = abi.encodeCall(
            ledger.postEpoch,
            (
                epoch,
                epoch * 1000,
                keccak256("log"),
                keccak256(abi.encode("rewards", epoch)),
                1_000e18,
                1234,
                URI,
                keccak256("data")
            )
        );
        vm.prank(operator);
        (bool ok,) = address(ledger).call(data);
        vm.assertTrue(ok);
    }

    function test_Gas_PostEpoch() public virtual {
        (uint256 execution, uint256 total) = txGas(postCall(1));
        emit log_gas("postEpoch, first epoch", execution, total, 0);
    }
}

/// @notice `postEpoch` of a later epoch (the ledger's and distributor's slots already set).
contract GasPostEpochLaterTest is GasPostEpochTest {
    function setUp() public override {
        deploySystem();
        postCall(1);
    }

    function test_Gas_PostEpoch() public override {
        (uint256 execution, uint256 total) = txGas(postCall(2));
        emit log_gas("postEpoch, later epoch", execution, total, 0);
    }
}
