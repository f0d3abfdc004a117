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


@dataclass
class Plan:
    """Stages in an order where producers come first; the last one is the action's."""

    stages: list[StagePlan]
    action: str
    root_id: str
    #: Whether the root yields ``(key, value)`` pairs (a re-attached handle needs it).
    keyed: bool = False

    @property
    def final(self) -> StagePlan:
        return self.stages[-1]
