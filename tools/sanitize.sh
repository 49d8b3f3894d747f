#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer: configures a separate build
# (QFORGE_SANITIZE=address,undefined; CUDA, benchmarks, examples and the CLI off), builds the test
# binaries of the chosen areas and runs their ctest cases with halt_on_error, so any report fails
# the run. By default the areas that parse or encode untrusted bytes (core, format, quant, convert,
# tokenize, fuzz regressions, reliability): a full sanitized build of every test takes over an hour
# on 2 cores, and the engine / awq / report tests reach the same readers and kernels.
# Usage: tools/sanitize.sh [extra ctest args]. QFORGE_SANITIZE_AREAS="all" (or a list of tests/
# folders) widens it; QFORGE_SANITIZE_DIR picks the build folder.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${QFORGE_SANITIZE_DIR:-$root/build-sanitize}
areas=${QFORGE_SANITIZE_AREAS:-core format quant convert tokenize fuzz reliability}
[ "$areas" = all ] && areas="core format quant convert tokenize engine awq report fuzz reliability"
names=()
for a in $areas; do
  for f in "$root"/tests/"$a"/*_test.cpp; do
    [ -e "$f" ] || continue
    b=$(basename "$f" .cpp); names+=("${b%_test}")
  done
done
start=$(date +%s)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DQFORGE_SANITIZE=address,undefined -DQFORGE_CUDA=OFF -DQFORGE_BUILD_BENCH=OFF \
  -DQFORGE_BUILD_EXAMPLES=OFF -DQFORGE_BUILD_TOOLS=OFF ${QFORGE_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${names[@]/#/test_}"
built=$(date +%s)
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
cd "$build"
regex="^($(IFS='|'; echo "${names[*]}")):"
status=0
# Whole fixture models through every llama.cpp mix: over 10 minutes each under ASan, and the same
# encoders run on the golden cases of tests/quant here. QFORGE_SANITIZE_SLOW=1 keeps them.
slow='on the fixture models|quantized bytes equal llama-quantize --imatrix'
[ "${QFORGE_SANITIZE_SLOW:-0}" = 1 ] && slow='^$'
ctest --output-on-failure -j"$(nproc)" -R "$regex" -E "$slow" "$@" || status=$?
echo "qforge sanitize: ${#names[@]} test binaries; build $((built - start)) s, tests $(($(date +%s) - built)) s" >&2
exit $status
