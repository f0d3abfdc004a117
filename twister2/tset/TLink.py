"""``from twister2.tset.TLink import TLink`` (see :mod:`twister2.tset.nodes`)."""

from twister2.tset.nodes import TLink

__all__ = ["TLink"]
