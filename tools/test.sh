#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's test command: install what is missing, configure, build everything (tests, tools,
# benchmarks, CUDA kernels when nvcc exists), then run the whole ctest suite (unit, interop with
# llama.cpp and the gguf package, find_package consumers).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/tools/install-deps.sh"
build=${QFORGE_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release ${QFORGE_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j"$(nproc)" "$@"
