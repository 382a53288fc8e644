#!/usr/bin/env bash
# Idempotent set-up for a fresh checkout: Python venv (.venv) with the package and test
# extras, and the npm toolchain (anvil, forge, cast, solc-js, OpenZeppelin) in node_modules.
# Each part is redone only when its inputs (pyproject.toml, package-lock.json) change.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python >= 3.11 is needed (found: $("$py" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
want="$(stamp pyproject.toml)"
if [[ ! -x .venv/bin/python ]] || [[ "$(cat .venv/.loraledger-stamp 2>/dev/null)" != "$want" ]]; then
  echo "setup: creating .venv and installing loraledger[test,ml]" >&2
  [[ -x .venv/bin/python ]] || "$py" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  # torch first, pinned: a bare `torch>=` range lets pip pick the multi-GB CUDA build; 2.13.0
  # resolves to the CPU wheel here. Set LORALEDGER_TORCH to another spec (e.g. a CUDA build).
  if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
    .venv/bin/python -m pip install --quiet "${LORALEDGER_TORCH:-torch==2.13.0}" 2>&1 | grep -v -E '^WARNING: Location' >&2 || true
  fi
  .venv/bin/python -m pip install --quiet -e '.[test,ml]' 2>&1 | grep -v -E '^WARNING: Location' >&2 || true
  .venv/bin/python -c 'import loraledger, web3, solcx, torch, peft, transformers' || { echo "setup: pip install failed" >&2; exit 1; }
  echo "$want" > .venv/.loraledger-stamp
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup: node and npm are needed for anvil/forge/cast and solc-js (install Node.js >= 18)" >&2
  exit 1
fi
want="$(stamp package.json package-lock.json)"
if [[ ! -d node_modules/@foundry-rs ]] || [[ "$(cat node_modules/.loraledger-stamp 2>/dev/null)" != "$want" ]]; then
  echo "setup: npm ci (anvil, forge, cast, solc-js, OpenZeppelin)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$want" > node_modules/.loraledger-stamp
fi

# npm's node_modules/.bin/{anvil,forge,cast} are node wrappers that lose the exit code
# (a failing `forge test` would exit 0), so link the native binaries of this platform.
if [[ ! -x .foundry/bin/forge ]] || [[ "$(cat .foundry/.stamp 2>/dev/null)" != "$want" ]]; then
  platform="$(node -p 'process.platform + "-" + ({x64: "amd64"}[process.arch] || process.arch)')"
  mkdir -p .foundry/bin
  for tool in anvil forge cast; do
    native="node_modules/@foundry-rs/$tool-$platform/bin/$tool"
    [[ -x "$native" ]] || { echo "setup: no $tool binary for $platform in node_modules" >&2; exit 1; }
    ln -sf "$root/$native" ".foundry/bin/$tool"
  done
  .foundry/bin/anvil --version >/dev/null || { echo "setup: anvil does not run on this machine" >&2; exit 1; }
  echo "$want" > .foundry/.stamp
fi
