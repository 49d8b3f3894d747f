#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A GGUF file's digest, written with the `gguf` package: every metadata key in file order with its
value type and value (long arrays as element count + sha256), every tensor's name, type, shape and the
sha256 of its data, and the sha256 of the whole file. Equal keys and tensors make the same model to any
loader; an equal file hash makes the same file.

  gguf_digest.py FILE.gguf                 print the digest as JSON
  gguf_digest.py FILE.gguf --against REF   compare with a stored digest; exit 1 on a difference
"""
import argparse, hashlib, json, sys

import gguf


def digest(path):
    r = gguf.GGUFReader(path)
    meta = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        types = [t.name for t in f.types]
        v = f.contents()
        if isinstance(v, list) and len(v) > 16:
            v = {"count": len(v), "sha256": hashlib.sha256(json.dumps(v, ensure_ascii=False).encode()).hexdigest()}
        elif isinstance(v, float):
            v = float(f"{v:.9g}")
        meta.append({"key": key, "type": types, "value": v})
    tensors = [{"name": t.name, "type": t.tensor_type.name, "shape": [int(d) for d in t.shape],
                "sha256": hashlib.sha256(t.data.tobytes()).hexdigest()} for t in r.tensors]
    with open(path, "rb") as f:
        whole = hashlib.sha256(f.read()).hexdigest()
    return {"file_sha256": whole, "metadata": meta, "tensors": tensors}


def compare(got, want, ignore_keys):
    problems = []
    gm = {m["key"]: m for m in got["metadata"] if m["key"] not in ignore_keys}
    wm = {m["key"]: m for m in want["metadata"] if m["key"] not in ignore_keys}
    for k in sorted(set(gm) | set(wm)):
        if k not in gm:
            problems.append(f"missing key {k} = {wm[k]['value']!r}")
        elif k not in wm:
            problems.append(f"extra key {k} = {gm[k]['value']!r}")
        elif gm[k] != wm[k]:
            problems.append(f"key {k}: {gm[k]['type']} {gm[k]['value']!r} != {wm[k]['type']} {wm[k]['value']!r}")
    gt = {t["name"]: t for t in got["tensors"]}
    wt = {t["name"]: t for t in want["tensors"]}
    for n in sorted(set(gt) | set(wt)):
        if n not in gt:
            problems.append(f"missing tensor {n}")
        elif n not in wt:
            problems.append(f"extra tensor {n}")
        elif gt[n] != wt[n]:
            problems.append(f"tensor {n}: {gt[n]['type']} {gt[n]['shape']} {gt[n]['sha256'][:12]} != "
                            f"{wt[n]['type']} {wt[n]['shape']} {wt[n]['sha256'][:12]}")
    if not problems and "file_sha256" in want and got["file_sha256"] != want["file_sha256"]:
        problems.append("same keys and tensors, but the file bytes differ (order or padding)")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--against")
    ap.add_argument("--ignore-key", action="append", default=[])
    a = ap.parse_args()
    d = digest(a.file)
    if not a.against:
        json.dump(d, sys.stdout, indent=1, ensure_ascii=False)
        print()
        return
    problems = compare(d, json.load(open(a.against, encoding="utf-8")), set(a.ignore_key))
    for p in problems:
        print("DIFF", p)
    print(f"{a.file}: {len(problems)} differences from {a.against}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
