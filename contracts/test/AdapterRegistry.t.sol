// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TestBase} from "./utils/TestBase.sol";
import {AdapterRegistry} from "../src/AdapterRegistry.sol";
import {ICommonErrors} from "../src/interfaces/ICommonErrors.sol";
import {IAdapterRegistry} from "../src/interfaces/IAdapterRegistry.sol";

contract AdapterRegistryTest is TestBase {
    bytes32 internal constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    bytes32 internal constant ID = keccak256("legal-summarizer");
    bytes32 internal constant BASE = keccak256("llama-3-8b");

    AdapterRegistry internal registry;
    address internal admin;
    address internal operator;
    address internal dev;
    address internal mallory;

    function setUp() public {
        admin = makeAddr("admin");
        operator = makeAddr("operator");
        dev = makeAddr("dev");
        mallory = makeAddr("mallory");
        registry = new AdapterRegistry(admin);
        vm.prank(admin);
        registry.grantRole(OPERATOR_ROLE, operator);
    }

    function register(address caller, bytes32 id, address developer, bytes32 adapterHash) internal returns (uint64) {
        vm.prank(caller);
        return registry.registerAdapter(id, developer, adapterHash, BASE, keccak256("prov"), "ipfs://card");
    }

    function test_Constructor() public view {
        vm.assertTrue(registry.hasRole(0x00, admin));
        vm.assertEq(registry.OPERATOR_ROLE(), OPERATOR_ROLE);
    }

    function test_RevertWhen_ConstructorZeroAdmin() public {
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        new AdapterRegistry(address(0));
    }

    function test_RegisterAdapter() public {
        vm.expectEmit(address(registry));
        emit IAdapterRegistry.AdapterRegistered(ID, 1, dev, keccak256("w1"), BASE, keccak256("prov"), "ipfs://card");
        uint64 version = register(dev, ID, dev, keccak256("w1"));
        vm.assertEq(uint256(version), 1);

        IAdapterRegistry.AdapterInfo memory info = registry.getAdapter(ID);
        vm.assertEq(info.developer, dev);
        vm.assertEq(uint256(info.version), 1);
        vm.assertEq(info.adapterHash, keccak256("w1"));
        vm.assertEq(info.baseModelHash, BASE);
        vm.assertEq(info.provenanceHash, keccak256("prov"));
        vm.assertEq(info.metadataURI, "ipfs://card");

        (bytes32 id, uint64 v) = registry.adapterOf(keccak256("w1"));
        vm.assertEq(id, ID);
        vm.assertEq(uint256(v), 1);
    }

    function test_RegisterAdapterByOperator() public {
        uint64 version = register(operator, ID, dev, keccak256("w1"));
        vm.assertEq(uint256(version), 1);
        vm.assertEq(registry.getAdapter(ID).developer, dev);
    }

    function test_RegisterNewVersions() public {
        register(dev, ID, dev, keccak256("w1"));
        vm.expectEmit(address(registry));
        emit IAdapterRegistry.AdapterRegistered(ID, 2, dev, keccak256("w2"), BASE, keccak256("prov"), "ipfs://card");
        vm.assertEq(uint256(register(dev, ID, dev, keccak256("w2"))), 2);
        vm.assertEq(uint256(register(operator, ID, dev, keccak256("w3"))), 3);

        IAdapterRegistry.AdapterInfo memory info = registry.getAdapter(ID);
        vm.assertEq(uint256(info.version), 3);
        vm.assertEq(info.adapterHash, keccak256("w3"));
        (bytes32 id, uint64 v) = registry.adapterOf(keccak256("w2"));
        vm.assertEq(id, ID);
        vm.assertEq(uint256(v), 2);
    }

    function test_ProvenanceHashMayBeZero() public {
        vm.prank(dev);
        registry.registerAdapter(ID, dev, keccak256("w1"), BASE, bytes32(0), "");
        vm.assertEq(registry.getAdapter(ID).provenanceHash, bytes32(0));
    }

    function test_RevertWhen_FirstRegistrationByOther() public {
        vm.expectRevert(abi.encodeWithSelector(IAdapterRegistry.NotDeveloper.selector, ID, mallory));
        register(mallory, ID, dev, keccak256("w1"));
    }

    function test_RevertWhen_NewVersionByOther() public {
        register(dev, ID, dev, keccak256("w1"));
        vm.expectRevert(abi.encodeWithSelector(IAdapterRegistry.NotDeveloper.selector, ID, mallory));
        register(mallory, ID, dev, keccak256("w2"));
        // Naming themselves as developer does not help either.
        vm.expectRevert(abi.encodeWithSelector(IAdapterRegistry.NotDeveloper.selector, ID, mallory));
        register(mallory, ID, mallory, keccak256("w2"));
    }

    function test_RevertWhen_NewVersionChangesDeveloper() public {
        register(dev, ID, dev, keccak256("w1"));
        vm.expectRevert(abi.encodeWithSelector(IAdapterRegistry.DeveloperMismatch.selector, ID, mallory));
        register(operator, ID, mallory, keccak256("w2"));
        vm.expectRevert(abi.encodeWithSelector(IAdapterRegistry.DeveloperMismatch.selector, ID, mallory));
        register(dev, ID, mallory, keccak256("w2"));
    }

    function test_RevertWhen_AdapterHashTakenSameId() public {
        register(dev, ID, dev, keccak256("w1"));
        vm.expectRevert(abi.encodeWithSelector(IAdapterRegistry.AdapterHashTaken.selector, keccak256("w1")));
        register(dev, ID, dev, keccak256("w1"));
    }

    function test_RevertWhen_AdapterHashTakenOtherId() public {
        register(dev, ID, dev, keccak256("w1"));
        vm.expectRevert(abi.encodeWithSelector(IAdapterRegistry.AdapterHashTaken.selector, keccak256("w1")));
        register(mallory, keccak256("copycat"), mallory, keccak256("w1"));
    }

    function test_RevertWhen_ZeroAdapterId() public {
        vm.expectRevert(IAdapterRegistry.ZeroHash.selector);
        register(dev, bytes32(0), dev, keccak256("w1"));
    }

    function test_RevertWhen_ZeroAdapterHash() public {
        vm.expectRevert(IAdapterRegistry.ZeroHash.selector);
        register(dev, ID, dev, bytes32(0));
    }

    function test_RevertWhen_ZeroBaseModelHash() public {
        vm.expectRevert(IAdapterRegistry.ZeroHash.selector);
        vm.prank(dev);
        registry.registerAdapter(ID, dev, keccak256("w1"), bytes32(0), keccak256("prov"), "");
    }

    function test_RevertWhen_ZeroDeveloper() public {
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        register(operator, ID, address(0), keccak256("w1"));
    }

    function test_RevertWhen_GetAdapterUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAdapterRegistry.UnknownAdapter.selector, ID));
        registry.getAdapter(ID);
    }

    function test_AdapterOfUnknown() public view {
        (bytes32 id, uint64 v) = registry.adapterOf(keccak256("nothing"));
        vm.assertEq(id, bytes32(0));
        vm.assertEq(uint256(v), 0);
    }

    function testFuzz_RegisterVersions(uint8 count, bytes32 seed) public {
        uint256 n = bound(count, 1, 20);
        for (uint256 i = 1; i <= n; ++i) {
            bytes32 h = keccak256(abi.encode(seed, i));
            vm.assertEq(uint256(register(i % 2 == 0 ? dev : operator, ID, dev, h)), i);
            (bytes32 id, uint64 v) = registry.adapterOf(h);
            vm.assertEq(id, ID);
            vm.assertEq(uint256(v), i);
        }
        vm.assertEq(uint256(registry.getAdapter(ID).version), n);
    }
}
