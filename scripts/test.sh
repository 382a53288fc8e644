#!/usr/bin/env bash
# The whole test suite: set-up if needed, the import rules (lint-imports), then the Solidity
# tests (forge) and the Python tests (pytest: unit, property, JS interop, real anvil, CLI, cast,
# HTTP). Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
export PATH="$root/.foundry/bin:$PATH"

# The ledger tests also run against a real PostgreSQL server (a private one the tests start), and
# the dashboard's tests drive Debian's Chromium through Playwright (no `playwright install`, which
# would download a browser). Each package is installed when it is missing and we can; otherwise
# those tests are reported as skipped, with the reason.
scripts/ensure_debian_package.sh postgresql "the ledger's PostgreSQL tests" \
  'command -v initdb' 'compgen -G "/usr/lib/postgresql/*/bin/initdb"'
scripts/ensure_debian_package.sh chromium "the dashboard's browser tests" 'command -v chromium' '[[ -x /usr/bin/chromium ]]'
echo "== lint-imports (the import rules of docs/architecture.md)" >&2
.venv/bin/lint-imports --config pyproject.toml
echo "== forge test" >&2
forge test
echo "== pytest" >&2
.venv/bin/python -m pytest "$@"
