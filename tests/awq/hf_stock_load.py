#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Loads a qforge AWQ folder with stock transformers (AutoModelForCausalLM.from_pretrained: its own
AWQ quantizer, which hands the packed linears to gptqmodel's kernels), checks that the linears were
replaced by AWQ modules rather than loaded as plain weights, and compares the perplexity of the
first N eval documents (the fixtures' protocol: first 512 tokens of each document) with
`qforge eval --max-docs N` on the same folder.

Usage: hf_stock_load.py AWQ_DIR EVAL_JSONL N QFORGE [REL_TOL]
Exit 77 (ctest: skipped) when torch, transformers or gptqmodel are not importable; gptqmodel is
looked for in tools/install-deps.sh's venv too (~/.cache/qforge/hf-venv)."""
import json
import os
import re
import subprocess
import sys

VENV = os.environ.get("QFORGE_HF_VENV", os.path.expanduser("~/.cache/qforge/hf-venv"))
VENV_PY = os.path.join(VENV, "bin", "python")

try:
    import torch
    import transformers  # noqa: F401
    import gptqmodel  # noqa: F401
except ImportError as e:
    if os.path.exists(VENV_PY) and os.path.realpath(sys.prefix) != os.path.realpath(VENV):
        os.execv(VENV_PY, [VENV_PY] + sys.argv)
    print(f"SKIP: {e} (tools/install-deps.sh installs gptqmodel where torch and transformers exist)")
    sys.exit(77)
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402


def main():
    d, evf, n_docs, qforge = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rel_tol = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-3
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, device_map="cpu")
    kinds = {type(m).__name__ for name, m in model.named_modules() if name.endswith(("q_proj", "down_proj"))}
    print("transformers modules for q_proj / down_proj:", sorted(kinds))
    if any(k == "Linear" for k in kinds) or not all("Awq" in k or "AWQ" in k for k in kinds):
        print("FAIL: the linears were not loaded as AWQ modules")
        return 1
    tok = AutoTokenizer.from_pretrained(d)
    nll, n, docs = 0.0, 0, 0
    with torch.no_grad():
        for line in open(evf):
            if docs == n_docs:
                break
            ids = tok(json.loads(line)["text"]).input_ids[:512]
            if len(ids) < 2:
                continue
            lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
            nll -= lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum().item()
            n += len(ids) - 1
            docs += 1
    hf = float(torch.tensor(nll / n).exp())
    out = subprocess.run([qforge, "eval", d, "--eval", evf, "--max-docs", str(n_docs), "--no-speed"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"perplexity: ([0-9.]+) over ([0-9]+) tokens", out)
    if not m:
        print("FAIL: no perplexity in qforge eval's output:\n" + out)
        return 1
    ours, ours_n = float(m.group(1)), int(m.group(2))
    rel = abs(hf - ours) / ours
    print(f"transformers + gptqmodel: {hf:.4f} over {n} tokens; qforge eval: {ours:.4f} over {ours_n} tokens;"
          f" relative difference {rel:.2e} (limit {rel_tol:g})")
    if ours_n != n or rel > rel_tol:
        print("FAIL")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
