"""A loop that survives eviction (issue 13, point 6; the HTCondor seed): a
k-means loop commits its iteration, centres and points each round with
``init_variable``/``update_variable``/``commit``. Killed (SIGKILL of the driver
and the JobMaster) after iteration 6 of 10 and restarted by job ID, it starts
at iteration 6 and ends with centres identical, bit for bit, to a run that was
never killed; both match a plain numpy k-means of the same points."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

PROGRAM = Path(__file__).parent / "programs" / "kmeans_loop.py"
CLI = [sys.executable, "-m", "twister_nb.cli"]


def _environ(job_store, **extra):
    env = {**os.environ, **job_store.environ, **extra}
    if "STOP_AFTER" not in extra:
        env.pop("STOP_AFTER", None)
    return env


def _result(out: str) -> np.ndarray:
    found = re.search(r"^RESULT ([0-9a-f]+)$", out, re.M)
    assert found, out
    return np.frombuffer(bytes.fromhex(found.group(1)), dtype=float).reshape(3, 2)


def _numpy_kmeans() -> np.ndarray:
    rng = np.random.default_rng(11)
    points = np.array([rng.random(2) * (1 + i % 3) for i in range(3000)])
    centres = points[:3].copy()
    for _ in range(10):
        nearest = ((points[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
        centres = np.array([points[nearest == k].mean(axis=0) for k in range(3)])
    return centres


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.slow
def test_a_killed_kmeans_loop_resumes_where_it_committed(ray_cluster, job_store):
    whole = subprocess.run([*CLI, "submit", str(PROGRAM)], capture_output=True, text=True,
                           timeout=600, env=_environ(job_store))
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert "START 0" in whole.stdout
    uninterrupted = _result(whole.stdout)
    np.testing.assert_allclose(uninterrupted, _numpy_kmeans(), rtol=1e-9)

    proc = subprocess.Popen([*CLI, "submit", str(PROGRAM)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=_environ(job_store, STOP_AFTER="6"))
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (lines and lines[-1].startswith("STOPPED")):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        out = "".join(lines)
        assert lines and lines[-1].startswith("STOPPED"), out
        job_id = lines[-1].split()[1]
        master = int(re.search(r"^MASTER (\d+)$", out, re.M).group(1))
        _kill(master)  # the eviction: the JobMaster and the driver, at once
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert [ln.split()[1] for ln in lines if ln.startswith("ITER")] == [str(i) for i in range(6)]

    again = subprocess.run([*CLI, "restart", job_id], capture_output=True, text=True,
                           timeout=600, env=_environ(job_store))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "START 6" in again.stdout, again.stdout
    assert [ln.split()[1] for ln in again.stdout.splitlines() if ln.startswith("ITER")] == [
        str(i) for i in range(6, 10)]
    resumed = _result(again.stdout)
    assert resumed.tobytes() == uninterrupted.tobytes()  # bit for bit


MEANS = Path(__file__).parent / "programs" / "means_loop.py"


def _seed_means() -> list[float]:
    """The HTCondor seed's 500 means, in plain Python (sample k from seed k)."""
    means = []
    for k in range(500):
        a, b = (int(x) for x in np.random.default_rng(k).integers(1, 301, size=2))
        means.append((a + b) / 2)
    return means


@pytest.mark.slow
def test_the_seed_loop_of_500_means_killed_and_resumed_loses_nothing(ray_cluster, job_store):
    """Saved every second; evicted (driver and JobMaster killed) after its third
    save, mid-way between saves; resumed by job ID: it starts where it saved, and
    every mean is counted once."""
    proc = subprocess.Popen([*CLI, "submit", str(MEANS)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_environ(job_store))
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        saved = 0
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            saved += line.startswith("SAVED")
            if saved == 3 and line.startswith("ITER") and not lines[-2].startswith("SAVED"):
                break  # mid-way between two saves
        out = "".join(lines)
        assert saved == 3 and not lines[-1].startswith(("SAVED", "RESULT")), out
        job_id = re.search(r"Job ID\s*:\s*(\S+)", out).group(1)
        master = int(re.search(r"^MASTER (\d+)$", out, re.M).group(1))
        _kill(master)  # the eviction: the JobMaster and the driver, at once
    finally:
        proc.kill()
        proc.wait(timeout=30)
    done = [int(ln.split()[1]) for ln in lines if ln.startswith("ITER")]
    last_save = [int(ln.split()[1]) for ln in lines if ln.startswith("SAVED")][-1]
    assert done == list(range(len(done))) and len(done) > last_save

    again = subprocess.run([*CLI, "restart", job_id], capture_output=True, text=True,
                           timeout=600, env=_environ(job_store))
    assert again.returncode == 0, again.stdout + again.stderr
    # it starts at its last save, with the means it had saved
    assert f"START {last_save} {last_save}" in again.stdout, again.stdout
    resumed = [int(ln.split()[1]) for ln in again.stdout.splitlines() if ln.startswith("ITER")]
    assert resumed == list(range(last_save, 500))  # nothing lost, nothing saved twice
    found = re.search(r"^RESULT (\S+) (\d+)$", again.stdout, re.M)
    assert found, again.stdout
    reference = _seed_means()
    assert int(found.group(2)) == len(reference)
    assert float(found.group(1)) == float(np.mean(reference))
