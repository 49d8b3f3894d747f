#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# A disk that fills mid-write, simulated with a file-size limit (ulimit -f, SIGXFSZ ignored, so
# write() fails with EFBIG as on a full disk it fails with ENOSPC): `qforge gguf` and `qforge
# quantize` must exit non-zero with one line naming the output and the system error, leave no file
# under the output name and no temporary behind; a previous artefact at that path survives intact.
import glob
import os
import resource
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

LIMIT = 1 << 20  # bytes: far below any output here (the F16 tiny model is ~10 MB)


def limited():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def main():
    a = common.args()
    f16 = common.f16_input(a)
    cmds = common.commands(a, f16)
    failures = []
    for tool in ("gguf", "quantize"):
        for previous in (False, True):
            out = os.path.join(a.work, f"{tool}-{int(previous)}.gguf")
            if previous:
                with open(out, "wb") as f:
                    f.write(b"previous artefact")
            r = subprocess.run(cmds[tool](out, 2, "f16" if tool == "gguf" else "Q8_0"),
                               capture_output=True, text=True, preexec_fn=limited)
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            print(f"{tool} (previous file: {previous}): exit {r.returncode}: {lines[-1] if lines else ''}")
            if r.returncode == 0:
                failures.append(f"{tool}: exit 0 although the output could not be written")
            if not any("File too large" in l and out in l for l in lines):
                failures.append(f"{tool}: no error line naming {out} and the system error: {r.stderr!r}")
            if previous:
                with open(out, "rb") as f:
                    if f.read() != b"previous artefact":
                        failures.append(f"{tool}: the previous artefact was changed")
            elif os.path.exists(out):
                failures.append(f"{tool}: a partial {out} was left")
            left = glob.glob(glob.escape(out) + ".*qforge.tmp")
            if left:
                failures.append(f"{tool}: temporary files left: {left}")
    if failures:
        sys.exit("FAIL:\n" + "\n".join(failures))
    print("ok: a full disk gives a clear error, a non-zero exit and no partial artefact")


if __name__ == "__main__":
    main()
