#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""llama.cpp's CPU speed on GGUF files, through llama-cpp-python, with the workload of
qforge's engine benchmark (bench/engine_bench.cpp, engine::measure_speed): a prompt of ids
1, 2, ... (wrapped to the vocabulary) evaluated as one batch, then single-token decode steps after
it; the best of --reps repetitions of each.

    python3 bench/llama_cpp_speed.py --threads 2 --prompt 128 --decode 64 a.gguf b.gguf

Prints one JSON line per file: {"file", "threads", "buffers", "prefill_tok_s", "decode_tok_s",
"ttft_ms"}; "buffers" says whether llama.cpp used its extra CPU buffer types (AMX / repacked
layouts, its default) or plain ones (--buffers; auto picks plain on AMX hosts, where
llama-cpp-python 0.3.36 crashes with the extra ones: tests/interop/llama_cpp_buffers.py).
"""
import argparse
import json
import os
import sys
import time

import llama_cpp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "interop"))
from llama_cpp_buffers import choose_buffers  # noqa: E402


def measure(path, threads, prompt, decode, reps, buffers):
    llm = llama_cpp.Llama(
        model_path=path,
        n_ctx=max(512, prompt + decode),
        n_batch=max(512, prompt),
        n_ubatch=max(512, prompt),
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=False,
        verbose=False,
    )
    vocab = llm.n_vocab()
    ids = [1 + i % (vocab - 1) for i in range(prompt)]
    best_prefill = best_decode = float("inf")
    for _ in range(reps):
        llm.reset()
        llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
        t0 = time.perf_counter()
        llm.eval(ids)
        best_prefill = min(best_prefill, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(decode):
            llm.eval([1 + (prompt + i) % (vocab - 1)])
        if decode:
            best_decode = min(best_decode, time.perf_counter() - t0)
    return {
        "file": path,
        "threads": threads,
        "buffers": buffers,
        "prefill_tok_s": prompt / best_prefill,
        "decode_tok_s": decode / best_decode if decode else 0.0,
        "ttft_ms": 1e3 * best_prefill,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--buffers", choices=["auto", "extra", "plain"], default="auto")
    a = ap.parse_args()
    buffers = choose_buffers(llama_cpp, a.buffers)
    for f in a.files:
        print(json.dumps(measure(f, a.threads, a.prompt, a.decode, a.reps, buffers)), flush=True)


if __name__ == "__main__":
    main()
