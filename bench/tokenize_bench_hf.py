# SPDX-License-Identifier: MIT
# The comparison for bench/tokenize_bench.cpp: Hugging Face `tokenizers` (PyPI) encoding the
# fixtures' eval.jsonl with the same tokenizer.json, one thread and all threads. Prints MB/s of
# UTF-8 input, the best of --reps runs (as Google Benchmark's steady state), for
#   encode       Tokenizer.encode(text) per document, in turn (one thread)
#   encode_batch Tokenizer.encode_batch(texts) with RAYON_NUM_THREADS threads (1, then all)
# Each thread count runs in its own process: rayon sizes its pool once, from the environment.
# Usage: python3 tokenize_bench_hf.py [--fixtures DIR] [--model tiny-llama] [--reps 20]
import argparse
import json
import os
import subprocess
import sys
import time


def measure(fixtures, model, reps, threads):
    from tokenizers import Tokenizer  # imported after RAYON_NUM_THREADS is set

    tok = Tokenizer.from_file(os.path.join(fixtures, "models", model, "tokenizer.json"))
    with open(os.path.join(fixtures, "data", "eval.jsonl")) as f:
        texts = [json.loads(line)["text"] for line in f]
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    golden = [json.loads(line) for line in open(os.path.join(fixtures, "models", model,
                                                             "tokenizer_golden.jsonl"))]
    assert all(tok.encode(g["text"]).ids == g["ids"] for g in golden), "golden ids differ"

    def best(fn):
        fn()  # warm the per-thread caches, as the C++ benchmark's first iterations do
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return nbytes / 1e6 / min(times)

    out = {"model": model, "threads": threads, "bytes": nbytes,
           "tokenizers": __import__("tokenizers").__version__}
    if threads == 1:
        out["encode_MBps"] = best(lambda: [tok.encode(t) for t in texts])
    out["encode_batch_MBps"] = best(lambda: tok.encode_batch(texts))
    print(json.dumps(out), flush=True)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=os.environ.get(
        "QFORGE_FIXTURES", os.path.join(here, "..", "..", "shared", "fixtures")))
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="internal: run one measurement")
    a = ap.parse_args()
    if a.threads:
        measure(a.fixtures, a.model, a.reps, a.threads)
        return
    for threads in (1, os.cpu_count() or 1):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
        subprocess.run([sys.executable, __file__, "--fixtures", a.fixtures, "--model", a.model,
                        "--reps", str(a.reps), "--threads", str(threads)], env=env, check=True)


if __name__ == "__main__":
    main()
