// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TestBase} from "../utils/TestBase.sol";
import {OpenToken} from "../../src/OpenToken.sol";
import {PaymentVault} from "../../src/PaymentVault.sol";

/// @title PaymentVaultHandler
/// @notice Drives the payment vault for the invariant tests: payers deposit (with `approve`, for others, with a
/// permit, with a permit someone else submitted first), the operator releases epochs with growing, gapped
/// numbers, and the same calls are tried where they must fail (zero amounts, an epoch released twice, more than
/// is available, callers without `OPERATOR_ROLE`). Every outcome is recorded in ghost variables that the
/// invariants compare with the vault.
contract PaymentVaultHandler is TestBase {
    uint256 public constant PAYERS = 5;
    uint256 internal constant MAX_DEPOSIT = 1_000_000e18;

    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    OpenToken public immutable token;
    PaymentVault public immutable vault;
    address public immutable admin;
    address public immutable operator;
    /// @dev Receives every release and nothing else, so its balance is what was released.
    address public immutable treasury;

    address[PAYERS] public payers;
    uint256[PAYERS] internal _keys;

    // ---- ghost state
    uint256[PAYERS] public ghostDeposited;
    uint256 public ghostTotalDeposited;
    uint256 public ghostTotalReleased;
    uint64 public ghostLastEpoch;
    mapping(uint64 epoch => uint256) public ghostReleasedFor;
    uint64[] internal _releasedEpochs;

    // ---- violations (must stay zero)
    uint256 public validDepositsRejected;
    uint256 public zeroDepositsAccepted;
    uint256 public validReleasesRejected;
    uint256 public doubleReleases;
    uint256 public overReleases;
    uint256 public unauthorizedReleases;
    uint256 public availableMismatches;

    // ---- coverage counters
    mapping(bytes32 => uint256) public calls;

    constructor(OpenToken token_, PaymentVault vault_, address admin_, address operator_, address treasury_) {
        token = token_;
        vault = vault_;
        admin = admin_;
        operator = operator_;
        treasury = treasury_;
        for (uint256 i; i < PAYERS; ++i) {
            _keys[i] = uint256(keccak256(abi.encode("payer", i)));
            payers[i] = vm.addr(_keys[i]);
        }
    }

    /// @dev After every call, `available()` must answer (never underflow) and match the ghosts.
    modifier tracked(bytes32 name) {
        _;
        calls[name]++;
        try vault.available() returns (uint256 a) {
            if (ghostTotalReleased > ghostTotalDeposited || a != _ghostAvailable()) availableMismatches++;
        } catch {
            availableMismatches++;
        }
    }

    // ------------------------------------------------------------------ deposits

    /// @notice A payer approves and deposits a random amount of what it holds.
    function deposit(uint256 payerSeed, uint256 amount) external tracked("deposit") {
        uint256 i = payerSeed % PAYERS;
        address payer = payers[i];
        amount = _boundDeposit(payer, amount);
        if (amount == 0) return;
        vm.prank(payer);
        token.approve(address(vault), amount);
        vm.prank(payer);
        try vault.deposit(amount) {
            _recordDeposit(i, amount);
        } catch {
            validDepositsRejected++;
        }
    }

    /// @notice A payer approves and deposits a random amount for another (or the same) payer.
    function depositFor(uint256 fromSeed, uint256 payerSeed, uint256 amount) external tracked("depositFor") {
        address from = payers[fromSeed % PAYERS];
        uint256 i = payerSeed % PAYERS;
        amount = _boundDeposit(from, amount);
        if (amount == 0) return;
        vm.prank(from);
        token.approve(address(vault), amount);
        vm.prank(from);
        try vault.depositFor(payers[i], amount) {
            _recordDeposit(i, amount);
        } catch {
            validDepositsRejected++;
        }
    }

    /// @notice A payer deposits with a permit it signed; when `frontRun`, someone else submits the permit first.
    function depositWithPermit(uint256 payerSeed, uint256 amount, bool frontRun) external tracked("depositWithPermit") {
        uint256 i = payerSeed % PAYERS;
        address payer = payers[i];
        amount = _boundDeposit(payer, amount);
        if (amount == 0) return;
        uint256 deadline = block.timestamp;
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(_keys[i], _permitDigest(payer, amount, deadline));
        if (frontRun) token.permit(payer, address(vault), amount, deadline, v, r, s);
        vm.prank(payer);
        try vault.depositWithPermit(amount, deadline, v, r, s) {
            _recordDeposit(i, amount);
        } catch {
            validDepositsRejected++;
        }
    }

    /// @notice Zero deposits, by every path, must be refused.
    function depositZero(uint256 payerSeed, uint8 path) external tracked("depositZero") {
        uint256 i = payerSeed % PAYERS;
        address payer = payers[i];
        uint256 p = path % 3;
        vm.prank(payer);
        if (p == 0) {
            try vault.deposit(0) {
                zeroDepositsAccepted++;
            } catch {}
        } else if (p == 1) {
            try vault.depositFor(payers[(i + 1) % PAYERS], 0) {
                zeroDepositsAccepted++;
            } catch {}
        } else {
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(_keys[i], _permitDigest(payer, 0, block.timestamp));
            try vault.depositWithPermit(0, block.timestamp, v, r, s) {
                zeroDepositsAccepted++;
            } catch {}
        }
    }

    // ------------------------------------------------------------------ releases

    /// @notice The operator releases a random share of what is available for a later epoch: 1 to 4 past the
    /// last one released, so up to 3 epochs are skipped.
    function release(uint256 epochGap, uint256 amount) external tracked("release") {
        uint256 avail = _ghostAvailable();
        if (avail == 0) return;
        uint64 epoch = ghostLastEpoch + uint64(bound(epochGap, 1, 4));
        amount = bound(amount, 1, avail);
        vm.prank(operator);
        try vault.release(epoch, treasury, amount) {
            ghostLastEpoch = epoch;
            ghostReleasedFor[epoch] = amount;
            ghostTotalReleased += amount;
            _releasedEpochs.push(epoch);
        } catch {
            validReleasesRejected++;
        }
    }

    /// @notice The operator retries an epoch already released; it must be refused.
    function releaseAgain(uint256 pick, uint256 amount) external tracked("releaseAgain") {
        uint256 n = _releasedEpochs.length;
        if (n == 0) return;
        uint64 epoch = _releasedEpochs[pick % n];
        amount = bound(amount, 1, MAX_DEPOSIT);
        vm.prank(operator);
        try vault.release(epoch, treasury, amount) {
            doubleReleases++;
            ghostTotalReleased += amount;
        } catch {}
    }

    /// @notice The operator asks for more than is available, for a fresh epoch; it must be refused.
    function releaseTooMuch(uint256 epochGap, uint256 excess) external tracked("releaseTooMuch") {
        uint256 avail = _ghostAvailable();
        // One more than available a third of the time: the boundary.
        uint256 amount = avail + (excess % 3 == 0 ? 1 : bound(excess, 1, 1e30));
        uint64 epoch = ghostLastEpoch + uint64(bound(epochGap, 1, 4));
        vm.prank(operator);
        try vault.release(epoch, treasury, amount) {
            overReleases++;
            ghostTotalReleased += amount;
        } catch {}
    }

    /// @notice Someone without `OPERATOR_ROLE` (the admin, a payer, a stranger) tries to release.
    function attackRelease(uint256 callerSeed, uint256 amount) external tracked("attackRelease") {
        uint256 avail = _ghostAvailable();
        if (avail == 0) return;
        amount = bound(amount, 1, avail);
        uint256 pick = callerSeed % 3;
        address caller = pick == 0 ? admin : pick == 1 ? payers[(callerSeed >> 8) % PAYERS] : _stranger(callerSeed);
        vm.prank(caller);
        try vault.release(ghostLastEpoch + 1, caller, amount) {
            unauthorizedReleases++;
            ghostTotalReleased += amount;
        } catch {}
    }

    // ------------------------------------------------------------------ views

    function releasedEpochCount() external view returns (uint256) {
        return _releasedEpochs.length;
    }

    function releasedEpochs(uint256 k) external view returns (uint64) {
        return _releasedEpochs[k];
    }

    // ------------------------------------------------------------------ helpers

    /// @dev `amount` mapped into `[1, min(balance, MAX_DEPOSIT)]`, or zero when `payer` holds nothing.
    function _boundDeposit(address payer, uint256 amount) internal view returns (uint256) {
        uint256 balance = token.balanceOf(payer);
        if (balance == 0) return 0;
        return bound(amount, 1, balance < MAX_DEPOSIT ? balance : MAX_DEPOSIT);
    }

    /// @dev Deposited less released, per the ghosts; zero (rather than a revert that would undo the violating
    /// call and its count) if a violation ever released more than was deposited.
    function _ghostAvailable() internal view returns (uint256) {
        return ghostTotalReleased > ghostTotalDeposited ? 0 : ghostTotalDeposited - ghostTotalReleased;
    }

    function _recordDeposit(uint256 i, uint256 amount) internal {
        ghostDeposited[i] += amount;
        ghostTotalDeposited += amount;
    }

    function _permitDigest(address owner, uint256 value, uint256 deadline) internal view returns (bytes32) {
        bytes32 structHash =
            keccak256(abi.encode(PERMIT_TYPEHASH, owner, address(vault), value, token.nonces(owner), deadline));
        return keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash));
    }

    function _stranger(uint256 seed) internal pure returns (address) {
        return address(uint160(uint256(keccak256(abi.encode("stranger", seed % 1000)))));
    }
}
