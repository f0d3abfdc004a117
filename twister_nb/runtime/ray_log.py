"""Ray's own messages to a driver go to the job's log file, not to the cell.

Ray prints two kinds of lines into a driver's stdout and stderr: its workers'
output (``log_to_driver``, which :func:`~twister_nb.runtime.cluster.connect`
turns off) and the raylet's messages (``(raylet) WARNING: 8 PYTHON worker
processes have been started ...``, ``(raylet) A worker died ...``, with colour
codes), which Ray's ``listen_error_messages`` thread prints for every driver
and which no ``ray.init`` argument turns off. In a notebook they land in
whatever cell runs; in the CLI they interleave with the program's output.
twister_nb shows its own events instead (the dashboard, ``print_output``), so
:func:`capture` points that printer at the log file of each job this process
drives, ``<home>/logs/<job_id>.log``, which the banner names.

The printer is Ray's module function ``ray._private.worker.print_to_stdstream``
(looked up by the thread at each message); :func:`install` replaces it once per
process. A Ray without it keeps printing: nothing else depends on this.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from twister_nb import config as _config
from twister_nb.runtime.ray_errors import ANSI_CODE

__all__ = ["capture", "install", "job_log_path", "release"]

_lock = threading.Lock()
#: job ID -> its log file, for the jobs this process drives now
_jobs: dict[str, Path] = {}
_installed = False


def job_log_path(job_id: str) -> Path:
    """Where the job's log is: ``<home>/logs/<job_id>.log``."""
    return _config.home() / "logs" / f"{job_id}.log"


def _fallback_path() -> Path:
    """Where Ray's messages go while this process drives no job."""
    return _config.home() / "logs" / "driver.log"


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as log:
        log.writelines(line + "\n" for line in lines)


def _to_logs(data: dict[str, Any], ignore_prefix: bool = False) -> None:
    """Ray's ``print_to_stdstream(data, ignore_prefix)``, writing to the logs."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    source = data.get("pid", "ray")
    stream = "stderr" if data.get("is_err") else "stdout"
    lines = [f"{stamp} ({source} {stream}) {ANSI_CODE.sub('', str(line))}"
             for line in data.get("lines") or ()]
    if not lines:
        return
    with _lock:
        paths = list(_jobs.values()) or [_fallback_path()]
        for path in paths:
            try:
                _write(path, lines)
            except OSError:  # a log that cannot be written must not break the job
                pass


def install() -> bool:
    """Send Ray's driver-side printing to the job logs; False if this Ray has
    no such printer (it then prints as it always did)."""
    global _installed
    with _lock:
        if _installed:
            return True
        try:
            from ray._private import worker as ray_worker
        except ImportError:  # pragma: no cover - another Ray layout
            return False
        if not callable(getattr(ray_worker, "print_to_stdstream", None)):
            return False  # pragma: no cover
        ray_worker.print_to_stdstream = _to_logs
        _installed = True
        return True


def capture(job_id: str, ray_logs: str | None = None) -> Path:
    """Route Ray's messages to this driver into the job's log (while it is
    open here); the log's path. ``ray_logs`` names Ray's own log folder."""
    install()
    path = job_log_path(job_id)
    header = [f"{time.strftime('%Y-%m-%d %H:%M:%S')} twister_nb job {job_id}: Ray's messages "
              "to its driver follow"]
    if ray_logs:
        header.append(f"    (Ray's own logs: {ray_logs})")
    with _lock:
        _jobs[job_id] = path
        try:
            _write(path, header)
        except OSError:
            pass
    return path


def release(job_id: str) -> None:
    """The job is no longer driven here: its log gets no more lines from this process."""
    with _lock:
        _jobs.pop(job_id, None)
