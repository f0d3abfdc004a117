"""One action's task checkpoints: which tasks are recovered, which are saved when.

The JobMaster's scheduler asks this part, for every action:

1. :meth:`TaskCheckpoints.begin` -- the fingerprint of every task, and the
   committed task checkpoints among them (checked as a ``persist()`` restore
   is: a valid manifest, every part present with its size; versions marked
   damaged skipped). Those tasks are RECOVERED: read from the store, never run.
   The others are handed to the policy as instantiated, in submission order.
2. :meth:`finished` as each task ends, and :meth:`due` about every 50 ms: the
   tasks whose outputs the policy wants saved now, with the worker that holds
   them and the version to write.
3. :meth:`saved` when a worker committed one; :meth:`counts` per stage for the
   events, the record and ``twister-nb status``.

A custom policy that raises is one :class:`~twister_nb.errors.JobFailedError`
naming it and the method. Plain Python, no Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from twister_nb.checkpoint.manager import CheckpointManager
from twister_nb.checkpoint.policy import CheckpointPolicy, TaskInfo
from twister_nb.checkpoint.tasks import (HOLDS_BUCKETS, HOLDS_PARTITION, CommittedTasks,
                                         TaskSave, committed_tasks, task_fingerprint, task_id)
from twister_nb.errors import JobFailedError
from twister_nb.plan.physical import Plan, StagePlan
from twister_nb.storage import Checkpoint

__all__ = ["SIGTERM_KEEP_MIN_SECONDS", "StageCounts", "TaskCheckpoints", "stage_task_saves"]

#: With no policy on, a worker keeps a finished task's outputs (for a SIGTERM to
#: save) only if the task ran at least this long, in seconds.
SIGTERM_KEEP_MIN_SECONDS = 0.1


@dataclass
class StageCounts:
    """Per stage of an action: its tasks, how many were checkpointed and recovered."""

    stage: int
    label: str
    tasks: int
    checkpointed: int = 0
    recovered: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "label": self.label, "tasks": self.tasks,
                "checkpointed": self.checkpointed, "recovered": self.recovered}


def stage_task_saves(stage: StagePlan) -> list[TaskSave]:
    """The (first-version) task saves of every task of ``stage``."""
    holds = HOLDS_BUCKETS if stage.output == "exchange" else HOLDS_PARTITION
    return [TaskSave(task_fingerprint(stage.tset_id, p, stage.parallelism, holds, stage.feeds),
                     0, stage.label, stage.index, p, holds)
            for p in range(stage.parallelism)]


def task_info(stage: StagePlan, partition: int, action: int) -> TaskInfo:
    """What a policy sees of the task of ``stage`` on ``partition``: the TSets it
    computes (not the cached or persisted ones it reads)."""
    read = {m.tset_id for m in stage.materialized_inputs}
    return TaskInfo(tset=stage.label, tset_id=stage.tset_id,
                    function=stage.functions[-1] if stage.functions else "",
                    stage=stage.index, partition=partition, parallelism=stage.parallelism,
                    action=action, tsets=tuple(label for label, ident in stage.tsets
                                               if ident not in read),
                    functions=tuple(stage.functions))


def only_reads(stage: StagePlan) -> bool:
    """Whether ``stage`` computes nothing: it reads a cached or persisted TSet
    and hands it on (an action on a persisted TSet), so its tasks' outputs are
    saved already."""
    read = {m.tset_id for m in stage.materialized_inputs}
    return bool(read) and all(ident in read for _, ident in stage.tsets)


class TaskCheckpoints:
    """The task checkpoints of one action (see the module docstring).

    Parameters
    ----------
    manager : CheckpointManager or None
        The job's checkpoints (None: a job without a store recovers and saves nothing).
    policy : CheckpointPolicy
        The job's policy (kept across actions, as COMPSs keeps its groups).
    plan : Plan
        The action's stages.
    action : int
        The action's number.
    on_sigterm : bool
        ``twister2.checkpointing.on_sigterm``: workers keep outputs for a SIGTERM.
    committed : CommittedTasks or None
        The job's task checkpoints as its JobMaster keeps them (None: the store
        is listed).
    """

    def __init__(self, manager: CheckpointManager | None, policy: CheckpointPolicy, plan: Plan,
                 action: int, on_sigterm: bool = False,
                 committed: CommittedTasks | None = None) -> None:
        self.manager = manager
        self.on_sigterm = on_sigterm
        self.committed = committed
        self.policy = policy
        self.plan = plan
        self.action = action
        self._reset()

    def _reset(self) -> None:
        """The action's bookkeeping, empty (at the start, and when it starts over)."""
        plan = self.plan
        self.saves: dict[tuple[int, int], TaskSave] = {}
        self.recover: dict[tuple[int, int], Checkpoint] = {}
        self.counts = {s.index: StageCounts(s.index, s.label, s.parallelism) for s in plan.stages}
        #: Fingerprints committed (by this action's workers) or recovered.
        self.saved_fingerprints: set[str] = set()
        self._workers: dict[tuple[int, int], int] = {}
        self._infos: dict[tuple[int, int], TaskInfo] = {}
        #: Tasks whose worker commits them as they end, unasked (never in :meth:`due`).
        self._unasked: set[tuple[int, int]] = set()

    @property
    def keeps(self) -> bool:
        """Whether the workers keep finished tasks' outputs to save them: a policy
        other than ``none`` is on, or ``twister2.checkpointing.on_sigterm`` (on by
        default) asks a worker told to leave (SIGTERM) to save what it finished."""
        return self.active and (self.policy.name != "none" or self.on_sigterm)

    @property
    def keep_min_seconds(self) -> float:
        """How long a task must have run for its worker to keep its outputs: 0
        with a policy on; :data:`SIGTERM_KEEP_MIN_SECONDS` when they are kept
        only for a worker told to leave (a shorter task runs again for less
        than its commit would cost, and keeping nothing spares the action's
        end a call to each worker: ~1.2 ms of a 13 ms action)."""
        return 0.0 if self.policy.name != "none" else SIGTERM_KEEP_MIN_SECONDS

    @property
    def active(self) -> bool:
        """Whether anything is saved or recovered at all (a store, checkpointing on)."""
        return self.manager is not None

    # ------------------------------------------------------------------ start

    def begin(self) -> dict[tuple[int, int], Checkpoint]:
        """Fingerprint every task and find the committed ones: ``(stage, partition)``
        -> the checkpoint to recover. Recovery needs ``twister2.checkpointing.enable``."""
        for stage in self.plan.stages:
            for save in stage_task_saves(stage):
                self.saves[(stage.index, save.partition)] = save
        if self.manager is None:
            return {}
        if self.manager.enabled:
            self.recover = self._lookup()
        for key in self.recover:
            self.counts[key[0]].recovered += 1
            self.saved_fingerprints.add(self.saves[key].fingerprint)
        return dict(self.recover)

    def _lookup(self) -> dict[tuple[int, int], Checkpoint]:
        manager = self.manager
        assert manager is not None
        present = (self.committed.fingerprints() if self.committed is not None
                   else committed_tasks(manager.store, manager.job_id))
        wanted = [(key, save) for key, save in self.saves.items() if save.fingerprint in present]
        if not wanted:
            return {}

        def find(item: tuple[tuple[int, int], TaskSave]) -> tuple[tuple[int, int], Any]:
            key, save = item
            ident = task_id(save.fingerprint)
            cp = manager.find_valid(ident)
            if cp is None:  # a damaged or unfinished one: the next save writes past it
                version = manager.store.next_version(manager.job_id, ident)
                self.saves[key] = TaskSave(save.fingerprint, version, save.label, save.stage,
                                           save.partition, save.holds)
            return key, cp

        threads = min(manager.store.parallel_reads, len(wanted))  # S3 round trips overlap
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                found = list(pool.map(find, wanted))
        else:
            found = [find(item) for item in wanted]
        return {key: cp for key, cp in found if cp is not None}

    def damaged(self, tset_id: str, reason: str) -> bool:
        """A recovered task checkpoint failed its checks when read: mark it damaged
        (never offered again) and start the action's bookkeeping over, so the
        action can run again and run that task. False if it is not one of ours."""
        for key, cp in self.recover.items():
            if cp.tset_id == tset_id and self.manager is not None:
                self.manager.mark_version_damaged(tset_id, cp.version, reason)
                self._reset()
                return True
        return False

    def instantiated(self, stage: StagePlan, partition: int, worker: int) -> None:
        """The task of ``stage`` on ``partition`` was submitted to ``worker`` (to run)."""
        if only_reads(stage):
            return  # nothing new to save: its output is a cached or persisted TSet's
        info = task_info(stage, partition, self.action)
        self._infos[(stage.index, partition)] = info
        self._workers[(stage.index, partition)] = worker
        self._call("assign_task_to_group", self.policy.instantiated, info)
        if self.policy.saves_each_task_as_it_finishes and not self.policy.avoided(info):
            self._unasked.add((stage.index, partition))

    def commits_as_it_ends(self, stage: int, partition: int) -> bool:
        """Whether the worker commits this instantiated task's checkpoint itself
        when the task ends, unasked: the policy saves every task as it finishes
        (:attr:`~twister_nb.checkpoint.policy.CheckpointPolicy.saves_each_task_as_it_finishes`)
        and ``avoid.checkpoint`` does not name the task."""
        return (stage, partition) in self._unasked

    # ------------------------------------------------------------------ running

    def finished(self, stage: int, partition: int) -> None:
        """A task that ran (not a recovered one) finished."""
        info = self._infos.get((stage, partition))
        if info is not None:
            self._call("task_finished", self.policy.finished, info)

    def due(self, now: float | None = None, snapshot: bool = False) -> list[tuple[int, TaskSave]]:
        """``(worker, save)`` for every task to checkpoint now (each once), but
        those their worker commits unasked (:meth:`commits_as_it_ends`)."""
        if not self.active:
            return []
        if snapshot:
            tasks = self._call("snapshot", self.policy.snapshot)
        else:
            tasks = self._call("tick", self.policy.due, time.monotonic() if now is None else now)
        out = []
        for info in tasks:
            key = (info.stage, info.partition)
            if key in self._workers and key not in self.recover and key not in self._unasked:
                out.append((self._workers[key], self.saves[key]))
        return out

    def saved(self, save: TaskSave) -> None:
        """A worker committed ``save`` (known at once to the job's
        :class:`CommittedTasks`: the same action, run again after a damaged
        checkpoint, recovers it)."""
        self.counts[save.stage].checkpointed += 1
        self.saved_fingerprints.add(save.fingerprint)
        if self.committed is not None:
            self.committed.add((save.fingerprint,))

    def end(self) -> None:
        """The action ended: the values of finished, unsaved tasks are gone with it."""
        self._call("end_action", self.policy.end_action)

    def stage_counts(self) -> list[dict[str, Any]]:
        """Per stage: tasks, checkpointed, recovered."""
        return [c.to_dict() for c in self.counts.values()]

    def recovered_lines(self) -> Iterable[str]:
        """A line per stage with recovered tasks, for the watcher."""
        for c in self.counts.values():
            if c.recovered:
                yield (f"stage {c.stage} {c.label!r}: {c.recovered} of {c.tasks} tasks recovered "
                       "from their checkpoints (not run)")

    def _call(self, hook: str, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except Exception as exc:  # noqa: BLE001 - a policy's own error, named in one line
            raise JobFailedError(f"checkpoint policy {self.policy.name!r} raised in {hook}(): "
                                 f"{type(exc).__name__}: {exc}") from None
