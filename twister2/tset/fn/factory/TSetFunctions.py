"""``env.functions``: the built-in partitioners, as properties (Twister2's ``TSetFunctions``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twister_nb.tset.functions import HashingPartitioner, LoadBalancePartitioner

__all__ = ["TSetFunctions", "PartitionFunctions", "GenericFunctions"]


class PartitionFunctions:
    """``env.functions.partition``: ``load_balanced`` and ``hashing`` are
    properties, each a new partitioner (``partition(env.functions.partition.load_balanced)``)."""

    @property
    def load_balanced(self) -> LoadBalancePartitioner:
        return LoadBalancePartitioner()

    @property
    def hashing(self) -> HashingPartitioner:
        return HashingPartitioner()

    def build(self, partition_func: Any) -> Any:
        """Twister2 sends a user's partitioner to Java here; here it is used as it is."""
        return partition_func


class GenericFunctions:
    """``env.functions.map`` and the others: ``build(fn)`` gives ``fn`` back
    (Twister2 turned it into a Java reference; nothing needs that here)."""

    def build(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return fn


class TSetFunctions:
    """``env.functions``: ``partition`` and the generic factories, as properties."""

    def __init__(self) -> None:
        self._partition = PartitionFunctions()
        self._generic = GenericFunctions()

    @property
    def partition(self) -> PartitionFunctions:
        return self._partition

    @property
    def map(self) -> GenericFunctions:  # noqa: A003
        return self._generic

    flat_map = compute = compute_with_collector = sink = apply = reduce = comparator = map
