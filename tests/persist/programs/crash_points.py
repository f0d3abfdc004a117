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


def counted(label, fn):
    """A compute applying ``fn`` that logs each call to $COUNT_FILE as "<label> <partition>"."""
    def compute(itr, collector, ctx):
        with open(COUNT_FILE, "a") as f:
            f.write(f"{label} {ctx.index}\n")
        for i in itr:
            collector.collect(fn(i))
    return compute


env = TSetEnvironment(name="crash-points", resources=[{"instances": PAR}])
source = env.create_source(IntSource(N), PAR)
first = source.compute(counted("times-five", lambda i: i * 5)).set_name("times-five").persist()
second = first.compute(counted("plus-two", lambda i: i + 2)).set_name("plus-two").persist()
print(f"SUM = {second.reduce(lambda a, b: a + b).collect()[0]}", flush=True)
env.close()
