// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @dev A token whose `transfer` answers as configured, for the distributor's failure paths.
contract MisbehavingToken {
    enum Mode {
        ReturnFalse,
        ReturnNothing,
        Revert,
        ReturnTrue
    }

    error Nope(address to, uint256 amount);

    Mode public mode;

    function setMode(Mode m) external {
        mode = m;
    }

    function transfer(address to, uint256 amount) external view returns (bool) {
        Mode m = mode;
        if (m == Mode.Revert) revert Nope(to, amount);
        if (m == Mode.ReturnNothing) {
            assembly {
                return(0, 0)
            }
        }
        return m == Mode.ReturnTrue;
    }
}
