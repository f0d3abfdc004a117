# The shape of python-support's kmeans.py (numpy only): cached points and centers,
# add_input re-added to `moved` AFTER `averaged` was built from it, each iteration.
import numpy as np

from twister2.TSetContext import TSetContext
from twister2.Twister2Environment import Twister2Environment
from twister2.tset.fn.SourceFunc import SourceFunc

env = Twister2Environment(resources=[{"cpu": 2, "ram": 256, "instances": 1}])


class SeededSource(SourceFunc):

    def __init__(self, seed, rows, dims):
        super().__init__()
        self.seed = seed
        self.rows = rows
        self.dims = dims
        self.done = False

    def has_next(self):
        return not self.done

    def next(self):
        self.done = True
        return np.random.default_rng(self.seed).random((self.rows, self.dims))


points = env.create_source(SeededSource(7, 200, 3), 2).cache()
centers = env.create_source(SeededSource(11, 4, 3), 2).cache()


def lloyd_step(pts, ctx: TSetContext):
    c = ctx.get_input("centroids").first()
    nearest = ((pts[:, None, :] - c[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    for k in range(len(c)):
        if (nearest == k).any():
            c[k] = pts[nearest == k].mean(axis=0)
    return c


moved = points.map(lloyd_step)
averaged = moved.all_reduce(lambda a, b: a + b).map(lambda c, ctx: c / ctx.parallelism)

for i in range(5):
    moved.add_input("centroids", centers)
    centers = averaged.cache()

centers.for_each(lambda c: print("CENTERS", np.round(c, 9).tolist()))
print("UNCACHED", moved.get_data())
print("SAME ID", centers.get_data().id == centers.id)
