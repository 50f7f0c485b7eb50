#!/usr/bin/env bash
# One-call GPU check of the CUDA engine, from the repository root: installs the package (with
# the CUDA build), runs the GPU test-suite (pytest -m gpu), compute-sanitizer memcheck and
# racecheck on small cases, and the benchmarks (a Markdown table on stdout and, when OUT is
# set, in $OUT/gpu_results.md). Without a GPU: one line saying so, exit status 2.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "run_all.sh: no NVIDIA GPU is visible here (nvidia-smi -L failed); nothing was run" >&2
  exit 2
fi
status=0
LOG=${OUT:-/tmp}/gpu_install.log
echo "== install (log: $LOG)"
if ! python3 -m pip install --no-build-isolation --no-deps . >"$LOG" 2>&1; then
  tail -30 "$LOG"; echo "run_all.sh: the install failed" >&2; exit 1
fi
# Outside the checkout, so that the installed package (with _cuda) is imported.
WORK=$(mktemp -d)
cd "$WORK"
python3 -c "import cupy" 2>/dev/null || { echo "run_all.sh: CuPy is not installed (pip install cupy-cuda13x)" >&2; exit 1; }
echo "== GPU test-suite"
timeout 240 python3 -m pytest -q -p no:cacheprovider -m gpu "$REPO/tests/gpu" -rs || status=1
echo "== compute-sanitizer"
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    timeout 120 compute-sanitizer --tool $tool --error-exitcode 3 python3 "$REPO/benchmarks/gpu/sanitize_case.py" \
      > "$WORK/$tool.log" 2>&1 && echo "$tool: no errors" || { status=1; echo "$tool: FAILED"; tail -40 "$WORK/$tool.log"; }
  done
else
  echo "compute-sanitizer not found: skipped"; status=1
fi
echo "== benchmarks"
timeout 180 python3 "$REPO/benchmarks/gpu/bench_gpu.py" || status=1
exit $status
