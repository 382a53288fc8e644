// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IRewardDistributor} from "./interfaces/IRewardDistributor.sol";

/// @title RewardDistributor
/// @notice Holds the OPEN funded by the attribution ledger and pays it out against cumulative Merkle roots.
/// @dev The claim paths are written for gas: proofs are hashed in assembly straight from calldata (the ABI
/// decoder has already checked that every array lies within calldata), the token is an immutable and is called
/// directly, and a claim writes nothing but `claimed[account]` (plus the token's balances). Proof semantics are
/// those of OpenZeppelin's `MerkleProof` (`processProofCalldata` / `processMultiProofCalldata`): sorted-pair
/// Keccak-256 inner nodes over `StandardMerkleTree` leaves.
contract RewardDistributor is IRewardDistributor {
    IERC20 private immutable _token;
    address private immutable _ledger;

    /// @inheritdoc IRewardDistributor
    bytes32 public merkleRoot;

    /// @inheritdoc IRewardDistributor
    uint64 public epoch;

    /// @inheritdoc IRewardDistributor
    mapping(address account => uint256) public claimed;

    /// @param token_ The reward token (OPEN).
    /// @param ledger_ The attribution ledger, the only address allowed to set roots.
    constructor(IERC20 token_, address ledger_) {
        if (address(token_) == address(0) || ledger_ == address(0)) revert ZeroAddress();
        _token = token_;
        _ledger = ledger_;
    }

    /// @inheritdoc IRewardDistributor
    function token() external view returns (IERC20) {
        return _token;
    }

    /// @inheritdoc IRewardDistributor
    function ledger() external view returns (address) {
        return _ledger;
    }

    /// @inheritdoc IRewardDistributor
    function claim(address account, uint256 cumulativeAmount, bytes32[] calldata proof) external {
        if (_processProof(proof, _leaf(account, cumulativeAmount)) != merkleRoot) revert InvalidProof();
        if (!_settle(account, cumulativeAmount)) revert NothingToClaim(account);
    }

    /// @inheritdoc IRewardDistributor
    function claimMany(
        address[] calldata accounts,
        uint256[] calldata cumulativeAmounts,
        bytes32[] calldata proof,
        bool[] calldata proofFlags
    ) external {
        uint256 n = accounts.length;
        if (n != cumulativeAmounts.length) revert LengthMismatch();
        {
            (uint256 queue, uint256 queued) = _queueLeaves(accounts, cumulativeAmounts);
            (bool valid, bytes32 root) = _processMultiProof(queue, queued, proof, proofFlags);
            if (!valid || root != merkleRoot) revert InvalidProof();
        }
        for (uint256 i; i < n;) {
            address account;
            uint256 cumulativeAmount;
            assembly ("memory-safe") {
                // In bounds (the ABI decoder checked the arrays), and a clean address (`_queueLeaves` checked).
                account := calldataload(add(accounts.offset, shl(5, i)))
                cumulativeAmount := calldataload(add(cumulativeAmounts.offset, shl(5, i)))
            }
            // Skips whatever is already paid, including a second leaf for an account earlier in this batch.
            _settle(account, cumulativeAmount);
            unchecked {
                ++i;
            }
        }
    }

    /// @inheritdoc IRewardDistributor
    function setMerkleRoot(bytes32 root, uint64 newEpoch) external {
        if (msg.sender != _ledger) revert NotLedger(msg.sender);
        uint64 current = epoch;
        if (newEpoch <= current) revert EpochNotIncreasing(current, newEpoch);
        merkleRoot = root;
        epoch = newEpoch;
        emit MerkleRootUpdated(newEpoch, root);
    }

    /// @dev Pays `account` up to `cumulativeAmount`, once the leaf is proven: if that exceeds `claimed[account]`,
    /// records it, emits {Claimed} and transfers the difference, returning true; otherwise does nothing and
    /// returns false. The transfer must succeed and return `true`: a token revert is bubbled up, any other
    /// answer reverts with {TransferFailed}.
    function _settle(address account, uint256 cumulativeAmount) private returns (bool paid) {
        bytes32 claimedTopic = Claimed.selector;
        address token_ = address(_token);
        assembly ("memory-safe") {
            mstore(0x00, account)
            mstore(0x20, claimed.slot)
            let slot := keccak256(0x00, 0x40)
            let already := sload(slot)
            if gt(cumulativeAmount, already) {
                sstore(slot, cumulativeAmount)
                let amount := sub(cumulativeAmount, already)
                mstore(0x00, amount)
                mstore(0x20, cumulativeAmount)
                log2(0x00, 0x40, claimedTopic, account)

                // token.transfer(account, amount), encoded in scratch space and the free memory pointer's
                // slot, which is restored right after the call (as OpenZeppelin's SafeERC20 does).
                let fmp := mload(0x40)
                mstore(0x00, 0xa9059cbb)
                mstore(0x20, account)
                mstore(0x40, amount)
                let ok := call(gas(), token_, 0, 0x1c, 0x44, 0x00, 0x20)
                mstore(0x40, fmp)
                if iszero(and(ok, and(gt(returndatasize(), 0x1f), eq(mload(0x00), 1)))) {
                    if iszero(ok) {
                        returndatacopy(fmp, 0x00, returndatasize())
                        revert(fmp, returndatasize())
                    }
                    mstore(0x00, 0x90b8ec18) // TransferFailed()
                    revert(0x1c, 0x04)
                }
                paid := 1
            }
        }
    }

    /// @dev The OpenZeppelin `StandardMerkleTree` leaf of `(account, cumulativeAmount)`:
    /// `keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))))`.
    function _leaf(address account, uint256 cumulativeAmount) private pure returns (bytes32 leaf) {
        assembly ("memory-safe") {
            mstore(0x00, account)
            mstore(0x20, cumulativeAmount)
            mstore(0x00, keccak256(0x00, 0x40))
            leaf := keccak256(0x00, 0x20)
        }
    }

    /// @dev Hashes `leaf` up through `proof` with sorted pairs, as OpenZeppelin's
    /// `MerkleProof.processProofCalldata` does, two levels per loop iteration.
    function _processProof(bytes32[] calldata proof, bytes32 leaf) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            h := leaf
            let offset := proof.offset
            let end := add(offset, shl(5, proof.length))
            if and(proof.length, 1) {
                let s := calldataload(offset)
                let slot := shl(5, gt(h, s))
                mstore(slot, h)
                mstore(xor(slot, 0x20), s)
                h := keccak256(0x00, 0x40)
                offset := add(offset, 0x20)
            }
            for {} lt(offset, end) { offset := add(offset, 0x40) } {
                let s := calldataload(offset)
                let slot := shl(5, gt(h, s))
                mstore(slot, h)
                mstore(xor(slot, 0x20), s)
                h := keccak256(0x00, 0x40)
                s := calldataload(add(offset, 0x20))
                slot := shl(5, gt(h, s))
                mstore(slot, h)
                mstore(xor(slot, 0x20), s)
                h := keccak256(0x00, 0x40)
            }
        }
    }

    /// @dev Writes the leaves `(accounts[k], cumulativeAmounts[k])` to newly allocated memory, in order, as the
    /// head of a multiproof queue; returns where it starts and where it ends (`queued`, the next free slot).
    /// Returns `queued == 0` (an unusable queue) if an account is not a clean address. The caller has checked that
    /// both arrays have the same length.
    function _queueLeaves(address[] calldata accounts, uint256[] calldata cumulativeAmounts)
        private
        pure
        returns (uint256 queue, uint256 queued)
    {
        assembly ("memory-safe") {
            queue := mload(0x40)
            queued := queue
            let amounts := cumulativeAmounts.offset
            for {
                let a := accounts.offset
                let end := add(a, shl(5, accounts.length))
            } lt(a, end) {
                a := add(a, 0x20)
                amounts := add(amounts, 0x20)
            } {
                let account := calldataload(a)
                if shr(160, account) {
                    queued := 0
                    break
                }
                mstore(0x00, account)
                mstore(0x20, calldataload(amounts))
                mstore(0x00, keccak256(0x00, 0x40))
                mstore(queued, keccak256(0x00, 0x20))
                queued := add(queued, 0x20)
            }
            // Allocate the leaves; the hashes are appended past the free memory pointer by {_processMultiProof}.
            if queued { mstore(0x40, queued) }
        }
    }

    /// @dev Rebuilds the root from an OpenZeppelin multiproof whose leaves are queued in memory from `queue` to
    /// `queued` (see {_queueLeaves}), with the algorithm of `MerkleProof.processMultiProofCalldata`. There the
    /// next value is "the next leaf, else the next computed hash"; here each computed hash is appended to the
    /// same queue, so it is simply the next value in the queue. Rather than reverting, returns `valid == false`
    /// for an empty batch, an unusable queue, lengths that break `leaves + proof == flags + 1`, a step that
    /// would read a hash not yet computed or a proof element past the end, a flag that is not a clean bool,
    /// and a proof that is not consumed exactly.
    function _processMultiProof(uint256 queue, uint256 queued, bytes32[] calldata proof, bool[] calldata proofFlags)
        private
        pure
        returns (bool valid, bytes32 root)
    {
        assembly ("memory-safe") {
            let leaves := shr(5, sub(queued, queue))
            // `proof.offset`/`proofFlags.offset` advance as elements are consumed and `.length` counts what is left.
            if and(and(gt(queued, 0), gt(leaves, 0)), eq(add(leaves, proof.length), add(proofFlags.length, 1))) {
                valid := 1
                for {} proofFlags.length {
                    proofFlags.offset := add(proofFlags.offset, 0x20)
                    proofFlags.length := sub(proofFlags.length, 1)
                } {
                    // The queue always holds at least one value here (`queued > queue`); pop `a`.
                    let a := mload(queue)
                    queue := add(queue, 0x20)
                    let b
                    switch calldataload(proofFlags.offset)
                    case 0 {
                        if iszero(proof.length) {
                            valid := 0
                            break
                        }
                        b := calldataload(proof.offset)
                        proof.offset := add(proof.offset, 0x20)
                        proof.length := sub(proof.length, 1)
                    }
                    case 1 {
                        if iszero(lt(queue, queued)) {
                            valid := 0
                            break
                        }
                        b := mload(queue)
                        queue := add(queue, 0x20)
                    }
                    default {
                        valid := 0
                        break
                    }
                    let slot := shl(5, gt(a, b))
                    mstore(slot, a)
                    mstore(xor(slot, 0x20), b)
                    mstore(queued, keccak256(0x00, 0x40))
                    queued := add(queued, 0x20)
                }
                // The root is the last value queued: the last hash, or the single leaf when there are no flags.
                root := mload(sub(queued, 0x20))
                if proof.length { valid := 0 }
            }
        }
    }
}
