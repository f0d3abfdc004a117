"""The base of every checkpoint policy: COMPSs's ``CheckpointManagerImpl``, in Python.

A policy decides *when* the outputs of finished tasks are checkpointed (a
task is one stage on one partition), never *how*: the workers write a task's
outputs through the store protocol (parts, then a signed manifest,
put-if-absent; :mod:`twister_nb.checkpoint.tasks`). As in COMPSs, the base owns
the groups and the bookkeeping and a policy only decides:

* :meth:`CheckpointPolicy.assign_task_to_group` is called for every task when
  it is instantiated (submitted), in submission order; the policy calls
  :meth:`~CheckpointPolicy.add_task_to_group` and, once a group holds every task
  it will hold, :meth:`~CheckpointPolicy.close_group`. The tasks of a closed
  group are checkpointed as each finishes.
* :meth:`CheckpointPolicy.task_finished` and :meth:`CheckpointPolicy.tick`
  (called about every 50 ms while an action runs) let a policy that does not
  group ask for :meth:`~CheckpointPolicy.checkpoint_finished`: every finished
  task that is not checkpointed yet.

``avoid.checkpoint`` is applied here, for every policy: a task whose TSet name
or user function is listed is never checkpointed.

Plain Python: the JobMaster calls it from its scheduler; tested without Ray.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckpointGroup", "CheckpointPolicy", "TaskInfo"]


@dataclass(frozen=True)
class TaskInfo:
    """What a policy knows of one task (COMPSs's ``Task``).

    Attributes
    ----------
    tset : str
        The name of the TSet the task makes (its ``set_name``, or its operation).
    tset_id : str
        That TSet's ID.
    function : str
        The qualified name of the stage's last user function ("" if none).
    stage : int
        The stage's index in its action.
    partition : int
        The partition the task computes.
    parallelism : int
        How many tasks the stage has.
    action : int
        The action's number in the job.
    tsets : tuple of str
        The names of every TSet the task computes (its fused chain).
    functions : tuple of str
        The qualified names of every user function the task runs.
    """

    tset: str
    tset_id: str
    function: str
    stage: int
    partition: int
    parallelism: int
    action: int = 0
    tsets: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[int, int, int]:
        """``(action, stage, partition)``: the task within its job."""
        return (self.action, self.stage, self.partition)


@dataclass
class CheckpointGroup:
    """Tasks a policy checkpoints together once the group is closed."""

    name: str
    tasks: list[TaskInfo] = field(default_factory=list)
    closed: bool = False

    @property
    def size(self) -> int:
        return len(self.tasks)


class CheckpointPolicy:
    """Base of the policies: subclass it and implement :meth:`assign_task_to_group`.

    Parameters
    ----------
    params : mapping of str to str
        The policy's parameters (``finished.tasks``, ``period.time``, your own),
        as :func:`twister_nb.checkpoint.params.parse_params` reads them.
        ``avoid.checkpoint`` is taken out by :func:`~twister_nb.checkpoint.policies.load_policy`
        and handed to :meth:`avoid`.

    Examples
    --------
    A custom policy (``--checkpoint mymodule:EveryOther``) that checkpoints the
    even partitions only, each in a group of its own:

    >>> class EveryOther(CheckpointPolicy):
    ...     def assign_task_to_group(self, task):
    ...         if task.partition % 2 == 0:
    ...             self.add_task_to_group(task, f"p{task.partition}")
    ...             self.close_group(f"p{task.partition}")
    >>> policy = EveryOther({})
    >>> tasks = [TaskInfo("m", "m-1", "f", 0, p, 4) for p in range(4)]
    >>> for t in tasks:
    ...     policy.instantiated(t)
    >>> for t in tasks:
    ...     policy.finished(t)
    >>> [t.partition for t in policy.due()]
    [0, 2]
    """

    #: The name the policy is chosen by (``--checkpoint NAME``); custom ones use ``module:Class``.
    name = "custom"

    @property
    def saves_each_task_as_it_finishes(self) -> bool:
        """Whether this policy asks for every task's checkpoint the moment it
        finishes, whatever else happened (``finished_tasks`` 1). Then the worker
        commits the task when it ends, without being asked: the ask, a Ray call
        per task between the JobMaster and the worker, costs as much CPU as the
        commit itself. The policy still sees every task finish. False unless a
        policy says so; a subclass that overrides :meth:`task_finished` must
        keep it true to its own behaviour."""
        return False

    def __init__(self, params: Mapping[str, str]) -> None:
        self.params = dict(params)
        self._lock = threading.RLock()
        self._avoid: frozenset[str] = frozenset()
        self._groups: dict[str, CheckpointGroup] = {}
        self._group_of: dict[tuple[int, int, int], str] = {}
        #: Finished tasks not checkpointed nor asked for yet, in finishing order.
        self._finished: dict[tuple[int, int, int], TaskInfo] = {}
        #: Tasks whose checkpoint was asked for and not handed out by :meth:`due` yet.
        self._asked: dict[tuple[int, int, int], TaskInfo] = {}
        self._handed: set[tuple[int, int, int]] = set()

    def __getstate__(self) -> dict[str, Any]:
        """A policy travels from the driver to the JobMaster: everything but its lock."""
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ policy side

    def assign_task_to_group(self, task: TaskInfo) -> None:
        """Put ``task`` in a group (or in none: it is then checkpointed only when
        :meth:`checkpoint_finished` or ``snapshot()`` asks). Called once per task,
        in submission order."""
        raise NotImplementedError(
            f"{type(self).__qualname__} must implement assign_task_to_group(task)")

    def task_finished(self, task: TaskInfo) -> None:
        """Called when ``task`` finished (after the base recorded it)."""

    def tick(self, now: float) -> None:
        """Called about every 50 ms while an action runs, with ``time.monotonic()``."""

    def add_task_to_group(self, task: TaskInfo, group: str) -> CheckpointGroup:
        """Add ``task`` to the group named ``group`` (made on first use); the group."""
        with self._lock:
            found = self._groups.get(group)
            if found is None:
                found = self._groups[group] = CheckpointGroup(group)
            if found.closed:
                raise ValueError(f"add_task_to_group(): group {group!r} is closed already")
            found.tasks.append(task)
            self._group_of[task.key] = group
            return found

    def close_group(self, group: str) -> None:
        """Every task of ``group`` was added: its tasks are checkpointed as they
        finish (those finished already, at once)."""
        with self._lock:
            found = self._groups.get(group)
            if found is None:
                raise ValueError(f"close_group(): no group {group!r}; add a task to it first")
            found.closed = True
            for task in found.tasks:
                if task.key in self._finished:
                    self._ask(task)

    def checkpoint_finished(self) -> None:
        """Checkpoint every finished task not checkpointed yet (COMPSs's trigger)."""
        with self._lock:
            for task in list(self._finished.values()):
                self._ask(task)

    def unsaved(self) -> int:
        """How many finished tasks are not checkpointed nor asked for yet."""
        return len(self._finished)

    # ------------------------------------------------------------------ runtime side

    def avoid(self, names: frozenset[str]) -> None:
        """Never checkpoint tasks of these TSet names or user functions."""
        self._avoid = frozenset(names)

    def avoided(self, task: TaskInfo) -> bool:
        """Whether ``avoid.checkpoint`` names the task's TSets or functions.

        A function is named by its qualified name (``mod.f``); a program's own
        function (module ``__main__``) also by ``f`` or ``<script>.f``.

        >>> policy = CheckpointPolicy({})
        >>> policy.avoid(frozenset({"prog.slow"}))
        >>> policy.avoided(TaskInfo("m", "m-1", "__main__.slow", 0, 0, 1, functions=("__main__.slow",)))
        True
        """
        if not self._avoid:
            return False
        if not self._avoid.isdisjoint({task.tset, *task.tsets}):
            return True
        for name in {task.function, *task.functions} - {""}:
            module, _, qualname = name.partition(".")
            if name in self._avoid or (module == "__main__" and (
                    qualname in self._avoid
                    or any(a.partition(".")[2] == qualname for a in self._avoid))):
                return True
        return False

    def instantiated(self, task: TaskInfo) -> None:
        """The runtime submitted ``task``."""
        if not self.avoided(task):
            self.assign_task_to_group(task)

    def finished(self, task: TaskInfo) -> None:
        """The runtime saw ``task`` finish."""
        if self.avoided(task):
            return
        with self._lock:
            self._finished[task.key] = task
            group = self._groups.get(self._group_of.get(task.key, ""))
            if group is not None and group.closed:
                self._ask(task)
        self.task_finished(task)

    def due(self, now: float | None = None) -> list[TaskInfo]:
        """The tasks to checkpoint now (each handed out once), after :meth:`tick`."""
        if now is not None:
            self.tick(now)
        with self._lock:
            out = list(self._asked.values())
            self._asked.clear()
            self._handed.update(t.key for t in out)
            return out

    def snapshot(self) -> list[TaskInfo]:
        """``env.snapshot()``: every finished task not checkpointed yet, now."""
        with self._lock:
            for task in list(self._finished.values()):
                self._ask(task)
            out = list(self._asked.values())
            self._asked.clear()
            self._handed.update(t.key for t in out)
            return out

    def end_action(self) -> None:
        """The action ended: its finished, unsaved tasks' values are gone, and so are
        the closed groups (a later action may use their names again); a group still
        open goes on filling with the next action's tasks, as in COMPSs."""
        with self._lock:
            closed = {name for name, group in self._groups.items() if group.closed}
            for name in closed:
                del self._groups[name]
            self._group_of = {k: g for k, g in self._group_of.items() if g not in closed}
            self._finished.clear()
            self._asked.clear()
            self._handed.clear()

    def _ask(self, task: TaskInfo) -> None:
        if task.key not in self._handed:
            self._asked[task.key] = task
        self._finished.pop(task.key, None)

    def describe(self) -> dict[str, Any]:
        """The policy's name and parameters, for the job record and the banner."""
        return {"policy": self.name, "params": dict(self.params),
                "avoid": sorted(self._avoid)}
