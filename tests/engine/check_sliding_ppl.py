#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ctest check of `qforge eval --window W --stride S` (engine::sliding_perplexity through the CLI).

1. The CLI on tiny-llama, the first N eval documents tokenized by qforge and concatenated, gives
   the perplexity, scored tokens, stream length and window count of the stored transformers
   reference (tests/engine/data/sliding_ppl_reference.json) within 1e-4 relative.
2. Bad settings and streams exit non-zero with one clear line and no result.
3. --text: a plain-text file is one stream (one BOS), every token after the first scored.
4. When torch and transformers are importable (and QFORGE_SKIP_TORCH_REFERENCE is not 1), the
   reference is recomputed with reference_sliding_ppl.py and must equal the stored file (1e-6), so a
   stale reference fails here rather than silently.

    check_sliding_ppl.py --qforge build/bin/qforge --fixtures ../shared/fixtures --tmp DIR
"""
import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "data", "sliding_ppl_reference.json")
RESULT = re.compile(r"perplexity: ([0-9.]+) over (\d+) tokens of a (\d+)-token stream "
                    r"\(window (\d+), stride (\d+), (\d+) windows\)")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def qforge(a, *args):
    return subprocess.run([a.qforge, "eval", *args], capture_output=True, text=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qforge", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--tmp", required=True)
    a = ap.parse_args()
    os.makedirs(a.tmp, exist_ok=True)
    ref = json.load(open(REFERENCE))
    model = f"{a.fixtures}/models/{ref['model']}"
    evals = f"{a.fixtures}/data/eval.jsonl"
    base = [model, "--no-speed", "--threads", "2"]

    # 1. The stored transformers reference.
    for want in ref["results"]:
        w, s = want["window"], want["stride"]
        p = qforge(a, *base, "--eval", evals, "--max-docs", str(ref["docs"]),
                   "--window", str(w), "--stride", str(s))
        m = RESULT.search(p.stdout)
        check(p.returncode == 0 and m is not None, f"W {w} S {s}: runs ({p.stderr.strip()[-300:]})")
        if not m:
            continue
        ppl, tokens, stream, windows = float(m[1]), int(m[2]), int(m[3]), int(m[6])
        check(abs(ppl / want["ppl"] - 1) < 1e-4,
              f"W {w} S {s}: ppl {ppl} vs transformers {want['ppl']:.6f}")
        check(tokens == want["tokens"], f"W {w} S {s}: {tokens} scored tokens, want {want['tokens']}")
        check(stream == ref["stream_tokens"], f"W {w} S {s}: stream of {stream}, want {ref['stream_tokens']}")
        check(windows == want["windows"], f"W {w} S {s}: {windows} windows, want {want['windows']}")
        check("windows of" in p.stderr, f"W {w} S {s}: progress on stderr")

    # 2. Refusals: non-zero exit, a message, no result line.
    empty = os.path.join(a.tmp, "empty.jsonl")
    open(empty, "w").close()
    blank = os.path.join(a.tmp, "blank.txt")
    open(blank, "w").close()
    cases = [
        (["--eval", evals, "--window", "1"], "--window 1"),
        (["--eval", evals, "--window", "16", "--stride", "0"], "--stride 0"),
        (["--eval", evals, "--window", "16", "--stride", "17"], "larger than the window"),
        (["--eval", evals, "--stride", "8"], "--stride needs --window"),
        (["--eval", empty, "--window", "16"], "stream of 0 tokens"),
        (["--text", blank, "--window", "16"], "stream of 1 token"),  # the BOS alone
        (["--text", blank], "--text needs --window"),
        (["--window", "16"], "needs a stream"),
        (["--eval", evals, "--window", "16", "--ref", model], "--ref"),
        (["--eval", evals, "--text", blank, "--window", "16"], "not both"),
        (["--text", os.path.join(a.tmp, "missing.txt"), "--window", "16"], "cannot open"),
    ]
    for args, needle in cases:
        p = qforge(a, *base, *args)
        check(p.returncode != 0 and needle in p.stderr and "perplexity:" not in p.stdout,
              f"refused: {' '.join(args[-4:])} -> rc {p.returncode}, {p.stderr.strip()[-200:]!r}")

    # 3. --text: two documents as one plain text.
    text = os.path.join(a.tmp, "two_docs.txt")
    with open(evals) as f, open(text, "w") as out:
        out.write("\n\n".join(json.loads(next(f))["text"] for _ in range(2)))
    p = qforge(a, *base, "--text", text, "--window", "128", "--stride", "64")
    m = RESULT.search(p.stdout)
    check(p.returncode == 0 and m is not None, f"--text runs ({p.stderr.strip()[-300:]})")
    if m:
        check(int(m[2]) == int(m[3]) - 1 and 1.0 < float(m[1]) < 1e4,
              f"--text: ppl {m[1]}, {m[2]} of {m[3]} tokens scored")

    # 4. The reference itself, when its tools are here.
    if os.environ.get("QFORGE_SKIP_TORCH_REFERENCE") == "1":
        print("skip torch reference: QFORGE_SKIP_TORCH_REFERENCE=1")
    elif subprocess.run([sys.executable, "-c", "import torch, transformers, tokenizers"],
                        capture_output=True).returncode != 0:
        print("skip torch reference: torch / transformers not importable")
    else:
        p = subprocess.run([sys.executable, os.path.join(HERE, "reference_sliding_ppl.py"),
                            a.fixtures, "--model", ref["model"], "--docs", str(ref["docs"])],
                           capture_output=True, text=True)
        check(p.returncode == 0, f"reference_sliding_ppl.py runs ({p.stderr.strip()[-300:]})")
        if p.returncode == 0:
            now = json.loads(p.stdout)
            check(now["stream_tokens"] == ref["stream_tokens"], "reference: same stream")
            for x, y in zip(now["results"], ref["results"]):
                check((x["window"], x["stride"], x["tokens"], x["windows"]) ==
                      (y["window"], y["stride"], y["tokens"], y["windows"]) and
                      abs(x["ppl"] / y["ppl"] - 1) < 1e-6,
                      f"reference W {x['window']} S {x['stride']}: {x['ppl']} vs stored {y['ppl']}")

    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
