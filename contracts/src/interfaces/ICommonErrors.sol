// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title ICommonErrors
/// @notice Custom errors shared by every loraledger contract, declared once here so that each has one selector,
/// one name and one description across every ABI.
interface ICommonErrors {
    /// @notice The zero address was passed where an account or a contract is required.
    error ZeroAddress();
}

/// @title IRootErrors
/// @notice Custom errors shared by the contracts that take Merkle roots (the attribution ledger and the datanet
/// registry), declared once here.
interface IRootErrors {
    /// @notice A zero Merkle root was offered where a tree's root is required.
    error ZeroRoot();
}
