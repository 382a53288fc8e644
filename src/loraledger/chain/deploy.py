"""Deploy and wire the contracts; read and write ``deployments/<chainId>.json``.

Deploying is idempotent and resumable: the deployments file is rewritten (atomically)
after every step, each step first checks whether the chain already has what it would
do, and a second run reuses contracts whose on-chain code matches the recorded build.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import is_address, keccak, to_checksum_address

from ..errors import ConfigError, InputError, NotFoundError
from ..fsutil import atomic_write_json
from .client import ChainClient
from .compile import Artifact

FORMAT = "loraledger-deployment-v1"
CONTRACT_NAMES = ("OpenToken", "AttributionLedger", "RewardDistributor", "DatanetRegistry", "AdapterRegistry",
                  "PaymentVault")
OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
#: Contracts whose OPERATOR_ROLE the node's operator holds.
OPERATED = ("AttributionLedger", "DatanetRegistry", "AdapterRegistry", "PaymentVault")
DEVNET_SUPPLY = 1_000_000_000 * 10**18


@dataclass
class DeployedContract:
    """One deployed contract as recorded in the deployments file."""

    address: str
    block: int
    tx_hash: str | None
    build_hash: str | None  # sha256 of the creation code; None for an external contract
    abi_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "block": self.block,
            "txHash": self.tx_hash,
            "buildHash": self.build_hash,
            "abiHash": self.abi_hash,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> DeployedContract:
        return cls(raw["address"], raw["block"], raw.get("txHash"), raw.get("buildHash"), raw["abiHash"])


@dataclass
class Deployment:
    """The contracts of loraledger on one chain."""

    chain_id: int
    deployer: str
    operator: str
    contracts: dict[str, DeployedContract] = field(default_factory=dict)
    complete: bool = False

    @property
    def deploy_block(self) -> int:
        return min((c.block for c in self.contracts.values()), default=0)

    def address(self, name: str) -> str:
        try:
            return self.contracts[name].address
        except KeyError:
            raise NotFoundError(f"{name} is not in the deployment for chain {self.chain_id}") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "chainId": self.chain_id,
            "complete": self.complete,
            "deployer": self.deployer,
            "operator": self.operator,
            "deployBlock": self.deploy_block,
            "contracts": {name: c.to_json() for name, c in self.contracts.items()},
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Deployment:
        if raw.get("format") != FORMAT:
            raise InputError(f"not a loraledger deployments file (format {raw.get('format')!r}, expected {FORMAT})")
        return cls(
            chain_id=int(raw["chainId"]),
            deployer=raw["deployer"],
            operator=raw["operator"],
            contracts={n: DeployedContract.from_json(c) for n, c in raw["contracts"].items()},
            complete=bool(raw.get("complete")),
        )


def abi_hash(abi: list[dict[str, Any]]) -> str:
    return "0x" + hashlib.sha256(json.dumps(abi, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def load_deployment(path: Path) -> Deployment:
    """Read a deployments file; a missing or broken one is a clear error."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFoundError(
            f"no deployments file at {path}: deploy the contracts first with `loraledger contracts deploy`"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"deployments file {path} is unreadable ({type(exc).__name__}); redeploy or restore it") from None
    try:
        deployment = Deployment.from_json(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"deployments file {path} is malformed ({exc})") from None
    if not deployment.complete:
        raise ConfigError(f"deployment in {path} is incomplete: run `loraledger contracts deploy` again to finish it")
    return deployment


class Deployer:
    """Deploys the five contracts in order and wires them, resuming from a partial file."""

    def __init__(
        self,
        client: ChainClient,
        deployer: LocalAccount,
        artifacts: dict[str, Artifact],
        path: Path,
        *,
        operator: str | None = None,
        token: str | None = None,
        fee_split_bps: tuple[int, int, int] = (7_000, 2_000, 1_000),
        initial_supply: int = DEVNET_SUPPLY,
        redeploy: bool = False,
    ):
        if operator is not None and not is_address(operator):
            raise InputError(f"operator {operator!r} is not an address")
        if token is not None and not is_address(token):
            raise InputError(f"token {token!r} is not an address")
        self.client = client
        self.account = deployer
        self.artifacts = artifacts
        self.path = path
        self.operator = to_checksum_address(operator or deployer.address)
        self.token = to_checksum_address(token) if token else None
        self.fee_split_bps = fee_split_bps
        self.initial_supply = initial_supply
        self.redeploy = redeploy

    # ---- plan ------------------------------------------------------------------------
    def _start(self) -> Deployment:
        """The deployment to resume: the recorded one if the chain still has it, else a new one."""
        fresh = Deployment(self.client.chain_id, self.account.address, self.operator)
        if self.redeploy or not self.path.exists():
            return fresh
        try:
            recorded = Deployment.from_json(json.loads(self.path.read_text()))
        except (OSError, ValueError, KeyError, TypeError, InputError):
            raise ConfigError(
                f"deployments file {self.path} is unreadable; move it away or pass --redeploy"
            ) from None
        if recorded.chain_id != self.client.chain_id:
            raise ConfigError(f"{self.path} is for chain {recorded.chain_id}, but the RPC serves chain {self.client.chain_id}")
        on_chain = {n: self.client.has_code(c.address) for n, c in recorded.contracts.items()}
        if recorded.contracts and not any(on_chain.values()):
            return fresh  # the chain was reset (a new devnet): nothing to reuse
        for name, contract in recorded.contracts.items():
            if not on_chain[name]:
                raise ConfigError(
                    f"{name} at {contract.address} has no code on chain {recorded.chain_id} but other contracts do; "
                    "pass --redeploy to start over"
                )
            artifact = self.artifacts.get(name)
            if contract.build_hash is not None and artifact is not None and artifact.code_hash != contract.build_hash:
                raise ConfigError(
                    f"{name} on chain {recorded.chain_id} was built from other sources than the current contracts; "
                    "pass --redeploy to deploy the current build"
                )
        recorded.operator = recorded.operator if recorded.complete else self.operator
        return recorded

    def _save(self, deployment: Deployment) -> None:
        atomic_write_json(self.path, deployment.to_json())

    def _record(self, deployment: Deployment, name: str, address: str, receipt: dict[str, Any] | None) -> None:
        artifact = self.artifacts.get(name)
        deployment.contracts[name] = DeployedContract(
            address=address,
            block=int(receipt["blockNumber"]) if receipt else self.client.block_number(),
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex() if receipt else None,
            build_hash=artifact.code_hash if (artifact and receipt) else None,
            abi_hash=abi_hash(artifact.abi) if artifact else "",
        )
        self._save(deployment)

    def _ensure(self, deployment: Deployment, name: str, *args: Any) -> str:
        if name in deployment.contracts:
            return deployment.contracts[name].address
        address, receipt = self.client.deploy(self.account, self.artifacts[name], *args)
        self._record(deployment, name, address, receipt)
        return address

    # ---- run -------------------------------------------------------------------------
    def run(self) -> Deployment:
        deployment = self._start()
        if deployment.complete and all(name in deployment.contracts for name in CONTRACT_NAMES):
            self._check_wiring(deployment)
            return deployment
        # A deployment made before a contract was added gets it now; the others are kept.
        if self.token and "OpenToken" not in deployment.contracts:
            if not self.client.has_code(self.token):
                raise InputError(f"token {self.token} has no code on chain {self.client.chain_id}")
            self._record(deployment, "OpenToken", self.token, None)
        token = self._ensure(deployment, "OpenToken", self.account.address, self.initial_supply)
        ledger = self._ensure(deployment, "AttributionLedger", self.account.address, token, *self.fee_split_bps)
        distributor = self._ensure(deployment, "RewardDistributor", token, ledger)
        self._ensure(deployment, "DatanetRegistry", self.account.address)
        self._ensure(deployment, "AdapterRegistry", self.account.address)
        self._ensure(deployment, "PaymentVault", self.account.address, token)
        self._wire(deployment, ledger, distributor)
        deployment.complete = True
        self._save(deployment)
        return deployment

    def _wire(self, deployment: Deployment, ledger: str, distributor: str) -> None:
        ledger_contract = self.client.contract(ledger, self.artifacts["AttributionLedger"].abi)
        current = self.client.call_view(ledger_contract.functions.distributor(), what="read ledger.distributor")
        if int(current, 16) == 0:
            self.client.transact(self.account, ledger_contract.functions.setDistributor(distributor), what="set distributor")
        elif to_checksum_address(current) != distributor:
            raise ConfigError(f"AttributionLedger {ledger} is wired to distributor {current}, not {distributor}")
        for name in OPERATED:
            contract = self.client.contract(deployment.address(name), self.artifacts[name].abi)
            has_role = self.client.call_view(contract.functions.hasRole(OPERATOR_ROLE, deployment.operator),
                                             what=f"read OPERATOR_ROLE on {name}")
            if not has_role:
                self.client.transact(
                    self.account,
                    contract.functions.grantRole(OPERATOR_ROLE, deployment.operator),
                    what=f"grant OPERATOR_ROLE on {name}",
                )

    def _check_wiring(self, deployment: Deployment) -> None:
        """A complete deployment must still be wired as recorded (no silent drift)."""
        ledger = self.client.contract(deployment.address("AttributionLedger"), self.artifacts["AttributionLedger"].abi)
        wired = to_checksum_address(self.client.call_view(ledger.functions.distributor(), what="read ledger.distributor"))
        if wired != deployment.address("RewardDistributor"):
            raise ConfigError(f"AttributionLedger is wired to {wired}, not the recorded distributor; pass --redeploy")
