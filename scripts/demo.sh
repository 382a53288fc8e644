#!/usr/bin/env bash
# The demo: a local devnet, the contracts, two reward epochs, claims from the CLI and from
# a plain wallet (cast), a full verification, and the balances. Uses only the public CLI.
# State goes to .loraledger/demo (wiped at start); the devnet is stopped at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
export PATH="$root/.foundry/bin:$root/.venv/bin:$PATH"

demo="$root/.loraledger/demo"
[[ -f "$demo/devnet/anvil.json" ]] && loraledger --data-dir "$demo" devnet down >/dev/null 2>&1 || true
rm -rf "$demo" && mkdir -p "$demo"
port="${LORALEDGER_DEMO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
export LORALEDGER_DATA_DIR="$demo" LORALEDGER_RPC_URL="http://127.0.0.1:$port" LORALEDGER_DEPLOYMENTS_DIR="$demo/deployments"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
json_field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s)[process.argv[1]];console.log(Array.isArray(v)?"["+v.join(",")+"]":v)})' "$1"; }

step "devnet"
loraledger devnet up --port "$port"
trap 'loraledger devnet down >/dev/null 2>&1 || true' EXIT

# anvil's public dev keys: account 0 operates the node, 1-3 are data contributors.
keys=($(loraledger devnet accounts --count 4 --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>JSON.parse(s).forEach(a=>console.log(a.privateKey)))'))
addrs=($(loraledger devnet accounts --count 4 --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>JSON.parse(s).forEach(a=>console.log(a.address)))'))
export LORALEDGER_OPERATOR_KEY="${keys[0]}"

step "contracts deploy"
loraledger contracts deploy

step "rewards post (epoch 1)"
cat > "$demo/rewards-1.csv" <<CSV
address,amount
${addrs[1]},1500000000000000000
${addrs[2]},2500000000000000000
${addrs[3]},500000000000000000
CSV
loraledger rewards post "$demo/rewards-1.csv"

step "claim with the CLI (contributor 1)"
LORALEDGER_KEY="${keys[1]}" loraledger claim

step "rewards post (epoch 2: cumulative balances grow)"
cat > "$demo/rewards-2.json" <<JSON
[{"address": "${addrs[1]}", "amount": "1000000000000000000"},
 {"address": "${addrs[3]}", "amount": "4000000000000000000"}]
JSON
loraledger rewards post "$demo/rewards-2.json"

step "claim again with the CLI (contributor 1 gets only the increase)"
LORALEDGER_KEY="${keys[1]}" loraledger claim

step "claim from a plain wallet: cast send with the proof JSON (contributor 2)"
proof="$(loraledger rewards proof "${addrs[2]}" --json)"
echo "$proof"
cast send --rpc-url "$LORALEDGER_RPC_URL" --private-key "${keys[2]}" \
  "$(echo "$proof" | json_field distributor)" "claim(address,uint256,bytes32[])" \
  "$(echo "$proof" | json_field account)" "$(echo "$proof" | json_field cumulativeAmount)" \
  "$(echo "$proof" | json_field proof)" | grep -E '^(status|gasUsed|transactionHash)'

step "verify: recompute every epoch from the files and compare with the chain"
loraledger verify

step "balances"
for a in "${addrs[@]:1}"; do loraledger balance "$a"; done
