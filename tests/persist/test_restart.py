"""The seed program killed after its persist() committed, then restarted by
its job ID: SUM is exact, persist() is a pointer, upstream is not recomputed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROGRAM = Path(__file__).parent / "programs" / "counted_seed.py"
CLI = [sys.executable, "-m", "twister_nb.cli"]


def _environ(job_store, count_file, **extra):
    env = {**os.environ, **job_store.environ, "COUNT_FILE": str(count_file), **extra}
    env.pop("SLEEP_AFTER_PERSIST", None)
    env.update(extra)
    return env


def _counts(count_file: Path) -> list[str]:
    return sorted(count_file.read_text().split("\n")[:-1]) if count_file.exists() else []


@pytest.mark.slow
def test_kill_after_persist_then_restart(ray_cluster, job_store, tmp_path):
    count_file = tmp_path / "calls.txt"
    proc = subprocess.Popen([*CLI, "submit", str(PROGRAM)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=_environ(job_store, count_file, SLEEP_AFTER_PERSIST="1"))
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "PERSISTED" in line:
                break
        out = "".join(lines)
        assert "PERSISTED" in out, out
        said = [ln for ln in lines if not ln.startswith("[twister-nb] ")]  # start-up steps
        assert said[0].startswith("Job Name"), "the banner comes first"
        job_id = re.search(r"Job ID\s*:\s*(\S+)", out).group(1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    first_counts = _counts(count_file)
    assert first_counts == sorted([f"mul_by_five {i}" for i in range(4)] + [f"add_two {i}" for i in range(4)])
    store = job_store.open()
    assert store.read_job(job_id)["status"] == "running"  # killed: never closed
    assert store.latest(job_id, store.list_tsets(job_id)[0]) is not None

    done = subprocess.run([*CLI, "restart", job_id], capture_output=True, text=True, timeout=180,
                          env=_environ(job_store, count_file))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.splitlines()[1].split(":", 1)[1].strip() == job_id
    assert "SUM = 999980000" in out
    assert "restored from its checkpoint" in out
    took = float(re.search(r"persist took ([0-9.]+) s", out).group(1))
    assert took < 1.0, out  # a pointer, not a recompute (measured: ms; see the benchmark)
    assert _counts(count_file) == first_counts, "the upstream functions ran again"
    assert store.read_job(job_id)["status"] == "finished"


@pytest.mark.slow
def test_restart_unknown_job_is_a_clear_error(ray_cluster):
    done = subprocess.run([*CLI, "restart", "no-such-job-123"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert "no job 'no-such-job-123'" in done.stderr
