# The shape of python-support's main.py: numpy records, partition() with the
# load_balanced property, a map that writes into its record, a direct sink that
# receives its partition's iterator; the job's name and its own config key.
import numpy as np

from twister2.Twister2Environment import Twister2Environment
from twister2.tset.fn.SourceFunc import SourceFunc

env = Twister2Environment(name="ArrayJob", config={"MY_KEY": 7},
                          resources=[{"cpu": 1, "ram": 256, "instances": 2}])


class GridSource(SourceFunc):

    def __init__(self):
        super(GridSource, self).__init__()
        self.made = 0

    def has_next(self):
        return self.made < 3

    def next(self):
        self.made += 1
        return np.array([[2.0, 2.0], [2.0, self.made]])


spread = env.create_source(GridSource(), 2).partition(env.functions.partition.load_balanced)


def stamp(x):
    x[0, 0] = 500
    return x.reshape(4)


def show(partition):
    print("SINK CALL")
    for grid in partition:
        print("GRID", grid.tolist())
    return True


spread.map(stamp).direct().sink(show)
print("MY_KEY = %d in worker %d" % (env.config["MY_KEY"], env.worker_id))
