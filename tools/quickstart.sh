#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's main command: install what is missing, build the qforge tool, then run
# `qforge pipeline` -- FP16 checkpoint -> AWQ checkpoint + GGUF F16 / Q8_0 / Q5_K_M / Q4_K_M ->
# one benchmark table (size, speed, memory, perplexity, KL, tasks) with advice and a picture.
# With no arguments it runs on the tiny model and data shipped in examples/ and writes to out/.
#
#   tools/quickstart.sh [MODEL_DIR] [qforge pipeline options, e.g. --calib F --eval F -o DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QFORGE_SKIP_LLAMA_CPP=${QFORGE_SKIP_LLAMA_CPP:-1} "$root/tools/install-deps.sh"
build=${QFORGE_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target qforge_cli -j"$(nproc)"
out=(-o "$root/out")
for arg in "$@"; do [[ $arg == -o || $arg == --out || $arg == --out=* ]] && out=(); done
exec "$build/bin/qforge" pipeline "${out[@]}" "$@"
