"""A lost worker is an eviction, not a failure (issue 13, point 1).

Workers are killed for real (SIGKILL of their process): one running a stage,
and an idle one holding a cached TSet. Ray restarts a lost worker empty; the
task it ran runs again there, and a cached TSet it held is made again from
the graph that cached it. Every result is checked against plain Python, and a
side channel (a file each task appends to) counts what ran again.
"""

from __future__ import annotations

import operator
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from twister_nb import TSetContext

DATA = list(range(2_000))
PARTS = 4


def _worker_pids(env) -> list[int]:
    import ray

    from twister_nb.runtime.job_master import ACTOR_PREFIX

    pids = []
    for i in range(env.info()["workers"]):
        actor = ray.get_actor(f"{ACTOR_PREFIX}{env.job_id}.worker-{i}",
                              namespace=env.config.get("ray.namespace", "twister_nb"))
        pids.append(ray.get(actor.ping.remote(), timeout=60)["pid"])
    return pids


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"worker {pid} still alive")


def _counted(log: Path, seconds: float = 0.0):
    """A compute that tripples its partition and notes each run in ``log``."""

    def triple(itr, collector, ctx: TSetContext):
        with open(log, "a") as f:
            f.write(f"{ctx.index}\n")
        time.sleep(seconds)
        for x in itr:
            collector.collect(x * 3)

    return triple


def _runs(log: Path) -> list[int]:
    return sorted(int(line) for line in log.read_text().split())


def test_a_cached_tset_whose_worker_died_is_made_again(fresh_env, tmp_path):
    log = tmp_path / "runs.txt"
    cached = fresh_env.parallelize_list(DATA, PARTS).compute(_counted(log)).cache()
    assert cached.reduce(operator.add).collect() == [3 * sum(DATA)]
    assert _runs(log) == list(range(PARTS))

    _kill(_worker_pids(fresh_env)[1])

    # the next use reads every partition: the lost ones are made again, exactly
    total = cached.map(lambda x: x + 1).reduce(operator.add).collect()
    assert total == [sum(3 * x + 1 for x in DATA)]
    # made again once, as it was cached (all its partitions), then read from memory
    assert _runs(log) == sorted(list(range(PARTS)) * 2)
    assert cached.reduce(operator.add).collect() == [3 * sum(DATA)]
    assert _runs(log) == sorted(list(range(PARTS)) * 2)


def test_a_worker_killed_mid_stage_does_not_fail_the_action(fresh_env, tmp_path):
    log = tmp_path / "runs.txt"
    source = fresh_env.parallelize_list(DATA, PARTS)
    source.cache().reduce(operator.add).collect()  # the workers are up
    victim = _worker_pids(fresh_env)[0]
    killer = threading.Timer(1.0, _kill, args=(victim,))
    killer.start()
    try:
        total = source.compute(_counted(log, seconds=2.0)).reduce(operator.add).collect()
    finally:
        killer.join()
    assert total == [3 * sum(DATA)]
    runs = _runs(log)
    assert set(runs) == set(range(PARTS))
    # only what the killed worker was running ran again (2 workers: 2 tasks each)
    assert PARTS < len(runs) <= PARTS + PARTS // 2, runs


@pytest.mark.slow
def test_a_worker_lost_every_time_fails_after_the_retries(ray_cluster, tmp_path):
    from twister_nb import TSetEnvironment
    from twister_nb.errors import JobFailedError

    env = TSetEnvironment(name="lost-always", resources=[{"instances": 2}],
                          config={"runtime.max_task_retries": 1}, banner=False)
    try:
        def die(itr, collector, ctx: TSetContext):
            os.kill(os.getpid(), signal.SIGKILL)

        with pytest.raises(JobFailedError) as info:
            env.parallelize_list(DATA, 2).compute(die).collect()
        first = str(info.value).splitlines()[0]
        assert "was lost" in first and "runtime.max_task_retries: 1" in first, first
    finally:
        env.close()


def test_a_jobmaster_killed_mid_action_is_rebuilt_and_the_action_runs_again(fresh_env, tmp_path,
                                                                            capsys):
    persist_log, cache_log, stage_log = (tmp_path / n for n in ("p.txt", "c.txt", "s.txt"))
    persisted = fresh_env.parallelize_list(DATA, PARTS).compute(_counted(persist_log)).persist()
    cached = fresh_env.parallelize_list(DATA, PARTS).compute(_counted(cache_log)).cache()
    master_pid = fresh_env.info()["pid"]
    killer = threading.Timer(1.0, _kill, args=(master_pid,))
    killer.start()
    try:
        slow = persisted.compute(_counted(stage_log, seconds=2.0))
        total = slow.reduce(operator.add).collect()
    finally:
        killer.join()
    assert total == [9 * sum(DATA)]
    assert fresh_env.info()["pid"] != master_pid
    assert "the JobMaster was lost" in capsys.readouterr().out
    # the persisted input was restored from its checkpoint, never recomputed
    assert _runs(persist_log) == list(range(PARTS))
    # the cache died with the JobMaster's workers: made again at its next use, once
    assert cached.reduce(operator.add).collect() == [3 * sum(DATA)]
    assert _runs(cache_log) == sorted(list(range(PARTS)) * 2)
