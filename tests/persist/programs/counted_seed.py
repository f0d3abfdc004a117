"""The seed tutorial, instrumented for the restart tests.

Every call of the upstream compute functions appends a line to $COUNT_FILE
(written by the workers), so a test can tell whether a restart recomputed
them. With $SLEEP_AFTER_PERSIST set, the program waits after persist() so the
test can SIGKILL it at that point.
"""

import os
import time

from twister_nb import SourceFunc, Twister2Environment

COUNT_FILE = os.environ["COUNT_FILE"]

env = Twister2Environment(resources=[{"cpu": 1, "ram": 512, "instances": 4}])


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


def mul_by_five(itr, collector, ctx):
    with open(COUNT_FILE, "a") as f:
        f.write(f"mul_by_five {ctx.index}\n")
    for i in itr:
        collector.collect(i * 5)


def add_two(itr, collector, ctx):
    with open(COUNT_FILE, "a") as f:
        f.write(f"add_two {ctx.index}\n")
    for i in itr:
        collector.collect(i + 2)


two_computes = env.create_source(IntSource(), 4).compute(mul_by_five).compute(add_two)
t1 = time.perf_counter()
persisted = two_computes.persist()
print("persist took %.4f s" % (time.perf_counter() - t1), flush=True)
if os.environ.get("SLEEP_AFTER_PERSIST"):
    print("PERSISTED, waiting to be killed", flush=True)
    time.sleep(600)
persisted.reduce(lambda i1, i2: i1 + i2).for_each(lambda i: print("SUM = %d" % i))
