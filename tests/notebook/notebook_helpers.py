"""Shared pieces of the notebook tests: the seed program as a cell, and a
namespace that runs it as a notebook would (functions in ``__main__``, so
they travel to the workers by value)."""

from __future__ import annotations

from typing import Any

#: The Twister2 TSet persisting tutorial (the seed), with ``env`` bound.
SEED_CELL = '''\
from datetime import datetime

from twister_nb import SourceFunc, TSetContext


class IntSource(SourceFunc):

    def __init__(self):
        super().__init__()
        self.i = 0

    def has_next(self):
        return self.i < 10000

    def next(self):
        res = self.i
        self.i = self.i + 1
        return res


source_x = env.create_source(IntSource(), 4)


def mul_by_five(itr, collector, ctx: TSetContext):
    for i in itr:
        collector.collect(i * 5)


def add_two(itr, collector, ctx: TSetContext):
    for i in itr:
        collector.collect(i + 2)


t1 = datetime.now()
two_computes = source_x.compute(mul_by_five).compute(add_two)
t2 = datetime.now()
print("Time taken for two_computes %d" % (t2 - t1).total_seconds())

t1 = datetime.now()
persisted = two_computes.persist()
t2 = datetime.now()
print("Time taken for persist %d" % (t2 - t1).total_seconds())

persisted.reduce(lambda i1, i2: i1 + i2) \\
    .for_each(lambda i: print("SUM = %d" % i))
'''

SUM_LINE = "SUM = 999980000"


def run_seed(env: Any) -> dict[str, Any]:
    """Run the seed cell with ``env``; its namespace."""
    ns: dict[str, Any] = {"__name__": "__main__", "env": env}
    exec(compile(SEED_CELL, "<seed>", "exec"), ns)  # noqa: S102
    return ns
