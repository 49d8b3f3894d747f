#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Independent check of a qforge AWQ folder against AutoAWQ's GEMM layout as documented.

Usage: check_awq.py AWQ_DIR [DEQUANT_DUMP]

Written from the layout's definition, not from qforge's code: qweight I32 [in, out/8] and qzeros
I32 [in/group, out/8] hold 8 four-bit values per int32, nibble i (bits 4i..4i+3) being output
column 8c + ORDER[i] with ORDER = [0, 2, 4, 6, 1, 3, 5, 7]; scales F16 [in/group, out]; the weight
is (q - z) * s computed in float16 (AutoAWQ's dequantize_gemm). Checks the config keys and the
tensor dtypes / shapes vLLM's AWQ loader requires, and, given the dump the C++ test writes
(<linear>.ref = qforge's reference dequantizer, <linear>.engine = the engine's in-place decoding,
both F32 [out, in]), that they equal this implementation bit for bit (float16 math for .ref,
float32 math for .engine). Exit status 0 when everything holds."""
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file

ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def unpack(packed):
    """int32 [rows, out/8] -> uint8 [rows, out] in true column order."""
    u = packed.astype(np.uint32)
    nib = np.stack([(u >> (4 * i)) & 15 for i in range(8)], axis=-1)  # [rows, out/8, 8]
    cols = np.empty_like(nib)
    for i, c in enumerate(ORDER):
        cols[:, :, c] = nib[:, :, i]
    return cols.reshape(packed.shape[0], -1).astype(np.uint8)


def dequant(qweight, qzeros, scales, dtype):
    q = unpack(qweight).astype(np.int16)
    z = unpack(qzeros).astype(np.int16)
    group = qweight.shape[0] // scales.shape[0]
    zf = np.repeat(z, group, axis=0)
    sf = np.repeat(scales, group, axis=0)
    return (q - zf).astype(dtype) * sf.astype(dtype)  # [in, out]


def load_dir(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    t = {}
    for f in files:
        t.update(load_file(os.path.join(d, f)))
    return t


def main():
    d = sys.argv[1]
    failures = []
    cfg = json.load(open(os.path.join(d, "config.json")))
    qc = cfg.get("quantization_config", {})
    want = {"quant_method": "awq", "bits": 4, "zero_point": True, "version": "gemm"}
    for k, v in want.items():
        if qc.get(k) != v:
            failures.append(f"config quantization_config.{k} = {qc.get(k)!r}, want {v!r}")
    group = qc.get("group_size")
    if "modules_to_not_convert" not in qc:
        failures.append("config: no modules_to_not_convert")
    t = load_dir(d)
    bases = sorted(k[: -len(".qweight")] for k in t if k.endswith(".qweight"))
    if not bases:
        failures.append("no quantized linear")
    for b in bases:
        qw, qz, sc = t[b + ".qweight"], t[b + ".qzeros"], t[b + ".scales"]
        if qw.dtype != np.int32 or qz.dtype != np.int32 or sc.dtype != np.float16:
            failures.append(f"{b}: dtypes {qw.dtype} {qz.dtype} {sc.dtype}")
            continue
        n_in, out = qw.shape[0], qw.shape[1] * 8
        if n_in % group or sc.shape != (n_in // group, out) or qz.shape != (n_in // group, out // 8):
            failures.append(f"{b}: shapes {qw.shape} {qz.shape} {sc.shape} for group {group}")
        if not np.all(np.isfinite(sc.astype(np.float32))):
            failures.append(f"{b}: non-finite scale")
        if b + ".weight" in t:
            failures.append(f"{b}: both quantized and float weights")
    for k, v in t.items():
        if not k.endswith((".qweight", ".qzeros", ".scales")) and v.dtype != np.float16:
            failures.append(f"{k}: {v.dtype}, want float16")
    if len(sys.argv) > 2:
        dump = load_file(sys.argv[2])
        for name in sorted({k.rsplit(".", 1)[0] for k in dump}):
            qw, qz, sc = t[name + ".qweight"], t[name + ".qzeros"], t[name + ".scales"]
            ref16 = dequant(qw, qz, sc, np.float16).T.astype(np.float32)
            eng32 = dequant(qw, qz, sc, np.float32).T
            for tag, want_w in ((".ref", ref16), (".engine", eng32)):
                got = dump[name + tag]
                if got.shape != want_w.shape or not np.array_equal(got.view(np.uint32), want_w.view(np.uint32)):
                    n = int(np.sum(got != want_w)) if got.shape == want_w.shape else -1
                    failures.append(f"{name}{tag}: {n} values differ from the independent dequantizer")
    for f in failures:
        print("check_awq: FAIL:", f)
    print(f"check_awq: {len(bases)} quantized linears, group {group}: "
          + ("ok" if not failures else f"{len(failures)} failures"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
