# SPDX-License-Identifier: MIT
# Shared by the reliability tests: the three commands that write artefacts (qforge gguf, quantize,
# awq) on the shipped tiny model, and byte-level fingerprints of a file or an AWQ folder.
import argparse
import hashlib
import os
import shutil
import subprocess
import sys


def args(extra=None):
    p = argparse.ArgumentParser()
    p.add_argument("--qforge", required=True)
    p.add_argument("--model", required=True, help="HF folder (examples/models/tiny-llama)")
    p.add_argument("--calib", required=True, help="calibration JSON lines")
    p.add_argument("--work", required=True, help="scratch folder (emptied first)")
    p.add_argument("--seed", type=int, default=9)
    if extra:
        extra(p)
    a = p.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    return a


def digest(path):
    """sha256 of a file, or of an AWQ folder's files (name + bytes, sorted); None when absent."""
    if not os.path.exists(path):
        return None
    h = hashlib.sha256()
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            h.update(name.encode() + b"\0")
            with open(os.path.join(path, name), "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    else:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def commands(a, f16_gguf):
    """name -> function(out, threads, extra) giving the argv that writes `out`."""
    q = a.qforge
    return {
        "gguf": lambda out, j, t="q4_k_m": [q, "gguf", a.model, "-o", out, "--type", t, "-j", str(j), "-q"],
        "quantize": lambda out, j, t="Q6_K": [q, "quantize", f16_gguf, out, t, "-j", str(j), "-q"],
        "awq": lambda out, j, t="": [q, "awq", a.model, "--calib", a.calib, "-o", out, "--samples", "8",
                                     "-j", str(j), "-q", "--force"] + (["--rtn"] if t == "rtn" else []),
    }


def run(argv, env=None, **kw):
    r = subprocess.run(argv, env=env, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(argv)} exited {r.returncode}\n{r.stderr}")
    return r


def backend_usable(argv, env):
    """Whether argv runs under env's QFORGE_BACKEND (False when the backend is not compiled in or
    this CPU lacks it; any other failure fails the test)."""
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    if r.returncode == 0:
        return True
    if "QFORGE_BACKEND=" in r.stderr and ("not usable" in r.stderr or "not compiled" in r.stderr):
        return False
    sys.exit(f"FAIL: {' '.join(argv)} exited {r.returncode}\n{r.stderr}")


def f16_input(a):
    path = os.path.join(a.work, "in-f16.gguf")
    run([a.qforge, "gguf", a.model, "-o", path, "--type", "f16", "-q"])
    return path
