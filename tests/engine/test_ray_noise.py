"""Ray's own messages stay out of the terminal: a ``twister-nb submit`` whose job
starts more Ray workers than the raylet likes gets the raylet's warning
(``(raylet) WARNING: 12 PYTHON worker processes have been started ...``) in the
job's log, which the banner names, and prints none of it.

The program runs on a local head of its own with one CPU: a raylet warns once
it has 4 workers per CPU beyond its 8 IO workers' allowance, each multiple once
(the session's head may have warned already)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "twister_nb.cli"]

MANY_WORKERS = textwrap.dedent("""
    import time

    from twister_nb import TSetEnvironment

    def slow_plus_one(x):
        time.sleep(0.05)
        return x + 1

    env = TSetEnvironment(name="many-workers")
    values = env.parallelize_list(list(range(140)), 14).map(slow_plus_one).collect()
    print("TOTAL", sum(values))
    time.sleep(2)  # the raylet's messages reach a driver a moment after the workers start
""")


@pytest.mark.slow
def test_submit_prints_no_ray_lines_and_the_job_log_holds_them(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "TWISTER_NB_HOME": str(home), "TWISTER_NB_RAY__NUM_CPUS": "1",
           "TWISTER_NB_RUNTIME__WORKERS": "14"}
    program = tmp_path / "many_workers.py"
    program.write_text(MANY_WORKERS)
    try:
        done = subprocess.run([*CLI, "submit", str(program)], env=env, capture_output=True,
                              text=True, timeout=400, cwd=tmp_path)
    finally:
        subprocess.run([*CLI, "cluster", "stop"], env=env, capture_output=True, text=True,
                       timeout=120)
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown
    assert f"TOTAL {sum(x + 1 for x in range(140))}" in done.stdout
    assert "(raylet)" not in shown and "PYTHON worker processes" not in shown, shown
    assert "\x1b[" not in shown  # no colour codes either
    job_id = re.search(r"Job ID\s+:\s+(\S+)", done.stdout).group(1)
    log = Path(re.search(r"Job Log\s+:\s+(\S+)", done.stdout).group(1))
    assert log == home.resolve() / "logs" / f"{job_id}.log"
    text = log.read_text()
    assert re.search(r"\(raylet stdout\) WARNING: \d+ PYTHON worker processes have been started",
                     text), text
    assert "\x1b[" not in text
