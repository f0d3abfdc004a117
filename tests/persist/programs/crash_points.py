"""Two persists and a sum, for the crash-at-every-write test.

Run with the job's ID in TWISTER_NB__JOB_ID (as ``twister-nb restart`` runs a
program) and the store in TWISTER_NB_* variables. Every call of a compute
function appends a line to $COUNT_FILE (written by the workers), so the test
can tell what a restart recomputed.
"""

import os

from twister_nb import TSetEnvironment
from twister_nb.testing import IntSource

COUNT_FILE = os.environ["COUNT_FILE"]
N, PAR = 1000, 4


def times_five(itr, collector, ctx):
    with open(COUNT_FILE, "a") as f:
        f.write(f"times-five {ctx.index}\n")
    for i in itr:
        collector.collect(i * 5)


def plus_two(itr, collector, ctx):
    with open(COUNT_FILE, "a") as f:
        f.write(f"plus-two {ctx.index}\n")
    for i in itr:
        collector.collect(i + 2)


env = TSetEnvironment(name="crash-points", resources=[{"instances": PAR}])
first = env.create_source(IntSource(N), PAR).compute(times_five).set_name("times-five").persist()
second = first.compute(plus_two).set_name("plus-two").persist()
print("SUM = %d" % second.reduce(lambda a, b: a + b).collect()[0], flush=True)
env.close()
