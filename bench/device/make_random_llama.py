#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes a Llama-shaped HF checkpoint with random fp16 weights (speed runs need the shapes, not
the values): config.json, model.safetensors, and the tokenizer files of --tokenizer-from (its
vocabulary sizes the embeddings). Weights are N(0, 0.02), norms 1, as a freshly initialised
Llama; drawn on the GPU when torch sees one. Also writes, with --calib-out, a JSONL of {"text"}
lines from --texts whose token count fills exactly --blocks blocks of --block-len tokens (what
`qforge awq --block-len` then cuts), so the speed run sees AutoAWQ's 128 x 512 tokens."""
import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--ffn", type=int, default=11008)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=32)
    ap.add_argument("--tokenizer-from", required=True)
    ap.add_argument("--texts", help="JSONL with a 'text' field per line")
    ap.add_argument("--calib-out")
    ap.add_argument("--blocks", type=int, default=128)
    ap.add_argument("--block-len", type=int, default=512)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    src = json.load(open(os.path.join(a.tokenizer_from, "config.json")))
    vocab = src["vocab_size"]
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        p = os.path.join(a.tokenizer_from, f)
        if os.path.exists(p):
            shutil.copy(p, a.out)
    hd = a.hidden // a.heads
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": a.hidden,
           "intermediate_size": a.ffn, "num_hidden_layers": a.layers,
           "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "head_dim": hd,
           "vocab_size": vocab, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "tie_word_embeddings": False, "hidden_act": "silu",
           "bos_token_id": src.get("bos_token_id"), "eos_token_id": src.get("eos_token_id"),
           "torch_dtype": "float16"}
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(0)

    def rnd(*shape):
        return (torch.randn(*shape, generator=g, device=dev) * 0.02).half().cpu()

    t = {"model.embed_tokens.weight": rnd(vocab, a.hidden), "lm_head.weight": rnd(vocab, a.hidden),
         "model.norm.weight": torch.ones(a.hidden, dtype=torch.float16)}
    kv = a.kv_heads * hd
    for i in range(a.layers):
        p = f"model.layers.{i}."
        for n, shape in (("self_attn.q_proj", (a.hidden, a.hidden)), ("self_attn.k_proj", (kv, a.hidden)),
                         ("self_attn.v_proj", (kv, a.hidden)), ("self_attn.o_proj", (a.hidden, a.hidden)),
                         ("mlp.gate_proj", (a.ffn, a.hidden)), ("mlp.up_proj", (a.ffn, a.hidden)),
                         ("mlp.down_proj", (a.hidden, a.ffn))):
            t[p + n + ".weight"] = rnd(*shape)
        for n in ("input_layernorm", "post_attention_layernorm"):
            t[p + n + ".weight"] = torch.ones(a.hidden, dtype=torch.float16)
    save_file(t, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})

    if a.calib_out:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(a.tokenizer_from, "tokenizer.json"))
        want, cap = a.blocks * a.block_len, (a.blocks + 1) * a.block_len
        total, lines = 0, []
        texts = [json.loads(l)["text"] for l in open(a.texts) if l.strip()]
        while total < want:
            before = total
            for s in texts:
                n = len(tok.encode(s).ids)
                if total + n < cap:
                    lines.append(s)
                    total += n
                if total >= want:
                    break
            if total == before:
                raise SystemExit(f"{a.texts}: no text fits the remaining {cap - total} tokens")
        with open(a.calib_out, "w") as f:
            for s in lines:
                f.write(json.dumps({"text": s}) + "\n")
        print(f"{a.calib_out}: {len(lines)} texts, {total} tokens")


if __name__ == "__main__":
    main()
