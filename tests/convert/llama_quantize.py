#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs llama.cpp's own quantizer (llama_model_quantize, through llama-cpp-python) for the mix tests.

usage: llama_quantize.py IN.gguf [--imatrix FILE] FTYPE:OUT.gguf [FTYPE:OUT.gguf ...]

With --imatrix, the file is loaded the way the llama-quantize tool loads it (GGUF: in_sum2 / round(counts),
1 where a matrix saw nothing; legacy .dat: values / ncall), handed over as llama_model_imatrix_data, and
the tool's quantize.imatrix.* keys are passed as kv overrides, so the output is what
`llama-quantize --imatrix FILE IN OUT TYPE` writes. Exit status 0 when every run succeeded.
"""
import ctypes, math, struct, sys

import numpy as np
import llama_cpp


def load_imatrix(path):
    """(name -> float32 weights, datasets, chunk_count)"""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"GGUF":
        import gguf
        r = gguf.GGUFReader(path)
        fields = r.fields
        datasets = [bytes(fields["imatrix.datasets"].parts[i]).decode()
                    for i in fields["imatrix.datasets"].data]
        chunks = int(fields["imatrix.chunk_count"].parts[-1][0])
        sums, counts = {}, {}
        for t in r.tensors:
            if t.name.endswith(".in_sum2"):
                sums[t.name[:-8]] = np.asarray(t.data, dtype=np.float32).reshape(-1)
            elif t.name.endswith(".counts"):
                counts[t.name[:-7]] = np.asarray(t.data, dtype=np.float32).reshape(-1)
        out = {}
        for name, s in sums.items():
            c = counts[name]
            ne0 = s.size // c.size
            w = np.empty_like(s)
            for j, cj in enumerate(c):
                cnt = np.float32(math.floor(float(cj) + 0.5))  # lround of a count >= 0
                w[j * ne0:(j + 1) * ne0] = s[j * ne0:(j + 1) * ne0] / cnt if cnt > 0 else np.float32(1)
            out[name] = w
        return out, datasets, chunks
    data = open(path, "rb").read()
    pos = 0

    def i32():
        nonlocal pos
        v = struct.unpack_from("<i", data, pos)[0]
        pos += 4
        return v

    out = {}
    for _ in range(i32()):
        n = i32()
        name = data[pos:pos + n].decode()
        pos += n
        ncall = i32()
        nval = i32()
        v = np.frombuffer(data, dtype="<f4", count=nval, offset=pos).astype(np.float32)
        pos += 4 * nval
        out[name] = v / np.float32(ncall) if ncall > 0 else v.copy()
    chunks, datasets = 0, []
    if pos < len(data):
        chunks = i32()
        n = i32()
        if n > 0:
            datasets.append(data[pos:pos + n].decode())
    return out, datasets, chunks


def main():
    args = sys.argv[1:]
    src = args.pop(0).encode()
    imatrix = None
    if args and args[0] == "--imatrix":
        args.pop(0)
        imatrix = args.pop(0)
    keep = []  # ctypes buffers must outlive the calls
    p = llama_cpp.llama_model_quantize_default_params()
    p.nthread = 2
    if imatrix:
        weights, datasets, chunks = load_imatrix(imatrix)
        arr = (llama_cpp.llama_model_imatrix_data * (len(weights) + 1))()
        for i, (name, w) in enumerate(weights.items()):
            buf = (ctypes.c_float * w.size).from_buffer_copy(w.tobytes())
            keep.append(buf)
            arr[i].name = name.encode()
            arr[i].data = ctypes.cast(buf, ctypes.POINTER(ctypes.c_float))
            arr[i].size = w.size
        arr[len(weights)].name = None
        p.imatrix = ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
        keep.append(arr)
        ov = [("quantize.imatrix.file", llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR, imatrix.encode()[:127])]
        if datasets:
            ov.append(("quantize.imatrix.dataset", llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR,
                       datasets[0].encode()[:127]))
        ov.append(("quantize.imatrix.entries_count", llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT, len(weights)))
        if chunks > 0:
            ov.append(("quantize.imatrix.chunks_count", llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT, chunks))
        kvs = (llama_cpp.llama_model_kv_override * (len(ov) + 1))()
        for i, (key, tag, val) in enumerate(ov):
            kvs[i].key = key.encode()
            kvs[i].tag = tag
            if tag == llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR:
                kvs[i].value.val_str = val
            else:
                kvs[i].value.val_i64 = val
        kvs[len(ov)].key = b""
        p.kv_overrides = ctypes.cast(kvs, ctypes.POINTER(llama_cpp.llama_model_kv_override))
        keep.append(kvs)
    failed = 0
    for job in args:
        ftype, out = job.split(":", 1)
        p.ftype = int(ftype)
        if llama_cpp.llama_model_quantize(src, out.encode(), ctypes.byref(p)) != 0:
            print(f"llama_model_quantize failed for ftype {ftype}", file=sys.stderr)
            failed += 1
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
