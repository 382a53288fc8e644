"""A local anvil chain run as a managed background process.

State lives in one directory: ``anvil.json`` (pid, port, chain id), ``anvil.log`` and
``state.json`` (anvil's dumped chain state, saved every few seconds and on a clean stop,
and loaded again by the next ``up``), so a devnet survives ``down``/``up``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..fsutil import atomic_write_json

#: anvil's default dev accounts come from this public mnemonic: never use them on a real chain.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


@dataclass
class DevnetStatus:
    """Whether the managed devnet runs, and where."""

    running: bool
    pid: int | None = None
    rpc_url: str | None = None
    chain_id: int | None = None
    block: int | None = None
    state_file: str | None = None
    log_file: str | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); check /proc where there is one.
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().split(") ", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True
    return True


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _rpc(url: str, method: str, timeout: float = 2.0) -> object:
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback URL we built
        return json.loads(response.read())["result"]


class Devnet:
    """Start, stop and inspect one anvil process whose files live in ``state_dir``."""

    def __init__(self, state_dir: Path, anvil: Path):
        self.state_dir = state_dir
        self.anvil = anvil
        self.info_file = state_dir / "anvil.json"
        self.log_file = state_dir / "anvil.log"
        self.state_file = state_dir / "state.json"

    def _info(self) -> dict | None:
        try:
            return json.loads(self.info_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def status(self) -> DevnetStatus:
        info = self._info()
        if not info or not _pid_alive(info["pid"]):
            return DevnetStatus(False, state_file=str(self.state_file), log_file=str(self.log_file))
        url = info["rpc_url"]
        try:
            block = int(_rpc(url, "eth_blockNumber"), 16)  # type: ignore[arg-type]
            chain_id = int(_rpc(url, "eth_chainId"), 16)  # type: ignore[arg-type]
        except OSError:
            block, chain_id = None, info.get("chain_id")
        return DevnetStatus(True, info["pid"], url, chain_id, block, str(self.state_file), str(self.log_file))

    def up(self, *, host: str = "127.0.0.1", port: int = 8545, chain_id: int = 31337, block_time: float | None = None,
           timeout: float = 30.0) -> DevnetStatus:
        """Start anvil unless this devnet already runs; wait until its RPC answers."""
        current = self.status()
        if current.running:
            return current
        if port_in_use(host, port):
            raise ConfigError(
                f"port {port} on {host} is already in use by another process; stop it or pick another port with --port"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(self.anvil), "--host", host, "--port", str(port), "--chain-id", str(chain_id),
            "--state", str(self.state_file), "--state-interval", "2", "--mnemonic", DEV_MNEMONIC,
        ]
        if block_time:
            command += ["--block-time", str(block_time)]
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        url = f"http://{host}:{port}"
        atomic_write_json(self.info_file, {"pid": process.pid, "rpc_url": url, "chain_id": chain_id, "port": port})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.info_file.unlink(missing_ok=True)
                tail = self.log_file.read_text(errors="replace").strip().splitlines()[-5:]
                raise ConfigError(f"anvil exited at start (code {process.returncode}): {' | '.join(tail)}")
            try:
                _rpc(url, "eth_chainId", timeout=0.5)
                return self.status()
            except OSError:
                time.sleep(0.1)
        self.down()
        raise ConfigError(f"anvil did not answer on {url} within {timeout:.0f}s; see {self.log_file}")

    def down(self, timeout: float = 15.0) -> bool:
        """Stop anvil (it dumps its state on a clean exit). False if it was not running."""
        info = self._info()
        if not info:
            return False
        pid = info["pid"]
        running = _pid_alive(pid)
        if running:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.info_file.unlink(missing_ok=True)
        return running


def dev_accounts(count: int = 10):
    """anvil's default dev accounts (from ``DEV_MNEMONIC``): public keys for devnets only."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]
