"""The logical graph: one small frozen dataclass per TSet operation.

A user-facing :class:`~twister_nb.tset.tset.TSet` wraps one of these nodes.
Nodes are immutable because cells share them: ``t = src.map(f)`` in one cell
and ``t.reduce(g)`` in two others all point at the same ``Map`` node, and a
change must build a new node (``set_name`` and ``add_input`` do) rather than
edit the shared one. Links (``Direct``, ``Reduce``, ...) are nodes too, so the
planner sees exactly where the data moves between partitions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from twister_nb.tset.signature import Convention


@dataclass(frozen=True, eq=False)
class LogicalOp:
    """Base of every node. ``inputs`` are the upstream nodes; ``side_inputs`` the
    ``add_input(name, tset)`` pairs, whose data every task can ``get_input``."""

    inputs: tuple["LogicalOp", ...] = field(default=(), kw_only=True)
    parallelism: int = field(kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    side_inputs: tuple[tuple[str, "LogicalOp"], ...] = field(default=(), kw_only=True)
    #: Number of inputs the node takes; None for any number (union).
    num_inputs: ClassVar[int | None] = 1
    #: Whether the records this node yields are ``(key, value)`` pairs.
    keyed: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        assert self.num_inputs is None or len(self.inputs) == self.num_inputs, (
            f"{type(self).__name__} takes {self.num_inputs} inputs, got {len(self.inputs)}"
        )
        if not isinstance(self.parallelism, int) or self.parallelism < 1:
            raise ValueError(
                f"{type(self).__name__}: parallelism must be a positive int, got {self.parallelism!r}"
            )

    @property
    def kind(self) -> str:
        """The operation's name as the user wrote it: ``Map`` -> ``map``."""
        out = []
        for i, ch in enumerate(type(self).__name__):
            if ch.isupper() and i:
                out.append("_")
            out.append(ch.lower())
        return "".join(out)

    @property
    def label(self) -> str:
        """The TSet's name, or its kind when it was not named."""
        return self.name or self.kind

    def replace(self, **changes: Any) -> "LogicalOp":
        """A copy with some fields changed (nodes are never edited in place)."""
        return dataclasses.replace(self, **changes)

    def upstream(self) -> tuple["LogicalOp", ...]:
        """Inputs first, then side inputs: everything this node reads."""
        return self.inputs + tuple(op for _, op in self.side_inputs)

    def post_order(self) -> Iterator["LogicalOp"]:
        """Every node reachable upstream, each once, parents before children."""
        seen: set[int] = set()
        stack: list[tuple[LogicalOp, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in seen:
                continue
            if expanded:
                seen.add(id(node))
                yield node
                continue
            stack.append((node, True))
            for parent in reversed(node.upstream()):
                if id(parent) not in seen:
                    stack.append((parent, False))


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True, eq=False)
class AbstractSource(LogicalOp):
    num_inputs: ClassVar[int | None] = 0


@dataclass(frozen=True, eq=False)
class Source(AbstractSource):
    """``create_source`` / ``create_keyed_source``: every instance runs a copy of ``func``."""

    func: Any = None


@dataclass(frozen=True, eq=False)
class Parallelize(AbstractSource):
    """``parallelize_list`` / ``parallelize_dict``: the values, already split."""

    partitions: tuple[tuple[Any, ...], ...] = ()


@dataclass(frozen=True, eq=False)
class Materialized(AbstractSource):
    """Data a previous action left on the workers (``cache``) or in the store
    (``persist``). Its identity is the TSet it was computed from."""

    tset_id: str = ""
    storage: str = "memory"


# --------------------------------------------------------------------------- links


@dataclass(frozen=True, eq=False)
class AbstractLink(LogicalOp):
    """How records travel from a TSet to the next transform."""


@dataclass(frozen=True, eq=False)
class Direct(AbstractLink):
    """Partition i feeds partition i: fused with its neighbours, no data moves."""


@dataclass(frozen=True, eq=False)
class AbstractExchange(AbstractLink):
    """A link that moves data between partitions: the planner cuts a stage here."""


@dataclass(frozen=True, eq=False)
class Reduce(AbstractExchange):
    """All values folded with ``fn(a, b)`` into one, in a single partition."""

    fn: Callable[[Any, Any], Any] | None = None


@dataclass(frozen=True, eq=False)
class AllReduce(AbstractExchange):
    """As ``Reduce``, with the result in every partition."""

    fn: Callable[[Any, Any], Any] | None = None


@dataclass(frozen=True, eq=False)
class Gather(AbstractExchange):
    """Every value, in source-partition order, in a single partition."""


@dataclass(frozen=True, eq=False)
class AllGather(AbstractExchange):
    """As ``Gather``, with all values in every partition."""


@dataclass(frozen=True, eq=False)
class Partition(AbstractExchange):
    """Each value to the partition ``pf.partition(source, value)`` chooses."""

    pf: Any = None


@dataclass(frozen=True, eq=False)
class Replicate(AbstractExchange):
    """Broadcast: every destination partition receives all values."""


@dataclass(frozen=True, eq=False)
class KeyedReduce(AbstractExchange):
    """Values of equal keys folded with ``fn(a, b)``; yields ``(key, value)``."""

    fn: Callable[[Any, Any], Any] | None = None


@dataclass(frozen=True, eq=False)
class KeyedGather(AbstractExchange):
    """Values grouped per key; yields ``(key, [values])``, keys ordered by
    ``key_comparator`` when given."""

    pf: Any = None
    key_comparator: Callable[[Any, Any], int] | None = None
    use_disk: bool = False


@dataclass(frozen=True, eq=False)
class KeyedPartition(AbstractExchange):
    """Each ``(key, value)`` to the partition ``pf.partition(source, key)`` chooses."""

    pf: Any = None


JOIN_TYPES = ("inner", "left", "right", "full_outer")


@dataclass(frozen=True, eq=False)
class Join(AbstractExchange):
    """``(key, (left, right))`` for equal keys of two keyed TSets."""

    num_inputs: ClassVar[int | None] = 2
    join_type: str = "inner"
    key_comparator: Callable[[Any, Any], int] | None = None


# --------------------------------------------------------------------------- transforms


def identity(value: Any) -> Any:
    """The function of the map that an action on a link adds (``t.reduce(f).collect()``),
    so that what the link delivers is a TSet; views name that node after the link."""
    return value


@dataclass(frozen=True, eq=False)
class AbstractTransform(LogicalOp):
    """A user function applied partition by partition after a link."""

    fn: Any = None
    convention: Convention = Convention.VALUE


@dataclass(frozen=True, eq=False)
class Map(AbstractTransform):
    @property
    def label(self) -> str:
        """A map the API added after a link (:func:`identity`) is that link's result:
        ``reduce result``, not ``map``."""
        if (not self.name and self.fn is identity and self.inputs
                and isinstance(self.inputs[0], AbstractLink)):
            return f"{self.inputs[0].kind} result"
        return super().label


@dataclass(frozen=True, eq=False)
class FlatMap(AbstractTransform):
    pass


@dataclass(frozen=True, eq=False)
class Compute(AbstractTransform):
    pass


@dataclass(frozen=True, eq=False)
class Filter(AbstractTransform):
    pass


@dataclass(frozen=True, eq=False)
class MapToTuple(AbstractTransform):
    pass


@dataclass(frozen=True, eq=False)
class MapBatches(AbstractTransform):
    """``fn(batch[, ctx])`` on numpy / Arrow batches of at most ``batch_size`` rows
    (None: slices of about 512 KiB); yields what ``fn`` returns, one per batch."""

    batch_size: int | None = None


@dataclass(frozen=True, eq=False)
class Unbatch(AbstractTransform):
    """The rows of every batch as records (the inverse of ``map_batches``)."""


@dataclass(frozen=True, eq=False)
class ForEach(AbstractTransform):
    """Runs ``fn`` on every value; yields nothing."""


@dataclass(frozen=True, eq=False)
class Sink(AbstractTransform):
    """Hands every value to ``fn`` (or ``sink.add``); yields nothing."""


@dataclass(frozen=True, eq=False)
class Union(LogicalOp):
    """Partition i is the concatenation of partition i of every input."""

    num_inputs: ClassVar[int | None] = None


# --------------------------------------------------------------------------- lineage


def detached(root: LogicalOp) -> LogicalOp:
    """``root``'s graph with each cached or persisted input as an equal copy.

    A materialized TSet's data is freed when its node is no longer referenced
    (its handle's finalizer is on the node), so a graph kept for later -- the
    lineage a lost TSet is made again from -- must not hold those nodes, or a
    loop's caches would hold each other for ever. The copies name the same data
    while it is held; once it was freed, remaking from them fails as it would
    have before. Shared nodes stay shared.
    """
    copies: dict[int, LogicalOp] = {}
    for node in root.post_order():  # parents before children
        if isinstance(node, Materialized):
            copies[id(node)] = node.replace()
        else:
            copies[id(node)] = node.replace(
                inputs=tuple(copies[id(i)] for i in node.inputs),
                side_inputs=tuple((key, copies[id(op)]) for key, op in node.side_inputs))
    return copies[id(root)]
