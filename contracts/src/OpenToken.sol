// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title OpenToken
/// @notice OPEN, the reward token of loraledger: a plain fixed-supply ERC-20 with ERC-2612 permit.
/// @dev The whole supply is minted once, to `initialHolder`, at deployment.
contract OpenToken is ERC20, ERC20Permit {
    /// @param initialHolder Receives the entire supply.
    /// @param initialSupply The supply, in the token's smallest unit (18 decimals).
    constructor(address initialHolder, uint256 initialSupply) ERC20("Open", "OPEN") ERC20Permit("Open") {
        _mint(initialHolder, initialSupply);
    }
}
