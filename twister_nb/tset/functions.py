"""The user-function protocols of the Twister2 Python API.

A user hands twister_nb plain callables and a few small classes:
:class:`SourceFunc` (``has_next``/``next``), :class:`PartitionFunc`
(``prepare``/``partition``/``commit``), and receives a :class:`TSetContext`,
a :class:`Collector`, :class:`DataPartition` and :class:`DataObject`. They live
here, free of Ray, so a program and the workers agree on one definition.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "SourceFunc",
    "PartitionFunc",
    "LoadBalancePartitioner",
    "HashingPartitioner",
    "TSetContext",
    "Collector",
    "DataPartition",
    "DataObject",
    "stable_hash",
]


class SourceFunc:
    """A source: each parallel instance runs its own copy.

    Subclasses implement :meth:`has_next` and :meth:`next`; :meth:`prepare`
    is called once per instance before the first ``has_next`` with the
    instance's :class:`TSetContext` (``ctx.index`` tells which one it is).
    """

    def __init__(self) -> None:
        pass

    def prepare(self, ctx: "TSetContext") -> None:
        """Called once per parallel instance before reading."""

    def has_next(self) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must implement has_next()")

    def next(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement next()")


class PartitionFunc:
    """Chooses the destination partition of each value (Twister2's PartitionFunc).

    ``prepare(sources, destinations)`` receives the sets of source and
    destination indexes, ``partition(source_index, value)`` returns a
    destination index, and ``commit(source_index, partition)`` is told the
    choice (load balancers count with it).
    """

    def prepare(self, sources: set[int], destinations: set[int]) -> None:
        self.destinations = sorted(destinations)

    def partition(self, source_index: int, value: Any) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement partition()")

    def commit(self, source_index: int, partition: int) -> None:
        pass


class LoadBalancePartitioner(PartitionFunc):
    """Round-robin over the destinations, starting at each source's own index."""

    def prepare(self, sources: set[int], destinations: set[int]) -> None:
        self.destinations = sorted(destinations)
        self._next: dict[int, int] = {}

    def partition(self, source_index: int, value: Any) -> int:
        position = self._next.get(source_index, source_index)
        return self.destinations[position % len(self.destinations)]

    def commit(self, source_index: int, partition: int) -> None:
        self._next[source_index] = self._next.get(source_index, source_index) + 1


class HashingPartitioner(PartitionFunc):
    """Same value (or key, in keyed links), same destination, in every process."""

    def partition(self, source_index: int, value: Any) -> int:
        return self.destinations[stable_hash(value) % len(self.destinations)]


class _PartitionFunctions:
    """``env.functions.partition``: the built-in partitioners."""

    @staticmethod
    def load_balanced() -> LoadBalancePartitioner:
        return LoadBalancePartitioner()

    @staticmethod
    def hashing() -> HashingPartitioner:
        return HashingPartitioner()


class Functions:
    """``env.functions``: built-in user functions, grouped as in Twister2."""

    partition = _PartitionFunctions()


def stable_hash(value: Any) -> int:
    """A hash that is the same in every process (``hash(str)`` is salted per process).

    >>> stable_hash("word") == stable_hash("word")
    True
    >>> stable_hash(7)
    7
    """
    if isinstance(value, bool) or value is None:
        return int(bool(value))
    if isinstance(value, int):
        return value & 0x7FFFFFFFFFFFFFFF
    if isinstance(value, str):
        return zlib.crc32(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bytes):
        return zlib.crc32(value)
    if isinstance(value, float):
        return stable_hash(int(value)) if value.is_integer() else zlib.crc32(repr(value).encode())
    if isinstance(value, tuple):
        h = 0x345678
        for item in value:
            h = (h * 1000003) ^ stable_hash(item)
        return h & 0x7FFFFFFFFFFFFFFF
    return zlib.crc32(pickle.dumps(value, protocol=5))


class Collector:
    """Receives a compute's or flat_map's outputs: ``collector.collect(value)``."""

    __slots__ = ("collect",)

    def __init__(self, sink: Callable[[Any], None]) -> None:
        self.collect = sink


class DataPartition:
    """One partition of a cached or persisted TSet, as seen by a task."""

    def __init__(self, values: Iterable[Any]) -> None:
        self._values = values if isinstance(values, list) else list(values)

    def consumer(self) -> Iterator[Any]:
        """Iterate the partition's values."""
        return iter(self._values)

    def first(self) -> Any:
        """The first value; ``IndexError`` if the partition is empty."""
        if not self._values:
            raise IndexError("DataPartition.first(): the partition is empty")
        return self._values[0]

    def first_or_default(self, default: Any) -> Any:
        return self._values[0] if self._values else default

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"DataPartition({len(self._values)} values)"


class DataObject:
    """What ``get_data()`` returns: every partition of a TSet, in index order."""

    def __init__(self, partitions: list[list[Any]]) -> None:
        self._partitions = [DataPartition(p) for p in partitions]

    @property
    def partition_count(self) -> int:
        return len(self._partitions)

    def get_partitions(self) -> list[DataPartition]:
        return list(self._partitions)

    def get_partition(self, index: int) -> DataPartition:
        if not 0 <= index < len(self._partitions):
            raise IndexError(
                f"get_partition({index!r}): this DataObject has partitions 0..{len(self._partitions) - 1}"
            )
        return self._partitions[index]

    def __repr__(self) -> str:
        return f"DataObject({self.partition_count} partitions)"


class TSetContext:
    """What a user function learns about the task it runs in.

    ``worker_id`` is the Worker actor, ``index`` the partition (Twister2's
    task index), ``parallelism`` the TSet's, ``name``/``id`` the TSet's.
    ``get_input(key)`` returns the partition of an input added with
    ``add_input(key, tset)`` that belongs to this task.
    """

    def __init__(
        self,
        *,
        worker_id: int,
        index: int,
        parallelism: int,
        name: str,
        id: str,  # noqa: A002 - Twister2's name
        config: Mapping[str, Any],
        inputs: Mapping[str, list[Any]] | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.index = index
        self.parallelism = parallelism
        self.name = name
        self.id = id
        self.config = dict(config)
        self._inputs = dict(inputs or {})

    def get_input(self, key: str) -> DataPartition:
        if key not in self._inputs:
            raise KeyError(
                f"get_input({key!r}): TSet {self.name!r} has no input named {key!r}; "
                f"inputs added with add_input: {sorted(self._inputs)}"
            )
        return DataPartition(self._inputs[key])

    def __repr__(self) -> str:
        return f"TSetContext(name={self.name!r}, index={self.index}, worker_id={self.worker_id})"
