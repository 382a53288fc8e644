#!/usr/bin/env bash
# Create (or refresh) the separate virtualenv that runs Kronfluence's EK-FAC influence as a
# peer method for scripts/bench_attribution.py (see scripts/peers/kronfluence_client.py).
#
#   bash scripts/peers/setup_kronfluence.sh          # -> .venv-kronfluence/ at the repo root
#
# Idempotent: when the venv already imports everything at the expected versions it does nothing.
#
# torch is always pinned (torch==2.13.0, a CPU wheel on local disk): a bare `torch` requirement
# would let pip fetch a multi-GB CUDA build.
#
# torchvision: kronfluence 1.0.1's METADATA requires it, but no module of the package imports it
# (grep -r torchvision over the wheel finds nothing; nn.Linear tracking uses torch, opt_einsum,
# einops, einconv (conv2d only), accelerate, safetensors, tqdm, numpy). So kronfluence is
# installed with --no-deps and its real dependencies explicitly; `pip check` will therefore list
# torchvision as missing, which is expected and harmless.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${KRONFLUENCE_VENV:-$ROOT/.venv-kronfluence}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
KRONFLUENCE_VERSION="1.0.1"

die() { echo "setup_kronfluence: ERROR: $*" >&2; exit 1; }
log() { echo "setup_kronfluence: $*" >&2; }

# Everything the peer script needs, checked in the venv.
check() {
    "$VENV/bin/python" - "$TORCH_VERSION" "$KRONFLUENCE_VERSION" <<'PY'
import sys
torch_version, kf_version = sys.argv[1], sys.argv[2]
import torch, numpy, peft, transformers, safetensors, accelerate, einops, opt_einsum  # noqa: F401
import kronfluence
from kronfluence.analyzer import Analyzer, prepare_model  # noqa: F401
from kronfluence.task import Task  # noqa: F401
if torch.__version__.split("+")[0] != torch_version:
    sys.exit(f"torch {torch.__version__} != {torch_version}")
if kronfluence.__version__ != kf_version:
    sys.exit(f"kronfluence {kronfluence.__version__} != {kf_version}")
major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
if (major, minor) < (4, 56):
    sys.exit(f"transformers {transformers.__version__} < 4.56")
print(f"torch {torch.__version__}, kronfluence {kronfluence.__version__}, "
      f"transformers {transformers.__version__}, peft {peft.__version__}, numpy {numpy.__version__}")
PY
}

if [ -x "$VENV/bin/python" ] && check >/dev/null 2>&1; then
    log "already set up: $(check)"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "no '$PYTHON' on PATH (set PYTHON=...)"
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV" || die "could not create the virtualenv $VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

log "installing torch==$TORCH_VERSION"
"${PIP[@]}" "torch==$TORCH_VERSION" \
    || die "could not install torch==$TORCH_VERSION (expected a CPU wheel on local disk)"

# torch is repeated in the same requirement set so the resolver can never swap it.
log "installing kronfluence's dependencies and transformers/peft/numpy"
"${PIP[@]}" "torch==$TORCH_VERSION" \
    "accelerate>=0.31.0" "einops>=0.8.0" "einconv>=0.1.0" "opt-einsum>=3.3.0" \
    "safetensors>=0.4.2" "tqdm>=4.66.4" numpy "transformers>=4.56" peft \
    || die "could not install kronfluence's dependencies / transformers / peft / numpy"

log "installing kronfluence==$KRONFLUENCE_VERSION (--no-deps: torchvision is not used)"
"${PIP[@]}" --no-deps "kronfluence==$KRONFLUENCE_VERSION" \
    || die "could not install kronfluence==$KRONFLUENCE_VERSION"

out="$(check 2>&1)" || die "the venv does not import what the peer needs: $out"
log "ready: $out"
