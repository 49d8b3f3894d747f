#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks what `qforge pipeline` left in OUT_DIR: every artefact, and a table whose numbers make
sense. Bounds and why:
- FP16 checkpoint perplexity equal to stock transformers' float32 value (reference.json, made by
  reference_eval_ppl.py) within 0.01 %: the engine reproduces the fixtures' references to < 1e-5;
- GGUF F16 holds the checkpoint's weights bit for bit: same perplexity to 1e-6 relative, KL < 1e-9;
- Q8_0 within 0.2 %, Q5_K_M within 1 %, Q4_K_M within 2.5 % and AWQ within 3 % of FP16: ggml and
  llama.cpp report Q8_0 as near lossless and K-quants ordered by bits; the fixtures' AWQ / RTN
  references on the full eval set are +1.1 % to +1.8 % for these model sizes, and the 40-document
  slice is noisier, so each bound is about twice what was measured when the test was written;
- sizes strictly ordered by bits, and KL / top-1 ordered the same way across the GGUF quants.

    check_pipeline.py OUT_DIR reference.json
"""
import csv
import json
import os
import sys

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    print(("ok   " if cond else "FAIL ") + what)


def main(out, reference_path):
    ref = json.load(open(reference_path))
    res = json.load(open(os.path.join(out, "results.json")))
    rows = {r["format"]: r for r in res["rows"]}
    want = ["HF F16", "AWQ w4 g128", "GGUF F16", "GGUF Q8_0", "GGUF Q5_K_M", "GGUF Q4_K_M"]
    check([r["format"] for r in res["rows"]] == want, f"rows in order {want}")
    for f in ["awq/config.json", "awq/model.safetensors", "gguf/model-f16.gguf", "gguf/model-Q8_0.gguf",
              "gguf/model-Q5_K_M.gguf", "gguf/model-Q4_K_M.gguf", "results.md", "results.csv"]:
        check(os.path.getsize(os.path.join(out, f)) > 0, f"{f} written")
    check(not [n for n in os.listdir(out) if n.endswith(".qforge.tmp")], "no temporary files left")
    with open(os.path.join(out, "results.csv")) as f:
        check(len(list(csv.DictReader(f))) == len(res["rows"]), "results.csv has every row")
    md = open(os.path.join(out, "results.md")).read()
    check(md.count("\n| ") == len(res["rows"]) + 1 or md.count("\n|") >= len(res["rows"]) + 1,
          "results.md is a table with one line per artefact")
    for key in ["ctx", "speed_prompt_tokens", "speed_decode_tokens", "threads", "kernels", "eval_file"]:
        check(key in res["settings"], f"settings record {key}")

    fp, g16 = rows["HF F16"], rows["GGUF F16"]
    check(fp["reference"] and fp["documents"] == ref["docs"] and fp["tokens"] == ref["tokens"],
          f"FP16 row evaluated {ref['docs']} documents / {ref['tokens']} tokens like the reference")
    check(abs(fp["perplexity"] / ref["ppl"] - 1) < 1e-4,
          f"FP16 perplexity {fp['perplexity']:.4f} = transformers {ref['ppl']:.4f} (within 0.01 %)")
    check(abs(g16["perplexity"] / fp["perplexity"] - 1) < 1e-6 and g16["kl_mean"] < 1e-9,
          "GGUF F16 gives the checkpoint's perplexity and distributions")
    bounds = {"GGUF Q8_0": 0.2, "GGUF Q5_K_M": 1.0, "GGUF Q4_K_M": 2.5, "AWQ w4 g128": 3.0}
    for name, b in bounds.items():
        d = rows[name]["ppl_delta_pct"]
        check(-0.5 < d < b, f"{name} Δ perplexity {d:+.3f} % within (-0.5, {b}) %")
    sizes = [rows[n]["bytes"] for n in ["GGUF F16", "GGUF Q8_0", "GGUF Q5_K_M", "GGUF Q4_K_M"]]
    check(sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4, f"GGUF sizes ordered {sizes}")
    check(rows["AWQ w4 g128"]["bytes"] < fp["bytes"] / 1.5, "AWQ folder well under the FP16 checkpoint")
    check(abs(g16["bytes"] / fp["bytes"] - 1) < 0.05, "GGUF F16 about the checkpoint's size")
    kls = [rows[n]["kl_mean"] for n in ["GGUF Q8_0", "GGUF Q5_K_M", "GGUF Q4_K_M"]]
    check(kls == sorted(kls), f"KL grows as bits shrink {kls}")
    top = [rows[n]["top1_agreement"] for n in ["GGUF Q8_0", "GGUF Q5_K_M", "GGUF Q4_K_M"]]
    check(top == sorted(top, reverse=True), f"top-1 agreement falls as bits shrink {top}")
    for r in res["rows"]:
        check(r["prefill_tok_s"] > 0 and r["decode_tok_s"] > 0 and r["time_to_first_token_s"] > 0,
              f"{r['format']}: speeds measured")
        check(r["tasks"] == 40 and len(r["answers"]) == 40, f"{r['format']}: 40 tasks answered")
        check(abs(r["tasks_exact"] - fp["tasks_exact"]) <= 6,
              f"{r['format']}: {r['tasks_exact']} tasks exact vs FP16 {fp['tasks_exact']}")
        check(r["peak_bytes"] is None or r["peak_bytes"] > 0, f"{r['format']}: peak memory")
    check(fp["tasks_exact"] >= 5, "the FP16 model answers some tasks (the task set means something)")
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
