"""`loraledger devnet up|down|status`: a managed anvil with persisted state."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from conftest import free_port


def cli(data_dir, *args):
    env = dict(os.environ, LORALEDGER_DATA_DIR=str(data_dir))
    env.pop("LORALEDGER_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "loraledger", "devnet", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def rpc(url, method, params=()):
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())["result"]


def test_up_status_down_keeps_state(tmp_path):
    port = free_port()
    up = cli(tmp_path, "up", "--port", str(port))
    try:
        assert up.returncode == 0, up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout
        again = cli(tmp_path, "up", "--port", str(port))  # idempotent: already running
        assert again.returncode == 0 and "devnet running" in again.stdout
        status = json.loads(cli(tmp_path, "status", "--json").stdout)
        assert status["running"] and status["chain_id"] == 31337
        url = status["rpc_url"]
        rpc(url, "anvil_mine", ["0x5"])
        assert int(rpc(url, "eth_blockNumber"), 16) == 5
    finally:
        down = cli(tmp_path, "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert cli(tmp_path, "status").returncode == 1
    assert (tmp_path / "devnet" / "state.json").is_file()

    port = free_port()
    assert cli(tmp_path, "up", "--port", str(port)).returncode == 0
    try:
        assert int(rpc(f"http://127.0.0.1:{port}", "eth_blockNumber"), 16) == 5  # state survived
    finally:
        cli(tmp_path, "down")


def test_port_taken_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli(tmp_path, "up", "--port", str(port))
    assert result.returncode == 4
    assert "already in use" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "devnet" / "anvil.json").exists()


def test_down_when_not_running(tmp_path):
    result = cli(tmp_path, "down")
    assert result.returncode == 0 and "was not running" in result.stdout
