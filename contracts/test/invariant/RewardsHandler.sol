// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TestBase} from "../utils/TestBase.sol";
import {Merkle} from "../utils/Merkle.sol";
import {OpenToken} from "../../src/OpenToken.sol";
import {AttributionLedger} from "../../src/AttributionLedger.sol";
import {RewardDistributor} from "../../src/RewardDistributor.sol";

/// @title RewardsHandler
/// @notice Drives the ledger and distributor for the invariant tests: posts epochs with growing cumulative
/// amounts (keeping the ghost table and building the tree), claims for random actors with valid and invalid
/// proofs, singly and in batches, and lets random callers try the privileged functions. Every outcome is
/// recorded in ghost variables that the invariants compare with the contracts.
contract RewardsHandler is TestBase {
    uint256 public constant ACTORS = 8;
    uint256 internal constant MAX_INCREMENT = 1_000_000e18;

    OpenToken public immutable token;
    AttributionLedger public immutable ledger;
    RewardDistributor public immutable distributor;
    address public immutable admin;
    address public immutable operator;

    address[ACTORS] public actors;

    // ---- ghost state
    uint256[ACTORS] public ghostCumulative; // latest posted cumulative amount per actor
    uint256[ACTORS] public ghostPaid; // sum of Claimed amounts per actor
    uint256 public ghostClaimed; // sum of all Claimed amounts
    uint256 public ghostFunded;
    uint64 public ghostEpoch;
    uint64 public ghostLogSize;
    bytes32 public ghostRoot;
    uint16[3] public ghostFeeSplit = [7000, 2000, 1000];

    // ---- violations (must stay zero)
    uint256 public unauthorizedPosts;
    uint256 public unauthorizedRootChanges;
    uint256 public unauthorizedFeeChanges;
    uint256 public invalidClaimsAccepted;
    uint256 public validClaimsRejected;
    uint256 public epochRegressions;

    // ---- coverage counters
    mapping(bytes32 => uint256) public calls;

    bytes32[] internal _tree;

    constructor(
        OpenToken token_,
        AttributionLedger ledger_,
        RewardDistributor distributor_,
        address admin_,
        address operator_
    ) {
        token = token_;
        ledger = ledger_;
        distributor = distributor_;
        admin = admin_;
        operator = operator_;
        for (uint256 i; i < ACTORS; ++i) {
            actors[i] = address(uint160(uint256(keccak256(abi.encode("actor", i)))));
        }
    }

    modifier tracked(bytes32 name) {
        uint64 epochBefore = distributor.epoch();
        _;
        calls[name]++;
        if (distributor.epoch() < epochBefore || ledger.currentEpoch() < epochBefore) epochRegressions++;
    }

    // ------------------------------------------------------------------ operator

    /// @notice The operator posts the next epoch: every actor's cumulative amount grows by a random amount
    /// (often zero) and the epoch is funded with exactly the growth.
    function postEpoch(uint256 seed, uint64 logGrowth) external tracked("postEpoch") {
        uint256 total;
        for (uint256 i; i < ACTORS; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            uint256 inc = r % 3 == 0 ? 0 : (r >> 8) % MAX_INCREMENT;
            ghostCumulative[i] += inc;
            total += inc;
        }
        _tree = _buildTree();
        uint64 epoch = ghostEpoch + 1;
        uint64 logSize = ghostLogSize + uint64(bound(logGrowth, 0, 1000));
        vm.prank(operator);
        ledger.postEpoch(epoch, logSize, keccak256(abi.encode("log", epoch)), _tree[0], total, 1, "uri", bytes32(0));
        ghostEpoch = epoch;
        ghostLogSize = logSize;
        ghostRoot = _tree[0];
        ghostFunded += total;
    }

    // ------------------------------------------------------------------ claims

    /// @notice A random caller claims for a random actor, with a valid proof or one of several invalid ones.
    function claim(uint256 actorSeed, uint256 callerSeed, uint8 mode) external tracked("claim") {
        if (ghostEpoch == 0) return;
        uint256 i = actorSeed % ACTORS;
        address account = actors[i];
        uint256 amount = ghostCumulative[i];
        bytes32[] memory proof = Merkle.proofFor(_tree, Merkle.leaf(account, amount));
        mode = uint8(bound(mode, 0, 4));
        if (mode == 1) amount += 1 + (callerSeed % 1e18); // more than the leaf says
        if (mode == 2 && amount > 0) amount -= 1; // less than the leaf says
        if (mode == 3) account = actors[(i + 1) % ACTORS]; // someone else's proof
        if (mode == 4 && proof.length > 0) proof[callerSeed % proof.length] ^= bytes32(uint256(1));
        bool valid = mode == 0 || (mode == 2 && amount == ghostCumulative[i]) || (mode == 4 && proof.length == 0);
        // A proof for the neighbour can only succeed if both leaves are identical, which they are not.

        uint256 before = token.balanceOf(account);
        vm.prank(_caller(callerSeed));
        try distributor.claim(account, amount, proof) {
            if (!valid) invalidClaimsAccepted++;
            _recordPayment(account, token.balanceOf(account) - before);
        } catch {
            // A valid proof may only fail because there is nothing left to claim.
            if (valid && amount > distributor.claimed(account)) validClaimsRejected++;
        }
    }

    /// @notice A random caller claims for a random subset of actors with one multiproof, valid or corrupted.
    function claimMany(uint256 subsetSeed, uint256 callerSeed, bool corrupt) external tracked("claimMany") {
        if (ghostEpoch == 0) return;
        uint256 mask = subsetSeed % (2 ** ACTORS);
        if (mask == 0) mask = 1;
        uint256 count;
        for (uint256 i; i < ACTORS; ++i) {
            if ((mask >> i) & 1 == 1) count++;
        }
        uint256[] memory indices = new uint256[](count);
        count = 0;
        for (uint256 i; i < ACTORS; ++i) {
            if ((mask >> i) & 1 == 1) {
                indices[count++] = Merkle.indexOf(_tree, Merkle.leaf(actors[i], ghostCumulative[i]));
            }
        }
        (bytes32[] memory leaves, bytes32[] memory proof, bool[] memory flags,) = Merkle.multiProof(_tree, indices);
        address[] memory accounts = new address[](count);
        uint256[] memory amounts = new uint256[](count);
        uint256[] memory before = new uint256[](count);
        for (uint256 k; k < count; ++k) {
            for (uint256 i; i < ACTORS; ++i) {
                if (Merkle.leaf(actors[i], ghostCumulative[i]) == leaves[k]) {
                    (accounts[k], amounts[k]) = (actors[i], ghostCumulative[i]);
                }
            }
            before[k] = token.balanceOf(accounts[k]);
        }
        if (corrupt) amounts[callerSeed % count] += 1;

        vm.prank(_caller(callerSeed));
        try distributor.claimMany(accounts, amounts, proof, flags) {
            if (corrupt) invalidClaimsAccepted++;
            for (uint256 k; k < count; ++k) {
                _recordPayment(accounts[k], token.balanceOf(accounts[k]) - before[k]);
            }
        } catch {
            if (!corrupt) validClaimsRejected++;
        }
    }

    // ------------------------------------------------------------------ attackers

    /// @notice Someone without OPERATOR_ROLE (a stranger or the admin) tries to post an epoch.
    function attackPostEpoch(uint256 callerSeed, bytes32 root, uint256 total) external tracked("attackPostEpoch") {
        address caller = callerSeed % 4 == 0 ? admin : _stranger(callerSeed);
        if (root == bytes32(0)) root = keccak256("attack");
        total = bound(total, 0, 1e24);
        vm.prank(caller);
        try ledger.postEpoch(ghostEpoch + 1, ghostLogSize, bytes32(0), root, total, 0, "", bytes32(0)) {
            unauthorizedPosts++;
            ghostEpoch++;
            ghostRoot = root;
            ghostFunded += total;
        } catch {}
    }

    /// @notice Anyone but the ledger (strangers, the operator, the admin) tries to set the distributor's root.
    function attackSetMerkleRoot(uint256 callerSeed, bytes32 root, uint64 epoch)
        external
        tracked("attackSetMerkleRoot")
    {
        uint256 pick = callerSeed % 4;
        address caller = pick == 0 ? operator : pick == 1 ? admin : _stranger(callerSeed);
        vm.prank(caller);
        try distributor.setMerkleRoot(root, epoch) {
            unauthorizedRootChanges++;
        } catch {}
    }

    /// @notice Someone without the admin role (a stranger or the operator) tries to change the fee split.
    function attackSetFeeSplit(uint256 callerSeed, uint16 c, uint16 d) external tracked("attackSetFeeSplit") {
        address caller = callerSeed % 4 == 0 ? operator : _stranger(callerSeed);
        c = uint16(bound(c, 0, 10_000));
        d = uint16(bound(d, 0, 10_000 - c));
        vm.prank(caller);
        try ledger.setFeeSplit(c, d, 10_000 - c - d) {
            unauthorizedFeeChanges++;
        } catch {}
    }

    /// @notice The admin changes the fee split; it sticks exactly when the shares sum to 10,000.
    function adminSetFeeSplit(uint16 c, uint16 d, uint16 o) external tracked("adminSetFeeSplit") {
        vm.prank(admin);
        try ledger.setFeeSplit(c, d, o) {
            ghostFeeSplit = [c, d, o];
        } catch {}
    }

    // ------------------------------------------------------------------ helpers

    function tree() external view returns (bytes32[] memory) {
        return _tree;
    }

    function _recordPayment(address account, uint256 amount) internal {
        for (uint256 i; i < ACTORS; ++i) {
            if (actors[i] == account) ghostPaid[i] += amount;
        }
        ghostClaimed += amount;
    }

    function _buildTree() internal view returns (bytes32[] memory) {
        bytes32[] memory leaves = new bytes32[](ACTORS);
        for (uint256 i; i < ACTORS; ++i) {
            leaves[i] = Merkle.leaf(actors[i], ghostCumulative[i]);
        }
        return Merkle.build(Merkle.sort(leaves));
    }

    /// @dev Claims may come from anyone: actors themselves, strangers, the operator.
    function _caller(uint256 seed) internal view returns (address) {
        uint256 pick = seed % 3;
        if (pick == 0) return actors[(seed >> 8) % ACTORS];
        if (pick == 1) return operator;
        return _stranger(seed);
    }

    function _stranger(uint256 seed) internal pure returns (address) {
        return address(uint160(uint256(keccak256(abi.encode("stranger", seed % 1000)))));
    }
}
