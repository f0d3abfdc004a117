"""The local head starts on a busy machine, and says why when it cannot.

Each test runs the start in a process of its own with a home of its own, so the
session's cluster is not touched; every process started here is stopped by PID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

START = textwrap.dedent("""
    import json, sys
    from twister_nb.errors import ClusterError
    from twister_nb.runtime import cluster
    try:
        state = cluster.start_local(num_cpus=1, **json.loads(sys.argv[1]))
    except ClusterError as exc:
        print(json.dumps({"error": str(exc)}))
    else:
        print(json.dumps(state))
""")
STOP = "from twister_nb.runtime import cluster; cluster.stop_local()"


def _run(home: Path, code: str, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "TWISTER_NB_HOME": str(home)}
    env.pop("TWISTER_NB_RAY__NUM_CPUS", None)
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _start(home: Path, **kwargs) -> dict:
    done = _run(home, START, json.dumps(kwargs))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def busy_machine():
    """Four CPU-bound processes on this 2-core machine (load ~5, as in the trial
    where 5 of 6 starts failed), stopped by PID whatever happens."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_head_starts_on_a_busy_machine(tmp_path, busy_machine):
    home = tmp_path / "home"
    try:
        state = _start(home)
        assert "error" not in state, state["error"]
        assert state["attempts"] in (1, 2)
        assert state["start_seconds"] > 0
        assert all(p.poll() is None for p in busy_machine), "the load lasted the whole start"
    finally:
        _run(home, STOP)


@pytest.mark.slow
def test_a_head_that_cannot_start_says_why_in_one_line(tmp_path):
    home = tmp_path / "home"
    try:
        answer = _start(home, object_store_memory=1000)  # below Ray's minimum
    finally:
        _run(home, STOP)
    first, *rest = answer["error"].splitlines()
    assert first.startswith("the local Ray head did not start (1 attempt,"), first
    assert "minimum allowed is 78643200 bytes" in first, "Ray's own reason, on the first line"
    assert str(home / "ray" / "head.log") in first, "where the whole log is"
    assert rest and all(line.startswith("    ") for line in rest), "then the log's tail"
