"""``from twister2.tset.TSet import TSet`` (see :mod:`twister2.tset.nodes`)."""

from twister2.tset.nodes import TSet

__all__ = ["TSet"]
