// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ICommonErrors} from "./ICommonErrors.sol";

/// @title IRewardDistributor
/// @notice Pays OPEN rewards against a cumulative Merkle root that the attribution ledger replaces every epoch.
/// @dev Each leaf is the OpenZeppelin `StandardMerkleTree` leaf of `(address account, uint256 cumulativeAmount)`:
/// `keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))))`, and inner nodes hash sorted pairs
/// (OpenZeppelin `MerkleProof`). `cumulativeAmount` is everything `account` has earned up to and including the
/// root's epoch, so a claim pays `cumulativeAmount - claimed(account)` and an account never has to claim every epoch.
interface IRewardDistributor is ICommonErrors {
    /// @notice Emitted when `amount` OPEN is paid to `account`, bringing its claimed total to `cumulativeAmount`.
    event Claimed(address indexed account, uint256 amount, uint256 cumulativeAmount);

    /// @notice Emitted when the ledger installs `root` as the Merkle root of epoch `epoch`.
    event MerkleRootUpdated(uint64 indexed epoch, bytes32 root);

    /// @notice The proof does not lead from the claimed leaf (or leaves) to the current root.
    error InvalidProof();

    /// @notice `account`'s proven cumulative amount does not exceed what it has already been paid.
    error NothingToClaim(address account);

    /// @notice `claimMany` was given arrays of different lengths.
    error LengthMismatch();

    /// @notice `caller` is not the attribution ledger, the only address allowed to set roots.
    error NotLedger(address caller);

    /// @notice A root was offered for epoch `attempted`, which is not after the current epoch `current`.
    error EpochNotIncreasing(uint64 current, uint64 attempted);

    /// @notice The token call succeeded but did not return `true`.
    error TransferFailed();

    /// @notice The reward token (OPEN). Immutable.
    function token() external view returns (IERC20);

    /// @notice The attribution ledger, the only address allowed to call {setMerkleRoot}. Immutable.
    function ledger() external view returns (address);

    /// @notice The Merkle root claims are currently verified against (zero before the first epoch).
    function merkleRoot() external view returns (bytes32);

    /// @notice The epoch of {merkleRoot} (zero before the first epoch).
    function epoch() external view returns (uint64);

    /// @notice The cumulative amount of OPEN already paid to `account`.
    function claimed(address account) external view returns (uint256);

    /// @notice Pays `account` what it is owed under the current root: `cumulativeAmount - claimed(account)`.
    /// @dev Anyone may call this for any account (relayers pay the gas); the tokens always go to `account`.
    /// Reverts with {InvalidProof} if `proof` does not prove the leaf `(account, cumulativeAmount)` against
    /// {merkleRoot}, and with {NothingToClaim} if the proven amount has already been paid. Emits {Claimed}.
    /// @param account The account whose leaf is proven and that receives the tokens.
    /// @param cumulativeAmount The account's cumulative total in the current root's leaf.
    /// @param proof Sibling hashes from the leaf up to the root (OpenZeppelin `getProof`).
    function claim(address account, uint256 cumulativeAmount, bytes32[] calldata proof) external;

    /// @notice Pays every account in a batch what it is owed, proving all leaves with one multiproof.
    /// @dev `accounts[i]` and `cumulativeAmounts[i]` form the i-th leaf, in the order OpenZeppelin's
    /// `getMultiProof` returns in `leaves`; `proof` and `proofFlags` are its `proof` and `proofFlags` (semantics of
    /// `MerkleProof.multiProofVerifyCalldata`). Accounts with nothing owed (already claimed, or listed twice)
    /// are skipped rather than reverting, so a relayer's batch survives a claim that landed first; an account is
    /// never paid twice for the same amount. Reverts with {LengthMismatch} if the two leaf arrays differ in
    /// length, and with {InvalidProof} if the multiproof does not lead to {merkleRoot} or is malformed (an empty
    /// batch, inconsistent lengths, a proof not consumed exactly, a flag that is not a clean bool, an account
    /// that is not a clean address). Emits {Claimed} for every account paid.
    function claimMany(
        address[] calldata accounts,
        uint256[] calldata cumulativeAmounts,
        bytes32[] calldata proof,
        bool[] calldata proofFlags
    ) external;

    /// @notice Installs the root for epoch `newEpoch`. Only callable by {ledger}.
    /// @dev Reverts with {NotLedger} for any other caller and with {EpochNotIncreasing} unless
    /// `newEpoch > epoch()`. Emits {MerkleRootUpdated}.
    function setMerkleRoot(bytes32 root, uint64 newEpoch) external;
}
