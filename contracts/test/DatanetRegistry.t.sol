// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {TestBase} from "./utils/TestBase.sol";
import {Merkle} from "./utils/Merkle.sol";
import {DatanetRegistry} from "../src/DatanetRegistry.sol";
import {ICommonErrors, IRootErrors} from "../src/interfaces/ICommonErrors.sol";
import {IDatanetRegistry} from "../src/interfaces/IDatanetRegistry.sol";

contract DatanetRegistryTest is TestBase {
    bytes32 internal constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    DatanetRegistry internal registry;
    address internal admin;
    address internal operator;
    address internal alice;
    address internal bob;

    function setUp() public {
        admin = makeAddr("admin");
        operator = makeAddr("operator");
        alice = makeAddr("alice");
        bob = makeAddr("bob");
        registry = new DatanetRegistry(admin);
        vm.prank(admin);
        registry.grantRole(OPERATOR_ROLE, operator);
    }

    function create(address owner) internal returns (uint256 id) {
        vm.prank(owner);
        id = registry.createDatanet(owner, "ipfs://meta");
    }

    // ------------------------------------------------------------------ deployment

    function test_Constructor() public view {
        vm.assertTrue(registry.hasRole(0x00, admin));
        vm.assertEq(registry.OPERATOR_ROLE(), OPERATOR_ROLE);
        vm.assertEq(registry.datanetCount(), 0);
    }

    function test_Eip712Domain() public view {
        (bytes1 fields, string memory name, string memory version, uint256 chainId, address verifyingContract,,) =
            registry.eip712Domain();
        vm.assertEq(uint256(uint8(fields)), 0x0f);
        vm.assertEq(name, "loraledger");
        vm.assertEq(version, "1");
        vm.assertEq(chainId, block.chainid);
        vm.assertEq(verifyingContract, address(registry));
    }

    function test_RevertWhen_ConstructorZeroAdmin() public {
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        new DatanetRegistry(address(0));
    }

    // ------------------------------------------------------------------ createDatanet

    function test_CreateDatanet() public {
        vm.expectEmit(address(registry));
        emit IDatanetRegistry.DatanetCreated(1, alice, "ipfs://meta");
        uint256 id = create(alice);
        vm.assertEq(id, 1);
        vm.assertEq(registry.datanetCount(), 1);
        (address owner, uint64 latestVersion, bytes32 latestRoot, string memory uri) = registry.getDatanet(1);
        vm.assertEq(owner, alice);
        vm.assertEq(uint256(latestVersion), 0);
        vm.assertEq(latestRoot, bytes32(0));
        vm.assertEq(uri, "ipfs://meta");
    }

    function test_CreateDatanetSequentialIds() public {
        vm.assertEq(create(alice), 1);
        vm.assertEq(create(bob), 2);
        vm.assertEq(create(alice), 3);
        vm.assertEq(registry.datanetCount(), 3);
    }

    function test_CreateDatanetByOperatorForOwner() public {
        vm.expectEmit(address(registry));
        emit IDatanetRegistry.DatanetCreated(1, alice, "ipfs://x");
        vm.prank(operator);
        uint256 id = registry.createDatanet(alice, "ipfs://x");
        (address owner,,,) = registry.getDatanet(id);
        vm.assertEq(owner, alice);
    }

    function test_RevertWhen_CreateDatanetForOtherOwner() public {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, bob, OPERATOR_ROLE)
        );
        vm.prank(bob);
        registry.createDatanet(alice, "ipfs://x");
    }

    function test_RevertWhen_CreateDatanetZeroOwner() public {
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        vm.prank(operator);
        registry.createDatanet(address(0), "ipfs://x");
    }

    // ------------------------------------------------------------------ setMetadata / transferDatanet

    function test_SetMetadata() public {
        uint256 id = create(alice);
        vm.expectEmit(address(registry));
        emit IDatanetRegistry.DatanetMetadataUpdated(id, "ar://new");
        vm.prank(alice);
        registry.setMetadata(id, "ar://new");
        (,,, string memory uri) = registry.getDatanet(id);
        vm.assertEq(uri, "ar://new");
    }

    function test_RevertWhen_MetadataUnchanged() public {
        uint256 id = create(alice);
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.MetadataUnchanged.selector, id));
        vm.prank(alice);
        registry.setMetadata(id, "ipfs://meta");
        // Any other URI, the empty one included, is a change; setting it twice is not.
        vm.prank(alice);
        registry.setMetadata(id, "");
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.MetadataUnchanged.selector, id));
        vm.prank(alice);
        registry.setMetadata(id, "");
    }

    function test_RevertWhen_SetMetadataNotOwner() public {
        uint256 id = create(alice);
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.NotDatanetOwner.selector, id, operator));
        vm.prank(operator);
        registry.setMetadata(id, "ar://new");
    }

    function test_RevertWhen_SetMetadataUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.UnknownDatanet.selector, 7));
        vm.prank(alice);
        registry.setMetadata(7, "ar://new");
    }

    function test_TransferDatanet() public {
        uint256 id = create(alice);
        vm.expectEmit(address(registry));
        emit IDatanetRegistry.DatanetTransferred(id, alice, bob);
        vm.prank(alice);
        registry.transferDatanet(id, bob);
        (address owner,,,) = registry.getDatanet(id);
        vm.assertEq(owner, bob);
        // The old owner lost control, the new one has it.
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.NotDatanetOwner.selector, id, alice));
        vm.prank(alice);
        registry.setMetadata(id, "x");
        vm.prank(bob);
        registry.setMetadata(id, "y");
    }

    function test_RevertWhen_TransferDatanetNotOwner() public {
        uint256 id = create(alice);
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.NotDatanetOwner.selector, id, bob));
        vm.prank(bob);
        registry.transferDatanet(id, bob);
    }

    function test_RevertWhen_TransferDatanetToZero() public {
        uint256 id = create(alice);
        vm.expectRevert(ICommonErrors.ZeroAddress.selector);
        vm.prank(alice);
        registry.transferDatanet(id, address(0));
    }

    function test_RevertWhen_OwnerUnchanged() public {
        uint256 id = create(alice);
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.OwnerUnchanged.selector, id));
        vm.prank(alice);
        registry.transferDatanet(id, alice);
    }

    function test_RevertWhen_TransferDatanetUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.UnknownDatanet.selector, 1));
        vm.prank(alice);
        registry.transferDatanet(1, bob);
    }

    // ------------------------------------------------------------------ publishSnapshot

    function test_PublishSnapshot() public {
        uint256 id = create(alice);
        vm.expectEmit(address(registry));
        emit IDatanetRegistry.SnapshotPublished(id, 1, keccak256("v1"), 1000);
        vm.prank(alice);
        registry.publishSnapshot(id, 1, keccak256("v1"), 1000);

        vm.prank(operator);
        registry.publishSnapshot(id, 2, keccak256("v2"), 1500);

        (, uint64 latestVersion, bytes32 latestRoot,) = registry.getDatanet(id);
        vm.assertEq(uint256(latestVersion), 2);
        vm.assertEq(latestRoot, keccak256("v2"));
        vm.assertEq(registry.snapshotRoot(id, 1), keccak256("v1"));
        vm.assertEq(registry.snapshotRoot(id, 2), keccak256("v2"));
        vm.assertEq(registry.snapshotRoot(id, 3), bytes32(0));
    }

    function test_RevertWhen_PublishSnapshotNotOwner() public {
        uint256 id = create(alice);
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.NotDatanetOwner.selector, id, bob));
        vm.prank(bob);
        registry.publishSnapshot(id, 1, keccak256("v1"), 10);
    }

    function test_RevertWhen_PublishSnapshotVersionZero() public {
        uint256 id = create(alice);
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.VersionOutOfOrder.selector, 1, 0));
        vm.prank(alice);
        registry.publishSnapshot(id, 0, keccak256("v1"), 10);
    }

    function test_RevertWhen_PublishSnapshotVersionSkipped() public {
        uint256 id = create(alice);
        vm.startPrank(alice);
        registry.publishSnapshot(id, 1, keccak256("v1"), 10);
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.VersionOutOfOrder.selector, 2, 3));
        registry.publishSnapshot(id, 3, keccak256("v3"), 10);
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.VersionOutOfOrder.selector, 2, 1));
        registry.publishSnapshot(id, 1, keccak256("v1b"), 10);
        vm.stopPrank();
    }

    function test_RevertWhen_PublishSnapshotZeroRoot() public {
        uint256 id = create(alice);
        vm.expectRevert(IRootErrors.ZeroRoot.selector);
        vm.prank(alice);
        registry.publishSnapshot(id, 1, bytes32(0), 10);
    }

    function test_RevertWhen_PublishSnapshotUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.UnknownDatanet.selector, 9));
        vm.prank(operator);
        registry.publishSnapshot(9, 1, keccak256("v1"), 10);
    }

    // ------------------------------------------------------------------ views

    function test_RevertWhen_GetDatanetUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.UnknownDatanet.selector, 0));
        registry.getDatanet(0);
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.UnknownDatanet.selector, 1));
        registry.getDatanet(1);
    }

    function test_RevertWhen_SnapshotRootUnknownDatanet() public {
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.UnknownDatanet.selector, 1));
        registry.snapshotRoot(1, 1);
    }

    function test_VerifyRow() public {
        uint256 id = create(alice);
        bytes32[] memory leaves = new bytes32[](5);
        for (uint256 i; i < 5; ++i) {
            leaves[i] = Merkle.rowLeaf(keccak256(abi.encode("row", i)), i % 2 == 0 ? alice : bob);
        }
        bytes32[] memory tree = Merkle.build(Merkle.sort(leaves));
        vm.prank(alice);
        registry.publishSnapshot(id, 1, tree[0], 5);

        for (uint256 i; i < 5; ++i) {
            bytes32 rowHash = keccak256(abi.encode("row", i));
            address contributor = i % 2 == 0 ? alice : bob;
            bytes32[] memory proof = Merkle.proofFor(tree, Merkle.rowLeaf(rowHash, contributor));
            vm.assertTrue(registry.verifyRow(id, 1, rowHash, contributor, proof));
            // Wrong contributor, wrong row, unpublished version.
            vm.assertFalse(registry.verifyRow(id, 1, rowHash, contributor == alice ? bob : alice, proof));
            vm.assertFalse(registry.verifyRow(id, 1, keccak256("other"), contributor, proof));
            vm.assertFalse(registry.verifyRow(id, 2, rowHash, contributor, proof));
        }
    }

    /// @dev Root and proof produced by `@openzeppelin/merkle-tree` 1.0.8 for
    /// `StandardMerkleTree.of([[0xab..ab, 0x11..11], [0xcd..cd, 0x22..22], [0xef..ef, 0x33..33]], ["bytes32", "address"])`.
    function test_VerifyRowOpenZeppelinVector() public {
        uint256 id = create(alice);
        vm.prank(alice);
        registry.publishSnapshot(id, 1, 0x275a4960243f52d6e0c7579dc5a72ca8b740310d390355c3bfe334f12a1a1317, 3);
        bytes32[] memory proof = new bytes32[](2);
        proof[0] = 0x378aeec1dd6403af6b5ad307709cd422c9581b358b0690ca4338e98aab1e8e75;
        proof[1] = 0x5f68a1d1c01801ad875c9e15d2e1e9ea80bc559b894b5d3535ef110f5fdb0b29;
        vm.assertTrue(
            registry.verifyRow(
                id,
                1,
                0xcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd,
                0x2222222222222222222222222222222222222222,
                proof
            )
        );
    }

    function test_RevertWhen_VerifyRowUnknownDatanet() public {
        vm.expectRevert(abi.encodeWithSelector(IDatanetRegistry.UnknownDatanet.selector, 3));
        registry.verifyRow(3, 1, bytes32(0), alice, new bytes32[](0));
    }

    function testFuzz_PublishSnapshots(uint8 count, bytes32 seed) public {
        uint256 id = create(alice);
        uint256 n = bound(count, 1, 20);
        for (uint64 v = 1; v <= n; ++v) {
            bytes32 root = keccak256(abi.encode(seed, v));
            vm.prank(v % 2 == 0 ? alice : operator);
            registry.publishSnapshot(id, v, root, v * 10);
            vm.assertEq(registry.snapshotRoot(id, v), root);
        }
        (, uint64 latest,,) = registry.getDatanet(id);
        vm.assertEq(uint256(latest), n);
    }
}
