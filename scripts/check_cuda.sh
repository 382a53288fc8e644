#!/usr/bin/env bash
# Every CUDA check, in one run, on a machine with a GPU (CI has none: run it when one is lent).
#   - the torch-only tests, which put their models on CUDA when it is there (the engine against
#     PEFT, LoRA gradient features, scoring, base-model loading);
#   - scripts/check_cuda_serving.py (serving in the node's dtype, attribution on CUDA vs CPU);
#   - scripts/check_cuda_training.py (training learns on CUDA, bf16, deterministic, OOM);
#   - scripts/bench_lora_ops.py and a quick scripts/bench_serving.py on the GPU.
# The GPU machine's python3 brings torch, transformers and peft; the project's other Python
# dependencies can travel as wheels in .whl/ (installed under /tmp/site first). The log is written
# to $OUT/cuda-check.log when OUT is set. Exit status 0 when every step passed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log="${OUT:-/tmp}/cuda-check.log"
: > "$log"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
failed=()

step() {  # step SECONDS COMMAND...: run it under a time limit, its output to the screen and the log
  local limit="$1"; shift
  echo "== $* (limit ${limit} s)" | tee -a "$log"
  local started=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  echo "== rc=$rc in $((SECONDS - started)) s" | tee -a "$log"
  [[ $rc == 0 ]] || failed+=("$1 $2")
}

step 20 bash -c 'nvidia-smi -L; python3 -c "import torch, transformers, peft; print(\"torch\", torch.__version__, \
\"transformers\", transformers.__version__, \"peft\", peft.__version__, \"cuda\", torch.cuda.is_available())"'
step 150 python3 -m pytest -q -p no:cacheprovider tests/test_serving_engine.py tests/test_attribution_features.py \
  tests/test_attribution_scoring.py tests/test_training_basemodel.py
step 60 python3 scripts/check_cuda_serving.py
step 90 python3 scripts/check_cuda_training.py
step 40 python3 scripts/bench_lora_ops.py
step 180 python3 scripts/bench_serving.py --quick --device cuda --smollm none --hidden 1024 --layers 8 --heads 16
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}" | tee -a "$log"
  exit 1
fi
echo "every CUDA check passed" | tee -a "$log"
