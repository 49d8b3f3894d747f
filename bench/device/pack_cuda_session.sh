#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Packs what bench/device/run_cuda_session.sh needs into .devdeps/cudaeng (ignored by git, carried
# to the GPU machine): the binaries of a QFORGE_CUDA=ON build (qforge, test_cuda_session,
# qforge_bench_cuda_session, and for `tiny` test_cuda_matvec; stripped), the shared libraries they need that a bare CUDA image
# lacks (PCRE2, utf8proc, Google Benchmark, the CUDA runtime), and the fixture files of one stage
# (`tiny`: tiny-llama's logits and golden ids, tiny-qwen3, eval data; `small`: small-llama; `awq`:
# qforge and test_awq_cuda_backend with tiny-qwen3 and the data), so each
# carry stays under the device tool's 64 MiB (the small stage xz-compressed). Usage: pack_cuda_session.sh BUILD_DIR tiny|small|awq
set -euo pipefail
build=$1 stage=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fx=${QFORGE_FIXTURES_DIR:-$root/../shared/fixtures}
dep=$root/.devdeps/cudaeng
rm -rf "$dep"
mkdir -p "$dep/bin" "$dep/lib" "$dep/fx/data"
if [ "$stage" = awq ]; then  # the AWQ search: its GPU test and the CLI
  bins="bin/qforge tests/test_awq_cuda_backend"
else
  bins="bin/qforge tests/test_cuda_session bin/qforge_bench_cuda_session"
fi
for b in $bins; do
  strip -o "$dep/bin/$(basename "$b")" "$build/$b"
done
[ "$stage" = tiny ] && strip -o "$dep/bin/test_cuda_matvec" "$build/tests/test_cuda_matvec"
ldd "$dep"/bin/* | grep -E 'pcre2|utf8proc|benchmark|cudart' | awk '{print $3}' | sort -u |
  while read -r l; do cp -L "$l" "$dep/lib/"; done
cp "$fx/data/eval.jsonl" "$fx/data/calibration.jsonl" "$dep/fx/data/"
if [ "$stage" = tiny ] || [ "$stage" = awq ]; then
  mkdir -p "$dep/fx/models/tiny-llama" "$dep/fx/models/tiny-qwen3"
  [ "$stage" = tiny ] &&
    cp "$fx/models/tiny-llama/"{reference_logits.safetensors,tokenizer_golden.jsonl} "$dep/fx/models/tiny-llama/"
  (cd "$fx/models/tiny-qwen3" && cp config.json generation_config.json model.safetensors \
     reference_logits.safetensors tokenizer.json tokenizer_config.json "$dep/fx/models/tiny-qwen3/")
else
  mkdir -p "$dep/fx/models/small-llama"
  (cd "$fx/models/small-llama" && cp config.json generation_config.json model.safetensors \
     reference_logits.safetensors tokenizer.json tokenizer_config.json "$dep/fx/models/small-llama/")
  # small-llama's 41 MB leave no room for the bench binary, and the rest only fits compressed
  # (run_cuda_session.sh unpacks *.xz).
  rm "$dep/bin/qforge_bench_cuda_session"
  xz -T2 -6 "$dep/bin/qforge" "$dep/bin/test_cuda_session" "$dep/fx/models/small-llama/model.safetensors" \
    "$dep/fx/models/small-llama/reference_logits.safetensors"
fi
if [ "$stage" = tiny ]; then  # compressed: with the working tree the carry must stay under 64 MiB
  xz -T2 -6 "$dep/bin/test_cuda_matvec" "$dep/bin/qforge_bench_cuda_session"
fi
du -sh "$dep"
