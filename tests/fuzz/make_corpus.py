#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the fuzz seed corpora, one folder per target (entry_points.hpp names them), from the shared
# fixtures and the repository's test data: real config.json / tokenizer files / JSON lines cut down
# to a few KB, plus small files built here in each binary format (safetensors of every dtype, GGUF
# with every metadata type and a few block types, both imatrix formats, a micro AWQ checkpoint
# matching entry_points.hpp's awq_config). Small seeds keep each fuzz iteration cheap; the fuzzer
# grows them. Usage: make_corpus.py OUT_DIR [FIXTURES_DIR]. Needs only the standard library.
import json
import os
import random
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(os.path.dirname(here))
out = sys.argv[1]
fixtures = sys.argv[2] if len(sys.argv) > 2 else os.path.join(repo, "..", "shared", "fixtures")
rng = random.Random(9)


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


# --- safetensors ---------------------------------------------------------------------------------
def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, blob = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def floats(n, fmt="f"):
    return struct.pack("<%d%s" % (n, fmt), *[rng.uniform(-1, 1) for _ in range(n)])


def f16(n, lo=-1.0, hi=1.0):
    return struct.pack("<%de" % n, *[rng.uniform(lo, hi) for _ in range(n)])


def bf16(n):
    return b"".join(struct.pack("<f", rng.uniform(-1, 1))[2:] for _ in range(n))


put("safetensors", "dtypes.safetensors", safetensors([
    ("w.f32", "F32", [2, 3], floats(6)), ("w.f16", "F16", [4], f16(4)), ("w.bf16", "BF16", [2, 2], bf16(4)),
    ("w.i32", "I32", [3], struct.pack("<3i", 1, -2, 3)), ("w.u8", "U8", [5], bytes(range(5))),
    ("w.i8", "I8", [2], b"\x01\xff"), ("w.f64", "F64", [1], struct.pack("<d", 1.5)),
    ("w.bool", "BOOL", [2], b"\x00\x01"), ("scalar", "F32", [], floats(1)), ("empty", "F16", [0, 4], b""),
], metadata={"format": "pt", "note": "seed"}))
put("safetensors", "one.safetensors", safetensors([("x", "F32", [1], floats(1))]))
put("safetensors", "empty.safetensors", safetensors([]))

# --- sharded index (the shard itself is fixed in entry_points.hpp) --------------------------------
shard = "model-00001-of-00001.safetensors"
put("safetensors_index", "index.json", json.dumps(
    {"metadata": {"total_size": 16}, "weight_map": {"a": shard, "b": shard}}, indent=2))
put("safetensors_index", "index_min.json", json.dumps({"weight_map": {"a": shard, "b": shard}}))


# --- GGUF ------------------------------------------------------------------------------------------
def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 10: "Q", 11: "q", 12: "d", 7: "?"}


def gval(t, v):
    if t == 8:
        return gstr(v)
    if t == 9:
        et, items = v
        body = b"".join(gval(et, x) for x in items)
        return struct.pack("<IQ", et, len(items)) + body
    return struct.pack("<" + SCALAR[t], v)


def gguf(kvs, tensors, alignment=32):
    """kvs: list of (key, type id, value); tensors: list of (name, dims, ggml type, raw bytes)."""
    out_ = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, t, v in kvs:
        out_ += gstr(k) + struct.pack("<I", t) + gval(t, v)
    offset, data = 0, b""
    for name, dims, typ, raw in tensors:
        out_ += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out_ += struct.pack("<IQ", typ, offset)
        pad = -len(raw) % alignment
        data += raw + b"\0" * pad
        offset += len(raw) + pad
    out_ += b"\0" * (-len(out_) % alignment)
    return out_ + data


every_type = [
    ("general.architecture", 8, "llama"), ("general.alignment", 4, 32), ("t.u8", 0, 7), ("t.i8", 1, -7),
    ("t.u16", 2, 700), ("t.i16", 3, -700), ("t.i32", 5, -70000), ("t.f32", 6, 0.5), ("t.bool", 7, True),
    ("t.u64", 10, 1 << 40), ("t.i64", 11, -(1 << 40)), ("t.f64", 12, 0.25),
    ("t.arr_i32", 9, (5, [1, 2, 3])), ("t.arr_str", 9, (8, ["a", "bc", ""])),
    ("t.arr_arr", 9, (9, [(4, [1]), (4, [2, 3])])), ("t.arr_f32", 9, (6, [0.5, -1.0])),
]
tensors = [
    ("f32", [4, 2], 0, floats(8)), ("f16", [8], 1, f16(8)),
    ("q8_0", [32], 8, struct.pack("<e", 0.1) + bytes(rng.randrange(256) for _ in range(32))),
    ("q4_k", [256], 12, bytes(rng.randrange(256) for _ in range(144))),
]
put("gguf", "every_type.gguf", gguf(every_type, tensors))
put("gguf", "no_tensors.gguf", gguf([("general.architecture", 8, "llama")], []))
# What the engine's from_gguf reads, around a micro embedding.
llama_keys = [("general.architecture", 8, "llama"), ("llama.block_count", 4, 1),
              ("llama.embedding_length", 4, 64), ("llama.attention.head_count", 4, 2),
              ("llama.attention.head_count_kv", 4, 1), ("llama.feed_forward_length", 4, 128),
              ("llama.context_length", 4, 64), ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5),
              ("llama.rope.freq_base", 6, 10000.0), ("tokenizer.ggml.bos_token_id", 4, 1),
              ("tokenizer.ggml.tokens", 9, (8, ["<s>", "a", "b"]))]
put("gguf", "llama_meta.gguf", gguf(llama_keys, [("token_embd.weight", [64, 4], 0, floats(256))]))

# --- config.json ----------------------------------------------------------------------------------
for m in ("tiny-llama", "tiny-qwen3", "small-llama"):
    p = os.path.join(fixtures, "models", m, "config.json")
    if os.path.exists(p):
        put("hf_config", m + ".json", read(p))
put("hf_config", "spm_llama.json", read(os.path.join(repo, "tests/convert/data/spm_llama/config.json")))
put("hf_config", "llama3_rope.json", json.dumps({
    "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
    "rope_theta": 500000.0, "eos_token_id": [1, 2], "head_dim": 16,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}))
put("hf_config", "mistral.json", json.dumps({
    "model_type": "mistral", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
    "num_attention_heads": 2, "vocab_size": 10, "sliding_window": 4096, "rope_scaling": None}))


# --- tokenizer.json (cut down: first tokens, merges among them) -----------------------------------
def small_tokenizer(path, keep=300):
    t = json.loads(read(path))
    m = t["model"]
    vocab = {k: v for k, v in m["vocab"].items() if v < keep}
    merges = []
    for mg in m.get("merges", []):
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(mg)
    m["vocab"], m["merges"] = vocab, merges
    return json.dumps(t, ensure_ascii=False)


for m in ("tiny-llama", "tiny-qwen3"):
    p = os.path.join(fixtures, "models", m, "tokenizer.json")
    if os.path.exists(p):
        put("tokenizer", m + ".json", small_tokenizer(p))
for d in ("bpe_pairs", "spm_llama", "wordpiece", "malformed"):
    put("tokenizer", d + ".json", read(os.path.join(repo, "tests/convert/data", d, "tokenizer.json")))

for m in ("tiny-llama", "tiny-qwen3", "small-llama"):
    p = os.path.join(fixtures, "models", m, "tokenizer_config.json")
    if os.path.exists(p):
        put("tokenizer_config", m + ".json", read(p))
for d in ("bpe_pairs", "spm_llama"):
    put("tokenizer_config", d + ".json",
        read(os.path.join(repo, "tests/convert/data", d, "tokenizer_config.json")))


# --- JSON lines -----------------------------------------------------------------------------------
def lines(path, n, cut):
    out_ = []
    for line in read(path).splitlines()[:n]:
        j = json.loads(line)
        out_.append(json.dumps({k: (v[:cut] if isinstance(v, str) else v) for k, v in j.items()},
                               ensure_ascii=False))
    return "\n".join(out_) + "\n"


data = os.path.join(fixtures, "data")
put("calibration", "instruction_input.jsonl", lines(os.path.join(data, "calibration.jsonl"), 4, 200))
put("calibration", "text.jsonl", '{"text": "plain prompt"}\n\n{"instruction": "x", "input": null}\r\n')
put("eval_jsonl", "texts.jsonl", lines(os.path.join(data, "eval.jsonl"), 4, 200))
put("eval_jsonl", "ids.jsonl", '{"ids": [0, 1, 2, 63]}\n{"text": "ab ab"}\n')
put("eval_jsonl", "tasks.jsonl", "\n".join(read(os.path.join(repo, "examples/data/tasks.jsonl")).splitlines()[:3]) + "\n")


# --- imatrix ---------------------------------------------------------------------------------------
def imatrix_dat(entries, chunks=10, dataset="calibration.jsonl"):
    b = struct.pack("<i", len(entries))
    for name, ncall, vals in entries:
        nb = name.encode()
        b += struct.pack("<i", len(nb)) + nb + struct.pack("<ii", ncall, len(vals))
        b += struct.pack("<%df" % len(vals), *vals)
    d = dataset.encode()
    return b + struct.pack("<ii", chunks, len(d)) + d


put("imatrix", "legacy.dat", imatrix_dat([("blk.0.attn_q.weight", 4, [1.0, 2.0, 3.0, 4.0]),
                                          ("blk.0.ffn_down.weight", 2, [0.5] * 8)]))
put("imatrix", "legacy_no_trailer.dat", imatrix_dat([("w", 1, [1.0, 2.0])])[:-len("calibration.jsonl") - 8])
put("imatrix", "imatrix.gguf", gguf(
    [("general.type", 8, "imatrix"), ("imatrix.datasets", 9, (8, ["calibration.jsonl"])),
     ("imatrix.chunk_count", 4, 10), ("imatrix.chunk_size", 4, 512)],
    [("blk.0.attn_q.weight.in_sum2", [8, 1], 0, floats(8)), ("blk.0.attn_q.weight.counts", [1, 1], 0,
                                                             struct.pack("<f", 40.0)),
     ("blk.0.ffn_down.weight.in_sum2", [4, 2], 0, floats(8)),
     ("blk.0.ffn_down.weight.counts", [1, 2], 0, struct.pack("<2f", 3.0, 0.0))]))

# --- micro AWQ checkpoint (shapes from entry_points.hpp's awq_config) ------------------------------
hidden, ffn, heads, kv, head_dim, vocab, group = 64, 128, 2, 1, 32, 64, 32


def awq_linear(base, rows, cols):
    groups = cols // group
    return [
        (base + ".qweight", "I32", [cols, rows // 8], bytes(rng.randrange(256) for _ in range(cols * rows // 2))),
        (base + ".qzeros", "I32", [groups, rows // 8], bytes(rng.randrange(256) for _ in range(groups * rows // 2))),
        (base + ".scales", "F16", [groups, rows], f16(groups * rows, 0.001, 0.02)),
    ]


t = [("model.embed_tokens.weight", "F16", [vocab, hidden], f16(vocab * hidden)),
     ("model.norm.weight", "F16", [hidden], f16(hidden, 0.5, 1.5))]
p = "model.layers.0."
for name, rows, cols in (("self_attn.q_proj", heads * head_dim, hidden), ("self_attn.k_proj", kv * head_dim, hidden),
                         ("self_attn.v_proj", kv * head_dim, hidden), ("self_attn.o_proj", hidden, heads * head_dim),
                         ("mlp.gate_proj", ffn, hidden), ("mlp.up_proj", ffn, hidden), ("mlp.down_proj", hidden, ffn)):
    t += awq_linear(p + name, rows, cols)
t += [(p + "input_layernorm.weight", "F16", [hidden], f16(hidden, 0.5, 1.5)),
      (p + "post_attention_layernorm.weight", "F16", [hidden], f16(hidden, 0.5, 1.5))]
put("awq", "micro_awq.safetensors", safetensors(t))
