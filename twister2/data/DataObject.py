"""Twister2's ``DataObject``: what ``get_data()`` of a cached TSet returns."""

from __future__ import annotations

from typing import Any

from twister2.data.DataPartition import DataPartition

__all__ = ["DataObject"]


class DataObject:
    """Every partition of a cached TSet, and the TSet's ID (``id``).

    Wraps :class:`twister_nb.DataObject` (what the job returned) so that each
    partition is a Twister2 :class:`DataPartition`.
    """

    def __init__(self, data: Any, ident: str) -> None:
        self._partitions = [DataPartition(list(p), i) for i, p in enumerate(data.get_partitions())]
        self._id = ident

    @property
    def id(self) -> str:  # noqa: A003 - Twister2's name
        """The ID of the TSet these partitions are the data of."""
        return self._id

    @property
    def partition_count(self) -> int:
        return len(self._partitions)

    def get_partitions(self) -> list[DataPartition]:
        return list(self._partitions)

    def get_partition(self, partition_id: int) -> DataPartition:
        if not isinstance(partition_id, int) or not 0 <= partition_id < len(self._partitions):
            raise IndexError(f"get_partition({partition_id!r}): this DataObject has partitions "
                             f"0..{len(self._partitions) - 1}")
        return self._partitions[partition_id]

    def __repr__(self) -> str:
        return f"DataObject(id={self._id!r}, {self.partition_count} partitions)"
