#!/usr/bin/env bash
# The whole test suite: set-up if needed, the import rules (lint-imports), then the Solidity
# tests (forge) and the Python tests (pytest: unit, property, JS interop, real anvil, CLI, cast,
# HTTP). Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
export PATH="$root/.foundry/bin:$PATH"

# The ledger tests also run against a real PostgreSQL server (a private one the tests
# start). Install the Debian package when it is missing and we can; otherwise those tests
# are reported as skipped, with the reason.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing PostgreSQL (Debian package) for the ledger tests" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >/dev/null 2>&1 \
      || echo "test: could not install PostgreSQL; its tests will be skipped" >&2
  else
    echo "test: PostgreSQL is not installed (and this user cannot install it); its tests will be skipped" >&2
  fi
fi
scripts/ensure_chromium.sh "the dashboard's browser tests"
echo "== lint-imports (the import rules of docs/architecture.md)" >&2
.venv/bin/lint-imports --config pyproject.toml
echo "== forge test" >&2
forge test
echo "== pytest" >&2
.venv/bin/python -m pytest "$@"
