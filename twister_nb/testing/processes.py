"""Processes a test kills for real (a worker's SIGKILL) and waits to see gone."""

from __future__ import annotations

import os
import signal
import time


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
