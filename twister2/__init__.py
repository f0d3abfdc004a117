"""Twister2's Python API, on twister_nb: run Twister2's programs as they are.

``from twister2.Twister2Environment import Twister2Environment`` and the rest of
Twister2's module names, with Twister2's behaviour where it differs from
twister_nb's own API: the program runs once per worker (:mod:`twister2.spmd`),
the graph is mutable (``add_input``), a direct ``sink`` receives its partition's
iterator, records are writable. A thin layer: every action runs on twister_nb.

>>> from twister2 import TSetContext  # doctest: +SKIP
"""

from twister2.TSetContext import TSetContext

__all__ = ["TSetContext"]
