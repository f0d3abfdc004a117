# The shape of tset_compute.py: computes with a collector, chained; plus Twister2's
# rule that a two-parameter compute is (itr, ctx) and returns, whatever its names.
from twister2 import TSetContext
from twister2.Twister2Environment import Twister2Environment
from twister2.tset.fn.SourceFunc import SourceFunc

env = Twister2Environment(resources=[{"cpu": 1, "ram": 256, "instances": 2}])

print("Greetings from worker %d" % env.worker_id)


class CountSource(SourceFunc):

    def __init__(self):
        super().__init__()
        self.n = 0

    def has_next(self):
        return self.n < 8

    def next(self):
        self.n += 1
        return self.n - 1


def times_three(itr, collector, ctx: TSetContext):
    for v in itr:
        collector.collect(v * 3)


def plus_one(itr, collector, ctx: TSetContext):
    for v in itr:
        collector.collect(v + 1)


source = env.create_source(CountSource(), 2)
source.compute(times_three).compute(plus_one).for_each(lambda v: print("(v x 3) + 1 = %d" % v))
source.compute(lambda itr, c: sum(itr)).for_each(lambda s: print("partition sum = %d" % s))
source.compute(lambda itr, ctx: ctx.get_index()).for_each(lambda i: print("index = %d" % i))
