#!/usr/bin/env bash
# The CUDA path, switched on and proven in one command (at most 8 minutes on a GPU machine):
#   1. the GPU tests (tests/worker/test_engine.py -m gpu: pinned buffers, streams, AMP, buckets,
#      CUDA graphs, against the CPU reference);
#   2. the worker's Engine on paper-size DRAEM at 256 px, batch 32: fp32 and bf16, each eager,
#      with CUDA graphs and with torch.compile (bench/bench_engine.py);
#   3. the pipeline benchmark with that model (bench/bench_pipeline.py), when Kafka and Redis can
#      be started here (deploy/local/services.sh; needs Java and redis-server);
# and writes every result into one folder ($OUT, default runs/gpu-check-<UTC time>) with a
# summary.md holding the GPU's name and each step's table. On a machine without CUDA it says so
# and exits 0.
#
#   bash bench/gpu_check.sh
#   PY=python3 OUT=/tmp/gpu bash bench/gpu_check.sh   # another interpreter / folder
#
# Python packages: .venv when there is one, else the machine's python3. A GPU image without
# linewatch's pure-Python dependencies can be given them as wheels in .whl/ (bench/gpu_wheels.sh
# fetches them on a machine with an index); they are installed into a temporary folder.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$(date +%s)
PY=${PY:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}
OUT=${OUT:-runs/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: no CUDA device on this machine ($("$PY" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null || echo 'no torch')); nothing to check"
  exit 0
fi
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/lw-site .whl/*.whl \
    && export PYTHONPATH=/tmp/lw-site${PYTHONPATH:+:$PYTHONPATH}
fi
left() { echo $(( 480 - ($(date +%s) - started) )); }
status=()
step() {  # step NAME SECONDS COMMAND...: run with a deadline inside the 8 minutes, keep its output
  local name=$1 limit=$2; shift 2
  local budget; budget=$(left)
  (( limit > budget )) && limit=$budget
  if (( limit < 20 )); then status+=("$name: skipped (8-minute budget spent)"); return; fi
  echo "== $name (up to ${limit}s)"
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
  local rc=${PIPESTATUS[0]}
  status+=("$name: exit $rc$([[ $rc == 124 ]] && echo ' (timed out)')")
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$OUT/gpu.txt" 2>/dev/null \
  || "$PY" -c 'import torch; print(torch.cuda.get_device_name(0))' >"$OUT/gpu.txt"
step gpu-tests 150 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/worker/test_engine.py
step engine 240 "$PY" bench/bench_engine.py --device cuda --arch draem --input-size 256 --batch 32 \
  --amps off,bf16 --modes eager,graphs,compile --seconds 5 --out "$OUT"
if timeout 90 bash deploy/local/services.sh start >"$OUT/services.txt" 2>&1; then
  step pipeline 150 "$PY" bench/bench_pipeline.py --device cuda --arch draem --input-size 256 --amp bf16 \
    --frames 4000 --seconds 5 --latency-seconds 15
  cp bench/results/pipeline-draem-256-cuda-* "$OUT/" 2>/dev/null
else
  status+=("pipeline: skipped (Kafka and Redis could not be started here: $(tail -1 "$OUT/services.txt"))")
fi

{
  echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "GPU: $(cat "$OUT/gpu.txt"); torch $("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')"
  echo
  printf -- '- %s\n' "${status[@]}"
  echo
  echo "## Engine: paper-size DRAEM, 256 px, batch 32"
  sed -n '/^| precision/,/^$/p' "$OUT/engine.txt" 2>/dev/null
  echo "## GPU tests"
  tail -3 "$OUT/gpu-tests.txt" 2>/dev/null
  echo
  echo "## Pipeline"
  sed -n '/^| masks/,$p' "$OUT/pipeline.txt" 2>/dev/null || echo "not run"
} >"$OUT/summary.md"
cat "$OUT/summary.md"
echo "gpu_check: results in $OUT ($(( $(date +%s) - started )) s)"
