#!/usr/bin/env bash
# A Debian package some tests (or the demo) need: installed with apt-get when it is missing and this
# user is root; otherwise one line says what will be skipped. Never fails the caller.
# Usage: scripts/ensure_debian_package.sh PACKAGE "what needs it" CHECK...
#   CHECK: shell tests, any of which passing means the package is already there
#   (e.g. 'command -v chromium' '[[ -x /usr/bin/chromium ]]').
set -uo pipefail
package="$1" what="$2"
shift 2
for check in "$@"; do
  if eval "$check" >/dev/null 2>&1; then
    exit 0
  fi
done
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing $package (Debian package) for $what" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package"; } >/dev/null 2>&1 \
    || echo "could not install $package; $what will be skipped" >&2
else
  echo "$package is not installed (and this user cannot install it); $what will be skipped" >&2
fi
exit 0
