"""POLICY (issue 12): what task checkpoints cost while a stage runs, and what they save.

One stage of 40 partitions, each task ~0.1 s of Python work that returns
20,000 ints (the partition a task checkpoint writes, ~160 KB). Two cases:

- **overhead while running**: the stage with ``finished_tasks`` 1 (every task
  checkpointed as it finishes, by its worker, beside the next task) against
  the same stage with no policy, in two live jobs, alternated. Each round names
  the stage afresh, so its tasks have new fingerprints and nothing is
  recovered. The action's time includes waiting for the last commits.
- **resume after a failure at 90%**: the stage with ``finished_tasks`` 1 whose
  function raises on partitions 36-39 (a flag file; the code and fingerprints
  stay the same), the job closed, then the same job ID opened again and the
  stage run (untimed: the failing run, the jobs' and workers' start); timed: the action of
  the resumed job, which recovers 36 tasks from the store and runs 4, against
  the same action of a new job with no checkpoints (the full recompute).
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.harness import TNB, Variant, expect_equal, measure
from twister_nb.testing.seed import IntSource

RECORDS = 20_000
#: Set at the start of the workload (a dict, so the function's code and constants never
#: change within a run): the Python additions that take ~0.1 s here, the first failing
#: partition (90% of the stage) and the flag file that makes it fail.
SETTINGS: dict[str, Any] = {"spins": 1_000_000, "fail_from": 36, "flag": ""}


def work(itr: Any, collector: Any, ctx: Any) -> None:
    """~0.1 s of Python, then the partition; raises on the last 10% while the flag exists."""
    acc = 0
    for k in range(SETTINGS["spins"]):
        acc += k
    if ctx.index >= SETTINGS["fail_from"] and os.path.exists(SETTINGS["flag"]):
        raise RuntimeError(f"planned failure on partition {ctx.index}")
    for i in itr:
        collector.collect(i + ctx.index + (acc & 1))


def _calibrate(seconds: float) -> int:
    """How many additions of :func:`work`'s loop take ``seconds`` in this process."""
    n, acc = 200_000, 0
    started = time.perf_counter()
    for k in range(n):
        acc += k
    return max(10_000, int(n * seconds / max(time.perf_counter() - started, 1e-6)))


def _expected(partitions: int) -> list[int]:
    acc = sum(range(SETTINGS["spins"])) & 1
    return [i + p + acc for p in range(partitions) for i in range(RECORDS)]


def _stage(env: Any, name: str, partitions: int) -> Any:
    return env.create_source(IntSource(RECORDS), partitions).compute(work).set_name(name)


def policies(b: Any) -> dict[str, Any]:
    from benchmarks.workloads import case

    partitions = 8 if b.mode == "smoke" else 40
    SETTINGS.update(flag=os.path.join(b.folder("policy"), "fail"), fail_from=partitions * 9 // 10,
                    spins=_calibrate(0.01 if b.mode == "smoke" else 0.1))
    expected = _expected(partitions)
    check = expect_equal(expected)
    policy = {"twister2.checkpointing.policy": "finished_tasks",
              "twister2.checkpointing.policy_params": "finished.tasks:1",
              "runtime.workers": 2}
    plain = {"runtime.workers": 2}
    env_none = b.new_env("policy-none", plain)
    env_ft1 = b.new_env("policy-ft1", policy)
    rounds = {"n": 0}

    def run_fresh(env: Any) -> Any:
        rounds["n"] += 1
        return _stage(env, f"stage-{rounds['n']}", partitions).collect()

    # Every variant gets every repetition (the harness cuts a slow peer's): the
    # comparison is the point here, and the rounds' paired ratios need them all.
    overhead = measure("POLICY overhead", [
        Variant(f"{TNB} finished_tasks 1", lambda: run_fresh(env_ft1), check, is_tnb=True,
                note="every task checkpointed by its worker as it finishes"),
        Variant(f"{TNB} no policy", lambda: run_fresh(env_none), check),
    ], b.repeat, budget_s=float("inf"))

    def timed_stage(name: str, config: dict[str, Any], job_id: str | None = None
                    ) -> tuple[Any, float]:
        """The stage's action in a job of its own (the job's and its workers' start
        untimed), closed after."""
        env = b.new_env(name, config, job_id=job_id, keep=False)
        try:
            env.parallelize_list([0, 1], 2).collect()  # the workers started, untimed
            started = time.perf_counter()
            value = _stage(env, "stage", partitions).collect()
            return value, time.perf_counter() - started
        finally:
            env.close()

    def resumed() -> tuple[Any, float]:
        failing = b.new_env("policy-resume", policy, keep=False)
        open(SETTINGS["flag"], "w").close()
        try:
            _stage(failing, "stage", partitions).collect()
        except Exception:  # noqa: BLE001 - the planned failure at 90%
            pass
        finally:
            os.remove(SETTINGS["flag"])
            failing.close()
        return timed_stage("policy-resume", policy, failing.job_id)

    resume = measure("POLICY resume", [
        Variant(f"{TNB} resumed after a failure at 90% (finished_tasks 1)", resumed, check,
                self_timed=True, is_tnb=True,
                note=f"{SETTINGS['fail_from']} tasks recovered from the store, "
                     f"{partitions - SETTINGS['fail_from']} run; job start untimed"),
        Variant("full recompute (a new job, no checkpoints)",
                lambda: timed_stage("policy-full", plain), check,
                self_timed=True, note="job start untimed"),
    ], b.repeat, budget_s=float("inf"))
    records = partitions * RECORDS
    return {"title": f"POLICY: task checkpoints (finished_tasks 1) on a {partitions}-task stage",
            "params": {"partitions": partitions, "records": records,
                       "additions_per_task": SETTINGS["spins"],
                       "fail_at": f"{SETTINGS['fail_from']}/{partitions}"},
            "cases": [case("overhead while running", overhead, metric="seconds per stage",
                           records=records, expected=len(expected)),
                      case("resume after a failure at 90%", resume,
                           metric="seconds to the result", records=records,
                           expected=len(expected))]}
