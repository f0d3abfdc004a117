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
        self._data = data
        self._id = ident

    @property
    def id(self) -> str:  # noqa: A003 - Twister2's name
        """The ID of the TSet these partitions are the data of."""
        return self._id

    @property
    def partition_count(self) -> int:
        return self._data.partition_count

    def get_partitions(self) -> list[DataPartition]:
        return [DataPartition(list(p), i) for i, p in enumerate(self._data.get_partitions())]

    def get_partition(self, partition_id: int) -> DataPartition:
        return DataPartition(list(self._data.get_partition(partition_id)), partition_id)

    def __repr__(self) -> str:
        return f"DataObject(id={self._id!r}, {self.partition_count} partitions)"
