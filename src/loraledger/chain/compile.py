"""Compile the contracts with py-solc-x, through the project's solc (native or solc-js).

The compiler settings are read from ``foundry.toml`` (optimizer runs, via-IR, EVM version,
metadata hash, remappings) so that the bytecode deployed from Python is the bytecode forge tests. Results are
cached under ``contracts/cache`` keyed by the sources and the compiler version.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..fsutil import atomic_write_json

OUTPUT_SELECTION = {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}}


def compiler_settings(root: Path) -> dict[str, Any]:
    """solc standard-JSON settings read from ``foundry.toml``'s default profile.

    Reading them (rather than repeating them) keeps the Python build byte-identical to
    what forge tests and snapshots: optimizer, runs, via-IR, EVM version, metadata hash
    and remappings.
    """
    try:
        profile = tomllib.loads((root / "foundry.toml").read_text())["profile"]["default"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read compiler settings from {root / 'foundry.toml'} ({exc})") from None
    return {
        "optimizer": {"enabled": bool(profile.get("optimizer", False)), "runs": int(profile.get("optimizer_runs", 200))},
        "viaIR": bool(profile.get("via_ir", False)),
        "evmVersion": profile.get("evm_version", "cancun"),
        "metadata": {"bytecodeHash": profile.get("bytecode_hash", "ipfs")},
        "remappings": list(profile.get("remappings", [])),
        "outputSelection": OUTPUT_SELECTION,
    }


_IMPORT = re.compile(r'^\s*import\s+(?:[^"\']*from\s+)?["\']([^"\']+)["\']', re.MULTILINE)


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: ABI, creation code and runtime code (0x-hex)."""

    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str

    @property
    def code_hash(self) -> str:
        """sha256 of the creation code: identifies the exact build in deployment files."""
        return "0x" + hashlib.sha256(bytes.fromhex(self.bytecode.removeprefix("0x"))).hexdigest()


def _source_units(root: Path, directories: list[str]) -> dict[str, str]:
    """Source unit name -> content, for every .sol under the given directories."""
    units: dict[str, str] = {}
    for directory in directories:
        for path in sorted((root / directory).rglob("*.sol")):
            units[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
    return units


def _fingerprint(root: Path, units: dict[str, str], solc_binary: Path, settings: dict[str, Any]) -> str:
    """Hash of our sources, every file they import (transitively) and the compiler's identity."""
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(str(solc_binary.resolve()).encode())
    digest.update(os.environ.get("LORALEDGER_SOLC", "").encode())
    seen: set[str] = set()
    pending = list(units)
    while pending:
        unit = pending.pop()
        if unit in seen:
            continue
        seen.add(unit)
        path = root / _remap(unit, settings["remappings"])
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        digest.update(unit.encode() + b"\0" + text.encode())
        for target in _IMPORT.findall(text):
            if target.startswith("."):
                target = (Path(unit).parent / target).as_posix()
                target = os.path.normpath(target)
            pending.append(target)
    return digest.hexdigest()


def _remap(unit: str, remappings: list[str]) -> str:
    for remapping in remappings:
        prefix, target = remapping.split("=", 1)
        if unit.startswith(prefix):
            return target + unit[len(prefix):]
    return unit


def compile_contracts(
    root: Path,
    solc_binary: Path,
    *,
    directories: tuple[str, ...] = ("contracts/src",),
    use_cache: bool = True,
) -> dict[str, Artifact]:
    """Compile every contract under ``directories`` and return artifacts by contract name."""
    import solcx
    from solcx.exceptions import SolcError

    if not solc_binary.exists():
        raise ConfigError(f"solc not found at {solc_binary}; run scripts/setup.sh or set LORALEDGER_SOLC")
    if not (root / "node_modules" / "@openzeppelin" / "contracts").is_dir():
        raise ConfigError(f"OpenZeppelin contracts missing under {root / 'node_modules'}; run `npm ci`")
    settings = compiler_settings(root)
    units = _source_units(root, list(directories))
    if not units:
        raise ConfigError(f"no Solidity sources under {', '.join(directories)} in {root}")

    cache_file = root / "contracts" / "cache" / f"py-artifacts-{_fingerprint(root, units, solc_binary, settings)[:24]}.json"
    if use_cache and cache_file.is_file():
        raw = json.loads(cache_file.read_text())
        return {name: Artifact(**fields) for name, fields in raw.items()}

    standard_input = {
        "language": "Solidity",
        "sources": {unit: {"content": content} for unit, content in units.items()},
        "settings": settings,
    }
    try:
        output = solcx.compile_standard(
            standard_input, base_path=str(root), allow_paths=[str(root)], solc_binary=solc_binary
        )
    except SolcError as exc:
        # py-solc-x appends the command and the whole stdout; the compiler's message is enough.
        message = str(exc).split("\n> command:")[0].strip()
        raise ConfigError(f"contract compilation failed: {message[:2000]}") from None

    artifacts: dict[str, Artifact] = {}
    for unit, contracts in output.get("contracts", {}).items():
        if not any(unit.startswith(d) for d in directories):
            continue  # library sources (OpenZeppelin) are not deployable by name
        for name, data in contracts.items():
            bytecode = data["evm"]["bytecode"]["object"]
            if not bytecode:
                continue  # interfaces and abstract contracts
            artifacts[name] = Artifact(
                name=name,
                source=unit,
                abi=data["abi"],
                bytecode="0x" + bytecode,
                deployed_bytecode="0x" + data["evm"]["deployedBytecode"]["object"],
            )
    atomic_write_json(cache_file, {n: a.__dict__ for n, a in artifacts.items()})
    return artifacts


def all_abis(artifacts: dict[str, Artifact]) -> list[dict[str, Any]]:
    """Every ABI entry of every artifact (for decoding custom errors from any contract)."""
    return [entry for artifact in artifacts.values() for entry in artifact.abi]
