// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {OperatorRole} from "./access/OperatorRole.sol";
import {IDatanetRegistry} from "./interfaces/IDatanetRegistry.sol";

/// @title DatanetRegistry
/// @notice Datanets, their owners and their versioned snapshot roots; the EIP-712 domain for contributions.
contract DatanetRegistry is IDatanetRegistry, EIP712, OperatorRole {
    struct Datanet {
        address owner;
        uint64 latestVersion;
        bytes32 latestRoot;
        string metadataURI;
    }

    uint256 private _count;
    mapping(uint256 datanetId => Datanet) private _datanets;
    mapping(uint256 datanetId => mapping(uint64 version => bytes32 root)) private _roots;

    /// @param admin Receives `DEFAULT_ADMIN_ROLE`.
    constructor(address admin) EIP712("loraledger", "1") {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IDatanetRegistry
    function createDatanet(address owner, string calldata metadataURI) external returns (uint256 datanetId) {
        if (owner == address(0)) revert ZeroAddress();
        if (owner != msg.sender) _checkRole(OPERATOR_ROLE);
        datanetId = ++_count;
        Datanet storage d = _datanets[datanetId];
        d.owner = owner;
        d.metadataURI = metadataURI;
        emit DatanetCreated(datanetId, owner, metadataURI);
    }

    /// @inheritdoc IDatanetRegistry
    function setMetadata(uint256 datanetId, string calldata metadataURI) external {
        Datanet storage d = _onlyOwner(datanetId);
        if (keccak256(bytes(metadataURI)) == keccak256(bytes(d.metadataURI))) revert MetadataUnchanged(datanetId);
        d.metadataURI = metadataURI;
        emit DatanetMetadataUpdated(datanetId, metadataURI);
    }

    /// @inheritdoc IDatanetRegistry
    function transferDatanet(uint256 datanetId, address newOwner) external {
        Datanet storage d = _onlyOwner(datanetId);
        if (newOwner == address(0)) revert ZeroAddress();
        if (newOwner == msg.sender) revert OwnerUnchanged(datanetId);
        d.owner = newOwner;
        emit DatanetTransferred(datanetId, msg.sender, newOwner);
    }

    /// @inheritdoc IDatanetRegistry
    function publishSnapshot(uint256 datanetId, uint64 version, bytes32 root, uint64 rowCount) external {
        Datanet storage d = _get(datanetId);
        if (d.owner != msg.sender && !hasRole(OPERATOR_ROLE, msg.sender)) {
            revert NotDatanetOwner(datanetId, msg.sender);
        }
        uint64 expected = d.latestVersion + 1;
        if (version != expected) revert VersionOutOfOrder(expected, version);
        if (root == bytes32(0)) revert ZeroRoot();
        d.latestVersion = version;
        d.latestRoot = root;
        _roots[datanetId][version] = root;
        emit SnapshotPublished(datanetId, version, root, rowCount);
    }

    /// @inheritdoc IDatanetRegistry
    function getDatanet(uint256 datanetId)
        external
        view
        returns (address owner, uint64 latestVersion, bytes32 latestRoot, string memory metadataURI)
    {
        Datanet storage d = _get(datanetId);
        return (d.owner, d.latestVersion, d.latestRoot, d.metadataURI);
    }

    /// @inheritdoc IDatanetRegistry
    function snapshotRoot(uint256 datanetId, uint64 version) external view returns (bytes32) {
        _get(datanetId);
        return _roots[datanetId][version];
    }

    /// @inheritdoc IDatanetRegistry
    function datanetCount() external view returns (uint256) {
        return _count;
    }

    /// @inheritdoc IDatanetRegistry
    function verifyRow(
        uint256 datanetId,
        uint64 version,
        bytes32 rowHash,
        address contributor,
        bytes32[] calldata proof
    ) external view returns (bool) {
        _get(datanetId);
        bytes32 root = _roots[datanetId][version];
        if (root == bytes32(0)) return false;
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(rowHash, contributor))));
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    function _get(uint256 datanetId) private view returns (Datanet storage d) {
        d = _datanets[datanetId];
        if (d.owner == address(0)) revert UnknownDatanet(datanetId);
    }

    function _onlyOwner(uint256 datanetId) private view returns (Datanet storage d) {
        d = _get(datanetId);
        if (d.owner != msg.sender) revert NotDatanetOwner(datanetId, msg.sender);
    }
}
