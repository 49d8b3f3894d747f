#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks and times engine::cuda_session on a GPU machine that has the CUDA runtime and cuBLAS but
# none of the project's -dev packages: runs binaries built elsewhere with QFORGE_CUDA=ON
# (bench/device/pack_cuda_session.sh puts them, their non-CUDA shared libraries and the fixture
# files a stage needs into .devdeps/cudaeng; the fixtures are assembled under
# /work/shared/fixtures, where the test binary looks, with tiny-llama's weights taken from
# examples/models). Stage `tiny`: test_cuda_session (fixture logits of tiny-llama / tiny-qwen3,
# GGUF Q4_K_M / Q8_0 / Q5_K_M and an AWQ folder made here with `qforge awq` against the CPU
# engine), `qforge eval --device cpu|cuda` perplexity of the first 100 eval docs of tiny-llama and
# its GGUF / AWQ artefacts, and the 7B-shaped speed run (qforge_bench_cuda_session). Stage `small`:
# the logits test on small-llama and `qforge eval` perplexity and speed of small-llama on both
# devices. Stage `awq`: test_awq_cuda_backend, with GPTQ_FIXTURES=1 `qforge awq --gptq --device
# cuda` on tiny-llama / tiny-qwen3 with their perplexity, then the 7B-shaped search (LAYERS, extra
# flags in AWQ_FLAGS). Results in $OUT (default out/cuda_session). Exit status: the test's.
set -uo pipefail
stage=${1:-tiny}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
dep=$root/.devdeps/cudaeng
out=${OUT:-$root/out/cuda_session}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# pack_cuda_session.sh xz-compresses the larger files of a stage that would not fit otherwise.
python3 - "$dep" <<'PY'
import lzma, os, shutil, sys
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        if f.endswith(".xz"):
            p = os.path.join(d, f)
            with lzma.open(p) as i, open(p[:-3], "wb") as o:
                shutil.copyfileobj(i, o)
            os.chmod(p[:-3], 0o755)
            os.remove(p)
PY
export LD_LIBRARY_PATH=$dep/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if ! ldconfig -p | grep -q libcublas.so.13 && [ ! -e /usr/local/cuda/lib64/libcublas.so.13 ]; then
  d=$(python3 -c 'import nvidia.cublas, os; print(list(nvidia.cublas.__path__)[0])' 2> /dev/null || true)
  [ -n "$d" ] && export LD_LIBRARY_PATH=$d/lib:$LD_LIBRARY_PATH
fi
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,memory.total --format=csv || true
  nproc; } | tee "$out/gpu_$stage.txt"

# Fixtures where QFORGE_FIXTURES (compiled into the test) points, from what was carried; the
# test's scratch folder (QFORGE_TEST_TMP) is created first, which also makes the path resolvable.
fx=${QFORGE_FIXTURES_DIR:-/work/shared/fixtures}
mkdir -p "${QFORGE_TEST_TMP_DIR:-/work/main/build-cudaeng2/tests/tmp}" "$fx/models" "$fx/data"
cp -r "$dep/fx/." "$fx/"
mkdir -p "$fx/models/tiny-llama"
for f in examples/models/tiny-llama/*; do ln -sf "$root/$f" "$fx/models/tiny-llama/"; done
q=$dep/bin/qforge
eval_docs=$fx/data/eval.jsonl

ppl() {  # model, label, extra args...
  local m=$1 label=$2; shift 2
  for dev in cpu cuda; do
    echo "== $label --device $dev" | tee -a "$out/eval_$stage.txt"
    "$q" eval "$m" --eval "$eval_docs" --max-docs 100 --device "$dev" "$@" 2>&1 | tee -a "$out/eval_$stage.txt"
  done
}

summary() {  # the measured values the test prints (WARN) and its totals
  grep -E "max \|d logit|perplexity CPU|not present|not run|FAILED|test cases|assertions" "$1" || true
}

status=0
if [ "$stage" = tiny ]; then
  "$q" awq examples/models/tiny-llama --calib examples/data/calibration.jsonl --samples 16 \
    -o "$work/awq" > "$out/awq.log" 2>&1 || { echo "qforge awq failed"; tail "$out/awq.log"; }
  "$q" gguf "$fx/models/tiny-llama" -o "$work/f16.gguf" -q
  for t in Q4_K_M Q8_0; do "$q" quantize "$work/f16.gguf" "$work/$t.gguf" "$t" -q; done
  QFORGE_TEST_AWQ=$work/awq timeout 300 "$dep/bin/test_cuda_session" -s > "$out/test_tiny.txt" 2>&1
  status=$?
  summary "$out/test_tiny.txt"
  if [ -x "$dep/bin/test_cuda_matvec" ]; then  # the matvecs against the CPU engine's products
    timeout 120 "$dep/bin/test_cuda_matvec" -s > "$out/test_matvec.txt" 2>&1 || status=1
    summary "$out/test_matvec.txt"
  fi
  if [ -z "${QFORGE_SKIP_EVAL:-}" ]; then  # set: the test and the 7B speed run only
    ppl "$fx/models/tiny-llama" tiny-llama --speed-prompt 128 --speed-decode 64
    ppl "$work/Q4_K_M.gguf" tiny-llama-Q4_K_M --no-speed --tokenizer "$fx/models/tiny-llama"
    ppl "$work/Q8_0.gguf" tiny-llama-Q8_0 --no-speed --tokenizer "$fx/models/tiny-llama"
    [ -d "$work/awq" ] && ppl "$work/awq" tiny-llama-AWQ --no-speed --tokenizer "$fx/models/tiny-llama"
  fi
  QFORGE_BENCH_DIR=${QFORGE_BENCH_DIR:-/dev/shm} timeout 420 "$dep/bin/qforge_bench_cuda_session" 2>&1 |
    tee "$out/bench_7b.txt"
elif [ "$stage" = awq ]; then
  # The AWQ search on the GPU: its test against the CPU backend on the fixtures, then a 7B-shaped
  # checkpoint with random weights (LAYERS of them, default 32) over 128 x 512 calibration tokens,
  # timed end to end with the GPU memory sampled beside it.
  timeout "${TEST_TIMEOUT:-400}" "$dep/bin/test_awq_cuda_backend" -d yes > "$work/test_awq.txt" 2>&1
  status=$?
  cut -c1-300 "$work/test_awq.txt" > "$out/test_awq.txt"  # failed vector checks print whole vectors
  grep -E "done|compare_backends|cuda backend vs cpu|AWQ of tiny-llama|FAILED|with expansion|s: awq|test cases|assertions" \
    -A1 "$out/test_awq.txt" | head -60
  # Error-compensated rounding with the search on the GPU, on the fixtures (perplexity by the
  # fixtures' protocol, every eval doc), when GPTQ_FIXTURES is set.
  if [ -n "${GPTQ_FIXTURES:-}" ]; then
    for m in tiny-llama tiny-qwen3; do
      /usr/bin/time -f "wall %e s, peak RSS %M KB" "$q" awq "$fx/models/$m" --calib "$fx/data/calibration.jsonl" \
        --device cuda --gptq -o "$work/gptq-$m" -q > "$out/gptq-$m.txt" 2>&1
      "$q" eval "$work/gptq-$m" --eval "$eval_docs" --device cuda --no-speed >> "$out/gptq-$m.txt" 2>&1
      grep -E "calibration tokens|wall|perplexity" "$out/gptq-$m.txt"
    done
  fi
  if [ -z "${QFORGE_SKIP_7B:-}" ]; then
    m=/dev/shm/awq7b
    python3 bench/device/make_random_llama.py "$m" --layers "${LAYERS:-32}" \
      --tokenizer-from examples/models/tiny-llama --texts "$eval_docs" --calib-out "$m.calib.jsonl" \
      2>&1 | tail -2
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$work/mem.txt" &
    smi=$!
    tm=()
    [ -x /usr/bin/time ] && tm=(/usr/bin/time -v)
    "${tm[@]}" "$q" awq "$m" --calib "$m.calib.jsonl" --samples 100000 --block-len 512 --max-seq-len 4096 \
      --device cuda --cuda-math "${CUDA_MATH:-f16}" -o /dev/shm/awq7b-out --force ${AWQ_FLAGS:-} \
      > "$out/awq7b.txt" 2> "$out/awq7b.err"
    echo "qforge awq rc $?" >> "$out/awq7b.txt"
    kill "$smi"
    echo "nvidia-smi peak memory.used MiB: $(sort -n "$work/mem.txt" | tail -1)" | tee -a "$out/awq7b.txt"
    grep -E "calibration:|Elapsed|Maximum resident" "$out/awq7b.err" | tee -a "$out/awq7b.txt"
    tail -5 "$out/awq7b.txt"
  fi
else
  timeout 200 "$dep/bin/test_cuda_session" -s \
    "cuda session: fixture logits*,cuda session: f16*,cuda session: measurements*" \
    > "$out/test_small.txt" 2>&1
  status=$?
  summary "$out/test_small.txt"
  [ -n "${QFORGE_SKIP_EVAL:-}" ] && exit "$status"
  ppl "$fx/models/small-llama" small-llama --speed-prompt 512 --speed-decode 128
  "$q" eval "$fx/models/small-llama" --device cuda --cuda-f16 --speed-prompt 512 --speed-decode 128 2>&1 |
    tee -a "$out/eval_$stage.txt"
fi
exit "$status"
