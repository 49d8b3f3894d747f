#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Interop: llama.cpp itself (through llama-cpp-python) loads qforge's GGUF of a fixture model,
tokenizes every text of the fixture's tokenizer_golden.jsonl to the ids HF tokenizers gives, and
computes the fixture perplexity protocol on eval.jsonl within 0.5 % of the HF float32 reference.

llama.cpp does not apply the tokenizer's NFC normalizer. A golden line that differs is accepted only
when NFC-normalising the text first makes llama.cpp's ids equal the golden ids, i.e. when NFC is the
whole reason; such lines are listed, never hidden.
"""
import argparse, json, math, os, re, subprocess, sys, unicodedata

import numpy as np

from llama_cpp_buffers import choose_buffers

REFERENCE_PPL = {"tiny-llama": 19.7992, "tiny-qwen3": 18.7987, "small-llama": 15.6766}


def reference_from_readme(fixtures, model):
    """The reference table lives in the fixtures README; fall back to the copy above."""
    try:
        text = open(os.path.join(fixtures, "README.md"), encoding="utf-8").read()
        m = re.search(r"^\| " + re.escape(model) + r" \| [\d ]+\| [\d ]+\| ([\d.]+) \|$", text, re.M)
        if m:
            return float(m.group(1))
    except OSError:
        pass
    return REFERENCE_PPL[model]


def log_softmax_rows(logits):
    m = logits.max(axis=1, keepdims=True)
    return logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))


def perplexity(llm, fixtures, max_docs):
    """The fixture protocol: first 512 tokens per eval text, BOS as the model adds it, docs with
    fewer than 2 tokens skipped, exp(total NLL / predicted tokens)."""
    total_nll, predicted, docs = 0.0, 0, 0
    with open(os.path.join(fixtures, "data", "eval.jsonl"), encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"]
            ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)[:512]
            if len(ids) < 2:
                continue
            llm.reset()
            llm.eval(ids)
            logits = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
            lp = log_softmax_rows(logits[:-1])
            total_nll -= float(lp[np.arange(len(ids) - 1), ids[1:]].sum())
            predicted += len(ids) - 1
            docs += 1
            if max_docs and docs >= max_docs:
                break
    return math.exp(total_nll / predicted), docs, predicted


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qforge", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--type", default="f16")
    ap.add_argument("--max-docs", type=int, default=0, help="0: every eval document")
    ap.add_argument("--against-llama-quantize", type=int, default=0, metavar="FTYPE",
                    help="also quantize our F16 GGUF with llama.cpp's quantizer (llama_ftype id) and "
                         "require the same file and the same perplexity")
    a = ap.parse_args()
    try:
        import llama_cpp
    except ImportError:
        print("llama-cpp-python is not installed (tools/install-deps.sh installs it)")
        sys.exit(1)
    if choose_buffers(llama_cpp) == "plain":
        print("this CPU has AMX: llama.cpp loads weights into plain CPU buffers (its AMX / repacked "
              "buffers crash llama-cpp-python here, on llama-quantize's own files too)")

    model_dir = os.path.join(a.fixtures, "models", a.model)
    os.makedirs(a.tmp, exist_ok=True)
    out = os.path.join(a.tmp, f"{a.model}-{a.type}-llamacpp.gguf")
    f16 = os.path.join(a.tmp, f"{a.model}-f16-for-llama-quantize.gguf")
    if a.against_llama_quantize:
        # The llama-quantize route: F16 GGUF first, then `qforge quantize`, as a user swapping
        # llama-quantize for qforge would run it.
        subprocess.run([a.qforge, "gguf", model_dir, "-o", f16, "--type", "f16", "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([a.qforge, "quantize", f16, out, a.type, "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
    else:
        subprocess.run([a.qforge, "gguf", model_dir, "-o", out, "--type", a.type, "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
    llm = llama_cpp.Llama(model_path=out, n_ctx=512, n_batch=512, logits_all=True, verbose=False,
                          n_threads=os.cpu_count())

    problems = []
    nfc_only = []
    lines = [json.loads(l) for l in open(os.path.join(model_dir, "tokenizer_golden.jsonl"), encoding="utf-8")]
    for i, row in enumerate(lines):
        got = llm.tokenize(row["text"].encode("utf-8"), add_bos=True, special=True)
        if got == row["ids"]:
            continue
        nfc = unicodedata.normalize("NFC", row["text"])
        if nfc != row["text"] and llm.tokenize(nfc.encode("utf-8"), add_bos=True, special=True) == row["ids"]:
            nfc_only.append(i)
            continue
        problems.append(f"golden line {i}: {row['text'][:60]!r}: ids differ")
    print(f"{a.model}: {len(lines) - len(problems) - len(nfc_only)}/{len(lines)} golden texts tokenized "
          f"identically by llama.cpp; differing only because llama.cpp skips NFC: lines {nfc_only}")

    ppl, docs, predicted = perplexity(llm, a.fixtures, a.max_docs)
    ref = reference_from_readme(a.fixtures, a.model)
    rel = (ppl - ref) / ref
    print(f"{a.model} {a.type}: llama.cpp perplexity {ppl:.4f} over {docs} docs / {predicted} tokens; "
          f"HF float32 reference {ref:.4f}; difference {100 * rel:+.3f} %")
    if not a.max_docs and a.type in ("f16", "bf16", "f32") and abs(rel) > 0.005:
        problems.append(f"perplexity {ppl:.4f} is not within 0.5 % of {ref}")
    if a.against_llama_quantize:
        theirs = os.path.join(a.tmp, f"{a.model}-{a.type}-llama-quantize.gguf")
        import ctypes
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = a.against_llama_quantize
        params.nthread = os.cpu_count()
        if llama_cpp.llama_model_quantize(f16.encode(), theirs.encode(), ctypes.byref(params)) != 0:
            problems.append("llama_model_quantize failed")
        else:
            same_file = open(out, "rb").read() == open(theirs, "rb").read()
            other = llama_cpp.Llama(model_path=theirs, n_ctx=512, n_batch=512, logits_all=True,
                                    verbose=False, n_threads=os.cpu_count())
            their_ppl, _, _ = perplexity(other, a.fixtures, a.max_docs)
            print(f"llama-quantize (ftype {a.against_llama_quantize}) of our F16 GGUF: perplexity "
                  f"{their_ppl:.4f}; files {'identical' if same_file else 'DIFFER'}")
            if not same_file or their_ppl != ppl:
                problems.append(f"qforge {a.type} differs from llama-quantize's output")
    for p in problems:
        print("FAIL", p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
