// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {OperatorRole} from "./access/OperatorRole.sol";
import {IAdapterRegistry} from "./interfaces/IAdapterRegistry.sol";

/// @title AdapterRegistry
/// @notice LoRA adapters, their developers and the provenance of every published version.
contract AdapterRegistry is IAdapterRegistry, OperatorRole {
    struct Registration {
        bytes32 adapterId;
        uint64 version;
    }

    mapping(bytes32 adapterId => AdapterInfo) private _adapters;
    mapping(bytes32 adapterHash => Registration) private _registrations;

    /// @param admin Receives `DEFAULT_ADMIN_ROLE`.
    constructor(address admin) {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IAdapterRegistry
    function registerAdapter(
        bytes32 adapterId,
        address developer,
        bytes32 adapterHash,
        bytes32 baseModelHash,
        bytes32 provenanceHash,
        string calldata metadataURI
    ) external returns (uint64 version) {
        if (adapterId == bytes32(0) || adapterHash == bytes32(0) || baseModelHash == bytes32(0)) {
            revert ZeroHash();
        }
        if (developer == address(0)) revert ZeroAddress();
        AdapterInfo storage info = _adapters[adapterId];
        address recorded = info.developer;
        if (recorded == address(0)) {
            if (msg.sender != developer && !hasRole(OPERATOR_ROLE, msg.sender)) {
                revert NotDeveloper(adapterId, msg.sender);
            }
            info.developer = developer;
        } else {
            if (msg.sender != recorded && !hasRole(OPERATOR_ROLE, msg.sender)) {
                revert NotDeveloper(adapterId, msg.sender);
            }
            if (developer != recorded) revert DeveloperMismatch(adapterId, developer);
        }
        if (_registrations[adapterHash].version != 0) revert AdapterHashTaken(adapterHash);

        version = info.version + 1;
        info.version = version;
        info.adapterHash = adapterHash;
        info.baseModelHash = baseModelHash;
        info.provenanceHash = provenanceHash;
        info.metadataURI = metadataURI;
        _registrations[adapterHash] = Registration(adapterId, version);
        emit AdapterRegistered(adapterId, version, developer, adapterHash, baseModelHash, provenanceHash, metadataURI);
    }

    /// @inheritdoc IAdapterRegistry
    function getAdapter(bytes32 adapterId) external view returns (AdapterInfo memory) {
        AdapterInfo storage info = _adapters[adapterId];
        if (info.developer == address(0)) revert UnknownAdapter(adapterId);
        return info;
    }

    /// @inheritdoc IAdapterRegistry
    function adapterOf(bytes32 adapterHash) external view returns (bytes32 adapterId, uint64 version) {
        Registration storage r = _registrations[adapterHash];
        return (r.adapterId, r.version);
    }
}
