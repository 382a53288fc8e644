"""Shared fixtures: real anvil processes, compiled contracts, deployments.

Nothing here is mocked: each ``anvil`` fixture is a real anvil on a free loopback port,
contracts are compiled by the project's solc and deployed with real transactions.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from loraledger.chain.devnet import dev_accounts
from loraledger.config import find_project_root

ROOT = find_project_root(Path(__file__).parent)
BIN = ROOT / ".foundry" / "bin"  # native anvil/forge/cast linked by scripts/setup.sh


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tool(name: str) -> str:
    from loraledger.chain.toolchain import foundry_binary
    from loraledger.errors import ConfigError

    try:
        return str(foundry_binary(name, ROOT))
    except ConfigError as exc:
        pytest.fail(str(exc))


@dataclass
class Anvil:
    """A running anvil: its URL and process."""

    url: str
    port: int
    process: subprocess.Popen


def start_anvil(*extra: str, port: int | None = None) -> Anvil:
    """anvil on ``port`` (a free one by default) with ``extra`` arguments, once it accepts connections."""
    port = port or free_port()
    process = subprocess.Popen(
        [tool("anvil"), "--port", str(port), "--silent", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return Anvil(url, port, process)
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"anvil exited with {process.returncode}")
            time.sleep(0.05)
    process.kill()
    pytest.fail("anvil did not start")


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    """A fresh anvil per test module."""
    node = start_anvil()
    yield node
    node.process.terminate()
    node.process.wait(timeout=10)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def artifacts():
    from loraledger.chain.compile import compile_contracts

    return compile_contracts(ROOT, ROOT / "scripts" / "solc")


@pytest.fixture(scope="session")
def accounts():
    """anvil's dev accounts: 0 deploys/operates, the rest are contributors and wallets."""
    return dev_accounts(10)


@pytest.fixture(scope="module")
def deployment(anvil, artifacts, accounts, tmp_path_factory):
    """All contracts deployed on the module's anvil, with the deployments file path."""
    from loraledger.chain.client import ChainClient
    from loraledger.chain.compile import all_abis
    from loraledger.chain.deploy import Deployer

    client = ChainClient(anvil.url, error_abis=all_abis(artifacts))
    path = tmp_path_factory.mktemp("deployments") / f"{client.chain_id}.json"
    deployed = Deployer(client, accounts[0], artifacts, path).run()
    return deployed, path, client


def cli_environment(rpc_url: str, base: Path, *, operator=None, deployments: Path | None = None,
                    **extra: str) -> dict[str, str]:
    """Environment for running the CLI as a subprocess: this test's RPC, data directory
    (``base/data``) and deployments directory, the native Foundry tools on PATH, and none of
    the caller's debug flags, failpoints or keys."""
    inherited = ("LORALEDGER_DEBUG", "LORALEDGER_FAILPOINTS", "LORALEDGER_KEY", "LORALEDGER_OPERATOR_KEY")
    env = {key: value for key, value in os.environ.items() if key not in inherited}
    env.update({
        "LORALEDGER_RPC_URL": rpc_url,
        "LORALEDGER_DATA_DIR": str(base / "data"),
        "LORALEDGER_DEPLOYMENTS_DIR": str(deployments or base / "deployments"),
        "PATH": f"{BIN}:{env.get('PATH', '')}",
        **extra,
    })
    if operator is not None:
        env["LORALEDGER_OPERATOR_KEY"] = "0x" + operator.key.hex()
    return env


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A private PostgreSQL server (admin URL) for the whole session; skipped, with the
    reason, where PostgreSQL cannot run (scripts/test.sh installs it when it can)."""
    from pg import PostgresUnavailable, start_postgres

    try:
        url, stop = start_postgres()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield url
    stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    """A fresh ledger database: an SQLite file, then a PostgreSQL database (the same tests run on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    from pg import create_database

    server = request.getfixturevalue("pg_server")
    return create_database(server, f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def engine(db_url):
    """An engine on :func:`db_url` with every table created."""
    from loraledger.db import make_engine
    from loraledger.node.context import create_tables

    eng = make_engine(db_url)
    create_tables(eng)
    yield eng
    eng.dispose()


def serve(app) -> tuple[str, object, threading.Thread]:
    """Serve ``app`` with uvicorn on a free port in a thread; (url, server, thread) once it listens.
    Stop with ``server.should_exit = True; thread.join()``."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    return f"http://127.0.0.1:{port}", server, thread


def deployed_settings(anvil: Anvil, deployer, artifacts, base: Path, **extra):
    """Settings of a node in ``base`` (data, deployments) on ``anvil``, contracts freshly deployed."""
    from loraledger.chain.deploy import Deployer
    from loraledger.config import load_settings
    from loraledger.node.context import chain_client

    settings = load_settings(rpc_url=anvil.url, data_dir=base / "data", deployments_dir=base / "deployments", **extra)
    client = chain_client(settings)
    Deployer(client, deployer, artifacts, settings.deployment_file(client.chain_id)).run()
    return settings


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition", *,
             interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


@dataclass
class NodeProcess:
    """A ``loraledger node run`` subprocess; ``output()`` is what it printed (after it stopped)."""

    url: str
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text()


@contextmanager
def node_process(env: dict[str, str], port: int, log: Path, *, timeout: float = 60) -> Iterator[NodeProcess]:
    """Run ``loraledger node run --port PORT`` with ``env`` (its output to ``log``), wait until
    ``/v1/health`` answers, and stop it with SIGTERM (then kill) at the end."""
    import httpx

    with open(log, "w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "loraledger", "node", "run", "--port", str(port)], env=env,
                                   stdout=sink, stderr=subprocess.STDOUT)
    node = NodeProcess(f"http://127.0.0.1:{port}", process, log)

    def up() -> bool:
        assert node.alive(), f"the node exited with {process.returncode}:\n{node.output()}"
        try:
            return httpx.get(f"{node.url}/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout, "the node to start")
        yield node
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def make_peft_adapter(base: Path, out: Path, *, seed: int, rank: int = 4, alpha: int = 8, std: float = 0.05,
                      targets: tuple[str, ...] = ("q_proj", "v_proj"), **config) -> Path:
    """A real PEFT LoRA adapter of the model at ``base``, saved at ``out``: seeded, with a random
    non-zero ``lora_B`` (``std``) so that it changes the model's output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)),
                           LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), **config))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=std)
    model.save_pretrained(str(out))
    return out
