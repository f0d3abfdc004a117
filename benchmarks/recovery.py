"""RECOVERY: the time from a worker's death to the job running again, and its cost.

A job holds a cached TSet (the W2 chain's output, 4 partitions) on its
workers. Each round kills one worker (SIGKILL of its process, untimed) and
times the next action on the cached TSet: Ray notices the death and restarts
the worker empty, the action finds a partition gone, the environment makes
the TSet again from its graph, and the action runs. Its peers, in the same
rounds:

- the same action when nothing was lost (what the job runs anyway);
- making the TSet again by hand (``cache()`` of the same graph) and the action:
  the lost work itself.

"recovery - nothing lost" is the cost of the death; "recovery - remake" is
what the detection and the restart add to the lost work.
"""

from __future__ import annotations

import operator
import os
import signal
import time
from typing import Any

from benchmarks import userfns as uf
from benchmarks.harness import TNB, Variant, expect_equal
from twister_nb.testing import worker_pids

P = 4


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


def recovery(b: Any) -> dict[str, Any]:
    from benchmarks.workloads import case

    n = b.sizes.w2_n // 10
    expected = uf.chain_sum(n, P)
    check = expect_equal([expected])
    env = b.new_env("recovery")
    graph = env.create_source(uf.IntSource(n), P).compute(uf.mul_by_five).compute(uf.add_two)
    held = {"cached": graph.cache()}

    def kill_one() -> None:
        _kill(worker_pids(env)[0])

    def after_death() -> tuple[Any, float]:
        kill_one()  # untimed: the death itself
        started = time.perf_counter()
        value = held["cached"].reduce(operator.add).collect()
        return value, time.perf_counter() - started

    def nothing_lost() -> Any:
        return held["cached"].reduce(operator.add).collect()

    def remake() -> Any:
        held["cached"] = graph.cache()
        return held["cached"].reduce(operator.add).collect()

    variants = [
        Variant(f"{TNB} after a worker's death", after_death, check, self_timed=True,
                is_tnb=True, note="SIGKILL of worker 0 (untimed), then the next action"),
        Variant("the same action, nothing lost", nothing_lost, check),
        Variant("the lost work by hand (cache() again + the action)", remake, check),
    ]
    results = b.measure("RECOVERY", variants)
    return {"title": "RECOVERY: a worker killed, then the next action on its cached TSet",
            "params": {"records": n * P, "partitions": P},
            "cases": [case(f"{n * P:,} records cached on the job's workers", results,
                           metric="seconds to the result", records=n * P,
                           expected=expected)]}
