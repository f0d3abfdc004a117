# The shape of tset_communication.py: computes, then reduce; printed once, on worker 0.
from twister2 import TSetContext
from twister2.Twister2Environment import Twister2Environment
from twister2.tset.fn.SourceFunc import SourceFunc

env = Twister2Environment(resources=[{"cpu": 1, "ram": 256, "instances": 3}])

print("Greetings from worker %d" % env.worker_id)


class CountSource(SourceFunc):

    def __init__(self):
        super().__init__()
        self.n = 0

    def has_next(self):
        return self.n < 12

    def next(self):
        self.n += 1
        return self.n - 1


def times_three(itr, collector, ctx: TSetContext):
    for v in itr:
        collector.collect(v * 3)


env.create_source(CountSource(), 3).compute(times_three).reduce(lambda a, b: a + b) \
    .for_each(lambda total: print("TOTAL = %d" % total))
