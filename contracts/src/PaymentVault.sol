// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {OperatorRole} from "./access/OperatorRole.sol";
import {IPaymentVault} from "./interfaces/IPaymentVault.sol";

/// @title PaymentVault
/// @notice Holds the OPEN that payers deposit for inference and releases each epoch's takings to the operator.
/// @dev No function but {release} moves tokens out, and it only up to what was deposited and once per epoch:
/// payers' funds leave only as epoch takings, each tied to an epoch whose fee records are public (see
/// {IPaymentVault}).
contract PaymentVault is IPaymentVault, OperatorRole {
    using SafeERC20 for IERC20;

    IERC20 private immutable _token;

    uint256 private _totalDeposited;
    uint256 private _totalReleased;

    mapping(address payer => uint256) private _deposited;
    mapping(uint64 epoch => uint256) private _releasedFor;

    /// @param admin Receives `DEFAULT_ADMIN_ROLE` (and grants `OPERATOR_ROLE` to the node).
    /// @param token_ The payment token (OPEN); {depositWithPermit} needs its ERC-2612 `permit`.
    constructor(address admin, IERC20 token_) {
        if (admin == address(0) || address(token_) == address(0)) revert ZeroAddress();
        _token = token_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IPaymentVault
    function token() external view returns (IERC20) {
        return _token;
    }

    /// @inheritdoc IPaymentVault
    function deposited(address payer) external view returns (uint256) {
        return _deposited[payer];
    }

    /// @inheritdoc IPaymentVault
    function totalDeposited() external view returns (uint256) {
        return _totalDeposited;
    }

    /// @inheritdoc IPaymentVault
    function totalReleased() external view returns (uint256) {
        return _totalReleased;
    }

    /// @inheritdoc IPaymentVault
    function releasedFor(uint64 epoch) external view returns (uint256) {
        return _releasedFor[epoch];
    }

    /// @inheritdoc IPaymentVault
    function available() external view returns (uint256) {
        return _totalDeposited - _totalReleased;
    }

    /// @inheritdoc IPaymentVault
    function deposit(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        _deposit(msg.sender, amount);
    }

    /// @inheritdoc IPaymentVault
    function depositFor(address payer, uint256 amount) external {
        if (payer == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        _deposit(payer, amount);
    }

    /// @inheritdoc IPaymentVault
    function depositWithPermit(uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external {
        if (amount == 0) revert ZeroAmount();
        // Anyone may submit a permit seen in the mempool before us, making this call revert; the allowance it
        // set is then already there, so a failed permit is fine whenever the allowance covers the deposit.
        try IERC20Permit(address(_token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {}
        catch (bytes memory reason) {
            if (_token.allowance(msg.sender, address(this)) < amount) {
                assembly ("memory-safe") {
                    revert(add(reason, 0x20), mload(reason))
                }
            }
        }
        _deposit(msg.sender, amount);
    }

    /// @inheritdoc IPaymentVault
    function release(uint64 epoch, address to, uint256 amount) external onlyRole(OPERATOR_ROLE) {
        if (epoch == 0) revert ZeroEpoch();
        if (to == address(0)) revert ZeroAddress();
        if (to == address(this)) revert InvalidRecipient(to);
        if (amount == 0) revert ZeroAmount();
        uint256 already = _releasedFor[epoch];
        if (already != 0) revert EpochAlreadyReleased(epoch, already);
        uint256 totalReleased_ = _totalReleased;
        uint256 available_ = _totalDeposited - totalReleased_;
        if (amount > available_) revert InsufficientTakings(available_, amount);

        _releasedFor[epoch] = amount;
        _totalReleased = totalReleased_ + amount;
        emit Released(epoch, to, amount);

        _token.safeTransfer(to, amount);
    }

    /// @dev Credits `amount` (checked nonzero by the caller) to `payer`, then pulls it from `msg.sender`.
    function _deposit(address payer, uint256 amount) private {
        uint256 payerTotal = _deposited[payer] + amount;
        _deposited[payer] = payerTotal;
        _totalDeposited += amount;
        emit Deposited(payer, msg.sender, amount, payerTotal);

        _token.safeTransferFrom(msg.sender, address(this), amount);
    }
}
