#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks and times the CUDA encoders/decoders of the K-quants, Q4_0/Q4_1/Q5_0/Q5_1 and IQ4_NL
# (quant/<type>/cuda.cuh) on a GPU machine that has nvcc and Python (numpy + safetensors) but
# none of the project's -dev packages: builds tests/quant/blocks_cuda_main.cu alone with nvcc
# (falling back to a binary carried in .devdeps/bin/blocks_cuda if that build fails), runs every
# check and the timings (per type on 4096x4096 and 11008x4096; a 7B-shaped model to Q4_K_M's
# tensor types, resident and streamed from host memory), then the golden checks once more under
# compute-sanitizer. Goldens: $QFORGE_GOLDEN_DIR, else .devdeps/golden (copies carried beside the
# tree), else ../shared/fixtures/golden/ggml. Real weights: .devdeps/real (raw F32 tensors of
# small-llama with a tensors.txt), else extracted from ../shared/fixtures/models/small-llama.
# Results go to $OUT (default out/cuda_kquants): results.txt, timing csv, ptxas resource report,
# memcheck log, GPU description. Exit status is the check's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${OUT:-$root/out/cuda_kquants}
mkdir -p "$out"
golden=${QFORGE_GOLDEN_DIR:-}
for g in "$golden" .devdeps/golden ../shared/fixtures/golden/ggml; do
  if [ -n "$g" ] && [ -f "$g/q4_K.safetensors" ]; then golden=$g; break; fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv || true
  nvcc --version | tail -2; nproc; } | tee "$out/gpu.txt"

# The build runs while Python dumps the goldens.
(nvcc -O3 -std=c++20 --fmad=false -arch=sm_90 -Xcompiler -ffp-contract=off -Xptxas -v \
   -Iinclude -Itests tests/quant/blocks_cuda_main.cu -o "$work/blocks_cuda" 2> "$out/ptxas.txt" \
   && echo built > "$work/build.ok") &
build=$!

# Raw dumps of every case, so the C++ side needs no safetensors reader of its own.
python3 - "$golden" "$work/golden" <<'PY'
import os, sys
from safetensors.numpy import load_file
src, dst = sys.argv[1], sys.argv[2]
for t in ("q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl"):
    d = os.path.join(dst, t)
    os.makedirs(d)
    f = load_file(os.path.join(src, t + ".safetensors"))
    with open(os.path.join(d, "cases.txt"), "w") as idx:
        i = 0
        while f"case{i}.input" in f:
            x = f[f"case{i}.input"]
            has_im = f"case{i}.imatrix" in f
            for part in ("input", "quant", "dequant") + (("imatrix",) if has_im else ()):
                f[f"case{i}.{part}"].tofile(os.path.join(d, f"case{i}.{part}.bin"))
            idx.write(f"case{i} {x.shape[0]} {x.shape[1]} {int(has_im)}\n")
            i += 1
PY

real=.devdeps/real
if [ ! -f "$real/tensors.txt" ]; then
  real=$work/real
  python3 - ../shared/fixtures/models/small-llama/model.safetensors "$real" <<'PY'
import os, sys
import numpy as np
from safetensors.numpy import load_file
t = load_file(sys.argv[1])
os.makedirs(sys.argv[2])
sel = [("l0_q_proj", "model.layers.0.self_attn.q_proj.weight", None),
       ("l2_v_proj", "model.layers.2.self_attn.v_proj.weight", None),
       ("l3_down_proj", "model.layers.3.mlp.down_proj.weight", None),
       ("l5_up_proj", "model.layers.5.mlp.up_proj.weight", None),
       ("embed_rows", "model.embed_tokens.weight", 512)]
with open(os.path.join(sys.argv[2], "tensors.txt"), "w") as f:
    for name, key, rows in sel:
        a = np.ascontiguousarray(t[key].astype(np.float32)[:rows])
        a.tofile(os.path.join(sys.argv[2], name + ".bin"))
        f.write(f"{name} {a.shape[0]} {a.shape[1]}\n")
PY
fi

wait "$build" || true
bin=$work/blocks_cuda
if [ ! -f "$work/build.ok" ]; then
  echo "nvcc build failed (see ptxas.txt); using the carried .devdeps/bin/blocks_cuda"
  tail -20 "$out/ptxas.txt" || true
  bin=.devdeps/bin/blocks_cuda
fi
grep -E "Compiling entry|registers|stack frame" "$out/ptxas.txt" | paste - - - |
  sed -E 's/ptxas info *: //g; s/Compiling entry function .(_Z[^ ]*). for .sm_90./\1/' |
  grep -E "encode_kernel" | sed -E 's/.*quant([0-9]+)?([a-z0-9_]+)11cuda_traits/\2/' | head -40 \
  > "$out/ptxas_summary.txt" || true

status=0
"$bin" "$work/golden" "$real" --full "$out" | tee "$out/results.txt" || status=$?

if command -v compute-sanitizer > /dev/null; then
  if timeout 150 compute-sanitizer --tool memcheck --error-exitcode 3 "$bin" "$work/golden" "$real" \
       --goldens > "$out/memcheck.txt" 2>&1; then
    echo "memcheck: clean ($(tail -1 "$out/memcheck.txt"))"
  else
    echo "memcheck: FAILED or timed out (see memcheck.txt)"; tail -20 "$out/memcheck.txt"
  fi
fi
exit "$status"
