"""The physical plan: stages of fused per-partition programs joined by exchanges.

Two halves, on purpose:

* :class:`StagePlan` is what the JobMaster schedules: parallelism, which
  producer stages feed it, which materialized data it reads, what it outputs.
  It holds no user code, so the JobMaster never unpickles a user's function.
* :class:`Program` is what a Worker runs for one partition: the fused steps with
  the user functions. It travels as cloudpickle bytes (``StagePlan.program``)
  and is unpickled afresh for every task, so each parallel instance gets its
  own copy of a ``SourceFunc``, as in Twister2.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

#: Exchanges whose producers send one bucket per destination partition; the
#: others send one bucket that every destination reads.
PARTITIONED_EXCHANGES = frozenset(
    {"partition", "keyed_reduce", "keyed_gather", "keyed_partition", "join"}
)


@dataclass(frozen=True)
class ExchangeSpec:
    """One link that moves data between partitions, as both sides need it."""

    kind: str
    src_parallelism: int
    dst_parallelism: int
    fn: Any = None
    pf: Any = None
    key_comparator: Any = None
    join_type: str = "inner"

    @property
    def partitioned(self) -> bool:
        return self.kind in PARTITIONED_EXCHANGES

    @property
    def buckets(self) -> int:
        """How many outputs each producer task returns."""
        return self.dst_parallelism if self.partitioned else 1


@dataclass(frozen=True)
class Step:
    """One operation of a stage's per-partition program.

    ``args`` are indexes of earlier steps; ``sides`` maps ``get_input`` keys to
    materialized-input indexes; ``source`` is the index of the exchange or
    materialized input a leaf step reads.
    """

    kind: str
    tset_id: str
    label: str
    parallelism: int
    args: tuple[int, ...] = ()
    fn: Any = None
    convention: Any = None
    payload: Any = None
    source: int = -1
    sides: tuple[tuple[str, int], ...] = ()


@dataclass
class Program:
    """The fused steps of a stage, run once per partition on a worker."""

    steps: list[Step]
    output_step: int
    #: For each step, the last step that reads it: its data is dropped after.
    last_use: list[int]
    #: Producer side of the exchange this stage feeds, if any.
    exchange: ExchangeSpec | None = None


@dataclass(frozen=True)
class ExchangeInput:
    """A consumer stage reads every task of ``stage``: bucket d (partitioned) or 0.
    No user code here: the JobMaster reads it."""

    stage: int
    partitioned: bool


@dataclass(frozen=True)
class MaterializedInput:
    """Data left by an earlier action: on the workers (memory) or in the store."""

    tset_id: str
    parallelism: int
    storage: str = "memory"

    def partition_for(self, index: int) -> int:
        """Which partition task ``index`` reads: its own, or partition 0 when the
        input has a single partition (a broadcast, e.g. reduced centroids)."""
        if self.parallelism == 1:
            return 0
        return index % self.parallelism


@dataclass
class StagePlan:
    """One stage, as the JobMaster schedules it."""

    index: int
    label: str
    tset_id: str
    parallelism: int
    #: ``exchange`` (feeds a later stage), ``collect``, ``cache``, ``persist`` or ``run``.
    output: str
    exchange_inputs: list[ExchangeInput] = field(default_factory=list)
    materialized_inputs: list[MaterializedInput] = field(default_factory=list)
    #: Labels and IDs of every TSet computed in this stage, for progress and the graph.
    tsets: list[tuple[str, str]] = field(default_factory=list)
    program: bytes = b""
    #: Outputs each task returns besides its metadata.
    num_outputs: int = 0
    #: The exchange (link ID and side) this stage's tasks send to, "" if none:
    #: part of a task checkpoint's fingerprint, since the buckets depend on it.
    feeds: str = ""
    #: Qualified names of the stage's user functions (``avoid.checkpoint``, policies).
    functions: tuple[str, ...] = ()


@dataclass
class Plan:
    """Stages in an order where producers come first; the last one is the action's."""

    stages: list[StagePlan]
    action: str
    root_id: str
    #: Whether the root yields ``(key, value)`` pairs (a re-attached handle needs it).
    keyed: bool = False
    #: The drawing of the action's graph as plain values (``tset.graph.model_to_dict``,
    #: no user code), for a watcher that did not build it (an attached kernel).
    graph: dict[str, Any] | None = None

    @property
    def final(self) -> StagePlan:
        return self.stages[-1]


# --------------------------------------------------------------------------- task wire
#
# What the JobMaster tells a Worker about one task besides the program: where the
# result goes and how to get each materialized input. Small frozen dataclasses
# (they were tagged tuples), built by the scheduler and read by the worker.


@dataclass(frozen=True)
class TaskOutput:
    """Where a task's result goes; the subclasses say which way."""


@dataclass(frozen=True)
class SendOutput(TaskOutput):
    """Send it to the next stage's exchange (the task returns one bucket per output)."""


@dataclass(frozen=True)
class ReturnOutput(TaskOutput):
    """Return the partition (``collect``, ``partitions``): the driver reads its ref."""


@dataclass(frozen=True)
class DiscardOutput(TaskOutput):
    """Keep nothing (``run``: the steps' effects, e.g. ``for_each``, are the point)."""


@dataclass(frozen=True)
class CacheOutput(TaskOutput):
    """Keep the partition in the worker's memory as a partition of ``tset_id``."""

    tset_id: str


@dataclass(frozen=True)
class PersistOutput(TaskOutput):
    """Write the partition as a part of version ``version`` of ``tset_id`` to the store."""

    tset_id: str
    version: int


def task_output(stage: StagePlan, action: str, final: bool, materialize_id: str | None = None,
                version: int | None = None) -> TaskOutput:
    """The output of every task of ``stage`` in an action of kind ``action``.

    >>> s = StagePlan(index=0, label="m", tset_id="m-1", parallelism=2, output="persist")
    >>> task_output(s, "persist", True, "m-1", 3)
    PersistOutput(tset_id='m-1', version=3)
    """
    if final and action == "cache":
        assert materialize_id is not None, stage
        return CacheOutput(materialize_id)
    if final and action == "persist":
        assert materialize_id is not None and version is not None, (materialize_id, version)
        return PersistOutput(materialize_id, version)
    if stage.output == "exchange":
        return SendOutput()
    if stage.output in ("collect", "partitions"):
        return ReturnOutput()
    return DiscardOutput()


@dataclass(frozen=True)
class MaterializedRead:
    """How a task gets one materialized input partition; the subclasses say which way."""


@dataclass(frozen=True)
class StoreRead(MaterializedRead):
    """Read part ``partition`` of a committed checkpoint (the store's ``Checkpoint``)."""

    checkpoint: Any
    partition: int


@dataclass(frozen=True)
class LocalRead(MaterializedRead):
    """The partition is cached on the worker that runs the task."""

    tset_id: str
    partition: int


@dataclass(frozen=True)
class FetchedRead(MaterializedRead):
    """Another worker holds it: its object ref comes next among the task's arguments."""


@dataclass(frozen=True)
class TaskCall:
    """One task as the scheduler asks a worker to run it: everything but the
    program and the input refs, which travel beside it (``Worker.run_task``).

    It travels as pickle bytes (:meth:`encode`), one argument of the call: Ray
    serializes each argument on its own, binds keyword arguments through
    ``inspect.Signature``, and pickles a dataclass through cloudpickle's
    per-object hooks. Measured per task in the JobMaster's CPU (a micro-benchmark
    of the call): these fields as eight arguments, three of them keywords, cost
    ~150 µs more than one dataclass argument, and that one ~40 µs more than its
    bytes. Every class in it is importable by name, so plain pickle serves.
    """

    #: The run's key for the program (the worker caches a large program under it).
    key: str
    partition: int
    #: How many exchange buckets each exchange input brings (they lead the refs).
    exchange_counts: tuple[int, ...]
    #: One per materialized input; a FetchedRead's ref follows the buckets.
    materialized: tuple[MaterializedRead, ...]
    output: TaskOutput
    #: A ``checkpoint.tasks.TaskSave`` when the worker keeps the task's outputs
    #: for a checkpoint (a policy, or a SIGTERM's vacate), else None.
    save: Any = None
    #: With ``save``: the worker commits the checkpoint itself as the task ends.
    commit: bool = False
    #: With ``save`` and no ``commit``: keep only if the task ran this long.
    keep_min_seconds: float = 0.0

    def encode(self) -> bytes:
        """This call as the bytes ``Worker.run_task`` takes."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def decode(data: bytes) -> TaskCall:
        """The call :meth:`encode` made ``data`` of."""
        call = pickle.loads(data)
        if not isinstance(call, TaskCall):
            raise TypeError(f"not a TaskCall: {type(call).__name__}")
        return call
