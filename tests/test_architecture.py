"""The import rules of docs/architecture.md hold: import-linter's contracts (pyproject.toml)
are kept, a broken rule is caught, and no module of the package is part of an import cycle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    out = _lint(ROOT / "src")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_a_broken_rule_fails_lint_imports(tmp_path):
    # A pure module reaching for the database, and a low layer importing an entrypoint.
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "loraledger", copy / "loraledger", ignore=shutil.ignore_patterns("__pycache__"))
    rewards = copy / "loraledger" / "rewards" / "split.py"
    rewards.write_text(rewards.read_text() + "\nfrom ..db import make_engine  # noqa: E402,F401\n")
    chain = copy / "loraledger" / "chain" / "keys.py"
    chain.write_text(chain.read_text() + "\nfrom ..node import context  # noqa: E402,F401\n")
    out = _lint(copy)
    assert out.returncode != 0
    assert "Pure modules do no I/O" in out.stdout and "BROKEN" in out.stdout
    assert "loraledger.rewards.split -> loraledger.db" in out.stdout
    assert "loraledger.chain is not allowed to import loraledger.node" in out.stdout


def test_no_import_cycles_between_modules():
    graph = grimp.build_graph("loraledger")
    modules = sorted(graph.modules)
    # Tarjan-free check: a module is in a cycle iff it can reach itself through one of its imports.
    cyclic = []
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                cyclic.append(f"{module} <-> {imported}")
    assert not cyclic, "import cycles: " + ", ".join(cyclic)
