"""Task checkpoints in flight during one action, between the scheduler and the workers.

The scheduler runs tasks; this part asks the action's
:class:`~twister_nb.checkpoint.task_manager.TaskCheckpoints` (the policy) which
finished tasks to save, sends each save to the worker that holds the task's
outputs (its ``save`` concurrency group: a thread beside the one running
tasks, so checkpointing does not stall the stage), and turns each commit into
a :class:`~twister_nb.events.TaskCheckpointed` event.

When the policy saves every task as it finishes (``finished_tasks`` 1), the
JobMaster does not ask: each worker commits its tasks as they end
(:mod:`twister_nb.runtime.background_commits`: in the task's thread to a local
store, beside the next task to S3), and the outcomes come back in task
metadata (:meth:`TaskSaving.report`); at the action's end and at ``snapshot()``,
one drain call goes to each worker whose metadata said commits were in flight.
Otherwise a worker's saves due together travel in one call (a Ray call costs about
2.5 ms of CPU between its two ends, as much as committing a 160 KB task, and
on busy cores the running tasks pay for both), at most one call per worker
every :attr:`TaskSaving.SEND_INTERVAL` (0 by default: at every poll). With an
interval, the first save after a quiet spell goes at once and the saves due
meanwhile wait at most that long. The action's end and ``snapshot()`` send at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from twister_nb.checkpoint.task_manager import TaskCheckpoints
from twister_nb.checkpoint.tasks import SaveOutcome, TaskSave
from twister_nb.events import Event, OutputPrinted, TaskCheckpointed
from twister_nb.runtime.ray_errors import ray_error_line

__all__ = ["TaskSaving"]


class TaskSaving:
    """The task checkpoints of the running action in flight: asks the policy
    (through :class:`TaskCheckpoints`) which finished tasks to save, sends each
    to the worker that holds its outputs (its ``save`` thread), and turns each
    commit into a :class:`TaskCheckpointed` event. At the action's end, failed
    or not, the saves asked for are waited for, so what finished and was due
    is committed before the action returns."""

    #: How long the action's end waits for the saves in flight.
    FINISH_TIMEOUT = 120.0
    #: A worker gets at most one save call this often (seconds); see the module
    #: docstring. 0: every poll sends what is due (one call per worker). 0.25 saved
    #: ~0.7 ms of CPU per task checkpoint (finished_tasks 1, 0.1 s tasks) but its wall
    #: time under load was not better (docs/benchmarks.md, POLICY): the saves held
    #: back are committed after the stage's last task, so it is off until measured quiet.
    SEND_INTERVAL = 0.0

    def __init__(self, tasks: TaskCheckpoints | None, workers: list[Any], action: int,
                 emit: Callable[[Event], Any]) -> None:
        self.tasks = tasks
        self.workers = workers
        self.action = action
        self.emit = emit
        #: The run key of each stage (the worker keeps a task's outputs under it).
        self.keys: dict[int, str] = {}
        #: Save calls in flight: their ref -> the saves they carry.
        self._pending: dict[Any, list[TaskSave]] = {}
        #: Saves due, waiting for their worker's next call: worker -> saves.
        self._queued: dict[int, list[TaskSave]] = {}
        self._last_sent: dict[int, float] = {}
        self._lock = threading.Lock()
        self._done: list[dict[str, Any]] = []
        #: Workers whose task metadata said unasked commits were in flight (drained at the end).
        self._committing: set[int] = set()
        #: Workers whose task metadata said they kept a task's outputs (told to drop them).
        self._keeping: set[int] = set()

    def drain_at_end(self, worker: int) -> None:
        """``worker`` commits tasks unasked beside its next ones: its last outcomes
        are drained at the action's end (and at ``snapshot()``)."""
        with self._lock:
            self._committing.add(worker)

    def kept_by(self, worker: int) -> None:
        """``worker`` keeps a finished task's outputs: the action's end tells it
        to drop those nobody saved."""
        with self._lock:
            self._keeping.add(worker)

    def finished(self, stage: int, partition: int) -> None:
        if self.tasks is not None:
            self.tasks.finished(stage, partition)

    def poll(self, snapshot: bool = False, flush: bool = False) -> None:
        """Queue the saves due now and send each worker's queue when its interval
        has passed (``flush`` or ``snapshot``: at once); collect those that ended."""
        if self.tasks is None or not self.tasks.active:
            return
        now = time.monotonic()
        with self._lock:
            for worker, save in self.tasks.due(snapshot=snapshot):
                self._queued.setdefault(worker, []).append(save)
            for worker in list(self._queued):
                if (flush or snapshot
                        or now - self._last_sent.get(worker, float("-inf"))
                        >= self.SEND_INTERVAL):
                    saves = self._queued.pop(worker)
                    ref = self.workers[worker].save_tasks.options(concurrency_group="save").remote(
                        [(self.keys[save.stage], save) for save in saves])
                    self._pending[ref] = saves
                    self._last_sent[worker] = now
        self._collect(0)

    def _collect(self, timeout: float) -> None:
        """Turn the save calls that ended (waiting up to ``timeout`` for all of
        them, without holding the lock: the stage's wait loop polls meanwhile)
        into events."""
        import ray

        with self._lock:
            refs = list(self._pending)
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        for ref in ready:
            with self._lock:
                saves = self._pending.pop(ref, None)
            if saves is None:
                continue  # another thread reported it
            try:
                outcomes: list[SaveOutcome] = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the tasks stay unsaved; said so
                outcomes = [SaveOutcome(save, error=ray_error_line(exc)) for save in saves]
            for outcome in outcomes:
                self.report(outcome)

    def report(self, outcome: SaveOutcome) -> None:
        """One save's outcome, from a save call, a task's metadata or a drain (a
        worker commits its tasks unasked when the policy saves every task as it
        finishes): a :class:`TaskCheckpointed` event, or a line if it failed."""
        save = outcome.save
        if outcome.error:
            self.emit(OutputPrinted(lines=(
                f"[job-master] task {save.partition} of {save.label!r} was not "
                f"checkpointed: {outcome.error}",)))
            return
        info = outcome.info
        if info is None:
            return
        self.tasks.saved(save)  # type: ignore[union-attr]
        self._done.append({**info, "label": save.label})
        self.emit(TaskCheckpointed(action=self.action, stage=save.stage,
                                   partition=save.partition, label=save.label,
                                   bytes=info["bytes"], seconds=info["seconds"]))

    def snapshot(self) -> list[dict[str, Any]]:
        """Save every finished, unsaved task now and wait for it."""
        before = len(self._done)
        self.poll(snapshot=True)
        self._collect(self.FINISH_TIMEOUT)
        self._drain()
        return self._done[before:]

    def _drain(self) -> None:
        """Wait for the commits the workers make unasked, and report them."""
        import ray

        with self._lock:
            workers = sorted(self._committing)
        refs = [self.workers[w].drain_commits.options(concurrency_group="save").remote(
            self.FINISH_TIMEOUT) for w in workers]
        for worker, ref in zip(workers, refs):
            try:
                outcomes: list[SaveOutcome] = ray.get(ref, timeout=self.FINISH_TIMEOUT + 10)
            except Exception as exc:  # noqa: BLE001 - its tasks count as unsaved; said so
                self.emit(OutputPrinted(lines=(
                    f"[job-master] worker-{worker}: its last task checkpoints are not known "
                    f"to be committed: {ray_error_line(exc)}",)))
                continue
            for outcome in outcomes:
                self.report(outcome)

    def finish(self, everywhere: bool = False) -> None:
        """The action ended: send what is due, wait for the saves in flight, and
        let the workers that kept outputs drop those nobody will save (every
        worker with ``everywhere``: the action failed or was cancelled, and
        tasks whose end was not read may have kept theirs). A worker that kept
        nothing gets no call: ~0.6 ms each of a small action."""
        if self.tasks is None or not self.tasks.active:
            return
        self.poll(flush=True)
        self._collect(self.FINISH_TIMEOUT)
        self._drain()
        self.tasks.end()
        if not self.tasks.keeps:  # the workers kept nothing
            return
        with self._lock:
            keeping = range(len(self.workers)) if everywhere else sorted(self._keeping)
        for worker in keeping:
            self.workers[worker].forget_unsaved.remote(f"{self.action}.")
