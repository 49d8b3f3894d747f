#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hugging Face transformers reference for engine::sliding_perplexity (float32, CPU).

The stream: the first --docs documents of data/eval.jsonl, each tokenized with the model's own
tokenizer.json (post-processor included, so each starts with its BOS), concatenated whole in file
order -- what `qforge eval MODEL --eval FILE --max-docs N --window W --stride S` evaluates.
Windows of W tokens start every S tokens; each window scores only the tokens the previous window
did not (the first window: every token after its first), with the window's earlier tokens as
context; the last window ends at the stream's end. Log-probabilities in float64 from the float32
logits, NLL summed exactly (no mean-times-count approximation).

    python3 tests/engine/reference_sliding_ppl.py /work/shared/fixtures \\
        > tests/engine/data/sliding_ppl_reference.json

tests/engine/check_sliding_ppl.py reruns this when torch and transformers are importable and
compares with the stored file; sliding_perplexity_test.cpp and the CLI check read the stored file.
"""
import argparse
import json
import math
import sys

import torch
import transformers
from tokenizers import Tokenizer

PAIRS = [(256, 128), (128, 128), (200, 37), (512, 256)]


def stream_ids(fixtures, model, docs):
    tok = Tokenizer.from_file(f"{fixtures}/models/{model}/tokenizer.json")
    ids = []
    with open(f"{fixtures}/data/eval.jsonl") as f:
        for line in f:
            if docs == 0:
                break
            ids += tok.encode(json.loads(line)["text"], add_special_tokens=True).ids
            docs -= 1
    return ids


def sliding_nll(model, ids, window, stride):
    """(summed NLL, scored tokens, windows)."""
    n, nll, scored, windows, scored_to = len(ids), 0.0, 0, 0, 0
    begin = 0
    while True:
        end = min(begin + window, n)
        first = max(scored_to, begin + 1)  # first target scored by this window
        x = torch.tensor([ids[begin:end]])
        with torch.no_grad():
            logits = model(input_ids=x).logits[0].double()
        logp = torch.log_softmax(logits, -1)
        # Target t is predicted by position t - 1 - begin of the window.
        t = torch.arange(first, end)
        nll -= float(logp[t - 1 - begin, torch.tensor(ids)[t]].sum())
        scored += end - first
        windows += 1
        scored_to = end
        begin += stride
        if end == n or begin + 1 >= n:  # a one-token last chunk has nothing to score
            return nll, scored, windows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fixtures")
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--docs", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        f"{a.fixtures}/models/{a.model}", dtype=torch.float32)
    model.eval()
    ids = stream_ids(a.fixtures, a.model, a.docs)
    results = []
    for w, s in PAIRS:
        nll, tokens, windows = sliding_nll(model, ids, w, s)
        results.append({"window": w, "stride": s, "windows": windows, "tokens": tokens,
                        "nll": nll, "ppl": math.exp(nll / tokens)})
    json.dump({
        "command": f"python3 tests/engine/reference_sliding_ppl.py FIXTURES --model {a.model} --docs {a.docs}",
        "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, float32 CPU",
        "model": a.model, "docs": a.docs, "stream_tokens": len(ids), "results": results,
    }, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
