// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IOperatorRole} from "../interfaces/IOperatorRole.sol";

/// @title OperatorRole
/// @notice OpenZeppelin `AccessControl` with the one operator role, declared once for every contract that
/// grants it.
abstract contract OperatorRole is IOperatorRole, AccessControl {
    /// @inheritdoc IOperatorRole
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
}
