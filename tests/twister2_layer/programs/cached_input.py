# The shape of tset_caching.py: add_input AFTER building the TSet that reads it;
# DataPartition.first() of an empty partition is None; get_data() of a cached TSet.
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
        return self.n < 5

    def next(self):
        self.n += 1
        return self.n - 1


def times_four(itr, collector, ctx: TSetContext):
    for v in itr:
        collector.collect(v * 4)


cached = env.create_source(CountSource(), 2).compute(times_four).cache()
lonely = env.parallelize_list([99], 2).cache()


def add_y(itr, collector, ctx: TSetContext):
    ys = ctx.get_input("y").consumer()
    for z, y in zip(itr, ys):
        collector.collect(z + y)


calc = env.create_source(CountSource(), 2).compute(add_y)
calc.add_input("y", cached)
calc.for_each(lambda v: print("(y * 4) + z = %d" % v))

probe = env.create_source(CountSource(), 2).compute(
    lambda itr, ctx: (ctx.get_index(), ctx.get_input("lonely").first()))
probe.add_input("lonely", lonely)
probe.for_each(lambda pair: print("first of %d: %s" % pair))

data = cached.get_data()
print("DATA worker %d: %d partitions, %s" % (
    env.worker_id, data.partition_count,
    [list(p.consumer()) for p in data.get_partitions()]))
print("UNCACHED worker %d: %s" % (env.worker_id, calc.get_data()))
