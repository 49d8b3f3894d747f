#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks and times the engine's CUDA kernels (engine/cuda/*.cuh, kernels/cuda/engine_*.cu) on a GPU
# machine that has nvcc but none of the project's -dev packages: builds tests/engine/
# cuda_engine_*.cu (the harness's parts, sharing cuda_harness.cuh) with the two kernel TUs alone
# with nvcc (cuBLAS from the toolkit, else from
# the Python wheel nvidia-cublas), runs every check and the timings (device bandwidth, matvecs at
# 4096x4096 / 11008x4096 / 4096x11008, decode tok/s of 7B-shaped models), then the quick checks
# again under compute-sanitizer memcheck, and one Nsight Compute report of the Q4_K and AWQ
# kernels. Results go to $OUT (default out/cuda_engine): results.txt, cuda_engine.csv, ptxas
# resource summary, memcheck log, ncu.txt, GPU description. Exit status is the checks'.
# Usage: run_cuda_engine.sh [--full|--bench|--quick|--probe] (default --full; --bench runs the quick
# checks before the timings; --probe only the bandwidth and tests/engine/cuda_engine_probe.cu's
# cold / hot / load-only / layout timings); MEMCHECK=0 or NCU=0 in the environment skip those two steps.
mode=${1:---full}
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${OUT:-$root/out/cuda_engine}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,memory.total --format=csv || true
  nvcc --version | tail -2; nproc; } | tee "$out/gpu.txt"

blas=(-lcublas)
if ! echo 'int main(){}' | nvcc -x cu - -lcublas -o "$work/probe" 2> /dev/null; then
  d=$(python3 -c 'import nvidia.cublas, os; print(list(nvidia.cublas.__path__)[0])' 2> /dev/null || true)
  echo "cuBLAS not in the toolkit; using ${d:-nothing}"
  blas=(-I"$d/include" -L"$d/lib" -l:libcublas.so.13 -Xlinker -rpath="$d/lib")
fi
src=(tests/engine/cuda_engine_*.cu kernels/cuda/engine_matvec.cu kernels/cuda/engine_ops.cu)
flags=(-O3 -std=c++20 --fmad=false -arch=sm_90 -lineinfo -Xcompiler -ffp-contract=off -Iinclude -Itests)
# One object per TU in parallel; ptxas reports (registers, spills) kept.
pids=()
for f in "${src[@]}"; do
  (nvcc "${flags[@]}" -Xptxas -v "${blas[@]:0:1}" -c "$f" -o "$work/$(basename "$f").o" \
     2> "$work/ptxas_$(basename "$f").txt") &
  pids+=($!)
done
for p in "${pids[@]}"; do
  wait "$p" || { grep -hv "ptxas info\|bytes stack\|Compile time" "$work"/ptxas_*.txt | head -40; exit 4; }
done
nvcc "${flags[@]}" "$work"/*.o "${blas[@]}" -o "$work/cuda_engine"
cat "$work"/ptxas_*.txt | grep -E "error|warning" | head -20 || true
grep -hE "Compiling entry|registers|stack frame" "$work"/ptxas_*.txt | paste - - - |
  sed -E 's/ptxas info *: //g; s/Compiling entry function .(_Z[^ ]*). for .sm_90./\1/' |
  grep -E "matvec_kernel|awq_matvec|attention" | sed -E 's/ +/ /g' | cut -c1-200 > "$out/ptxas_summary.txt" || true

status=0
"$work/cuda_engine" "$mode" "$out" 2>&1 | tee "$out/results.txt" || status=${PIPESTATUS[0]}

if [ "${MEMCHECK:-1}" != 0 ] && command -v compute-sanitizer > /dev/null; then
  if timeout 150 compute-sanitizer --tool memcheck --error-exitcode 3 "$work/cuda_engine" --quick \
       > "$out/memcheck.txt" 2>&1; then
    echo "memcheck: clean ($(grep -E 'checks:|ERROR SUMMARY' "$out/memcheck.txt" | tr '\n' ' '))"
  else
    echo "memcheck: FAILED or timed out (see memcheck.txt)"; grep -E "Invalid|ERROR|FAIL|at 0x" "$out/memcheck.txt" | head -20
  fi
fi
# One launch each of the default Q4_K and AWQ kernels at 11008x4096 under Nsight Compute.
if [ "${NCU:-1}" != 0 ] && command -v ncu > /dev/null; then
  timeout 150 ncu --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
    --section WarpStateStats --section LaunchStats -k regex:'matvec_kernel|awq_matvec' \
    --launch-skip 1 --launch-count 3 "$work/cuda_engine" --profile > "$out/ncu.txt" 2>&1 ||
    echo "ncu: failed or timed out (see ncu.txt)"
  grep -E "matvec_kernel|awq_matvec|DRAM Throughput|Memory Throughput|Duration|Achieved Occupancy|Registers Per|Issue Slots Busy|Compute \(SM\) Throughput" \
    "$out/ncu.txt" | sed -E 's/ +/ /g' | cut -c1-150 | head -40 || true
fi
exit "$status"
