// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @notice Exposes OpenZeppelin's MerkleProof so that tests can check, on a real chain,
/// proofs and multiproofs produced by the Python StandardMerkleTree.
contract MerkleHarness {
    function verify(bytes32[] calldata proof, bytes32 root, bytes32 leaf) external pure returns (bool) {
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    function multiProofVerify(bytes32[] calldata proof, bool[] calldata proofFlags, bytes32 root, bytes32[] calldata leaves)
        external
        pure
        returns (bool)
    {
        return MerkleProof.multiProofVerifyCalldata(proof, proofFlags, root, leaves);
    }

    /// @dev The StandardMerkleTree leaf of (address, uint256), computed in Solidity.
    function rewardLeaf(address account, uint256 amount) external pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, amount))));
    }

    /// @dev The StandardMerkleTree leaf of (bytes32, address): a datanet snapshot row.
    function rowLeaf(bytes32 rowHash, address contributor) external pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(rowHash, contributor))));
    }

    /// @dev The StandardMerkleTree leaf of (string, uint256, bool).
    function mixedLeaf(string calldata name, uint256 amount, bool flag) external pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(name, amount, flag))));
    }
}
