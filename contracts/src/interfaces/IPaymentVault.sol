// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ICommonErrors} from "./ICommonErrors.sol";
import {IOperatorRole} from "./IOperatorRole.sol";

/// @title IPaymentVault
/// @notice Where payers fund loraledger inference on chain. A payer deposits OPEN (or has it deposited for them);
/// the node follows {Deposited} events, keeps each payer's spendable balance off chain and debits every answer's
/// fee in its public, Merkle-logged fee records. Once per epoch the operator releases that epoch's takings, the
/// fees earned in it, to its own account, which then funds the epoch's rewards through the attribution ledger's
/// `postEpoch`.
/// @dev The vault keeps no per-payer spendable balance: {deposited} only grows, and how much of it has been
/// spent is a matter of the off-chain fee records. What the vault enforces is that the takings released never
/// exceed what was deposited ({available}), that each epoch is released at most once and that only
/// `OPERATOR_ROLE` releases. There is deliberately no other way for tokens to leave the vault: no withdrawal, no
/// refund, no admin sweep. Payers' funds leave only as epoch takings, each release tied to an epoch whose fee
/// records are public, so every token that leaves can be checked against the fees that justify it.
/// Consequently tokens sent to the vault by a plain `transfer` (not through a deposit function) are credited to
/// no one, are never {available} and stay in the vault for good.
/// The token must be a plain ERC-20 (no fee on transfer, no rebasing): a deposit credits the amount asked for.
/// Roles: `DEFAULT_ADMIN_ROLE` manages roles; `OPERATOR_ROLE` (the node) releases takings.
interface IPaymentVault is ICommonErrors, IOperatorRole {
    /// @notice Emitted when `from` deposits `amount` for `payer`, bringing `payer`'s cumulative deposits to
    /// `payerTotal`. `from == payer` for {deposit} and {depositWithPermit}.
    event Deposited(address indexed payer, address indexed from, uint256 amount, uint256 payerTotal);

    /// @notice Emitted when the takings of epoch `epoch`, `amount`, are released to `to`.
    event Released(uint64 indexed epoch, address indexed to, uint256 amount);

    /// @notice A zero amount was offered to a deposit function or to {release}.
    error ZeroAmount();

    /// @notice {release} was called for epoch 0; epochs are numbered from 1.
    error ZeroEpoch();

    /// @notice {release} was called for epoch `epoch`, whose takings, `amount`, were already released.
    error EpochAlreadyReleased(uint64 epoch, uint256 amount);

    /// @notice {release} asked for `needed`, more than the `available` takings.
    error InsufficientTakings(uint256 available, uint256 needed);

    /// @notice {release} was asked to pay the vault itself, which would lock the takings in it for good.
    error InvalidRecipient(address to);

    /// @notice The payment token (OPEN). Immutable.
    function token() external view returns (IERC20);

    /// @notice Everything ever deposited for `payer` (cumulative: never decreases). The payer's spendable balance
    /// is this minus the fees the node has debited in its public fee records.
    function deposited(address payer) external view returns (uint256);

    /// @notice Everything ever deposited, for all payers.
    function totalDeposited() external view returns (uint256);

    /// @notice Everything ever released, over all epochs.
    function totalReleased() external view returns (uint256);

    /// @notice The takings released for epoch `epoch`, or zero if that epoch was not released (a released
    /// epoch's amount is never zero).
    function releasedFor(uint64 epoch) external view returns (uint256);

    /// @notice What may still be released: `totalDeposited() - totalReleased()`, which is also the vault's token
    /// balance (less any tokens sent to it outside the deposit functions).
    function available() external view returns (uint256);

    /// @notice Deposits `amount` for the caller: pulls it from the caller, who must have approved this vault.
    /// @dev Reverts with {ZeroAmount} for a zero amount, and with the token's error if the allowance or balance is
    /// short. Emits {Deposited} with `payer == from == msg.sender`.
    function deposit(uint256 amount) external;

    /// @notice Deposits `amount` for `payer`: pulls it from the caller, who must have approved this vault, and
    /// credits it to `payer`. Lets an application or a relayer fund someone else's inference.
    /// @dev Reverts with {ZeroAddress} for a zero `payer`, {ZeroAmount} for a zero amount, and with the token's
    /// error if the caller's allowance or balance is short. Emits {Deposited} with `from == msg.sender`.
    function depositFor(address payer, uint256 amount) external;

    /// @notice Deposits `amount` for the caller, approving it with an ERC-2612 permit signed by the caller, in
    /// one transaction: no separate `approve`.
    /// @dev The permit is `permit(msg.sender, address(this), amount, deadline, v, r, s)`, so only the signer can
    /// use its own signature here. It is tried, and its failure tolerated when the caller's allowance to this
    /// vault already covers `amount` (OpenZeppelin's `IERC20Permit` advice): a permit taken from the mempool and
    /// submitted first by someone else has set that allowance, and the deposit goes ahead on it. If the permit
    /// fails and the allowance is short, the permit's own revert is bubbled up (for OPEN:
    /// `ERC2612ExpiredSignature`, `ERC2612InvalidSigner`, or an `ECDSA` error). Reverts with {ZeroAmount} for a
    /// zero amount. Emits the token's `Approval` (when the permit goes through) and {Deposited} with
    /// `payer == from == msg.sender`.
    /// @param amount The amount deposited, and the `value` the permit was signed for.
    /// @param deadline The permit's deadline.
    /// @param v The permit signature's `v`.
    /// @param r The permit signature's `r`.
    /// @param s The permit signature's `s`.
    function depositWithPermit(uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external;

    /// @notice Releases the takings of epoch `epoch`, `amount`, to `to` (the operator's account that then funds
    /// the attribution ledger's `postEpoch`). Operator only (else OpenZeppelin's
    /// `AccessControlUnauthorizedAccount`), at most once per epoch.
    /// @dev `amount` must match the fees the epoch's public fee records debit; the vault cannot check that, only
    /// that it is at most {available}. Epochs need not be consecutive (an epoch with nothing to pay is simply not
    /// released) nor increasing, but each is released once: a retry must check {releasedFor} first. Reverts with
    /// {ZeroEpoch} for epoch 0, {ZeroAddress} for a zero `to`, {InvalidRecipient} if `to` is this vault,
    /// {ZeroAmount} for a zero amount, {EpochAlreadyReleased} if the epoch was released and
    /// {InsufficientTakings} if `amount` exceeds {available}. Emits {Released}.
    function release(uint64 epoch, address to, uint256 amount) external;
}
