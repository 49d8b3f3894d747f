#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's main command: install what is missing, build the qforge tool, and run the flow on a
# model folder (default: the embedded tiny-llama) -- today the HF -> GGUF stage: F16 and Q8_0 GGUF
# files that llama.cpp loads, and their inspection. Later stages (AWQ, K-quant mixes, the benchmark
# table) join here as they land.
#
#   tools/quickstart.sh [MODEL_DIR] [OUT_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model=${1:-$root/examples/models/tiny-llama}
out=${2:-$root/out}
QFORGE_SKIP_LLAMA_CPP=${QFORGE_SKIP_LLAMA_CPP:-1} "$root/tools/install-deps.sh"
build=${QFORGE_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target qforge_cli -j"$(nproc)"
qforge=$build/bin/qforge
mkdir -p "$out/gguf"
name=$(basename "$model")
for type in f16 q8_0; do
  "$qforge" gguf "$model" --type "$type" -o "$out/gguf/$name-$type.gguf"
done
"$qforge" inspect "$out/gguf/$name-q8_0.gguf" --no-tensors --max-array 4
echo
ls -l "$out/gguf"
