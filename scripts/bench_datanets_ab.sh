#!/usr/bin/env bash
# The ingest of scripts/bench_datanets.py run in turns with an earlier commit's code and with this
# working tree's, so both see the same machine: on a shared 2-core machine the rate of one code
# drifts by 20-30 % over an hour, more than most changes, and only runs in turns compare them.
#
#   scripts/bench_datanets_ab.sh BASE_COMMIT [ROUNDS] [bench_datanets arguments...]
#   scripts/bench_datanets_ab.sh bf143f2 3 --postgres --rows 100000 --batch-rows 10
#
# BASE_COMMIT is checked out in a temporary git worktree (its own scripts and src, this tree's
# .venv and node_modules). Each round runs BASE then this tree; every run prints one table row:
# rows/s of the ingest, and the seconds its signing rounds took (client-side work whose code
# neither side changed: how fast the machine was during that run). The default arguments are
# --only ingest --profile 0 --breakdown 10, after which any given ones come.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${1:?usage: bench_datanets_ab.sh BASE_COMMIT [ROUNDS] [bench_datanets arguments...]}"
shift
rounds="${1:-3}"
[[ $# -gt 0 ]] && shift
python="$root/.venv/bin/python"
[[ -x "$python" ]] || { echo "no $python: run scripts/setup.sh first" >&2; exit 2; }
git -C "$root" rev-parse --verify --quiet "$base^{commit}" > /dev/null || { echo "no commit $base" >&2; exit 2; }

worktree="$(mktemp -d -t bench-ab-XXXXXX)"
cleanup() { git -C "$root" worktree remove --force "$worktree" > /dev/null 2>&1 || rm -rf "$worktree"; }
trap cleanup EXIT
git -C "$root" worktree add --quiet --detach "$worktree" "$base"
ln -s "$root/node_modules" "$worktree/node_modules"

run() {  # run TREE LABEL: one ingest, one table row
  local tree="$1" label="$2" out
  out="$(cd "$tree" && PYTHONPATH="$tree/src" "$python" scripts/bench_datanets.py --only ingest --profile 0 \
           --breakdown 10 "${@:3}" 2>&1)" || { echo "$out" | tail -20 >&2; exit 1; }
  local rate signing
  rate="$(echo "$out" | grep -m1 -E '^\| contribute:' | awk -F'|' '{gsub(/ /, "", $4); print $4}')"
  signing="$(echo "$out" | grep -m1 -oE 'signing [0-9.]+ s' | awk '{print $2}')"
  printf '| %5s | %-28s | %12s | %9s s |\n' "$round" "$label" "$rate" "$signing"
}

echo "# bench_datanets ingest in turns: $base against the working tree ($(git -C "$root" rev-parse --short HEAD)$(
  [[ -n "$(git -C "$root" status --porcelain -- src scripts)" ]] && echo ', uncommitted changes')), $(nproc) CPUs"
echo "# arguments: --only ingest --profile 0 --breakdown 10 $*"
printf '| %5s | %-28s | %12s | %11s |\n' round code rows/s signing
printf '|-------|------------------------------|--------------|-------------|\n'
for round in $(seq 1 "$rounds"); do
  run "$worktree" "$base (base)" "$@"
  run "$root" "working tree" "$@"
done
