#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Perplexity of a qforge AWQ folder under Hugging Face transformers, for comparison with
`qforge eval`. The packed linears are dequantized with an implementation written from AutoAWQ's
documented GEMM layout (check_awq.py's) and loaded into the stock LlamaForCausalLM / Qwen3ForCausalLM
built from the folder's config.json (quantization_config removed), float32 compute.

Usage: awq_hf_ppl.py AWQ_DIR EVAL_JSONL [MAX_DOCS]"""
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_awq import dequant, load_dir  # noqa: E402


def main():
    d, evf = sys.argv[1], sys.argv[2]
    max_docs = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    cfg = AutoConfig.from_pretrained(d)
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    t = load_dir(d)
    sd = {}
    for k, v in t.items():
        if k.endswith(".qweight"):
            b = k[: -len(".qweight")]
            w = dequant(v, t[b + ".qzeros"], t[b + ".scales"], np.float16).T
            sd[b + ".weight"] = torch.from_numpy(np.ascontiguousarray(w.astype(np.float32)))
        elif not k.endswith((".qzeros", ".scales")):
            sd[k] = torch.from_numpy(v.astype(np.float32))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not (cfg.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        print("missing", missing, "unexpected", unexpected)
        return 1
    if cfg.tie_word_embeddings:
        model.tie_weights()
    model.eval()
    tok = AutoTokenizer.from_pretrained(d)
    nll, n, docs = 0.0, 0, 0
    with torch.no_grad():
        for line in open(evf):
            if max_docs and docs == max_docs:
                break
            ids = tok(json.loads(line)["text"]).input_ids[:512]
            if len(ids) < 2:
                continue
            logits = model(torch.tensor([ids])).logits[0].double()
            lp = torch.log_softmax(logits, -1)
            nll -= lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum().item()
            n += len(ids) - 1
            docs += 1
    print(f"hf perplexity: {np.exp(nll / n):.4f} over {n} tokens of {docs} documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
