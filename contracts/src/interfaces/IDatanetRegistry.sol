// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ICommonErrors, IRootErrors} from "./ICommonErrors.sol";
import {IOperatorRole} from "./IOperatorRole.sol";

/// @title IDatanetRegistry
/// @notice Registry of datanets: community datasets whose contents are committed to by versioned Merkle roots.
/// Each snapshot's tree has one OpenZeppelin `StandardMerkleTree` leaf per row, `(bytes32 rowHash, address
/// contributor)`, so anyone can prove on-chain that a contributor's row is in a given version.
/// @dev The registry is also the EIP-712 domain (`name = "loraledger"`, `version = "1"`, this contract as the
/// verifying contract) that contributors sign their contributions against; wallets read it with `eip712Domain()`.
/// Roles: `DEFAULT_ADMIN_ROLE` manages roles; `OPERATOR_ROLE` (the loraledger node) may create datanets for any
/// owner and publish snapshots of any datanet.
interface IDatanetRegistry is ICommonErrors, IRootErrors, IOperatorRole {
    /// @notice Emitted when datanet `datanetId` is created for `owner`.
    event DatanetCreated(uint256 indexed datanetId, address indexed owner, string metadataURI);

    /// @notice Emitted when the owner of datanet `datanetId` changes its metadata URI.
    event DatanetMetadataUpdated(uint256 indexed datanetId, string metadataURI);

    /// @notice Emitted when datanet `datanetId` changes hands.
    event DatanetTransferred(uint256 indexed datanetId, address indexed previousOwner, address indexed newOwner);

    /// @notice Emitted when snapshot `version` of datanet `datanetId` is published.
    event SnapshotPublished(uint256 indexed datanetId, uint64 indexed version, bytes32 root, uint64 rowCount);

    /// @notice No datanet has id `datanetId`.
    error UnknownDatanet(uint256 datanetId);

    /// @notice `caller` is not the owner of datanet `datanetId` (nor, where allowed, an operator).
    error NotDatanetOwner(uint256 datanetId, address caller);

    /// @notice Snapshots are published in sequence from 1: `expected` was due, `given` was offered.
    error VersionOutOfOrder(uint64 expected, uint64 given);

    /// @notice {setMetadata} was given the metadata URI datanet `datanetId` already has.
    error MetadataUnchanged(uint256 datanetId);

    /// @notice {transferDatanet} was asked to hand datanet `datanetId` to its current owner.
    error OwnerUnchanged(uint256 datanetId);

    /// @notice Creates a datanet owned by `owner` and returns its id (sequential from 1).
    /// @dev Anyone may create a datanet for themselves (`owner == msg.sender`); creating one for another owner
    /// needs `OPERATOR_ROLE` (else OpenZeppelin's `AccessControlUnauthorizedAccount`). Reverts with {ZeroAddress}
    /// for a zero owner. Emits {DatanetCreated}.
    function createDatanet(address owner, string calldata metadataURI) external returns (uint256 datanetId);

    /// @notice Replaces the metadata URI of datanet `datanetId`. Owner only ({NotDatanetOwner}).
    /// @dev Reverts with {UnknownDatanet} for an unknown id and with {MetadataUnchanged} if `metadataURI` is the
    /// current URI. Emits {DatanetMetadataUpdated}.
    function setMetadata(uint256 datanetId, string calldata metadataURI) external;

    /// @notice Hands datanet `datanetId` to `newOwner`. Owner only ({NotDatanetOwner}).
    /// @dev Reverts with {UnknownDatanet} for an unknown id, {ZeroAddress} for a zero `newOwner` and
    /// {OwnerUnchanged} if `newOwner` is the current owner. Emits {DatanetTransferred}.
    function transferDatanet(uint256 datanetId, address newOwner) external;

    /// @notice Publishes snapshot `version` of datanet `datanetId`: the Merkle root of its rows.
    /// @dev Callable by the owner or an operator ({NotDatanetOwner} otherwise). `version` must be the latest
    /// version plus one, starting at 1 ({VersionOutOfOrder}); `root` must not be zero ({ZeroRoot}).
    /// Emits {SnapshotPublished}.
    function publishSnapshot(uint256 datanetId, uint64 version, bytes32 root, uint64 rowCount) external;

    /// @notice Datanet `datanetId`: owner, latest snapshot version and root (zero before the first snapshot) and
    /// metadata URI. Reverts with {UnknownDatanet} for an unknown id.
    function getDatanet(uint256 datanetId)
        external
        view
        returns (address owner, uint64 latestVersion, bytes32 latestRoot, string memory metadataURI);

    /// @notice Root of snapshot `version` of datanet `datanetId`, or zero if that version is not published.
    /// Reverts with {UnknownDatanet} for an unknown id.
    function snapshotRoot(uint256 datanetId, uint64 version) external view returns (bytes32);

    /// @notice Number of datanets created; ids run from 1 to this number.
    function datanetCount() external view returns (uint256);

    /// @notice Whether `proof` proves the row `(rowHash, contributor)` in snapshot `version` of datanet
    /// `datanetId`. False for an unpublished version; reverts with {UnknownDatanet} for an unknown id.
    /// @param proof OpenZeppelin `getProof` sibling hashes for the leaf
    /// `keccak256(bytes.concat(keccak256(abi.encode(rowHash, contributor))))`.
    function verifyRow(
        uint256 datanetId,
        uint64 version,
        bytes32 rowHash,
        address contributor,
        bytes32[] calldata proof
    ) external view returns (bool);
}
