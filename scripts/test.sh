#!/usr/bin/env bash
# The whole test suite: set-up if needed, then the Solidity tests (forge) and the Python
# tests (pytest: unit, property, JS interop, real anvil, CLI, cast). Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
export PATH="$root/.foundry/bin:$PATH"
echo "== forge test" >&2
forge test
echo "== pytest" >&2
.venv/bin/python -m pytest "$@"
