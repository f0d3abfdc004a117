"""Processes a test kills for real (a worker's SIGKILL) and waits to see gone,
the job's worker processes it picks them from, and fresh Python processes
that say whether they imported Ray (what ``twister-nb jobs`` must not do)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Runs a fresh process's code, then says on its last stderr line whether Ray was imported.
_SAY_RAY = """
import sys, traceback
try:
    exec(compile(sys.argv.pop(1), "<fresh>", "exec"), {"__name__": "__main__"})
except SystemExit as exc:
    if not isinstance(exc.code, (int, type(None))):
        print(exc.code, file=sys.stderr)
except BaseException:
    traceback.print_exc()
print("RAY-IMPORTED" if "ray" in sys.modules else "NO-RAY", file=sys.stderr)
"""

#: The ``twister-nb`` command, as :func:`run_fresh` code (its arguments follow).
CLI = "import sys; from twister_nb.cli import main; sys.argv[0] = 'twister-nb'; main()"


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


@dataclass(frozen=True)
class FreshRun:
    """What a fresh Python process printed, and whether it imported Ray."""

    stdout: str
    #: Its stderr, without the line that says whether Ray was imported.
    stderr: str
    ray_imported: bool


def run_fresh(code: str, *args: str, env: Mapping[str, str] | None = None,
              timeout: float = 120.0) -> FreshRun:
    """Run ``code`` in a new Python process (``sys.argv[1:]`` = ``args``; a
    ``SystemExit`` ends it quietly) and say what it printed and whether it
    imported Ray. ``run_fresh(CLI, "jobs")`` is ``twister-nb jobs``."""
    done = subprocess.run([sys.executable, "-c", _SAY_RAY, code, *args],
                          env=dict(os.environ if env is None else env),
                          capture_output=True, text=True, timeout=timeout)
    *rest, last = done.stderr.rstrip("\n").split("\n")
    assert last in ("RAY-IMPORTED", "NO-RAY"), done.stderr
    return FreshRun(done.stdout, "\n".join(rest), last == "RAY-IMPORTED")
