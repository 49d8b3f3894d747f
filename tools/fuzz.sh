#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets (tests/fuzz, clang, ASan + UBSan) and runs each for SECONDS (default
# 60), nproc at a time, from the committed seeds plus those tests/fuzz/make_corpus.py builds from the
# fixtures. Prints executions and corpus size per target; a crash, leak, UBSan report, timeout or
# out-of-memory leaves the input in <build>/findings/<target>/ and makes the script fail. Replay one
# with <build>/fuzz/fuzz_<target> FILE; save it under tests/fuzz/regressions/<target>/ once fixed.
# Usage: tools/fuzz.sh [SECONDS] [TARGET...]; QFORGE_FUZZ_DIR picks the build folder.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-60}
shift || true
build=${QFORGE_FUZZ_DIR:-$root/build-fuzz}
command -v clang++ >/dev/null || { echo "qforge fuzz: clang++ is required (apt-get install clang)" >&2; exit 1; }

targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in "$root"/tests/fuzz/*_fuzz.cpp; do b=$(basename "$f"); targets+=("${b%_fuzz.cpp}"); done
fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DQFORGE_BUILD_FUZZ=ON -DQFORGE_SANITIZE=address,undefined -DQFORGE_CUDA=OFF \
  -DQFORGE_BUILD_TESTS=OFF -DQFORGE_BUILD_BENCH=OFF -DQFORGE_BUILD_EXAMPLES=OFF \
  -DQFORGE_BUILD_TOOLS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

# Per-format input bound: large enough for the seeds, small enough that a mutation stays cheap.
max_len() {
  case $1 in
    awq) echo 40000 ;;
    tokenizer) echo 24000 ;;
    imatrix) echo 2048 ;;
    *) echo 4096 ;;
  esac
}
dict() {
  case $1 in
    gguf|imatrix) echo "-dict=$root/tests/fuzz/gguf.dict" ;;
    safetensors|awq|safetensors_index|hf_config|tokenizer|tokenizer_config|calibration|eval_jsonl)
      echo "-dict=$root/tests/fuzz/json.dict" ;;
  esac
}

seeds=$build/seeds
rm -rf "$seeds" && python3 "$root/tests/fuzz/make_corpus.py" "$seeds"
run_one() {
  local t=$1 corpus=$build/corpus/$1 findings=$build/findings/$1 scratch=$build/tmp/$1
  mkdir -p "$corpus" "$findings" "$scratch"
  cp -n "$root/tests/fuzz/corpus/$t/"* "$seeds/$t/"* "$corpus/" 2>/dev/null || true
  # Reader warnings go to stderr by design; the log keeps them out of the summary.
  TMPDIR=$scratch ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$build/fuzz/fuzz_$t" "$corpus" $(dict "$t") -max_len="$(max_len "$t")" -max_total_time="$seconds" \
    -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -artifact_prefix="$findings/" \
    -print_final_stats=1 >"$build/logs/$t.log" 2>&1
}
mkdir -p "$build/logs"
declare -A pid_of
for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= $(nproc))); do wait -n || true; done
  run_one "$t" &
  pid_of[$t]=$!
done
status=0
printf '%-18s %12s %10s %10s  %s\n' target executions exec/s corpus result
for t in "${targets[@]}"; do
  rc=0; wait "${pid_of[$t]}" || rc=$?
  log=$build/logs/$t.log
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  result=ok
  if ((rc != 0)); then
    result="FAILED ($(grep -m1 -oE 'ERROR: [A-Za-z]+: [^ ]+[^(]*|deadly signal|timeout|out-of-memory' "$log" || echo "exit $rc")): see $log"
    status=1
  fi
  printf '%-18s %12s %10s %10s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "$(ls "$build/corpus/$t" | wc -l)" "$result"
done
rm -rf "$build/tmp"
exit $status
