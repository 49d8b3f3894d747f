#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's main command: install what is missing, build the qforge tool, and run the flow on a
# model folder (default: the embedded tiny-llama): GGUF files in F16, Q8_0, Q5_K_M and Q4_K_M, each
# then run by qforge's engine against the FP16 checkpoint on held-out text -- size, bits per weight,
# perplexity, KL divergence, top-1 agreement and decode speed in one table. (AWQ and the full
# benchmark command join here as they land.)
#
#   tools/quickstart.sh [MODEL_DIR] [OUT_DIR] [EVAL_JSONL]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model=${1:-$root/examples/models/tiny-llama}
out=${2:-$root/out}
eval_file=${3:-$root/examples/data/eval.jsonl}
QFORGE_SKIP_LLAMA_CPP=${QFORGE_SKIP_LLAMA_CPP:-1} "$root/tools/install-deps.sh"
build=${QFORGE_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target qforge_cli -j"$(nproc)"
qforge=$build/bin/qforge
mkdir -p "$out/gguf"
name=$(basename "$model")

echo "== GGUF: $model -> $out/gguf" >&2
for type in f16 q8_0 q5_k_m q4_k_m; do
  "$qforge" gguf "$model" --type "$type" -o "$out/gguf/$name-$type.gguf"
done

echo "== evaluation against the checkpoint on $(wc -l < "$eval_file") documents of $eval_file" >&2
table="| format | size (MiB) | bits/weight | perplexity | vs FP16 | mean KL | top-1 | decode tok/s |"
table+=$'\n'"|---|---|---|---|---|---|---|---|"
for type in f16 q8_0 q5_k_m q4_k_m; do
  file="$out/gguf/$name-$type.gguf"
  log=$("$qforge" eval "$file" --eval "$eval_file" --tokenizer "$model" --ref "$model" 2>&1)
  bpw=$("$qforge" inspect "$file" --no-tensors | sed -n 's/.*, \([0-9.]*\) bits per weight/\1/p')
  size=$(awk -v b="$(stat -c %s "$file")" 'BEGIN { printf "%.2f", b / 1048576 }')
  ppl=$(sed -n 's/^perplexity: \([0-9.]*\) (reference [0-9.]*, \([-+0-9.]* %\)).*/\1 | \2/p' <<<"$log")
  kl=$(sed -n 's/^KL divergence: mean \([0-9.e-]*\),.*top-1 agreement \([0-9.]* %\)/\1 | \2/p' <<<"$log")
  speed=$(sed -n 's/.*decode \([0-9.]*\) tok\/s.*/\1/p' <<<"$log")
  table+=$'\n'"| $type | $size | $bpw | $ppl | $kl | $speed |"
done
echo
echo "$table"
echo
echo "Artefacts in $out/gguf (llama.cpp / Ollama load them as they are)."
