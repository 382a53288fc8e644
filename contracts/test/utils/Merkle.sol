// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Merkle
/// @notice Builds OpenZeppelin-`StandardMerkleTree`-compatible trees, proofs and multiproofs in Solidity, for tests.
/// @dev Mirrors `@openzeppelin/merkle-tree`: the tree is a flat array of `2n - 1` nodes, node `i` has children
/// `2i + 1` and `2i + 2`, leaves sit at the end in reverse order (`tree[len - 1 - k] = leaves[k]`), inner nodes
/// hash the sorted pair, and `StandardMerkleTree.of` sorts the leaf hashes ascending first (see {sort}).
library Merkle {
    /// @dev StandardMerkleTree leaf of `(address, uint256)`.
    function leaf(address account, uint256 amount) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, amount))));
    }

    /// @dev StandardMerkleTree leaf of `(bytes32, address)`.
    function rowLeaf(bytes32 rowHash, address contributor) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(rowHash, contributor))));
    }

    function hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// @dev Sorts `leaves` ascending in place (insertion sort; test sizes only).
    function sort(bytes32[] memory leaves) internal pure returns (bytes32[] memory) {
        for (uint256 i = 1; i < leaves.length; ++i) {
            bytes32 v = leaves[i];
            uint256 j = i;
            while (j > 0 && leaves[j - 1] > v) {
                leaves[j] = leaves[j - 1];
                --j;
            }
            leaves[j] = v;
        }
        return leaves;
    }

    /// @dev `makeMerkleTree(leaves)` for leaves in the order given.
    function build(bytes32[] memory leaves) internal pure returns (bytes32[] memory tree) {
        uint256 n = leaves.length;
        require(n > 0, "Merkle: no leaves");
        tree = new bytes32[](2 * n - 1);
        for (uint256 k; k < n; ++k) {
            tree[tree.length - 1 - k] = leaves[k];
        }
        for (uint256 i = tree.length - n; i > 0; --i) {
            tree[i - 1] = hashPair(tree[2 * i - 1], tree[2 * i]);
        }
    }

    function root(bytes32[] memory tree) internal pure returns (bytes32) {
        return tree[0];
    }

    /// @dev Tree index of leaf `value`; reverts if absent.
    function indexOf(bytes32[] memory tree, bytes32 value) internal pure returns (uint256) {
        uint256 n = (tree.length + 1) / 2;
        for (uint256 i = tree.length - n; i < tree.length; ++i) {
            if (tree[i] == value) return i;
        }
        revert("Merkle: leaf not in tree");
    }

    /// @dev `getProof(tree, index)` for the tree index `index`.
    function proof(bytes32[] memory tree, uint256 index) internal pure returns (bytes32[] memory path) {
        path = new bytes32[](64);
        uint256 len;
        while (index > 0) {
            path[len++] = tree[index % 2 == 1 ? index + 1 : index - 1];
            index = (index - 1) / 2;
        }
        assembly ("memory-safe") {
            mstore(path, len)
        }
    }

    /// @dev Proof for leaf `value`.
    function proofFor(bytes32[] memory tree, bytes32 value) internal pure returns (bytes32[] memory) {
        return proof(tree, indexOf(tree, value));
    }

    /// @dev `getMultiProof(tree, indices)` for distinct tree indices. Returns the leaves in the order the
    /// verifier must receive them (descending tree index), the proof and the flags.
    function multiProof(bytes32[] memory tree, uint256[] memory indices)
        internal
        pure
        returns (bytes32[] memory leaves, bytes32[] memory path, bool[] memory flags, uint256[] memory order)
    {
        uint256 n = indices.length;
        // Sort tree indices descending.
        order = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            order[i] = indices[i];
        }
        for (uint256 i = 1; i < n; ++i) {
            uint256 v = order[i];
            uint256 j = i;
            while (j > 0 && order[j - 1] < v) {
                order[j] = order[j - 1];
                --j;
            }
            order[j] = v;
        }
        for (uint256 i = 1; i < n; ++i) {
            require(order[i] != order[i - 1], "Merkle: duplicated index");
        }
        uint256[] memory queue = new uint256[](n + tree.length);
        uint256 head;
        uint256 tail = n;
        for (uint256 i; i < n; ++i) {
            queue[i] = order[i];
        }
        path = new bytes32[](tree.length);
        flags = new bool[](tree.length);
        uint256 pathLen;
        uint256 flagLen;
        while (tail > head && queue[head] > 0) {
            uint256 j = queue[head++];
            uint256 s = j % 2 == 1 ? j + 1 : j - 1;
            uint256 p = (j - 1) / 2;
            if (tail > head && s == queue[head]) {
                flags[flagLen++] = true;
                head++;
            } else {
                flags[flagLen++] = false;
                path[pathLen++] = tree[s];
            }
            queue[tail++] = p;
        }
        if (n == 0) path[pathLen++] = tree[0];
        assembly ("memory-safe") {
            mstore(path, pathLen)
            mstore(flags, flagLen)
        }
        leaves = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            leaves[i] = tree[order[i]];
        }
    }

    /// @dev Root reached by hashing `leafHash` up through `siblings` (sorted pairs).
    function fold(bytes32 leafHash, bytes32[] memory siblings) internal pure returns (bytes32 h) {
        h = leafHash;
        for (uint256 i; i < siblings.length; ++i) {
            h = hashPair(h, siblings[i]);
        }
    }
}
