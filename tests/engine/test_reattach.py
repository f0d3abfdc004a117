"""A driver killed mid-action; a new one attaches by job ID and gets the
running action's exact result and handles to the job's cached TSets."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from twister_nb import TSetEnvironment

DRIVER = """
import sys, time
from twister_nb import TSetEnvironment
env = TSetEnvironment(name="reattach", resources=[{"instances": 4}])
points = env.parallelize_list(list(range(1000)), 4).map(lambda x: x * 2).set_name("points").cache()
def slow(x):
    if x == 0:
        time.sleep(6)
    return x + 1
print("JOB", env.job_id, flush=True)
print(sum(points.map(slow).collect()), flush=True)
"""


@pytest.mark.slow
def test_killed_driver_new_driver_gets_the_result(ray_cluster):
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        job_id = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and job_id is None:
            line = proc.stdout.readline()
            if line.startswith("JOB "):
                job_id = line.split()[1]
        assert job_id, proc.stderr.read() if proc.poll() is not None else "no job id"
        time.sleep(1.5)  # the slow action is running now
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    started = time.perf_counter()
    env = TSetEnvironment(job_id=job_id)
    attach_seconds = time.perf_counter() - started
    try:
        running = env.running()
        assert running is not None and running["kind"] == "collect"
        result = env.wait(timeout=120)  # the dead driver's collect, finished for us
        assert sorted(result) == sorted(x * 2 + 1 for x in range(1000))
        # the outcome stays with the job until the next action (or close)
        assert env.running() is None and sorted(env.wait()) == sorted(result)
        handles = env.tsets()
        assert set(handles) == {"points"}
        assert handles["points"].collect() == [x * 2 for x in range(1000)]
        assert env.wait() is None  # this driver's own action is the latest now
        assert sum(handles["points"].map(lambda x: x + 1).collect()) == sum(x * 2 + 1 for x in range(1000))
    finally:
        env.close()
    print(f"attach took {attach_seconds:.3f} s")
    assert attach_seconds < 10, attach_seconds
