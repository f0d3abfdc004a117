"""The HTCondor seed's loop as a twister_nb job (the test's program).

500 times: draw two numbers in 1..300 and take their mean (here the job adds
them up); every SAVE_SECONDS, save how far the loop got and the means so far
(``init_variable``/``update_variable``/``commit``); at the end print the mean
of the means. Sample ``k`` draws from its own seed, so a resumed loop draws
what an uninterrupted one would have.

Prints MASTER <pid>, START <k> <means so far>, ITER <k> per sample,
SAVED <k> after each commit and RESULT <mean of means> <count>.
"""

import operator
import os
import time

import numpy as np

from twister_nb import TSetEnvironment

SAMPLES, LOW, HIGH = 500, 1, 300
SAVE_SECONDS = float(os.environ.get("SAVE_SECONDS", "1"))

env = TSetEnvironment(name="means-loop", resources=[{"instances": 2}])
print("MASTER", env.info()["pid"], flush=True)

start = env.init_variable("n_start", 0)
means = env.init_variable("sample_means", [])
saves = env.init_variable("saves", 0)
print("START", start, len(means), flush=True)

next_save = time.monotonic() + SAVE_SECONDS
for k in range(start, SAMPLES):
    a, b = (int(x) for x in np.random.default_rng(k).integers(LOW, HIGH + 1, size=2))
    total = env.parallelize_list([a, b], 2).reduce(operator.add).collect()[0]
    means.append(total / 2)
    print("ITER", k, flush=True)
    if time.monotonic() >= next_save or k == SAMPLES - 1:
        saves += 1
        env.update_variable("n_start", k + 1)
        env.update_variable("sample_means", means)
        env.update_variable("saves", saves)
        env.commit()
        print("SAVED", k + 1, flush=True)
        next_save = time.monotonic() + SAVE_SECONDS

print("RESULT", repr(float(np.mean(means))), len(means), flush=True)
