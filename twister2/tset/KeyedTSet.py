"""``from twister2.tset.KeyedTSet import KeyedTSet`` (see :mod:`twister2.tset.nodes`)."""

from twister2.tset.nodes import KeyedTSet

__all__ = ["KeyedTSet"]
