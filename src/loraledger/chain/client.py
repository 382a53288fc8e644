"""A thin, strict web3 client: connect, send signed transactions, decode reverts.

Every transaction is signed locally (the key never leaves the process), given a nonce by
``NonceManager`` and waited for; a reverted transaction is a ``TransactionReverted`` with
the contract's custom error decoded by name and arguments, never a silent success.

Errors are translated where they enter: a chain that cannot be reached (connection refused,
timeout: ``requests``/``OSError`` inside the provider) and any web3 failure of a call made
through this client (an RPC error, a revert, undecodable output) come out as
:class:`~loraledger.errors.ChainError` (``TransactionReverted`` for reverts), so the loops
and the API above see one error hierarchy and never a ``requests`` exception.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)

from ..errors import ChainError, TransactionReverted
from .compile import Artifact

_ERROR_STRING = keccak(text="Error(string)")[:4]
_PANIC = keccak(text="Panic(uint256)")[:4]


@dataclass(frozen=True)
class SignedTx:
    """A signed, not yet broadcast transaction."""

    raw: str
    tx_hash: str
    nonce: int


@dataclass(frozen=True)
class CustomErrorAbi:
    """A Solidity custom error: name, argument names and ABI types."""

    name: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]


def _abi_type(entry: dict[str, Any]) -> str:
    if entry["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in entry["components"])
        return f"({inner}){entry['type'][5:]}"
    return entry["type"]


class ErrorDecoder:
    """Maps 4-byte selectors of custom errors (from every known ABI) to readable errors."""

    def __init__(self, abis: list[dict[str, Any]]):
        self._by_selector: dict[bytes, CustomErrorAbi] = {}
        for entry in abis:
            if entry.get("type") != "error":
                continue
            types = tuple(_abi_type(i) for i in entry["inputs"])
            selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
            self._by_selector[selector] = CustomErrorAbi(
                entry["name"], tuple(i["name"] for i in entry["inputs"]), types
            )

    def decode(self, data: bytes | str | None) -> tuple[str | None, dict[str, Any]]:
        """(error name, {arg: value}) for revert data; (None, {}) when unknown."""
        if data is None:
            return None, {}
        raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else data
        selector, body = raw[:4], raw[4:]
        if selector == _ERROR_STRING:
            return "Error", {"reason": abi_decode(["string"], body)[0]}
        if selector == _PANIC:
            return "Panic", {"code": abi_decode(["uint256"], body)[0]}
        known = self._by_selector.get(selector)
        if known is None:
            return None, {"data": "0x" + raw.hex()}
        values = abi_decode(list(known.arg_types), body) if known.arg_types else ()
        args = {name or f"arg{i}": _readable(v) for i, (name, v) in enumerate(zip(known.arg_names, values))}
        return known.name, args


def _readable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


def describe_revert(name: str | None, args: dict[str, Any]) -> str:
    if name is None:
        return f"reverted without a known error ({args.get('data', 'no data')})"
    if name == "Error":
        return f"reverted: {args['reason']}"
    rendered = ", ".join(f"{k}={v}" for k, v in args.items())
    return f"reverted with {name}({rendered})"


class NonceManager:
    """Hands out nonces per sender so that threads sending from one key never collide.

    Each ``take`` reads the chain's pending count (so a transaction sent by another process,
    a dropped one, or a chain that went back — a devnet restarted from saved state, a deep
    reorg — never leaves us with a stale nonce) and skips the nonces this process has taken
    but not yet handed to the node (``release`` once sent or abandoned).
    """

    def __init__(self, w3: Web3):
        self._w3 = w3
        self._outstanding: dict[str, set[int]] = {}
        self._lock = threading.Lock()

    def take(self, address: str) -> int:
        with self._lock:
            taken = self._outstanding.setdefault(address, set())
            nonce = int(self._w3.eth.get_transaction_count(address, "pending"))
            while nonce in taken or (taken and nonce < max(taken)):
                nonce += 1
            taken.add(nonce)
            return nonce

    def release(self, address: str, nonce: int) -> None:
        """The transaction with ``nonce`` was sent (the node's pending count now covers it) or
        will not be."""
        with self._lock:
            self._outstanding.get(address, set()).discard(nonce)


class ChainUnreachable(ChainError):
    """The chain's RPC endpoint did not answer (connection refused, reset or timed out)."""

    code = "chain_unreachable"


class _TranslatingProvider(Web3.HTTPProvider):
    """web3's HTTP provider (with its retries), raising :class:`ChainUnreachable` instead of
    ``requests``' exceptions once the retries are spent."""

    def _make_request(self, method: Any, request_data: bytes) -> bytes:
        try:
            return super()._make_request(method, request_data)
        except (requests.RequestException, OSError) as exc:
            raise ChainUnreachable(
                f"chain unreachable at {self.endpoint_uri} ({type(exc).__name__})",
                rpc_url=str(self.endpoint_uri),
            ) from None


class ChainClient:
    """One connection to an EVM chain, with local signing and revert decoding."""

    def __init__(
        self,
        rpc_url: str,
        *,
        expected_chain_id: int | None = None,
        confirmations: int = 1,
        tx_timeout: float = 120.0,
        error_abis: list[dict[str, Any]] | None = None,
        request_timeout: float = 30.0,
    ):
        self.rpc_url = rpc_url
        self.w3 = Web3(_TranslatingProvider(rpc_url, request_kwargs={"timeout": request_timeout}))
        self.confirmations = confirmations
        self.tx_timeout = tx_timeout
        self.errors = ErrorDecoder(error_abis or [])
        self.nonces = NonceManager(self.w3)
        try:
            self.chain_id = int(self.w3.eth.chain_id)
        except Exception as exc:  # requests/aiohttp/OSError variants: all mean "not reachable"
            raise ChainError(
                f"cannot reach the chain RPC at {rpc_url} ({type(exc).__name__}); start a devnet with "
                "`loraledger devnet up` or point LORALEDGER_RPC_URL / --rpc-url at a running node",
                rpc_url=rpc_url,
            ) from None
        if expected_chain_id is not None and expected_chain_id != self.chain_id:
            raise ChainError(
                f"RPC {rpc_url} serves chain {self.chain_id}, but chain {expected_chain_id} is configured",
                rpc_url=rpc_url,
            )

    # ---- contracts -------------------------------------------------------------------
    def contract(self, address: str, abi: list[dict[str, Any]]) -> Contract:
        return self.w3.eth.contract(address=to_checksum_address(address), abi=abi)

    def has_code(self, address: str) -> bool:
        with self.translated(f"read the code at {address}"):
            return len(self.w3.eth.get_code(to_checksum_address(address))) > 0

    def block_number(self) -> int:
        with self.translated("read the block number"):
            return int(self.w3.eth.block_number)

    def block_hash(self, number: int) -> str | None:
        """The hash of canonical block ``number`` (0x hex), None when the chain is not that long."""
        with self.translated(f"read block {number}"):
            try:
                block = self.w3.eth.get_block(number)
            except (Web3RPCError, ValueError, LookupError):
                return None
        return None if block is None else "0x" + bytes(block["hash"]).hex()

    @contextmanager
    def translated(self, what: str) -> Iterator[None]:
        """Turn any web3 failure inside the block into a :class:`ChainError` naming ``what``
        (a revert into :class:`TransactionReverted`, decoded); loraledger's own errors pass."""
        try:
            yield
        except ChainError:
            raise
        except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
            raise self._reverted(what, exc.data) from None
        except Web3RPCError as exc:
            raise ChainError(f"{what}: {_rpc_message(exc)}") from None
        except (Web3Exception, requests.RequestException, OSError) as exc:
            raise ChainError(f"{what}: {type(exc).__name__}: {exc}") from None

    # ---- transactions ----------------------------------------------------------------
    def deploy(self, account: LocalAccount, artifact: Artifact, *args: Any) -> tuple[str, dict[str, Any]]:
        """Deploy ``artifact`` with constructor ``args``; returns (address, receipt)."""
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.transact(account, factory.constructor(*args), what=f"deploy {artifact.name}")
        return to_checksum_address(receipt["contractAddress"]), receipt

    def transact(self, account: LocalAccount, call: Any, *, what: str, value: int = 0) -> dict[str, Any]:
        """Sign and send ``call`` (a bound contract function or constructor) from ``account``.

        Gas is estimated first, so a call that would revert fails here with its decoded
        custom error and nothing is broadcast. Returns the receipt once it has
        ``confirmations`` blocks on top.
        """
        tx_params: dict[str, Any] = {"from": account.address, "value": value, "chainId": self.chain_id}
        tx_params["gas"] = self._gas(call, tx_params, what=what)
        for attempt in range(2):
            tx_params["nonce"] = self.nonces.take(account.address)
            try:
                tx = call.build_transaction(tx_params)
                signed = account.sign_transaction(tx)
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                break
            except Web3RPCError as exc:
                message = _rpc_message(exc)
                if "nonce" in message.lower() and attempt == 0:
                    continue  # another sender used our nonce: take a fresh one and retry once
                raise ChainError(f"{what}: transaction rejected by the node: {message}") from None
            finally:
                self.nonces.release(account.address, tx_params["nonce"])
        receipt = self.wait(tx_hash, what=what)
        if receipt["status"] != 1:
            raise self._replay_revert(what, tx, receipt)
        return receipt

    def _gas(self, call: Any, tx_params: dict[str, Any], *, what: str) -> int:
        """Estimated gas plus headroom; a call that would revert fails here, decoded, with nothing sent."""
        try:
            gas = call.estimate_gas(tx_params)
        except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
            raise self._reverted(what, exc.data) from None
        except Web3RPCError as exc:
            raise ChainError(f"{what}: the node refused the call: {_rpc_message(exc)}") from None
        return gas + gas // 5 + 10_000  # headroom: state may move between estimate and mining

    def wait(self, tx_hash: bytes, *, what: str) -> dict[str, Any]:
        """Wait for the receipt and ``confirmations`` blocks (the receipt's block counts as one)."""
        try:
            receipt = dict(self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.tx_timeout))
        except ChainError:
            raise
        except Exception as exc:
            raise ChainError(
                f"{what}: no receipt for 0x{bytes(tx_hash).hex()} after {self.tx_timeout:.0f}s ({type(exc).__name__})",
                tx_hash="0x" + bytes(tx_hash).hex(),
            ) from None
        deadline = time.monotonic() + self.tx_timeout
        while self.block_number() - receipt["blockNumber"] + 1 < self.confirmations:
            if time.monotonic() > deadline:
                raise ChainError(f"{what}: waited {self.tx_timeout:.0f}s for {self.confirmations} confirmations")
            time.sleep(0.2)
        return receipt

    # ---- durable transactions (sign, store, broadcast separately) -----------------------
    def sign(self, account: LocalAccount, call: Any, *, what: str, nonce: int | None = None) -> SignedTx:
        """Estimate and sign ``call`` without sending it, so that the caller can store the
        raw transaction before it is broadcast. The nonce is the chain's pending count
        unless given."""
        tx_params: dict[str, Any] = {"from": account.address, "chainId": self.chain_id}
        tx_params["gas"] = self._gas(call, tx_params, what=what)
        tx_params["nonce"] = self.nonce(account.address, "pending") if nonce is None else nonce
        signed = account.sign_transaction(call.build_transaction(tx_params))
        return SignedTx("0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex(), tx_params["nonce"])

    def broadcast(self, raw: str, *, what: str) -> None:
        """Send a signed transaction; one the node already has is not an error."""
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Web3RPCError as exc:
            message = _rpc_message(exc)
            if "already" in message.lower() and "known" in message.lower():
                return
            raise ChainError(f"{what}: transaction rejected by the node: {message}") from None

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt of a mined transaction, or None while it is pending or unknown."""
        with self.translated(f"read the receipt of {tx_hash}"):
            try:
                return dict(self.w3.eth.get_transaction_receipt(tx_hash))
            except TransactionNotFound:
                return None

    def is_pending(self, tx_hash: str) -> bool:
        """Whether the node knows the transaction (in its pool or mined)."""
        with self.translated(f"look up transaction {tx_hash}"):
            try:
                self.w3.eth.get_transaction(tx_hash)
                return True
            except TransactionNotFound:
                return False

    def confirmations_of(self, receipt: dict[str, Any]) -> int:
        """Blocks on top of (and including) the receipt's block, 0 if a reorg dropped that block."""
        with self.translated(f"read block {receipt['blockNumber']}"):
            try:
                block = self.w3.eth.get_block(receipt["blockNumber"])
            except (Web3RPCError, ValueError, LookupError):  # block gone: the chain is shorter now
                return 0
        if block is None or bytes(block["hash"]) != bytes(receipt["blockHash"]):
            return 0
        return self.block_number() - receipt["blockNumber"] + 1

    def nonce(self, address: str, block: str = "latest") -> int:
        with self.translated(f"read the nonce of {address}"):
            return int(self.w3.eth.get_transaction_count(address, block))

    def call_view(self, fn: ContractFunction, *, what: str, block: int | str = "latest") -> Any:
        """Call a view function at ``block``; any failure is a ``ChainError`` (a revert, decoded,
        a ``TransactionReverted``)."""
        with self.translated(what):
            return fn.call(block_identifier=block)

    # ---- errors ----------------------------------------------------------------------
    def _reverted(self, what: str, data: Any, tx_hash: str | None = None) -> TransactionReverted:
        if isinstance(data, dict):  # some nodes wrap the data
            data = data.get("data")
        name, args = self.errors.decode(data if isinstance(data, (str, bytes)) else None)
        return TransactionReverted(f"{what} {describe_revert(name, args)}", error_name=name, error_args=args, tx_hash=tx_hash)

    def _replay_revert(self, what: str, tx: dict[str, Any], receipt: dict[str, Any]) -> TransactionReverted:
        """A mined transaction failed: replay it at its block to recover the revert data."""
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        call = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        call.setdefault("from", receipt["from"])
        try:
            self.w3.eth.call(call, block_identifier=receipt["blockNumber"])
        except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
            return self._reverted(what, exc.data, tx_hash)
        except Exception:  # noqa: BLE001 - the replay is best effort; the failure is certain
            pass
        return TransactionReverted(f"{what} reverted on chain (tx {tx_hash}, out of gas?)", tx_hash=tx_hash)


def _rpc_message(exc: Web3RPCError) -> str:
    rpc = getattr(exc, "rpc_response", None) or {}
    error = rpc.get("error") if isinstance(rpc, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(exc)
