#!/usr/bin/env bash
# Issue #3's GPU measurement in one prepared command, for a session lent a GPU: ResNet50 at 224 px, fp16, bs 256,
# N = 20,000 items: plain `learn.get_preds` against `extract_features` with all three layers hooked (goal: at least
# 0.8x get_preds' throughput), each layer alone, and the model-only diagnostic (forward alone vs forward with the
# library's per-batch copies, no data loader). Reference from the issue (H200): ~15,000 img/s plain fp16 inference at
# bs 256, ~4,900 img/s when the flattened body (2048x7x7) is copied to host memory batch by batch.
#
#   bash bench/gpu_check.sh                 # from the repository root (or anywhere: it cds there)
#   N=5000 MEASURE=get_preds,all bash bench/gpu_check.sh   # a shorter run
#
# Installs nothing when torch, torchvision and fastai import; otherwise tries pip (GPU machines may be offline: then it
# stops and says what is missing). Results: printed, and written to ${OUT:-/tmp}/bench_extract_gpu.json.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
N=${N:-20000}; BS=${BS:-256}; SIZE=${SIZE:-224}; ARCH=${ARCH:-resnet50}
MEASURE=${MEASURE:-get_preds,all,body,pool,linear,model}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONWARNINGS=ignore MPLBACKEND=Agg

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
echo "cpus $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg), python $PY"

missing=$($PY - <<'EOF'
import importlib
print(' '.join(m for m in ('torch', 'torchvision', 'fastai') if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$missing" ]; then
  echo "== missing: $missing; trying pip"
  if ! $PY -m pip install -q $missing; then echo "cannot install $missing (offline?): run with a python that has them (PYTHON=...)"; exit 2; fi
fi
$PY -c "import torch, fastai; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'fastai', fastai.__version__); \
assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print(torch.cuda.get_device_name(0))" || exit 3

echo "== bench_extract: n $N, bs $BS, size $SIZE, $ARCH, fp16, cuda"
# timeout: the whole run must end within one device call (10 minutes); a measurement left out is said so
timeout ${TIMEOUT:-560} $PY bench/bench_extract.py --device cuda --fp16 --n "$N" --bs "$BS" --size "$SIZE" --arch "$ARCH" \
  --measure "$MEASURE" --json "${OUT:-/tmp}/bench_extract_gpu.json"
rc=$?
[ $rc -eq 124 ] && echo "stopped after ${TIMEOUT:-560}s: rerun with a smaller N or fewer measures (MEASURE=get_preds,all)"
exit $rc
