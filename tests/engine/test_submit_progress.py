"""``twister-nb submit`` shows its job's start-up steps and a progress line per
running stage; when its output is not a terminal, as plain lines on stderr
(the program's own output on stdout is left as it was).

A real submit of a real program on the session's local head: the counters
are the workers' live reports (records counted while a task runs), checked
against the plain-Python sizes of the same data.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "twister_nb.cli"]
N, PARTS = 4000, 4
PROGRAM = textwrap.dedent(f"""\
    import time
    from twister_nb import TSetEnvironment

    env = TSetEnvironment(name="submit-progress", resources=[{{"instances": {PARTS}}}])

    def slow(x):
        time.sleep(0.0015)  # ~1.5 s per task: long enough for live counters
        return x * 3

    total = env.parallelize_list(list(range({N})), {PARTS}).map(slow) \\
        .reduce(lambda a, b: a + b).collect()
    print("TOTAL", total[0])
""")


def test_submit_shows_start_up_steps_and_live_stage_lines(ray_cluster, tmp_path):
    program = tmp_path / "slow_sum.py"
    program.write_text(PROGRAM)
    # About the steps of a job that starts its own JobMaster and workers: the warm pool
    # (on by default) is off here; a pooled job's steps are in tests/engine/test_warm_pool.py.
    done = subprocess.run([*CLI, "submit", str(program)], capture_output=True, text=True,
                          timeout=300,
                          env={**os.environ, "TWISTER_NB_RUNTIME__POOL__SIZE": "0"})
    assert done.returncode == 0, done.stdout + done.stderr
    # stdout is the program's: the banner, then its result (plain Python's sum)
    assert done.stdout.splitlines()[0].startswith("Job Name")
    assert f"TOTAL {sum(x * 3 for x in range(N))}" in done.stdout
    assert "[twister-nb]" not in done.stdout

    lines = done.stderr.splitlines()
    assert all(line.startswith("[twister-nb] ") for line in lines), done.stderr
    assert "\x1b[" not in done.stderr  # plain lines: not a terminal
    # the start-up steps with their times (the head runs already; the JobMaster is new)
    steps = [line for line in lines if re.search(r"(starting|connecting) .*: \d+\.\d\d s$", line)]
    assert any("starting the JobMaster: " in s for s in steps), lines
    assert any(re.search(r"starting \d workers?: ", s) for s in steps), lines

    # the map stage: live counters while its tasks ran, before the first one finished
    stage = [line for line in lines if "collect: parallelize \u2192 map:" in line]
    live = [line for line in stage
            if re.search(r": 0/4 tasks \u00b7 \d running \u00b7 [\d,]+ in \u00b7 [1-9][\d,]* out",
                         line)]
    assert live, stage
    assert re.search(r"\u00b7 [\d,]+ rec/s", live[-1]), live
    # ... and its last line, done, with every record: plain Python's counts
    assert stage[-1].endswith(f": 4/4 tasks \u00b7 {N:,} in \u00b7 {N:,} out \u00b7 "
                              + stage[-1].rsplit("\u00b7 ", 1)[1]), stage
    assert stage[-1].endswith("rec/s (done)"), stage
    # counters never go back
    outs = [int(m.group(1).replace(",", "")) for line in stage
            if (m := re.search(r"([\d,]+) out", line))]
    assert outs == sorted(outs), outs
