# The shape of tset_checkpointing.py: persist, timed in every worker, then reduce.
from datetime import datetime

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
        return self.n < 3000

    def next(self):
        self.n += 1
        return self.n - 1


def times_three(itr, collector, ctx: TSetContext):
    for v in itr:
        collector.collect(v * 3)


t1 = datetime.now()
persisted = env.create_source(CountSource(), 2).compute(times_three).persist()
t2 = datetime.now()
print("Persist took %d s in worker %d" % ((t2 - t1).total_seconds(), env.worker_id))

persisted.reduce(lambda a, b: a + b).for_each(lambda total: print("SUM = %d" % total))
