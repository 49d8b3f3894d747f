#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Hard stops: SIGKILL `qforge gguf`, `qforge quantize` and `qforge awq` at seeded random moments of
# their run and check that the output path then holds the complete previous artefact or the
# complete new one (byte-identical to an uninterrupted run; commands are deterministic), never a
# partial file, and that a later run removes the killed runs' temporaries (atomic_file deletes
# "<out>.<pid>.qforge.tmp" of dead pids; awq reuses "<out>.qforge.tmp/"). Each kill point is printed
# with its seed so a failure can be replayed.
import glob
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

KILLS_PER_TOOL = 6


def temps(out):
    return sorted(glob.glob(glob.escape(out) + ".*qforge.tmp"))


def main():
    a = common.args()
    rng = random.Random(a.seed)
    f16 = common.f16_input(a)
    cmds = common.commands(a, f16)
    failures = []
    for tool, cmd in cmds.items():
        out = os.path.join(a.work, f"{tool}.out")
        # The previous artefact: same path, another type (so old and new bytes differ).
        prev_kind = {"gguf": "q8_0", "quantize": "Q8_0", "awq": "rtn"}[tool]
        common.run(cmd(out, 2, prev_kind))
        previous = common.digest(out)
        ref_path = os.path.join(a.work, f"{tool}.ref")
        t0 = time.monotonic()
        common.run(cmd(ref_path, 2))
        duration = time.monotonic() - t0
        new = common.digest(ref_path)
        assert previous != new, f"{tool}: previous and new artefacts are identical, the test proves nothing"
        # awq --force removes the old folder before renaming the new one in: a kill between the two
        # leaves no folder, which loses no partial data but does lose the previous artefact.
        outcomes = {"previous": 0, "new": 0, "absent": 0}
        for k in range(KILLS_PER_TOOL):
            # Spread over the whole run, a little past its end to catch the rename.
            delay = rng.uniform(0.02, 1.1) * duration
            p = subprocess.Popen(cmd(out, 2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                p.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
            got = common.digest(out)
            state = ("previous" if got == previous else "new" if got == new
                     else "absent" if got is None and tool == "awq" else None)
            print(f"{tool}: kill {k} at {delay:.2f} s of {duration:.2f} s (seed {a.seed}): "
                  f"{state or 'PARTIAL'}, leftovers {len(temps(out))}")
            if state is None:
                failures.append(f"{tool}: after SIGKILL at {delay:.2f} s the output is neither the previous "
                                f"nor the new artefact")
                break
            outcomes[state] += 1
            if state != "previous":  # put the previous artefact back for the next kill
                common.run(cmd(out, 2, prev_kind))
        # A complete run afterwards cleans the killed runs' temporaries.
        common.run(cmd(out, 2))
        left = temps(out)
        if common.digest(out) != new:
            failures.append(f"{tool}: the run after the kills did not write the expected artefact")
        if left:
            failures.append(f"{tool}: temporaries of killed runs left after a complete run: {left}")
        print(f"{tool}: {outcomes}")
    if failures:
        sys.exit("FAIL:\n" + "\n".join(failures))
    print("ok: every kill left the previous or the new artefact, and no temporary survived the next run")


if __name__ == "__main__":
    main()
