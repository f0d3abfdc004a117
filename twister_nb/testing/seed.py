"""The seed tutorial's source and user functions (Twister2's TSet persisting
tutorial), written once for the tests and the benchmarks.

>>> src = IntSource(3)
>>> [src.next() for _ in range(3)], src.has_next()
([0, 1, 2], False)

A source or function defined here travels to the workers *by reference* (the
workers import ``twister_nb.testing.seed``) and its TSet ID hashes its class
name and instance state, not its code (``tset/identity.py`` treats
``twister_nb.*`` classes as ours). A test that is about how *user* code travels
or is fingerprinted (a class in ``__main__``, in a notebook cell, or closing
over a global) must define its own class instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twister_nb.tset.functions import Collector, SourceFunc, TSetContext


class IntSource(SourceFunc):
    """The tutorial's source: ``0 .. n-1`` in every parallel instance.

    Its only state is ``n`` and ``i`` (tests compare ``vars()`` of a copy).
    """

    def __init__(self, n: int = 10_000) -> None:
        super().__init__()
        self.n = n
        self.i = 0

    def has_next(self) -> bool:
        return self.i < self.n

    def next(self) -> int:
        res = self.i
        self.i = self.i + 1
        return res


def mul_by_five(itr: Iterable[int], collector: Collector, ctx: TSetContext) -> None:
    """The tutorial's first ``compute``: ``x * 5``."""
    for i in itr:
        collector.collect(i * 5)


def add_two(itr: Iterable[int], collector: Collector, ctx: TSetContext) -> None:
    """The tutorial's second ``compute``: ``x + 2``."""
    for i in itr:
        collector.collect(i + 2)


def add(a: Any, b: Any) -> Any:
    """The tutorial's ``reduce``: ``a + b``."""
    return a + b
