#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Independent float32 reference for the engine's perplexity test, in plain numpy.

Reads a fixture checkpoint's safetensors and config.json, runs the Llama / Qwen3 forward pass
written from the transformers definitions (HF half-rotation RoPE, GQA, SwiGLU, qwen3 q/k norms),
and prints the perplexity of the golden eval texts (tokenizer_golden.jsonl entries whose text is in
data/eval.jsonl, HF ids, first 512 tokens, documents under 2 tokens skipped):

    python3 tests/engine/reference_ppl.py /work/shared/fixtures tiny-llama

Output: one JSON line {"model", "docs", "tokens", "nll", "ppl"}. The numbers are pasted into
perplexity_test.cpp; rerun this when the fixtures change.
"""
import json
import sys

import numpy as np


def read_safetensors(path):
    """F32 / F16 / BF16 tensors as float32 (numpy has no bfloat16, so the header is read here)."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        buf = raw[8 + n + b : 8 + n + e]
        if v["dtype"] == "BF16":
            a = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(buf, {"F32": np.float32, "F16": np.float16}[v["dtype"]]).astype(np.float32)
        out[k] = a.reshape(v["shape"])
    return out


def load(fixtures, name):
    d = f"{fixtures}/models/{name}"
    cfg = json.load(open(f"{d}/config.json"))
    return cfg, read_safetensors(f"{d}/model.safetensors")


def rms(x, w, eps):
    return w * (x / np.sqrt(np.mean(x.astype(np.float64) ** 2, -1, keepdims=True) + eps)).astype(np.float32)


def forward(cfg, w, ids):
    T = len(ids)
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or H // nh
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"]
    qwen3 = cfg["model_type"] == "qwen3"
    inv = 1.0 / theta ** (np.arange(0, D, 2, dtype=np.float64) / D)
    ang = np.arange(T)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, -1).astype(np.float32)
    sin = np.concatenate([np.sin(ang)] * 2, -1).astype(np.float32)

    def rope(x):  # [heads, T, D]
        x1, x2 = x[..., : D // 2], x[..., D // 2 :]
        return x * cos + np.concatenate([-x2, x1], -1) * sin

    x = w["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((T, T), -np.inf, np.float32), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, nh, D).transpose(1, 0, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, nkv, D).transpose(1, 0, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, nkv, D).transpose(1, 0, 2)
        if qwen3:
            q = rms(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q), rope(k)
        k = np.repeat(k, nh // nkv, 0)
        v = np.repeat(v, nh // nkv, 0)
        s = q @ k.transpose(0, 2, 1) / np.float32(np.sqrt(D)) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(T, nh * D)
        x = x + a @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"], eps)
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def main():
    fixtures, name = sys.argv[1], sys.argv[2]
    cfg, w = load(fixtures, name)
    evals = {json.loads(l)["text"] for l in open(f"{fixtures}/data/eval.jsonl")}
    docs = [json.loads(l) for l in open(f"{fixtures}/models/{name}/tokenizer_golden.jsonl")]
    nll, n, nd = 0.0, 0, 0
    for d in docs:
        if d["text"] not in evals:
            continue
        ids = d["ids"][:512]
        if len(ids) < 2:
            continue
        logits = forward(cfg, w, np.array(ids)).astype(np.float64)
        m = logits.max(-1, keepdims=True)
        lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[:, 0]
        nll += float(np.sum(lse[:-1] - logits[np.arange(len(ids) - 1), ids[1:]]))
        n += len(ids) - 1
        nd += 1
    print(json.dumps({"model": name, "docs": nd, "tokens": n, "nll": nll, "ppl": float(np.exp(nll / n))}))


if __name__ == "__main__":
    main()
