// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ICommonErrors} from "./ICommonErrors.sol";
import {IOperatorRole} from "./IOperatorRole.sol";

/// @title IAdapterRegistry
/// @notice Registry of LoRA adapters: who developed each adapter, the hash of every published version's weights,
/// the base model it was trained on and the hash of its training provenance record.
/// @dev An adapter is keyed by `adapterId` (the node uses `keccak256` of the adapter's name); each registration
/// of the same id is a new version, numbered from 1, by the same developer. A given weights hash can be
/// registered once, under one id and version, across the whole registry. Roles: `DEFAULT_ADMIN_ROLE` manages
/// roles; `OPERATOR_ROLE` (the loraledger node) may register on behalf of any developer.
interface IAdapterRegistry is ICommonErrors, IOperatorRole {
    /// @notice The latest version of an adapter.
    /// @param developer The adapter's developer; fixed by the first registration.
    /// @param version The latest version number (from 1).
    /// @param adapterHash Hash of the version's adapter weights.
    /// @param baseModelHash Hash identifying the base model.
    /// @param provenanceHash Hash of the version's training provenance record.
    /// @param metadataURI Where the version's metadata can be fetched.
    struct AdapterInfo {
        address developer;
        uint64 version;
        bytes32 adapterHash;
        bytes32 baseModelHash;
        bytes32 provenanceHash;
        string metadataURI;
    }

    /// @notice Emitted when `version` of adapter `adapterId` is registered.
    event AdapterRegistered(
        bytes32 indexed adapterId,
        uint64 indexed version,
        address indexed developer,
        bytes32 adapterHash,
        bytes32 baseModelHash,
        bytes32 provenanceHash,
        string metadataURI
    );

    /// @notice No adapter is registered under `adapterId`.
    error UnknownAdapter(bytes32 adapterId);

    /// @notice `caller` may not register for adapter `adapterId`: it is neither the (recorded) developer nor an
    /// operator.
    error NotDeveloper(bytes32 adapterId, address caller);

    /// @notice A new version named a different developer from the one recorded for `adapterId`.
    error DeveloperMismatch(bytes32 adapterId, address developer);

    /// @notice A zero adapter id, adapter hash or base model hash was offered.
    error ZeroHash();

    /// @notice `adapterHash` is already registered.
    error AdapterHashTaken(bytes32 adapterHash);

    /// @notice Registers the next version of adapter `adapterId` and returns its number (1 for a new id).
    /// @dev The first registration of an id may be made by `developer` itself or by an operator; later ones by
    /// the recorded developer or an operator ({NotDeveloper} otherwise), and must name the recorded developer
    /// ({DeveloperMismatch}). Reverts with {ZeroHash} for a zero `adapterId`, `adapterHash` or `baseModelHash`
    /// (`provenanceHash` may be zero), {ZeroAddress} for a zero developer and {AdapterHashTaken} if
    /// `adapterHash` was registered before. Emits {AdapterRegistered}.
    function registerAdapter(
        bytes32 adapterId,
        address developer,
        bytes32 adapterHash,
        bytes32 baseModelHash,
        bytes32 provenanceHash,
        string calldata metadataURI
    ) external returns (uint64 version);

    /// @notice The latest version of adapter `adapterId`; reverts with {UnknownAdapter} for an unknown id.
    function getAdapter(bytes32 adapterId) external view returns (AdapterInfo memory);

    /// @notice The adapter id and version registered with weights hash `adapterHash`, or `(0, 0)` if none.
    function adapterOf(bytes32 adapterHash) external view returns (bytes32 adapterId, uint64 version);
}
