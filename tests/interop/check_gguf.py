#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Interop: qforge's GGUF files read back with the `gguf` package (the reader maintained with
llama.cpp) and checked tensor by tensor against the safetensors checkpoint, key by key against
config.json and tokenizer.json. The expected values are computed here with numpy, independently of
qforge: the q/k permutation is llama.cpp's reshape/swapaxes formula, Q8_0 blocks come from gguf-py's
own numpy quantizer.
"""
import argparse, json, os, subprocess, sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize as gguf_quantize
from safetensors.numpy import load_file

HF_TO_GGUF = {
    "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias", "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
}
TYPES = {"f32": T.F32, "f16": T.F16, "bf16": T.BF16, "q8_0": T.Q8_0}
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}


def load_bf16_aware(path):
    """safetensors.numpy cannot hold bf16: read the raw header and widen bf16 to float32."""
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[b:e]
        if info["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype={"F16": np.float16, "F32": np.float32}[info["dtype"]])
        out[name] = (a.reshape(info["shape"]), info["dtype"])
    return out


def permute(w, n_head):
    """llama.cpp's q/k row permutation for LLaMA-style RoPE."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def bf16_round(a):
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return r


def expected_tensors(model_dir, cfg, out_type):
    weights = load_bf16_aware(os.path.join(model_dir, "model.safetensors"))
    llama_rope = cfg["model_type"] in ("llama", "mistral")
    tied = cfg.get("tie_word_embeddings", False)
    exp = {}
    for name, (w, dtype) in weights.items():
        if name == "model.embed_tokens.weight":
            g = "token_embd.weight"
        elif name == "model.norm.weight":
            g = "output_norm.weight"
        elif name == "lm_head.weight":
            if tied:
                continue
            g = "output.weight"
        else:
            parts = name.split(".")
            g = f"blk.{parts[2]}." + HF_TO_GGUF[".".join(parts[3:])]
        if llama_rope and ".self_attn.q_proj." in name:
            w = permute(w, cfg["num_attention_heads"])
        if llama_rope and ".self_attn.k_proj." in name:
            w = permute(w, cfg["num_key_value_heads"])
        exp[g] = (w, dtype)
    return exp


def check_model(qforge, model_dir, tmp, out_type, failures):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    out = os.path.join(tmp, f"{os.path.basename(model_dir)}-{out_type}.gguf")
    subprocess.run([qforge, "gguf", model_dir, "-o", out, "--type", out_type, "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    r = gguf.GGUFReader(out)
    where = f"{os.path.basename(out)}"

    def fail(msg):
        failures.append(f"{where}: {msg}")

    def field(key):
        f = r.fields.get(key)
        if f is None:
            fail(f"missing key {key}")
            return None
        return f.contents()

    arch = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}[cfg["model_type"]]
    expect = {
        "general.architecture": arch,
        f"{arch}.block_count": cfg["num_hidden_layers"],
        f"{arch}.context_length": cfg["max_position_embeddings"],
        f"{arch}.embedding_length": cfg["hidden_size"],
        f"{arch}.feed_forward_length": cfg["intermediate_size"],
        f"{arch}.attention.head_count": cfg["num_attention_heads"],
        f"{arch}.attention.head_count_kv": cfg["num_key_value_heads"],
        "general.file_type": FILE_TYPES[out_type],
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "qwen2",
    }
    for k, v in expect.items():
        got = field(k)
        if got is not None and got != v:
            fail(f"{k} = {got!r}, expected {v!r}")
    for k, v in ((f"{arch}.rope.freq_base", cfg["rope_theta"]),
                 (f"{arch}.attention.layer_norm_rms_epsilon", cfg["rms_norm_eps"])):
        got = field(k)
        if got is not None and np.float32(got) != np.float32(v):
            fail(f"{k} = {got}, expected {v}")

    tok = json.load(open(os.path.join(model_dir, "tokenizer.json")))
    vocab = {i: t for t, i in tok["model"]["vocab"].items()}
    for a in tok["added_tokens"]:
        vocab[a["id"]] = a["content"]
    tokens = field("tokenizer.ggml.tokens")
    types = field("tokenizer.ggml.token_type")
    if tokens is not None and len(tokens) != cfg["vocab_size"]:
        fail(f"{len(tokens)} tokens, expected {cfg['vocab_size']}")
    if tokens is not None and types is not None:
        for i in range(cfg["vocab_size"]):
            want = vocab.get(i, f"[PAD{i}]")
            want_type = 3 if i in {a["id"] for a in tok["added_tokens"] if a["special"]} else (1 if i in vocab else 5)
            if tokens[i] != want or types[i] != want_type:
                fail(f"token {i}: {tokens[i]!r}/{types[i]} expected {want!r}/{want_type}")
                break
    merges = field("tokenizer.ggml.merges")
    want_merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    if merges is not None and list(merges) != want_merges:
        fail("merges differ from tokenizer.json")

    exp = expected_tensors(model_dir, cfg, out_type)
    got_names = {t.name for t in r.tensors}
    if got_names != set(exp):
        fail(f"tensor names differ: extra {sorted(got_names - set(exp))}, missing {sorted(set(exp) - got_names)}")
    for t in r.tensors:
        if t.name not in exp:
            continue
        w, src_dtype = exp[t.name]
        keep_f32 = w.ndim == 1 or t.name.endswith("_norm.weight")
        want_type = T.F32 if keep_f32 else TYPES[out_type]
        if t.tensor_type != want_type:
            fail(f"{t.name}: type {t.tensor_type.name}, expected {want_type.name}")
            continue
        if list(t.shape) != list(reversed(w.shape)):
            fail(f"{t.name}: shape {list(t.shape)}, expected {list(reversed(w.shape))}")
            continue
        w32 = w.astype(np.float32)
        if want_type == T.F32:
            want = w32.tobytes()
        elif want_type == T.F16:
            want = w32.astype(np.float16).tobytes()
        elif want_type == T.BF16:
            want = w.tobytes() if src_dtype == "BF16" and w.dtype == np.uint16 else bf16_round(w32).tobytes()
        else:
            want = gguf_quantize(w32, want_type).tobytes()
        if bytes(t.data.tobytes()) != want:
            fail(f"{t.name}: data differs from the independently computed {want_type.name} bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qforge", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--tmp", required=True)
    a = ap.parse_args()
    os.makedirs(a.tmp, exist_ok=True)
    failures = []
    checked = 0
    for model in ("tiny-llama", "tiny-qwen3"):
        for t in ("f16", "bf16", "f32", "q8_0"):
            check_model(a.qforge, os.path.join(a.fixtures, "models", model), a.tmp, t, failures)
            checked += 1
    for f in failures:
        print("FAIL", f)
    print(f"{checked} GGUF files read back with gguf {getattr(gguf, '__version__', '')}: "
          f"{len(failures)} problems")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
