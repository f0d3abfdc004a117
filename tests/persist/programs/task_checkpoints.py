"""A job for the task-checkpoint tests: one stage whose function fails (or blocks)
on some partitions the first time, then the same program re-run by job ID.

Settings come from the environment, and stay the same between the two runs, so
the code and the TSet IDs (the task fingerprints) stay the same too; only the
flag files differ:

- ``COUNT_FILE``: every task appends ``<function> <partition> <pid>`` (the side
  channel: which tasks ran, and the workers' PIDs to kill);
- ``FAIL_FLAG``: while it exists, ``work`` raises on partitions >= ``FAIL_FROM``;
- ``BLOCK_FLAG``: while it exists, ``work`` blocks on those partitions (a test kills the job);
- ``MODE``: ``one`` (work, then collect), ``reduce`` (work, then a reduce),
  ``cached`` (``base`` cached first, ``env.snapshot()`` if ``SNAPSHOT=1``, then work on it),
  or ``persist`` (work persisted, then collected).

The policy comes from ``twister-nb submit --checkpoint ...``. It prints
``RESULT = <json>`` at the end.
"""

import json
import os
import time

from twister_nb import TSetEnvironment
from twister_nb.testing import IntSource

PAR = int(os.environ.get("PAR", "8"))
N = 50
FAIL_FROM = int(os.environ.get("FAIL_FROM", "5"))
SECONDS = float(os.environ.get("TASK_SECONDS", "0.3"))
COUNT_FILE = os.environ["COUNT_FILE"]
FAIL_FLAG = os.environ.get("FAIL_FLAG", "")
BLOCK_FLAG = os.environ.get("BLOCK_FLAG", "")
MODE = os.environ.get("MODE", "one")


def log(what, index):
    with open(COUNT_FILE, "a") as f:
        f.write(f"{what} {index} {os.getpid()}\n")


def prepare(itr, collector, ctx):
    log("prepare", ctx.index)
    for i in itr:
        collector.collect(i * 3)


def work(itr, collector, ctx):
    log("work", ctx.index)
    time.sleep(SECONDS)
    if ctx.index >= FAIL_FROM:
        if FAIL_FLAG and os.path.exists(FAIL_FLAG):
            raise RuntimeError(f"planned failure on partition {ctx.index}")
        while BLOCK_FLAG and os.path.exists(BLOCK_FLAG):
            time.sleep(0.1)  # the test kills the job here
    for i in itr:
        collector.collect(i * i + ctx.index)


env = TSetEnvironment(name="task-checkpoints", resources=[{"instances": PAR}])
source = env.create_source(IntSource(N), PAR)
if MODE == "cached":
    base = source.compute(prepare).set_name("base").cache()
    if os.environ.get("SNAPSHOT") == "1":
        print("SNAPSHOT =", json.dumps(env.snapshot()), flush=True)
    result = base.compute(work).set_name("work").collect()
elif MODE == "persist":
    result = source.compute(work).set_name("work").persist().collect()
elif MODE == "reduce":
    result = source.compute(work).set_name("work").reduce(lambda a, b: a + b).collect()
else:
    result = source.compute(work).set_name("work").collect()
print("RESULT =", json.dumps(result), flush=True)
