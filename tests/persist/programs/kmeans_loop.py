"""A k-means loop that commits its iteration and centres each round (the test's
program; Twister2's checkpointing environment: init/update_variable, commit).

STOP_AFTER=n: after committing iteration n, print STOPPED and wait to be killed.
Prints START <iteration it starts at>, ITER <i> per round, RESULT <centres hex>.
"""

import os
import time

import numpy as np

from twister_nb import TSetEnvironment

K, ITERATIONS, N, PARTS = 3, 10, 3000, 2

env = TSetEnvironment(name="kmeans-loop", resources=[{"instances": PARTS}])
print("MASTER", env.info()["pid"], flush=True)


def make_points():
    rng = np.random.default_rng(11)
    return [rng.random(2) * (1 + i % 3) for i in range(N)]


def assign(point, ctx):
    centres = ctx.get_input("centres").consumer()
    centres = next(iter(centres))
    nearest = int(np.argmin(((centres - point) ** 2).sum(axis=1)))
    sums = np.zeros((K, 3))
    sums[nearest, :2] = point
    sums[nearest, 2] = 1.0
    return sums


points = env.init_variable("points", None)
if points is None:  # a new job: its points become a variable (a persisted TSet)
    points = env.parallelize_list(make_points(), PARTS)
iteration = env.init_variable("iteration", 0)
centres = env.init_variable("centres", np.array(make_points()[:K]))
print("START", iteration, flush=True)
for i in range(iteration, ITERATIONS):
    step = points.map(assign)
    step.add_input("centres", env.parallelize_list([centres], 1).cache())
    total = step.reduce(lambda a, b: a + b).collect()[0]
    centres = total[:, :2] / np.maximum(total[:, 2:], 1.0)
    env.update_variable("points", points)
    env.update_variable("iteration", i + 1)
    env.update_variable("centres", centres)
    env.commit()
    print("ITER", i, flush=True)
    if os.environ.get("STOP_AFTER") == str(i + 1):
        print("STOPPED", env.job_id, flush=True)
        time.sleep(600)
print("RESULT", centres.tobytes().hex(), flush=True)
