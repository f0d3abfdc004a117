"""Twister2's ``DataPartition``: one partition of a cached TSet or of an input."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from twister2.records import writable, writable_records

__all__ = ["DataPartition"]


class DataPartition:
    """The values of one partition, as Twister2 hands them out.

    Unlike :class:`twister_nb.DataPartition`, :meth:`first` is None on an empty
    partition (Twister2's), and the values are writable copies where the stored
    ones are read-only arrays (Twister2 gives each reader its own).
    """

    def __init__(self, values: Iterable[Any], index: int) -> None:
        self._values = values if isinstance(values, list) else list(values)
        self._index = index

    @property
    def id(self) -> int:  # noqa: A003 - Twister2's name
        """The partition's index."""
        return self._index

    def consumer(self) -> Iterator[Any]:
        """Iterate the partition's values."""
        return writable_records(self._values)

    def first(self) -> Any:
        """The first value, or None when the partition is empty."""
        return writable(self._values[0]) if self._values else None

    def first_or_default(self, default: Any) -> Any:
        """The first value, or ``default`` when the partition is empty (or its first value is None)."""
        first = self.first()
        return default if first is None else first

    def __iter__(self) -> Iterator[Any]:
        return self.consumer()

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"DataPartition(id={self._index}, {len(self._values)} values)"
