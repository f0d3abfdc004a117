"""The events a JobMaster emits, one frozen dataclass per kind.

A job's watchers (the driver's printer, the notebook dashboard, the CLI, a
sidebar server) learn what happens from these events, and only from them. They
used to be dicts with a ``kind`` key, decoded by hand in three places; typed,
a field cannot be misspelled on one side only, and every watcher dispatches on
the class. The JobMaster builds them in one place (its event log, which stamps
``seq`` and ``time``); Ray pickles them to the driver as they are.

For JSON (a server that hands events to a browser) there is one pair:
:meth:`Event.to_dict` and :func:`decode`. The ``kind`` strings (and, for
actions, ``state``) are the wire names, unchanged since events were dicts.

A bottom module: it imports nothing of twister_nb and no Ray.

>>> event = OutputPrinted(lines=("[worker-0] hi",), seq=3, time=1.5)
>>> event.to_dict()
{'kind': 'output', 'seq': 3, 'time': 1.5, 'lines': ['[worker-0] hi']}
>>> decode(event.to_dict()) == event
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "ActionEnded", "ActionStarted", "CheckpointCommitted", "DriverAttached", "DriverLeft",
    "ErrorRaised",
    "Event", "OutputPrinted", "StageSubmitted", "StageSummary", "StartupStep", "TSetReleased",
    "TSetRestored", "TaskCheckpointed", "TaskCount", "TaskFinished", "TasksProgressed",
    "WorkersStarted", "decode",
]


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event has: its place in the job's log and when it happened.

    ``seq`` and ``time`` are set by the event log when it appends the event
    (``-1`` and ``0.0`` before that).
    """

    #: The wire name of the kind (``to_dict()["kind"]``).
    kind: ClassVar[str] = ""
    seq: int = -1
    time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-able values: ``kind``, ``seq``, ``time``, then its fields."""
        out: dict[str, Any] = {"kind": self.kind}
        out.update(_plain(dataclasses.asdict(self)))
        return out


@dataclass(frozen=True, kw_only=True)
class OutputPrinted(Event):
    """Lines printed by user functions (``[worker-i] ...``) or said by the JobMaster."""

    kind: ClassVar[str] = "output"
    lines: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DriverAttached(Event):
    """A driver process became the job's owner."""

    kind: ClassVar[str] = "attached"
    host: str = ""
    pid: int = 0


@dataclass(frozen=True, kw_only=True)
class DriverLeft(Event):
    """The driver process left the job, which goes on: ``reason`` says why
    (``kernel restarted``, ``kernel shut down``); ``action`` is the action it
    left running (None if none ran)."""

    kind: ClassVar[str] = "left"
    host: str = ""
    pid: int = 0
    reason: str = ""
    action: int | None = None


@dataclass(frozen=True, kw_only=True)
class WorkersStarted(Event):
    """The job now has ``count`` Worker actors."""

    kind: ClassVar[str] = "workers"
    count: int = 0


@dataclass(frozen=True)
class StageSummary:
    """One stage of an action, as a watcher draws it (no user code).

    ``tsets`` holds ``(label, tset_id)`` of every TSet computed in the stage.
    """

    index: int
    label: str = ""
    tset_id: str = ""
    parallelism: int = 0
    output: str = ""
    tsets: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class ActionStarted(Event):
    """Action number ``action`` (``collect``, ``persist``, ...) started, with its
    stages and the drawing of its graph (what an attached kernel shows)."""

    kind: ClassVar[str] = "action"
    state: ClassVar[str] = "running"
    action: int = 0
    action_kind: str = ""
    stages: tuple[StageSummary, ...] = ()
    #: The drawing of the action's TSet graph as plain values (nodes, edges), if given.
    graph: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "state": self.state}


@dataclass(frozen=True, kw_only=True)
class ActionEnded(Event):
    """Action number ``action`` ended: ``state`` is ``done``, ``failed`` or
    ``cancelled``."""

    kind: ClassVar[str] = "action"
    action: int = 0
    state: str = "done"
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class StageSubmitted(Event):
    """Every task of a stage was submitted."""

    kind: ClassVar[str] = "stage"
    state: ClassVar[str] = "submitted"
    action: int = 0
    stage: int = 0
    tasks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "state": self.state}


@dataclass(frozen=True, kw_only=True)
class TaskFinished(Event):
    """One task (a stage on one partition) ended well; ``write_seconds`` is set
    for the tasks that wrote a persisted part."""

    kind: ClassVar[str] = "task"
    action: int = 0
    stage: int = 0
    partition: int = 0
    worker: int = 0
    records_in: int = 0
    records_out: int = 0
    seconds: float = 0.0
    write_seconds: float | None = None
    #: Read from its task checkpoint instead of run (a resumed job).
    recovered: bool = False


@dataclass(frozen=True, kw_only=True)
class TaskCheckpointed(Event):
    """A worker committed one finished task's outputs as a task checkpoint
    (a checkpoint policy or ``snapshot()`` asked for it)."""

    kind: ClassVar[str] = "task_checkpoint"
    action: int = 0
    stage: int = 0
    partition: int = 0
    label: str = ""
    bytes: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class TaskCount:
    """One running task's counters so far: records read from its inputs and
    made by its last step, seconds since it started, and ``phase``
    (``running``, or ``writing`` while a persist task writes its part)."""

    stage: int
    partition: int
    worker: int = 0
    records_in: int = 0
    records_out: int = 0
    seconds: float = 0.0
    phase: str = "running"


@dataclass(frozen=True, kw_only=True)
class TasksProgressed(Event):
    """The counters of the tasks of action ``action`` that are running, as
    their workers last reported them (about every 0.25 s while a task runs;
    the JobMaster coalesces the reports into one event at most every 0.2 s).
    A task's :class:`TaskFinished` supersedes its counters."""

    kind: ClassVar[str] = "progress"
    action: int = 0
    tasks: tuple[TaskCount, ...] = ()


@dataclass(frozen=True, kw_only=True)
class StartupStep(Event):
    """A step of getting a job going that takes seconds (``starting the local
    Ray head``, ``starting the JobMaster``, ``starting 2 workers``): ``state``
    is ``running`` when it begins, then ``done`` (or ``failed``) with its
    ``seconds``. The driver announces its own steps before the job has an
    event log (``seq`` stays -1); the JobMaster emits the workers' step."""

    kind: ClassVar[str] = "startup"
    step: str = ""
    state: str = "running"
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class TSetRestored(Event):
    """Data an action needed was found instead of computed: in the workers'
    memory (``storage="memory"``) or a committed checkpoint (``"store"``, with
    its version and size)."""

    kind: ClassVar[str] = "restored"
    tset_id: str = ""
    storage: str = ""
    label: str | None = None
    version: int | None = None
    parts: int | None = None
    bytes: int | None = None


@dataclass(frozen=True, kw_only=True)
class CheckpointCommitted(Event):
    """A persisted TSet's version was committed to the store at ``where``."""

    kind: ClassVar[str] = "checkpoint"
    tset_id: str = ""
    label: str = ""
    version: int = 0
    bytes: int = 0
    seconds: float = 0.0
    where: str = ""


@dataclass(frozen=True, kw_only=True)
class ErrorRaised(Event):
    """An action failed: a user function (with the TSet, partition and worker)
    or the job itself (with the JobMaster's traceback). ``action`` is None for
    an error the driver saw outside any action."""

    kind: ClassVar[str] = "error"
    message: str = ""
    action: int | None = None
    tset: str | None = None
    tset_id: str | None = None
    partition: int | None = None
    worker: int | None = None
    traceback: str = ""


@dataclass(frozen=True, kw_only=True)
class TSetReleased(Event):
    """A cached TSet was dropped from the workers."""

    kind: ClassVar[str] = "released"
    tset_id: str = ""


@dataclass(frozen=True, kw_only=True)
class JobMasterRebuilt(Event):
    """The driver lost the job's JobMaster mid-action and started a new one from
    the store (``cause`` says how it was lost); the action it was running runs
    again on the new one, which numbers its actions afresh. Said by the driver
    to its own listeners: the lost JobMaster cannot."""

    kind: ClassVar[str] = "rebuilt"
    cause: str = ""


_BY_KIND: dict[str, type[Event]] = {
    cls.kind: cls for cls in (OutputPrinted, DriverAttached, DriverLeft, WorkersStarted,
                              StageSubmitted, TaskFinished, TaskCheckpointed, TSetRestored,
                              CheckpointCommitted, ErrorRaised, TSetReleased, JobMasterRebuilt,
                              TasksProgressed, StartupStep)
}


def decode(data: dict[str, Any]) -> Event:
    """The event a :meth:`Event.to_dict` (or its JSON) describes.

    Raises
    ------
    ValueError
        If ``data["kind"]`` names no event kind.
    """
    kind = data.get("kind")
    if kind == "action":
        cls: type[Event] = ActionStarted if data.get("state") == "running" else ActionEnded
    elif kind in _BY_KIND:
        cls = _BY_KIND[kind]
    else:
        raise ValueError(f"decode(): unknown event kind {kind!r}; known: "
                         f"{sorted({'action', *_BY_KIND})}")
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in data.items() if k in names}
    if "lines" in values:
        values["lines"] = tuple(values["lines"])
    if "tasks" in values and isinstance(values["tasks"], (list, tuple)):
        values["tasks"] = tuple(TaskCount(**t) for t in values["tasks"])
    if "stages" in values:
        values["stages"] = tuple(
            StageSummary(**{**s, "tsets": tuple(tuple(t) for t in s.get("tsets", ()))})
            for s in values["stages"])
    return cls(**values)


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively: what JSON gives back."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
