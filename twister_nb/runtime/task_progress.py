"""Running tasks' counters, coalesced into few events.

Each worker reports its running task's records in and out about every 0.25 s
(:mod:`~twister_nb.runtime.worker`); with many workers that would be many
events for every watcher to read. :class:`ProgressBoard` keeps the newest
counters per task and emits one :class:`~twister_nb.events.TasksProgressed`
with every task that changed, at most once per ``window`` seconds: the event
log grows by a few events a second whatever the number of workers, and each
report costs the JobMaster a dict update.

A report that arrives after its task's end (it was in flight) is dropped: the
task's :class:`~twister_nb.events.TaskFinished` holds its final counts.

Plain Python, thread-safe (the JobMaster handles reports concurrently), no Ray.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from twister_nb.events import Event, TaskCount, TasksProgressed

__all__ = ["ProgressBoard"]

#: The shortest time between two progress events of a job.
WINDOW = 0.2


class ProgressBoard:
    """The newest counters of the running tasks of the current action.

    Parameters
    ----------
    emit : callable
        Takes the coalesced :class:`TasksProgressed` events.
    window : float
        Seconds between two events at least.
    clock : callable
        ``time.monotonic`` (tests pass a fake).

    Examples
    --------
    >>> sent = []
    >>> now = [0.0]
    >>> board = ProgressBoard(sent.append, window=0.2, clock=lambda: now[0])
    >>> board.start(1)
    >>> board.report(1, TaskCount(stage=0, partition=0, records_in=10))
    >>> now[0] = 0.1
    >>> board.report(1, TaskCount(stage=0, partition=1, records_in=5))   # held: too soon
    >>> now[0] = 0.3
    >>> board.report(1, TaskCount(stage=0, partition=0, records_in=20))
    >>> [[(t.partition, t.records_in) for t in e.tasks] for e in sent]
    [[(0, 10)], [(0, 20), (1, 5)]]
    >>> board.finished(1, 0, 0)
    >>> board.report(1, TaskCount(stage=0, partition=0, records_in=30))  # late: dropped
    """

    def __init__(self, emit: Callable[[Event], Any], window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._action = 0
        self._pending: dict[tuple[int, int], TaskCount] = {}
        self._finished: set[tuple[int, int]] = set()
        self._last = float("-inf")

    def start(self, action: int) -> None:
        """Action ``action`` starts: what was kept of earlier ones is dropped."""
        with self._lock:
            self._action = action
            self._pending.clear()
            self._finished.clear()

    def finished(self, action: int, stage: int, partition: int) -> None:
        """A task ended: its counters are final in its own event."""
        with self._lock:
            if action == self._action:
                self._finished.add((stage, partition))
                self._pending.pop((stage, partition), None)

    def report(self, action: int, count: TaskCount) -> None:
        """A worker's newest counters of one running task."""
        with self._lock:
            key = (count.stage, count.partition)
            if action != self._action or key in self._finished:
                return
            self._pending[key] = count
            now = self._clock()
            if now - self._last < self._window:
                return
            self._last = now
            tasks = tuple(self._pending[k] for k in sorted(self._pending))
            self._pending.clear()
        self._emit(TasksProgressed(action=action, tasks=tasks))
