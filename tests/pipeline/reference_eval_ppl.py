#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reference perplexity of the shipped model on the shipped evaluation slice, from stock
transformers + tokenizers in float32 (the fixtures' protocol: model's own tokenizer with its
post-processor, first 512 tokens per document, documents under 2 tokens skipped, exp of the mean
NLL of predicted tokens). The pipeline test holds the pipeline's FP16 row to this number.

    python3 tests/pipeline/reference_eval_ppl.py examples/models/tiny-llama examples/data/eval.jsonl
"""
import json
import math
import sys

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM


def main(model_dir, eval_path, ctx=512):
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model.eval()
    torch.backends.cuda.matmul.allow_tf32 = False
    nll, tokens, docs = 0.0, 0, 0
    with open(eval_path) as f:
        for line in f:
            if not line.strip():
                continue
            ids = tok.encode(json.loads(line)["text"]).ids[:ctx]
            if len(ids) < 2:
                continue
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].double()
            lp = torch.log_softmax(logits[:-1], dim=-1)
            nll -= lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum().item()
            tokens += len(ids) - 1
            docs += 1
    print(json.dumps({"model": model_dir.rstrip("/").split("/")[-1], "eval": eval_path.split("/")[-1],
                      "docs": docs, "tokens": tokens, "ppl": round(math.exp(nll / tokens), 6),
                      "by": "transformers float32"}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
