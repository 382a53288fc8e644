"""The project's solc: solc-js behind a solc-compatible CLI, and a native solc wins when present."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from loraledger.chain.compile import compile_contracts, compiler_settings


def solc(project_root, *args, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(project_root / "scripts" / "solc"), *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=300)


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LORALEDGER_SOLC"}
    env.update(extra)
    return env


def test_version_answers_like_solc(project_root):
    out = solc(project_root, "--version", env=clean_env()).stdout
    assert out.startswith("solc, the solidity compiler commandline interface")
    assert "Version: 0.8.30+commit" in out


def test_standard_json_large_output_is_complete(project_root):
    """Every contract's ABI and bytecode (hundreds of kB) comes back as complete JSON."""
    settings = compiler_settings(project_root)
    settings["viaIR"] = False  # this test is about the pipe, not the optimizer: keep it quick
    settings["outputSelection"] = {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object",
                                               "evm.methodIdentifiers", "storageLayout"]}}
    sources = {p.relative_to(project_root).as_posix(): {"content": p.read_text()}
               for p in (project_root / "contracts" / "src").glob("*.sol")}
    result = solc(project_root, "--standard-json", "--base-path", str(project_root),
                  stdin=json.dumps({"language": "Solidity", "sources": sources, "settings": settings}), env=clean_env())
    assert len(result.stdout) > 200_000
    output = json.loads(result.stdout)
    assert not [e for e in output.get("errors", []) if e["severity"] == "error"]
    assert "RewardDistributor" in output["contracts"]["contracts/src/RewardDistributor.sol"]


@pytest.fixture
def fake_solc(tmp_path):
    """A stand-in 'native' solc that says who it is."""
    path = tmp_path / "bin" / "solc"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\necho 'solc, the solidity compiler commandline interface'\necho 'Version: 0.8.99+native'\n")
    path.chmod(0o755)
    return path


def test_native_solc_on_path_wins(project_root, fake_solc):
    env = clean_env(PATH=f"{fake_solc.parent}:{os.environ['PATH']}")
    assert "0.8.99+native" in solc(project_root, "--version", env=env).stdout


def test_loraledger_solc_setting_wins(project_root, fake_solc):
    env = clean_env(LORALEDGER_SOLC=str(fake_solc))
    assert "0.8.99+native" in solc(project_root, "--version", env=env).stdout


def test_python_compile_matches_forge_settings(project_root, artifacts):
    settings = compiler_settings(project_root)
    assert settings["optimizer"]["runs"] == 1_000_000 and settings["evmVersion"] == "cancun"
    assert set(artifacts) >= {"OpenToken", "AttributionLedger", "RewardDistributor", "DatanetRegistry", "AdapterRegistry"}
    # the cache returns the same build
    again = compile_contracts(project_root, project_root / "scripts" / "solc")
    assert again["RewardDistributor"].bytecode == artifacts["RewardDistributor"].bytecode
