// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {OperatorRole} from "./access/OperatorRole.sol";
import {IAttributionLedger} from "./interfaces/IAttributionLedger.sol";
import {IRewardDistributor} from "./interfaces/IRewardDistributor.sol";

/// @title AttributionLedger
/// @notice Anchors loraledger's attribution log and funds the reward distributor, one epoch at a time.
contract AttributionLedger is IAttributionLedger, OperatorRole {
    using SafeERC20 for IERC20;

    uint16 private constant _BPS = 10_000;

    IERC20 private immutable _token;

    IRewardDistributor private _distributor;
    uint64 private _currentEpoch;

    uint16 private _contributorsBps;
    uint16 private _developerBps;
    uint16 private _operatorBps;

    uint256 private _totalFunded;

    mapping(uint64 epoch => EpochInfo) private _epochs;

    /// @param admin Receives `DEFAULT_ADMIN_ROLE`.
    /// @param token_ The reward token (OPEN).
    /// @param contributorsBps Share of each epoch's rewards for data contributors, in basis points.
    /// @param developerBps Share for adapter developers.
    /// @param operatorBps Share for the node operator.
    constructor(address admin, IERC20 token_, uint16 contributorsBps, uint16 developerBps, uint16 operatorBps) {
        if (admin == address(0) || address(token_) == address(0)) revert ZeroAddress();
        _token = token_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setFeeSplit(contributorsBps, developerBps, operatorBps);
    }

    /// @inheritdoc IAttributionLedger
    function token() external view returns (IERC20) {
        return _token;
    }

    /// @inheritdoc IAttributionLedger
    function distributor() external view returns (IRewardDistributor) {
        return _distributor;
    }

    /// @inheritdoc IAttributionLedger
    function currentEpoch() external view returns (uint64) {
        return _currentEpoch;
    }

    /// @inheritdoc IAttributionLedger
    function totalFunded() external view returns (uint256) {
        return _totalFunded;
    }

    /// @inheritdoc IAttributionLedger
    function feeSplit() external view returns (uint16 contributorsBps, uint16 developerBps, uint16 operatorBps) {
        return (_contributorsBps, _developerBps, _operatorBps);
    }

    /// @inheritdoc IAttributionLedger
    function getEpoch(uint64 epoch) external view returns (EpochInfo memory) {
        if (epoch == 0 || epoch > _currentEpoch) revert UnknownEpoch(epoch);
        return _epochs[epoch];
    }

    /// @inheritdoc IAttributionLedger
    function setDistributor(IRewardDistributor distributor_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(distributor_) == address(0)) revert ZeroAddress();
        if (address(_distributor) != address(0)) revert DistributorAlreadySet();
        if (distributor_.token() != _token || distributor_.ledger() != address(this)) {
            revert InvalidDistributor(address(distributor_));
        }
        _distributor = distributor_;
        emit DistributorSet(address(distributor_));
    }

    /// @inheritdoc IAttributionLedger
    function postEpoch(
        uint64 epoch,
        uint64 logSize,
        bytes32 logRoot,
        bytes32 rewardsRoot,
        uint256 epochTotal,
        uint64 recordCount,
        string calldata dataURI,
        bytes32 dataHash
    ) external onlyRole(OPERATOR_ROLE) {
        IRewardDistributor distributor_ = _distributor;
        if (address(distributor_) == address(0)) revert DistributorNotSet();
        uint64 previous = _currentEpoch;
        if (epoch != previous + 1) revert EpochOutOfOrder(previous + 1, epoch);
        if (previous != 0) {
            uint64 previousLogSize = _epochs[previous].logSize;
            if (logSize < previousLogSize) revert LogShrank(previousLogSize, logSize);
        }
        if (rewardsRoot == bytes32(0)) revert ZeroRoot();

        EpochInfo storage info = _epochs[epoch];
        info.logSize = logSize;
        info.recordCount = recordCount;
        info.postedAt = uint64(block.timestamp);
        info.logRoot = logRoot;
        info.rewardsRoot = rewardsRoot;
        info.epochTotal = epochTotal;
        info.dataHash = dataHash;
        info.dataURI = dataURI;
        _currentEpoch = epoch;
        _totalFunded += epochTotal;
        emit EpochPosted(epoch, logSize, logRoot, rewardsRoot, epochTotal, recordCount, dataURI, dataHash);

        if (epochTotal != 0) _token.safeTransferFrom(msg.sender, address(distributor_), epochTotal);
        distributor_.setMerkleRoot(rewardsRoot, epoch);
    }

    /// @inheritdoc IAttributionLedger
    function setFeeSplit(uint16 contributorsBps, uint16 developerBps, uint16 operatorBps)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (contributorsBps == _contributorsBps && developerBps == _developerBps && operatorBps == _operatorBps) {
            revert FeeSplitUnchanged();
        }
        _setFeeSplit(contributorsBps, developerBps, operatorBps);
    }

    function _setFeeSplit(uint16 contributorsBps, uint16 developerBps, uint16 operatorBps) private {
        if (uint256(contributorsBps) + developerBps + operatorBps != _BPS) {
            revert InvalidFeeSplit(contributorsBps, developerBps, operatorBps);
        }
        _contributorsBps = contributorsBps;
        _developerBps = developerBps;
        _operatorBps = operatorBps;
        emit FeeSplitUpdated(contributorsBps, developerBps, operatorBps);
    }
}
