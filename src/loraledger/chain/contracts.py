"""Typed access to the deployed loraledger contracts: post epochs, claim, read state.

ABIs ship with the package (``chain/abi/*.json``, checked against the compiled sources by
the tests), so claiming and verifying need no compiler, only a deployments file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.contract import Contract

from ..errors import ChainError, InputError, NotFoundError
from .client import ChainClient
from .deploy import CONTRACT_NAMES, DeployedContract, Deployment


@cache
def packaged_abi(name: str) -> list[dict[str, Any]]:
    """The ABI of contract ``name`` shipped in ``loraledger/chain/abi``."""
    try:
        return json.loads(resources.files("loraledger.chain").joinpath("abi", f"{name}.json").read_text())
    except FileNotFoundError:
        raise NotFoundError(f"no packaged ABI for {name}; run scripts/export_abis.py") from None


def all_packaged_abis() -> list[dict[str, Any]]:
    return [entry for name in CONTRACT_NAMES for entry in packaged_abi(name)]


@dataclass(frozen=True)
class OnChainEpoch:
    """An epoch as stored by AttributionLedger."""

    epoch: int
    log_size: int
    record_count: int
    posted_at: int
    log_root: str
    rewards_root: str
    epoch_total: int
    data_hash: str
    data_uri: str


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _bytes32(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


class LedgerContracts:
    """The contracts of one deployment, bound to a ``ChainClient``."""

    def __init__(self, client: ChainClient, deployment: Deployment):
        if deployment.chain_id != client.chain_id:
            raise ChainError(
                f"deployment is for chain {deployment.chain_id}, but the RPC serves chain {client.chain_id}"
            )
        self.client = client
        self.deployment = deployment
        self.token = client.contract(deployment.address("OpenToken"), packaged_abi("OpenToken"))
        self.ledger = client.contract(deployment.address("AttributionLedger"), packaged_abi("AttributionLedger"))
        self.distributor = client.contract(deployment.address("RewardDistributor"), packaged_abi("RewardDistributor"))
        for contract in (self.token, self.ledger, self.distributor):
            if not client.has_code(contract.address):
                raise ChainError(
                    f"no contract code at {contract.address} on chain {client.chain_id}: the chain was reset or "
                    "the deployments file is stale; run `loraledger contracts deploy`"
                )

    @classmethod
    def from_ledger_address(cls, client: ChainClient, ledger_address: str) -> LedgerContracts:
        """Bind to a deployment knowing only its AttributionLedger (as epoch files name it):
        the token and distributor are read from the ledger itself."""
        if not client.has_code(ledger_address):
            raise ChainError(f"no contract at {ledger_address} on chain {client.chain_id}")
        ledger = client.contract(ledger_address, packaged_abi("AttributionLedger"))
        try:
            token = client.call_view(ledger.functions.token(), what="read ledger.token")
            distributor = client.call_view(ledger.functions.distributor(), what="read ledger.distributor")
        except ChainError as exc:  # not our contract, or no such function
            raise ChainError(f"{ledger_address} does not answer as an AttributionLedger ({exc.message})") from None
        contracts = {
            "OpenToken": DeployedContract(token, 0, None, None, ""),
            "AttributionLedger": DeployedContract(to_checksum_address(ledger_address), 0, None, None, ""),
            "RewardDistributor": DeployedContract(distributor, 0, None, None, ""),
        }
        deployment = Deployment(client.chain_id, deployer="", operator="", contracts=contracts, complete=True)
        return cls(client, deployment)

    # ---- reads -----------------------------------------------------------------------
    def current_epoch(self) -> int:
        return int(self.client.call_view(self.ledger.functions.currentEpoch(), what="read the current epoch"))

    def epoch(self, number: int) -> OnChainEpoch:
        info = self.client.call_view(self.ledger.functions.getEpoch(number), what=f"read epoch {number}")
        log_size, record_count, posted_at, log_root, rewards_root, epoch_total, data_hash, data_uri = info
        return OnChainEpoch(
            number, log_size, record_count, posted_at, _hex(log_root), _hex(rewards_root), epoch_total, _hex(data_hash), data_uri
        )

    def fee_split(self, block: int | str = "latest") -> tuple[int, int, int]:
        return tuple(self.client.call_view(self.ledger.functions.feeSplit(), what="read the fee split", block=block))  # type: ignore[return-value]

    def epoch_post_blocks(self) -> dict[int, int]:
        """Block number of each ``EpochPosted`` event: epoch → block."""
        with self.client.translated("read EpochPosted events"):
            logs = self.ledger.events.EpochPosted().get_logs(from_block=self.deployment.deploy_block)
        return {int(log["args"]["epoch"]): int(log["blockNumber"]) for log in logs}

    def total_funded(self) -> int:
        return int(self.client.call_view(self.ledger.functions.totalFunded(), what="read totalFunded"))

    def merkle_root(self) -> str:
        return _hex(self.client.call_view(self.distributor.functions.merkleRoot(), what="read the reward root"))

    def distributor_epoch(self) -> int:
        return int(self.client.call_view(self.distributor.functions.epoch(), what="read the distributor's epoch"))

    def claimed(self, account: str) -> int:
        return int(self.client.call_view(self.distributor.functions.claimed(to_checksum_address(account)), what="read claimed"))

    def balance_of(self, account: str) -> int:
        return int(self.client.call_view(self.token.functions.balanceOf(to_checksum_address(account)), what="read a balance"))

    # ---- writes ----------------------------------------------------------------------
    def ensure_allowance(self, owner: LocalAccount, amount: int, *, what: str) -> None:
        """Make sure the ledger may pull ``amount`` OPEN from ``owner`` (approve exactly that if not)."""
        if amount == 0:
            return
        balance = self.balance_of(owner.address)
        if balance < amount:
            raise ChainError(
                f"operator {owner.address} holds {balance} OPEN wei but {what} needs {amount}; fund the operator first"
            )
        spender = self.ledger.address
        allowance = self.client.call_view(self.token.functions.allowance(owner.address, spender), what="read the allowance")
        if int(allowance) < amount:
            self.client.transact(owner, self.token.functions.approve(spender, amount), what=f"approve {amount} for {what}")

    def post_epoch_call(
        self, epoch: int, log_size: int, log_root: str, rewards_root: str, total: int, record_count: int,
        data_uri: str, data_hash: str,
    ) -> Any:
        """The bound ``postEpoch`` call (to sign, or to send with :meth:`post_epoch`)."""
        return self.ledger.functions.postEpoch(
            epoch, log_size, _bytes32(log_root), _bytes32(rewards_root), total, record_count, data_uri, _bytes32(data_hash)
        )

    def post_epoch(self, operator: LocalAccount, epoch_file: dict[str, Any], data_uri: str, data_hash: str) -> dict[str, Any]:
        """Fund and post one epoch file in one go (approve if needed, then post); returns the receipt."""
        epoch = int(epoch_file["epoch"])
        total = int(epoch_file["rewards"]["total"])
        # Inline records, or a chunked epoch's manifest (epochs.file) listing each chunk's count.
        count = len(epoch_file["records"]) if "records" in epoch_file else sum(c["records"] for c in epoch_file["chunks"])
        self.ensure_allowance(operator, total, what=f"epoch {epoch}")
        call = self.post_epoch_call(epoch, int(epoch_file["log"]["size"]), epoch_file["log"]["root"],
                                    epoch_file["rewards"]["root"], total, count, data_uri, data_hash)
        return self.client.transact(operator, call, what=f"post epoch {epoch}")

    def claim(self, sender: LocalAccount, account: str, cumulative_amount: int, proof: list[str]) -> dict[str, Any]:
        """Claim for ``account`` (tokens go to ``account``, whoever sends). Returns the receipt."""
        account = to_checksum_address(account)
        already = self.claimed(account)
        if cumulative_amount <= already:
            raise InputError(
                f"nothing to claim for {account}: {already} of its cumulative {cumulative_amount} OPEN wei is already claimed"
            )
        try:
            proof_bytes = [bytes.fromhex(p.removeprefix("0x")) for p in proof]
        except ValueError:
            raise InputError("proof must be a list of 0x-prefixed 32-byte hex strings") from None
        return self.client.transact(
            sender,
            self.distributor.functions.claim(account, cumulative_amount, proof_bytes),
            what=f"claim for {account}",
        )


class _Deployed:
    """One deployed contract, named by :attr:`NAME` (its packaged ABI); refuses an address
    without code with a hint to deploy."""

    NAME: str

    def __init__(self, client: ChainClient, address: str):
        if not client.has_code(address):
            raise ChainError(f"no {self.NAME} at {address} on chain {client.chain_id}; run `loraledger contracts deploy`")
        self.client = client
        self.contract = client.contract(address, packaged_abi(self.NAME))
        self.address = self.contract.address


class DatanetRegistryContract(_Deployed):
    """DatanetRegistry: datanet ids and owners, snapshot roots, on-chain row proofs."""

    NAME = "DatanetRegistry"

    def create_datanet(self, sender: LocalAccount, owner: str, metadata_uri: str) -> int:
        """Create a datanet for ``owner`` (the sender is the owner or holds OPERATOR_ROLE); returns its id."""
        receipt = self.client.transact(
            sender, self.contract.functions.createDatanet(to_checksum_address(owner), metadata_uri), what="create datanet"
        )
        events = self.contract.events.DatanetCreated().process_receipt(receipt)
        return int(events[0]["args"]["datanetId"])

    def publish_snapshot(self, sender: LocalAccount, datanet_id: int, version: int, root: str, row_count: int) -> dict[str, Any]:
        return self.client.transact(
            sender,
            self.contract.functions.publishSnapshot(datanet_id, version, _bytes32(root), row_count),
            what=f"publish snapshot {version} of datanet {datanet_id}",
        )

    def snapshot_root(self, datanet_id: int, version: int) -> str:
        return _hex(self.client.call_view(self.contract.functions.snapshotRoot(datanet_id, version), what="read snapshot root"))

    def latest_version(self, datanet_id: int) -> int:
        owner, latest, root, uri = self.client.call_view(self.contract.functions.getDatanet(datanet_id), what="read datanet")
        return int(latest)

    def verify_row(self, datanet_id: int, version: int, row_hash: str, contributor: str, proof: list[str]) -> bool:
        return bool(self.client.call_view(
            self.contract.functions.verifyRow(datanet_id, version, _bytes32(row_hash), to_checksum_address(contributor),
                                              [_bytes32(p) for p in proof]),
            what="verify row on chain",
        ))


@dataclass(frozen=True)
class OnChainAdapter:
    """The latest registered version of an adapter (``AdapterRegistry.getAdapter``)."""

    adapter_id: str
    developer: str
    version: int
    adapter_hash: str
    base_model_hash: str
    provenance_hash: str
    metadata_uri: str


class AdapterRegistryContract(_Deployed):
    """AdapterRegistry: adapter ids, developers and the hashes of each registered version."""

    NAME = "AdapterRegistry"

    def register(self, sender: LocalAccount, adapter_id: str, developer: str, adapter_hash: str, base_model_hash: str,
                 provenance_hash: str, metadata_uri: str) -> tuple[int, dict[str, Any]]:
        """Register the next version of ``adapter_id``; returns (version, receipt)."""
        receipt = self.client.transact(
            sender,
            self.contract.functions.registerAdapter(
                _bytes32(adapter_id), to_checksum_address(developer), _bytes32(adapter_hash),
                _bytes32(base_model_hash), _bytes32(provenance_hash), metadata_uri,
            ),
            what=f"register adapter {adapter_hash}",
        )
        events = self.contract.events.AdapterRegistered().process_receipt(receipt)
        return int(events[0]["args"]["version"]), receipt

    def adapter_of(self, adapter_hash: str) -> tuple[str, int]:
        """(adapter id, version) registered with ``adapter_hash``, or (0x00…, 0) if none."""
        adapter_id, version = self.client.call_view(
            self.contract.functions.adapterOf(_bytes32(adapter_hash)), what="read adapter by hash")
        return _hex(adapter_id), int(version)

    def get_adapter(self, adapter_id: str) -> OnChainAdapter:
        info = self.client.call_view(self.contract.functions.getAdapter(_bytes32(adapter_id)), what="read adapter")
        developer, version, adapter_hash, base_hash, provenance_hash, uri = info
        return OnChainAdapter(adapter_id.lower(), to_checksum_address(developer), int(version), _hex(adapter_hash),
                              _hex(base_hash), _hex(provenance_hash), uri)


@dataclass(frozen=True)
class VaultDeposit:
    """One ``Deposited`` event of the ``PaymentVault``."""

    payer: str
    sender: str
    amount: int
    payer_total: int
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str


class PaymentVaultContract(_Deployed):
    """The ``PaymentVault``: payers' deposits in, each epoch's takings out (once per epoch)."""

    NAME = "PaymentVault"

    def __init__(self, client: ChainClient, address: str, token: Contract):
        super().__init__(client, address)
        self.token = token

    # ---- reads -----------------------------------------------------------------------
    def deposited(self, payer: str) -> int:
        return int(self.client.call_view(self.contract.functions.deposited(to_checksum_address(payer)),
                                         what="read a payer's deposits"))

    def released_for(self, epoch: int) -> int:
        return int(self.client.call_view(self.contract.functions.releasedFor(epoch),
                                         what=f"read the vault's release for epoch {epoch}"))

    def available(self) -> int:
        return int(self.client.call_view(self.contract.functions.available(), what="read the vault's takings"))

    def deposits_between(self, from_block: int, to_block: int) -> list[VaultDeposit]:
        """Every ``Deposited`` event in blocks ``from_block..to_block`` (inclusive), in chain order."""
        with self.client.translated(f"read Deposited events of blocks {from_block}..{to_block}"):
            logs = self.contract.events.Deposited().get_logs(from_block=from_block, to_block=to_block)
        found = [VaultDeposit(payer=to_checksum_address(log["args"]["payer"]),
                              sender=to_checksum_address(log["args"]["from"]), amount=int(log["args"]["amount"]),
                              payer_total=int(log["args"]["payerTotal"]), tx_hash="0x" + bytes(log["transactionHash"]).hex(),
                              log_index=int(log["logIndex"]), block_number=int(log["blockNumber"]),
                              block_hash="0x" + bytes(log["blockHash"]).hex()) for log in logs]
        return sorted(found, key=lambda d: (d.block_number, d.log_index))

    # ---- writes ----------------------------------------------------------------------
    def deposit(self, sender: LocalAccount, amount: int, *, payer: str | None = None) -> dict[str, Any]:
        """Approve (if needed) and deposit ``amount`` for ``payer`` (default: the sender); returns the receipt."""
        if amount <= 0:
            raise InputError("the amount to deposit must be positive")
        balance = int(self.client.call_view(self.token.functions.balanceOf(sender.address), what="read a balance"))
        if balance < amount:
            raise InputError(f"{sender.address} holds {balance} OPEN wei, less than the {amount} to deposit")
        allowance = int(self.client.call_view(self.token.functions.allowance(sender.address, self.address),
                                              what="read the allowance"))
        if allowance < amount:
            self.client.transact(sender, self.token.functions.approve(self.address, amount),
                                 what=f"approve {amount} for the vault")
        if payer is None or to_checksum_address(payer) == sender.address:
            call = self.contract.functions.deposit(amount)
        else:
            call = self.contract.functions.depositFor(to_checksum_address(payer), amount)
        return self.client.transact(sender, call, what=f"deposit {amount}")

    def deposit_with_permit(self, sender: LocalAccount, amount: int, *, deadline: int) -> dict[str, Any]:
        """Deposit ``amount`` in one transaction with an EIP-2612 permit signed by ``sender``."""
        if amount <= 0:
            raise InputError("the amount to deposit must be positive")
        from eth_account.messages import encode_typed_data

        nonce = int(self.client.call_view(self.token.functions.nonces(sender.address), what="read the permit nonce"))
        name = self.client.call_view(self.token.functions.name(), what="read the token's name")
        typed = {
            "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                       {"name": "chainId", "type": "uint256"},
                                       {"name": "verifyingContract", "type": "address"}],
                      "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                                 {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                                 {"name": "deadline", "type": "uint256"}]},
            "primaryType": "Permit",
            "domain": {"name": name, "version": "1", "chainId": self.client.chain_id,
                       "verifyingContract": self.token.address},
            "message": {"owner": sender.address, "spender": self.address, "value": amount, "nonce": nonce,
                        "deadline": deadline},
        }
        signed = sender.sign_message(encode_typed_data(full_message=typed))
        call = self.contract.functions.depositWithPermit(amount, deadline, signed.v, signed.r.to_bytes(32, "big"),
                                                         signed.s.to_bytes(32, "big"))
        return self.client.transact(sender, call, what=f"deposit {amount} with a permit")

    def release(self, operator: LocalAccount, epoch: int, to: str, amount: int) -> dict[str, Any]:
        """Release epoch ``epoch``'s takings to ``to`` (the vault refuses a second release of an epoch)."""
        return self.client.transact(operator, self.contract.functions.release(epoch, to_checksum_address(to), amount),
                                    what=f"release epoch {epoch}'s takings")
