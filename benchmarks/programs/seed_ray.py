"""The seed job as a hand-written Ray program: connect, two actors, run, print.

What a Ray user writes for the seed (a source of 0..9,999 in 4 partitions,
x*5 then +2, a sum), on the cluster at ``sys.argv[1]``. No checkpoint.
"""

import sys

import ray

N, PARTITIONS, ACTORS = 10_000, 4, 2


@ray.remote(num_cpus=0)
class Worker:
    def partial_sum(self, n: int) -> int:
        return sum(x * 5 + 2 for x in range(n))


ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
workers = [Worker.remote() for _ in range(ACTORS)]
parts = ray.get([workers[p % ACTORS].partial_sum.remote(N) for p in range(PARTITIONS)])
print("SUM = %d" % sum(parts))
