// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Vm, VM_ADDRESS} from "./Vm.sol";

/// @title TestBase
/// @notice Minimal replacement for forge-std's `Test`: the cheat code handle plus a few helpers.
/// @dev Assertions are forge's own cheat codes (`vm.assertEq`, ...), which revert on failure, so no ds-test
/// `failed()` bookkeeping is needed.
abstract contract TestBase {
    Vm internal constant vm = Vm(VM_ADDRESS);

    /// @dev A deterministic, labelled address whose private key is `keyOf(name)`.
    function makeAddr(string memory name) internal returns (address account) {
        account = vm.addr(keyOf(name));
        vm.label(account, name);
    }

    function keyOf(string memory name) internal pure returns (uint256) {
        return uint256(keccak256(bytes(name)));
    }

    /// @dev Maps `x` into `[min, max]` (inclusive), keeping small values stable like forge-std's `bound`.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min;
        if (size == type(uint256).max) return x;
        return min + (x % (size + 1));
    }

    /// @dev Intrinsic calldata cost of `data` (EIP-2028): 16 gas per non-zero byte, 4 per zero byte.
    function calldataGas(bytes memory data) internal pure returns (uint256 gas) {
        for (uint256 i; i < data.length; ++i) {
            gas += data[i] == 0 ? 4 : 16;
        }
    }
}
