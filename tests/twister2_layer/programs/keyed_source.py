# The shape of tset_keyed_source_example.py: a keyed source, keyed_gather with a
# comparator and env.functions.partition.load_balanced (a property).
from twister2.Twister2Environment import Twister2Environment
from twister2.tset.fn.SourceFunc import SourceFunc

env = Twister2Environment(resources=[{"cpu": 1, "ram": 256, "instances": 2}])

print("Greetings from worker %d" % env.worker_id)


class PairSource(SourceFunc):

    def __init__(self):
        super().__init__()
        self.n = 0

    def has_next(self):
        return self.n < 7

    def next(self):
        self.n += 1
        return (self.n - 1) % 2, self.n - 1


pairs = env.create_keyed_source(PairSource(), 2)
pairs.keyed_gather(partition_func=env.functions.partition.load_balanced,
                   key_comparator=lambda a, b: b - a, use_disk=True) \
    .for_each(lambda kv: print("GROUP", kv))
