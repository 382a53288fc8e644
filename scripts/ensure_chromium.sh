#!/usr/bin/env bash
# Debian's Chromium, for the dashboard's browser tests and the demo's dashboard claim (driven by
# Playwright from the `test` extra; no `playwright install`, which would download a browser).
# Installed with apt-get when missing and this user is root; otherwise says what will be skipped.
# Usage: scripts/ensure_chromium.sh "what needs it"
set -uo pipefail
what="${1:-the browser tests of the dashboard}"
if command -v chromium >/dev/null 2>&1 || [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing Chromium (Debian package) for $what" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "could not install Chromium; $what will be skipped" >&2
else
  echo "Chromium is not installed (and this user cannot install it); $what will be skipped" >&2
fi
exit 0
