// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {TestBase} from "./utils/TestBase.sol";
import {OpenToken} from "../src/OpenToken.sol";

contract OpenTokenTest is TestBase {
    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    OpenToken internal token;
    address internal holder;

    function setUp() public {
        holder = makeAddr("holder");
        token = new OpenToken(holder, 1_000_000e18);
    }

    function digest(address owner, address spender, uint256 value, uint256 nonce, uint256 deadline)
        internal
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, nonce, deadline));
        return keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash));
    }

    function test_Metadata() public view {
        vm.assertEq(token.name(), "Open");
        vm.assertEq(token.symbol(), "OPEN");
        vm.assertEq(uint256(token.decimals()), 18);
        vm.assertEq(token.totalSupply(), 1_000_000e18);
        vm.assertEq(token.balanceOf(holder), 1_000_000e18);
    }

    function test_ConstructorEmitsMint() public {
        vm.expectEmit();
        emit IERC20.Transfer(address(0), holder, 5);
        new OpenToken(holder, 5);
    }

    function test_Eip712Domain() public view {
        (, string memory name, string memory version, uint256 chainId, address verifyingContract,,) =
            token.eip712Domain();
        vm.assertEq(name, "Open");
        vm.assertEq(version, "1");
        vm.assertEq(chainId, block.chainid);
        vm.assertEq(verifyingContract, address(token));
    }

    function test_Transfer() public {
        address bob = makeAddr("bob");
        vm.prank(holder);
        vm.assertTrue(token.transfer(bob, 10e18));
        vm.assertEq(token.balanceOf(bob), 10e18);
    }

    function test_Permit() public {
        uint256 key = keyOf("owner");
        address owner = vm.addr(key);
        address spender = makeAddr("spender");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest(owner, spender, 5e18, 0, block.timestamp));
        vm.expectEmit(address(token));
        emit IERC20.Approval(owner, spender, 5e18);
        token.permit(owner, spender, 5e18, block.timestamp, v, r, s);
        vm.assertEq(token.allowance(owner, spender), 5e18);
        vm.assertEq(token.nonces(owner), 1);
    }

    function testFuzz_Permit(uint248 ownerKey, address spender, uint256 value, uint256 deadline) public {
        vm.assume(spender != address(0));
        uint256 key = bound(uint256(ownerKey), 1, 2 ** 200);
        deadline = bound(deadline, block.timestamp, type(uint256).max);
        address owner = vm.addr(key);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest(owner, spender, value, 0, deadline));
        token.permit(owner, spender, value, deadline, v, r, s);
        vm.assertEq(token.allowance(owner, spender), value);
        vm.assertEq(token.nonces(owner), 1);
    }

    function testFuzz_RevertWhen_PermitExpired(uint256 deadline, uint256 nowTs) public {
        nowTs = bound(nowTs, 1, type(uint64).max);
        deadline = bound(deadline, 0, nowTs - 1);
        vm.warp(nowTs);
        uint256 key = keyOf("owner");
        address owner = vm.addr(key);
        address spender = makeAddr("spender");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest(owner, spender, 1, 0, deadline));
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612ExpiredSignature.selector, deadline));
        token.permit(owner, spender, 1, deadline, v, r, s);
    }

    function testFuzz_RevertWhen_PermitWrongSigner(uint248 signerKey) public {
        uint256 key = bound(uint256(signerKey), 1, 2 ** 200);
        address owner = makeAddr("owner");
        vm.assume(vm.addr(key) != owner);
        address spender = makeAddr("spender");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest(owner, spender, 1, 0, block.timestamp));
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612InvalidSigner.selector, vm.addr(key), owner));
        token.permit(owner, spender, 1, block.timestamp, v, r, s);
    }

    function test_RevertWhen_PermitReplayed() public {
        uint256 key = keyOf("owner");
        address owner = vm.addr(key);
        address spender = makeAddr("spender");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest(owner, spender, 5e18, 0, block.timestamp));
        token.permit(owner, spender, 5e18, block.timestamp, v, r, s);
        vm.expectRevert();
        token.permit(owner, spender, 5e18, block.timestamp, v, r, s);
    }
}
