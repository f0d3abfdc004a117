"""A test-only fault: kill the process that makes the store's n-th write.

The crash-at-every-write test (``tests/persist/test_crash_points.py``) needs
the job to die right after each write the store makes during a ``persist()``
(a part, its rename, the manifest, the job record, the lease), whichever
process makes it: the driver, the JobMaster actor or a Worker actor. It is not
a user feature and costs nothing when off.

It is switched on by the environment variable
``TWISTER_NB_TEST_CRASH_AFTER_WRITE=<n>:<counter file>`` in the process that
opens the store (the driver); the store carries the setting when it is
pickled to the JobMaster and the workers, which Ray starts without the
driver's environment. Every write then appends one line to the counter file
(its number, what was done, the path, the pid and the process title), under
a lock so the numbers are one sequence across processes, and the process
that makes write number ``n`` SIGKILLs itself right after it. ``n = 0``
counts without crashing (the dry run that enumerates the writes).
"""

from __future__ import annotations

import fcntl
import os
import signal

__all__ = ["ENV_VAR", "CrashAfterWrite", "from_environ"]

ENV_VAR = "TWISTER_NB_TEST_CRASH_AFTER_WRITE"


class CrashAfterWrite:
    """Counts the store's writes in ``counter`` and kills the ``n``-th writer."""

    def __init__(self, n: int, counter: str) -> None:
        self.n = n
        self.counter = counter

    def __reduce__(self):
        return (CrashAfterWrite, (self.n, self.counter))

    def after(self, what: str, path: str) -> None:
        """Record a write that just finished; die if it is write number ``n``."""
        try:
            with open("/proc/self/cmdline", "rb") as f:  # Ray's process title, e.g. ray::Worker
                title = " ".join(f.read(60).decode(errors="replace").replace("\0", " ").split())
        except OSError:
            title = ""
        with open(self.counter, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released by close
            f.seek(0)
            number = sum(1 for _ in f) + 1
            f.write(f"{number}\t{what}\t{path}\t{os.getpid()}\t{title}\n")
        if number == self.n:
            os.kill(os.getpid(), signal.SIGKILL)


def from_environ() -> CrashAfterWrite | None:
    """The setting of :data:`ENV_VAR`, or None when it is not set (the normal case)."""
    value = os.environ.get(ENV_VAR)
    if not value:
        return None
    n, _, counter = value.partition(":")
    if not n.isdigit() or not counter:
        raise ValueError(f"{ENV_VAR} must be '<n>:<counter file>', got {value!r}")
    return CrashAfterWrite(int(n), counter)
