"""Task checkpoints a worker commits by itself, unasked.

When the policy saves every task as it finishes (``finished_tasks`` 1), the
JobMaster does not ask for each save: a Ray call per task costs about as much
CPU as the commit itself (~2.5 ms on these machines), and both ends of it share
the cores the tasks run on. Instead the worker commits each finished task, and
the outcomes go back to the JobMaster in its task results; those still in
flight at the action's end with :meth:`BackgroundCommits.drain`.

Where the commit runs depends on the store (``CheckpointStore.remote``): to S3,
in one thread of the worker's own while the next task runs, so its round trips
do not hold up the stage; to a local folder, in the task's thread as it ends,
which measured cheaper than a second thread sharing the GIL with the next task.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twister_nb.checkpoint.tasks import SaveOutcome, TaskSave

__all__ = ["BackgroundCommits"]


class BackgroundCommits:
    """One worker's unasked task commits: those in flight, in the order the
    tasks finished, and the outcomes not reported yet.

    Parameters
    ----------
    commit : callable
        ``commit(save, value, records)``: writes one task checkpoint and returns
        its :class:`SaveOutcome` (a failure is an outcome with ``error``, never
        an exception).
    """

    def __init__(self, commit: Callable[[TaskSave, Any, int], SaveOutcome]) -> None:
        self._commit = commit
        # Re-entrant: a SIGTERM handler on the thread that holds it waits too (Worker._vacate).
        self._lock = threading.RLock()
        self._done: list[SaveOutcome] = []
        self._in_flight: set[Future[None]] = set()
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, save: TaskSave, value: Any, records: int) -> None:
        """Commit ``value`` as ``save``'s task checkpoint, in this worker's commit thread."""
        if self._pool is None:  # made on first use: most workers never commit this way
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="task-commits")
        future = self._pool.submit(self._run, save, value, records)
        with self._lock:
            self._in_flight.add(future)
        future.add_done_callback(self._landed)

    def _run(self, save: TaskSave, value: Any, records: int) -> None:
        self.done(self._commit(save, value, records))

    def done(self, outcome: SaveOutcome) -> None:
        """A commit ended (here, or in the caller's thread): its outcome goes with
        the next :meth:`take`."""
        with self._lock:
            self._done.append(outcome)

    def _landed(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)

    def take(self) -> list[SaveOutcome]:
        """The outcomes of the commits that ended since the last call, each once."""
        with self._lock:
            done, self._done = self._done, []
        return done

    def drain(self, timeout: float) -> list[SaveOutcome]:
        """Wait (up to ``timeout`` seconds) for the commits in flight, then :meth:`take`."""
        self.wait(timeout)
        return self.take()

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the commits in flight to end."""
        with self._lock:
            pending = set(self._in_flight)
        if pending:
            wait(pending, timeout=timeout)

    def busy(self) -> bool:
        """Whether a commit is in flight or an outcome is not taken yet."""
        with self._lock:
            return bool(self._in_flight or self._done)
