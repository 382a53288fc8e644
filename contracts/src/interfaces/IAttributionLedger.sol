// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ICommonErrors, IRootErrors} from "./ICommonErrors.sol";
import {IOperatorRole} from "./IOperatorRole.sol";
import {IRewardDistributor} from "./IRewardDistributor.sol";

/// @title IAttributionLedger
/// @notice The on-chain anchor of loraledger's attribution log. Once per epoch the operator posts the root of the
/// append-only attribution log, the root of the cumulative rewards tree and the OPEN that funds the epoch; the
/// ledger moves the OPEN into the reward distributor and installs the rewards root there, in one transaction.
/// @dev Only roots and totals are posted, so the cost of {postEpoch} does not depend on how many records or
/// accounts an epoch covers. Roles: `DEFAULT_ADMIN_ROLE` wires the distributor and sets the fee split;
/// `OPERATOR_ROLE` (the node) posts epochs.
interface IAttributionLedger is ICommonErrors, IRootErrors, IOperatorRole {
    /// @notice Everything recorded for one posted epoch.
    /// @param logSize Number of entries in the attribution log at the end of the epoch (never shrinks).
    /// @param recordCount Number of attribution records the epoch covers.
    /// @param postedAt Block timestamp of the post.
    /// @param logRoot Merkle root of the attribution log at `logSize`.
    /// @param rewardsRoot Root of the cumulative `(account, cumulativeAmount)` rewards tree.
    /// @param epochTotal OPEN funded into the distributor by this epoch.
    /// @param dataHash Hash of the epoch's off-chain data file.
    /// @param dataURI Where the epoch's off-chain data file (trees, records) can be fetched.
    struct EpochInfo {
        uint64 logSize;
        uint64 recordCount;
        uint64 postedAt;
        bytes32 logRoot;
        bytes32 rewardsRoot;
        uint256 epochTotal;
        bytes32 dataHash;
        string dataURI;
    }

    /// @notice Emitted when epoch `epoch` is posted and funded.
    event EpochPosted(
        uint64 indexed epoch,
        uint64 logSize,
        bytes32 logRoot,
        bytes32 rewardsRoot,
        uint256 epochTotal,
        uint64 recordCount,
        string dataURI,
        bytes32 dataHash
    );

    /// @notice Emitted when the reward distributor is wired in (once).
    event DistributorSet(address indexed distributor);

    /// @notice Emitted when the fee split changes (and once at deployment).
    event FeeSplitUpdated(uint16 contributorsBps, uint16 developerBps, uint16 operatorBps);

    /// @notice The three shares do not add up to 10,000 basis points.
    error InvalidFeeSplit(uint16 contributorsBps, uint16 developerBps, uint16 operatorBps);

    /// @notice {setFeeSplit} was given the split already in force.
    error FeeSplitUnchanged();

    /// @notice {setDistributor} was already called.
    error DistributorAlreadySet();

    /// @notice {postEpoch} was called before {setDistributor}.
    error DistributorNotSet();

    /// @notice The distributor offered to {setDistributor} does not pay this ledger's token or does not take
    /// roots from this ledger.
    error InvalidDistributor(address distributor);

    /// @notice Epochs are posted strictly in sequence from 1: `expected` was due, `given` was posted.
    error EpochOutOfOrder(uint64 expected, uint64 given);

    /// @notice The attribution log is append-only: `given` is smaller than the previous epoch's `previous`.
    error LogShrank(uint64 previous, uint64 given);

    /// @notice An epoch that has not been posted was requested.
    error UnknownEpoch(uint64 epoch);

    /// @notice The reward token (OPEN).
    function token() external view returns (IERC20);

    /// @notice The reward distributor, or the zero address before {setDistributor}.
    function distributor() external view returns (IRewardDistributor);

    /// @notice The last posted epoch (zero before the first).
    function currentEpoch() external view returns (uint64);

    /// @notice Total OPEN funded into the distributor over all epochs.
    function totalFunded() external view returns (uint256);

    /// @notice How an epoch's rewards are split, in basis points summing to 10,000. Informational: the split is
    /// applied off-chain when the rewards tree is built.
    function feeSplit() external view returns (uint16 contributorsBps, uint16 developerBps, uint16 operatorBps);

    /// @notice The record of posted epoch `epoch`; reverts with {UnknownEpoch} if it was not posted.
    function getEpoch(uint64 epoch) external view returns (EpochInfo memory);

    /// @notice Wires in the reward distributor. Admin only, once.
    /// @dev Reverts with {ZeroAddress} for the zero address, {DistributorAlreadySet} on a second call and
    /// {InvalidDistributor} if `distributor_.token()` is not {token} or `distributor_.ledger()` is not this
    /// ledger. Emits {DistributorSet}.
    function setDistributor(IRewardDistributor distributor_) external;

    /// @notice Posts epoch `epoch`: records it, pulls `epochTotal` OPEN from the caller into the distributor and
    /// installs `rewardsRoot` there. Operator only; the caller must have approved this ledger for `epochTotal`.
    /// @dev Reverts with {EpochOutOfOrder} unless `epoch == currentEpoch() + 1`, {LogShrank} if `logSize` is below
    /// the previous epoch's, {ZeroRoot} for a zero `rewardsRoot` and {DistributorNotSet} before
    /// {setDistributor}. Emits {EpochPosted} (and the distributor emits `MerkleRootUpdated`).
    function postEpoch(
        uint64 epoch,
        uint64 logSize,
        bytes32 logRoot,
        bytes32 rewardsRoot,
        uint256 epochTotal,
        uint64 recordCount,
        string calldata dataURI,
        bytes32 dataHash
    ) external;

    /// @notice Sets the fee split. Admin only.
    /// @dev Reverts with {InvalidFeeSplit} unless the shares sum to 10,000 and with {FeeSplitUnchanged} if they
    /// are the current split. Emits {FeeSplitUpdated}.
    function setFeeSplit(uint16 contributorsBps, uint16 developerBps, uint16 operatorBps) external;
}
