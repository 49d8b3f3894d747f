#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Hostile inputs through the CLI, the way users meet them: every case must end with exit status 1
# and one "qforge: error: <file>: ..." line naming the file at fault (never a signal, a sanitizer
# report, an exception text without a file, or exit 0). Prints the table docs/RELIABILITY.md shows
# (--markdown). Cases are built from the shipped tiny model: damaged copies of its safetensors,
# config.json and tokenizer.json, hand-made GGUF files, JSON lines and imatrix files.
import json
import os
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def st_bytes(header, blob=b""):
    h = json.dumps(header, separators=(",", ":")).encode() if isinstance(header, dict) else header
    return struct.pack("<Q", len(h)) + h + blob


def gstr(s):
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kv=b"", n_kv=0, tensors=b"", n_tensors=0, version=3, pad_to=32, data=b""):
    head = b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + kv + tensors
    return head + b"\0" * (-len(head) % pad_to) + data


def tensor_info(name, dims, typ, offset):
    return gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<IQ", typ, offset)


ARCH = gstr("general.architecture") + struct.pack("<I", 8) + gstr("llama")


def main():
    a = common.args(extra=lambda p: p.add_argument("--markdown", action="store_true"))
    w = a.work
    model = os.path.abspath(a.model)
    with open(os.path.join(model, "model.safetensors"), "rb") as f:
        weights = f.read()
    n = struct.unpack("<Q", weights[:8])[0]
    header = json.loads(weights[8:8 + n])
    blob = weights[8 + n:]

    def folder(name, safetensors=None, config=None, tokenizer=None):
        """A copy of the tiny model with some files replaced (bytes) or edited (callables)."""
        d = os.path.join(w, name)
        os.makedirs(d)
        for f in os.listdir(model):
            os.symlink(os.path.join(model, f), os.path.join(d, f))
        for fname, content in (("model.safetensors", safetensors), ("config.json", config),
                               ("tokenizer.json", tokenizer)):
            if content is None:
                continue
            if callable(content):
                with open(os.path.join(model, fname)) as f:
                    content = content(json.load(f))
            os.remove(os.path.join(d, fname))
            with open(os.path.join(d, fname), "wb") as f:
                f.write(content if isinstance(content, bytes) else content.encode())
        return d

    def edit_header(fn):
        h = json.loads(json.dumps(header))
        fn(h)
        return st_bytes(h, blob)

    def file(name, content):
        p = os.path.join(w, name)
        with open(p, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
        return p

    emb = "model.embed_tokens.weight"
    first, second = sorted((k for k in header if k != "__metadata__"),
                           key=lambda k: header[k]["data_offsets"][0])[:2]
    q = a.qforge
    out = os.path.join(w, "out.gguf")
    gg = lambda d: [q, "gguf", d, "-o", out, "-q"]  # noqa: E731
    cases = [
        ("safetensors: truncated file", gg(folder("trunc", weights[: len(weights) // 2]))),
        ("safetensors: header length past the end", gg(folder("hlen", struct.pack("<Q", 1 << 40) + weights[8:]))),
        ("safetensors: header not JSON", gg(folder("hjson", st_bytes(b'{"a": [1, 2', blob)))),
        ("safetensors: bad UTF-8 in a tensor name", gg(folder("utf8", st_bytes(
            json.dumps(header).replace(emb, "model.embed\xff").encode("latin-1"), blob)))),
        ("safetensors: lying data_offsets (past the data)", gg(folder("offs", edit_header(
            lambda h: h[emb].update(data_offsets=[0, len(blob) + 64]))))),
        ("safetensors: overlapping tensors", gg(folder("overlap", edit_header(
            lambda h: h[second].update(data_offsets=[header[first]["data_offsets"][0] + 2,
                                                     header[first]["data_offsets"][0] + 2 +
                                                     header[second]["data_offsets"][1] -
                                                     header[second]["data_offsets"][0]]))))),
        ("safetensors: huge dimensions (shape product overflows)", gg(folder("huge", edit_header(
            lambda h: h[emb].update(shape=[1 << 40, 1 << 40]))))),
        ("safetensors: shape disagrees with byte range", gg(folder("shape", edit_header(
            lambda h: h[emb].update(shape=[4096, 255]))))),
        ("safetensors: duplicate tensor name", gg(folder("dup", st_bytes(
            json.dumps(header)[:-1].encode() + b', "' + emb.encode() + b'": ' +
            json.dumps(header[emb]).encode() + b"}", blob)))),
        ("safetensors: wrong dtype (I32 embedding)", gg(folder("dtype", edit_header(
            lambda h: h[emb].update(dtype="I32", shape=[4096, 128]))))),
        ("safetensors: dtype qforge does not model (F8_E4M3)", gg(folder("f8", edit_header(
            lambda h: h[emb].update(dtype="F8_E4M3", shape=[4096, 512]))))),
        ("config.json: unsupported architecture", gg(folder("arch", config=lambda c: json.dumps(
            dict(c, architectures=["GPT2LMHeadModel"], model_type="gpt2"))))),
        ("config.json: not JSON", gg(folder("cjson", config='{"hidden_size": 256,'))),
        ("config.json: absurd dimension", gg(folder("cdim", config=lambda c: json.dumps(
            dict(c, hidden_size=1 << 40))))),
        ("config.json: heads do not divide hidden size", gg(folder("heads", config=lambda c: json.dumps(
            dict(c, num_attention_heads=3, head_dim=None))))),
        ("tokenizer.json: not JSON", gg(folder("tjson", tokenizer=b'{"model": {"vocab": '))),
        ("tokenizer.json: unsupported model (WordPiece)", gg(folder("wp", tokenizer=lambda t: json.dumps(
            dict(t, model={"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "a"}))))),
        ("GGUF: bad magic", [q, "inspect", file("magic.gguf", b"GGML" + bytes(60))]),
        ("GGUF: version 1", [q, "inspect", file("v1.gguf", gguf(version=1))]),
        ("GGUF: truncated in the metadata", [q, "inspect", file("tkv.gguf", gguf(ARCH, 1)[:30])]),
        ("GGUF: tensor count larger than the file", [q, "inspect", file("count.gguf", gguf(n_tensors=1 << 60))]),
        ("GGUF: string length 2^63", [q, "inspect", file("str.gguf", gguf(
            struct.pack("<Q", 1 << 63) + b"key", 1))]),
        ("GGUF: tensor with 5 dimensions", [q, "inspect", file("dims.gguf", gguf(
            tensors=tensor_info("t", [1, 1, 1, 1, 1], 0, 0), n_tensors=1, data=bytes(32)))]),
        ("GGUF: unknown tensor type", [q, "inspect", file("type.gguf", gguf(
            tensors=tensor_info("t", [32], 99, 0), n_tensors=1, data=bytes(64)))]),
        ("GGUF: row not a multiple of the block (Q4_K, 100 columns)", [q, "inspect", file("block.gguf", gguf(
            tensors=tensor_info("t", [100], 12, 0), n_tensors=1, data=bytes(256)))]),
        ("GGUF: tensor offset not aligned", [q, "inspect", file("align.gguf", gguf(
            tensors=tensor_info("t", [4], 0, 3), n_tensors=1, data=bytes(64)))]),
        ("GGUF: tensor data past the end of the file", [q, "inspect", file("past.gguf", gguf(
            tensors=tensor_info("t", [1 << 20], 0, 0), n_tensors=1, data=bytes(64)))]),
        ("GGUF: overlapping tensors", [q, "inspect", file("goverlap.gguf", gguf(
            tensors=tensor_info("a", [16], 0, 0) + tensor_info("b", [16], 0, 32), n_tensors=2,
            data=bytes(128)))]),
        ("calibration: line not JSON", [q, "awq", model, "--calib", file("c1.jsonl", '{"text": "ok"}\n{"text": \n'),
                                        "-o", os.path.join(w, "awq1"), "--samples", "2", "-q"]),
        ("calibration: no prompt key", [q, "awq", model, "--calib", file("c2.jsonl", '{"prompt": "x"}\n'),
                                        "-o", os.path.join(w, "awq2"), "--samples", "2", "-q"]),
        ("imatrix (.dat): truncated", [q, "quantize", common.f16_input(a), out, "Q4_K_M", "--imatrix",
                                       file("im.dat", struct.pack("<ii", 1, 100) + b"blk")]),
    ]
    failures, rows = [], []
    for name, argv in cases:
        r = subprocess.run(argv, capture_output=True, text=True, errors="backslashreplace")
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        last = lines[-1] if lines else ""
        ok = r.returncode == 1 and last.startswith("qforge: error: ") and w in last
        rows.append((name, argv[1], r.returncode, last.replace(w + "/", "")))
        if not ok:
            failures.append(f"{name}: exit {r.returncode}, stderr {r.stderr[-400:]!r}")
        if os.path.exists(out):
            failures.append(f"{name}: an output was written")
            os.remove(out)
    if a.markdown:
        print("| hostile input | command | exit | what the user sees |\n|---|---|---|---|")
        for name, cmd, rc, msg in rows:
            print(f"| {name} | `qforge {cmd}` | {rc} | `{msg.replace('|', '/')}` |")
    else:
        for name, cmd, rc, msg in rows:
            print(f"{name}: exit {rc}: {msg}")
    if failures:
        sys.exit("FAIL:\n" + "\n".join(failures))
    print(f"ok: {len(cases)} hostile inputs, each refused with one line naming the file")


if __name__ == "__main__":
    main()
