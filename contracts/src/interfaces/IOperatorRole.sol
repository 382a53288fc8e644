// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IOperatorRole
/// @notice The OpenZeppelin `AccessControl` role held by the loraledger node (the operator). What it allows is
/// described by each contract that uses it.
interface IOperatorRole {
    /// @notice Role of the loraledger node: `keccak256("OPERATOR_ROLE")`.
    function OPERATOR_ROLE() external view returns (bytes32);
}
