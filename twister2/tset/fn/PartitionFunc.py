"""``from twister2.tset.fn.PartitionFunc import PartitionFunc``."""

from __future__ import annotations

from twister_nb import PartitionFunc as _Base

__all__ = ["PartitionFunc"]


class PartitionFunc(_Base):
    """Chooses each value's destination: ``prepare(sources, destinations)``,
    ``partition(source_index, value) -> int``, ``commit(source_index, partition)``
    (twister_nb's protocol, with Twister2's ``pre_defined`` and ``java_ref``)."""

    @property
    def pre_defined(self) -> bool:
        """Twister2's: whether the function is one of the built-in ones (never, here)."""
        return False

    def java_ref(self) -> None:
        """Twister2's handle to a Java partitioner: there is none here."""
        return None
