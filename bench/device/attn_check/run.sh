#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds attn_check.cu alone with nvcc (no project -dev packages needed) and runs it: the
# tensor-core AWQ attention against the float32 one and a host reference (first under
# compute-sanitizer memcheck and racecheck when present), then both timed on the 7B shape.
# Logs (build with the ptxas resource report, sanitizers, results) go to $OUT (default
# out/attn_check). Exit status is the check's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$root"
out=${OUT:-$root/out/attn_check}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv || true
  nvcc --version | tail -2; } | tee "$out/gpu.txt"
nvcc -O3 -std=c++20 --fmad=false -arch=sm_90 -Xcompiler -ffp-contract=off -Xptxas -v -Iinclude \
  bench/device/attn_check/attn_check.cu -o "$work/attn_check" 2> "$out/build.txt" ||
  { cat "$out/build.txt"; exit 2; }
grep -A2 "Function properties for .*attention" "$out/build.txt" |
  grep -E "properties|registers|spill" | sed 's/.*fwd[0-9]*//' || true
# Out-of-bounds and race checks on the small cases (seconds), then the real run with timings.
if command -v compute-sanitizer > /dev/null; then
  for tool in ${SANITIZERS-memcheck racecheck}; do
    rc=0
    timeout 120 compute-sanitizer --tool "$tool" --error-exitcode 3 "$work/attn_check" small \
      > "$out/$tool.txt" 2>&1 || rc=$?
    echo "compute-sanitizer $tool: exit $rc ($(tail -1 "$out/$tool.txt"))"
    if [ "$rc" -eq 3 ]; then tail -40 "$out/$tool.txt"; exit 3; fi
  done
fi
"$work/attn_check" | tee "$out/results.txt"
