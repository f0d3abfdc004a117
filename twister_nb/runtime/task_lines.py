"""What a running task prints, on its way to the job's watchers.

A task's ``print()`` output (and its stderr) goes to the watcher (the CLI, the
dashboard) as ``[worker-i] ...`` lines: a long task's lines are shipped to the
JobMaster in small batches while it runs (at most every :data:`FLUSH_SECONDS`,
or every :data:`FLUSH_LINES` lines), so the user sees them live; the rest come
back with the task's result.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

__all__ = ["FLUSH_LINES", "FLUSH_SECONDS", "LineStream"]

#: A batch of printed lines goes at most this often (seconds) while the task runs...
FLUSH_SECONDS = 0.25
#: ...or when this many lines are waiting.
FLUSH_LINES = 200


class LineStream(io.TextIOBase):
    """A stdout/stderr stand-in that prefixes each line with the worker and
    ships lines to the JobMaster in small batches."""

    def __init__(self, prefix: str, ship: Callable[[list[str]], object]) -> None:
        self._prefix = prefix
        self._ship = ship
        self._partial = ""
        self._lines: list[str] = []
        self._last = time.monotonic()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        data = self._partial + text
        *lines, self._partial = data.split("\n")
        self._lines.extend(self._prefix + line for line in lines)
        if self._lines and (len(self._lines) >= FLUSH_LINES
                            or time.monotonic() - self._last > FLUSH_SECONDS):
            self._ship(self.take())
        return len(text)

    def take(self) -> list[str]:
        """The complete lines written since the last call."""
        lines, self._lines = self._lines, []
        self._last = time.monotonic()
        return lines

    def finish(self) -> list[str]:
        """The task ended: every line not taken yet, an unfinished last one included."""
        if self._partial:
            self._lines.append(self._prefix + self._partial)
            self._partial = ""
        return self.take()
