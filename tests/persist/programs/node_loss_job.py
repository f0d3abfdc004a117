"""A job on a multi-node cluster, for the lost-node test (the test's program).

Prints PLACED <json: the node of the JobMaster and of each worker>, then
READY, then waits for a line on stdin (the test removes a node meanwhile, or
not) and runs a slow stage over a cached TSet; prints RESULT <sum>.
Each task notes "<partition>" in RUNS_FILE.
"""

import json
import os
import sys
import time

import ray

from twister_nb import TSetContext, TSetEnvironment
from twister_nb.runtime.jobs import job_workers

PARTS = 4
# read here, in the driver: the workers run with the cluster's environment
RUNS_FILE = os.environ["RUNS_FILE"]
TASK_SECONDS = float(os.environ.get("TASK_SECONDS", "0"))
env = TSetEnvironment(name="node-loss", resources=[{"instances": PARTS}])


def triple(itr, collector, ctx: TSetContext):
    with open(RUNS_FILE, "a") as f:
        f.write(f"{ctx.index}\n")
    time.sleep(TASK_SECONDS)
    for x in itr:
        collector.collect(x * 3)


data = list(range(4000))
cached = env.parallelize_list(data, PARTS).map(lambda x: x + 1).cache()
assert cached.reduce(lambda a, b: a + b).collect() == [sum(x + 1 for x in data)]
workers = job_workers(env.job_id, env.config)
placed = {"master": env.info()["node"],
          "workers": [ray.get(w.ping.remote())["node"] for w in workers]}
print("PLACED", json.dumps(placed), flush=True)
print("READY", flush=True)
sys.stdin.readline()
total = cached.compute(triple).reduce(lambda a, b: a + b).collect()
print("RESULT", total[0], flush=True)
