"""Processes a test kills for real (a worker's SIGKILL) and waits to see gone,
and the job's worker processes it picks them from."""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def kill_and_wait(pid: int, timeout: float = 30.0) -> None:
    """SIGKILL ``pid`` and return once it is gone (``AssertionError`` if it is
    still there after ``timeout`` seconds)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still alive {timeout:.0f} s after SIGKILL")


def worker_pids(env: Any, timeout: float = 60.0) -> list[int]:
    """The PIDs of a live job's workers, worker ``i``'s at index ``i`` (``env``: its
    :class:`~twister_nb.TSetEnvironment`), found through its JobMaster
    (:func:`twister_nb.runtime.jobs.job_workers`): started for the job or taken
    from the warm pool alike."""
    import ray

    from twister_nb.runtime.jobs import job_workers

    actors = job_workers(env.job_id, env.config)
    return [ping["pid"] for ping in ray.get([a.ping.remote() for a in actors], timeout=timeout)]
