#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks and times the Q8_0 CUDA kernels on a GPU machine that has nvcc and Python (numpy +
# safetensors) but none of the project's -dev packages: builds tests/quant/q8_0_cuda_main.cu alone
# with nvcc, runs it once under compute-sanitizer (checks only), then for real (checks + timing).
# Golden file: $QFORGE_GOLDEN, else .devdeps/q8_0.safetensors (a copy carried beside the tree),
# else ../shared/fixtures. Results go to $OUT (default out/cuda): results.txt, timing csv, ptxas
# resource report, memcheck log, GPU description. Exit status is the check's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${OUT:-$root/out/cuda}
mkdir -p "$out"
golden=${QFORGE_GOLDEN:-}
for g in "$golden" .devdeps/q8_0.safetensors ../shared/fixtures/golden/ggml/q8_0.safetensors; do
  if [ -n "$g" ] && [ -f "$g" ]; then golden=$g; break; fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Raw dumps of every case, so the C++ side needs no safetensors reader of its own.
python3 - "$golden" "$work/golden" <<'PY'
import os, sys
from safetensors.numpy import load_file
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
t = load_file(src)
with open(os.path.join(dst, "cases.txt"), "w") as idx:
    i = 0
    while f"case{i}.input" in t:
        x = t[f"case{i}.input"]
        for part in ("input", "quant", "dequant"):
            t[f"case{i}.{part}"].tofile(os.path.join(dst, f"case{i}.{part}.bin"))
        idx.write(f"case{i} {x.shape[0]} {x.shape[1]}\n")
        i += 1
PY

{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv || true
  nvcc --version | tail -2; } | tee "$out/gpu.txt"
nvcc -O3 -std=c++20 --fmad=false -arch=sm_90 -Xptxas -v -Iinclude -Itests \
  tests/quant/q8_0_cuda_main.cu -o "$work/q8_0_cuda" 2> "$out/ptxas.txt"
grep -E "registers|spill" "$out/ptxas.txt" | sed 's/^ptxas info *: //' | head -8 || true

if command -v compute-sanitizer > /dev/null; then
  if compute-sanitizer --tool memcheck --error-exitcode 3 "$work/q8_0_cuda" "$work/golden" --quick \
       > "$out/memcheck.txt" 2>&1; then
    echo "memcheck: clean ($(tail -1 "$out/memcheck.txt"))"
  else
    echo "memcheck: FAILED (see memcheck.txt)"; tail -20 "$out/memcheck.txt"
  fi
fi
"$work/q8_0_cuda" "$work/golden" --full "$out/q8_0_cuda_timing.csv" | tee "$out/results.txt"
