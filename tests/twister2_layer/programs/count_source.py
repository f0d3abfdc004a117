# The shape of tset_source_example.py: a source of 0..5 in 3 partitions, printed per partition.
from twister2.Twister2Environment import Twister2Environment
from twister2.tset.fn.SourceFunc import SourceFunc

env = Twister2Environment(resources=[{"cpu": 1, "ram": 256, "instances": 3}])

print("Greetings from worker %d" % env.worker_id)


class CountSource(SourceFunc):

    def __init__(self):
        super().__init__()
        self.n = 0

    def has_next(self):
        return self.n < 6

    def next(self):
        self.n += 1
        return self.n - 1


env.create_source(CountSource(), 3).for_each(lambda v: print("v : %d" % v))
