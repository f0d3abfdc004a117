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
from twister_nb.runtime.scheduler import Placement
from twister_nb.testing import kill_and_wait, worker_pids

DATA = list(range(2_000))
PARTS = 4


_kill = kill_and_wait


def _counted(log: Path, seconds: float = 0.0):
    """A compute that triples its partition and notes each run in ``log`` as
    ``index pid`` (the pid finds a restarted worker's new process)."""

    def triple(itr, collector, ctx: TSetContext):
        with open(log, "a") as f:
            f.write(f"{ctx.index} {os.getpid()}\n")
        time.sleep(seconds)
        for x in itr:
            collector.collect(x * 3)

    return triple


def _runs_with_pid(log: Path) -> list[tuple[int, int]]:
    """Every run so far, as ``(index, pid)`` (a line being written is skipped)."""
    if not log.exists():
        return []
    return [(int(i), int(p)) for i, p in (line.split() for line in log.read_text().splitlines()
                                           if line.count(" ") == 1)]


def _runs(log: Path) -> list[int]:
    return sorted(i for i, _ in _runs_with_pid(log))


def _with_a_worker_killed(env, source, index: int, action):
    """``action()``'s value, with worker ``index`` SIGKILLed 1 s into it (the
    workers are started first, by an action on ``source``)."""
    source.cache().reduce(operator.add).collect()  # the workers are up
    killer = threading.Timer(1.0, _kill, args=(worker_pids(env)[index],))
    killer.start()
    try:
        return action()
    finally:
        killer.join()


def test_a_cached_tset_whose_worker_died_is_made_again(fresh_env, tmp_path):
    log = tmp_path / "runs.txt"
    cached = fresh_env.parallelize_list(DATA, PARTS).compute(_counted(log)).cache()
    assert cached.reduce(operator.add).collect() == [3 * sum(DATA)]
    assert _runs(log) == list(range(PARTS))

    workers = fresh_env.info()["workers"]
    _kill(worker_pids(fresh_env)[1])

    # the next use reads every partition: the lost ones are made again, exactly
    total = cached.map(lambda x: x + 1).reduce(operator.add).collect()
    assert total == [sum(3 * x + 1 for x in DATA)]
    # only the partitions the killed worker held were made again, once; the others were
    # kept; then everything is read from memory
    lost = [p for p in range(PARTS) if Placement.worker_for(p, workers) == 1]
    assert _runs(log) == sorted([*range(PARTS), *lost])
    assert cached.reduce(operator.add).collect() == [3 * sum(DATA)]
    assert _runs(log) == sorted([*range(PARTS), *lost])


def test_a_worker_killed_mid_stage_does_not_fail_the_action(fresh_env, tmp_path, capsys):
    log = tmp_path / "runs.txt"
    source = fresh_env.parallelize_list(DATA, PARTS)
    total = _with_a_worker_killed(
        fresh_env, source, 0,
        lambda: source.compute(_counted(log, seconds=2.0)).reduce(operator.add).collect())
    assert total == [3 * sum(DATA)]
    runs = _runs(log)
    assert set(runs) == set(range(PARTS))
    # only what the killed worker was running ran again (2 workers: 2 tasks each)
    assert PARTS < len(runs) <= PARTS + PARTS // 2, runs
    # and the job said so, in the output the CLI and the dashboard show
    assert "was lost and has been restarted: the tasks it was running run again" in (
        capsys.readouterr().out)


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


def test_a_worker_killed_mid_persist_commits_an_exact_checkpoint(fresh_env, tmp_path):
    log = tmp_path / "runs.txt"
    source = fresh_env.parallelize_list(DATA, PARTS)
    persisted = _with_a_worker_killed(
        fresh_env, source, 1, lambda: source.compute(_counted(log, seconds=2.0)).persist())
    runs = _runs(log)
    assert set(runs) == set(range(PARTS)) and PARTS < len(runs) <= PARTS + PARTS // 2, runs
    # the committed checkpoint is whole: read back from the store, it is exact
    assert sorted(persisted.collect()) == sorted(3 * x for x in DATA)
    assert persisted.reduce(operator.add).collect() == [3 * sum(DATA)]
    assert len(_runs(log)) == len(runs)  # read from the checkpoint, not run again


def test_every_worker_killed_at_once_mid_stage_leaves_an_exact_result(fresh_env, tmp_path):
    log = tmp_path / "runs.txt"
    source = fresh_env.parallelize_list(DATA, PARTS)
    source.cache().reduce(operator.add).collect()
    victims = worker_pids(fresh_env)

    def kill_all() -> None:
        for pid in victims:
            os.kill(pid, signal.SIGKILL)

    killer = threading.Timer(1.0, kill_all)
    killer.start()
    try:
        total = source.compute(_counted(log, seconds=2.0)).reduce(operator.add).collect()
    finally:
        killer.join()
    assert total == [3 * sum(DATA)]
    runs = _runs(log)
    # every partition ran; the ones running when the workers died ran again
    assert set(runs) == set(range(PARTS)) and PARTS < len(runs) <= 2 * PARTS, runs


def test_a_worker_killed_again_during_its_own_recovery(fresh_env, tmp_path):
    log = tmp_path / "runs.txt"
    source = fresh_env.parallelize_list(DATA, PARTS)
    source.cache().reduce(operator.add).collect()
    first = worker_pids(fresh_env)[0]
    killed: list[int] = []

    def kill_twice() -> None:
        time.sleep(1.0)
        _kill(first)
        killed.append(first)
        # the worker is restarted and runs its lost task again: kill that run too
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            again = [pid for _, pid in _runs_with_pid(log) if pid not in (first, *others)]
            if again:
                time.sleep(0.3)
                _kill(again[0])
                killed.append(again[0])
                return
            time.sleep(0.05)

    others = worker_pids(fresh_env)[1:]
    killer = threading.Thread(target=kill_twice)
    killer.start()
    try:
        total = source.compute(_counted(log, seconds=2.0)).reduce(operator.add).collect()
    finally:
        killer.join()
    assert len(killed) == 2, killed  # the recovery itself was hit
    assert total == [3 * sum(DATA)]
    runs = _runs_with_pid(log)
    assert {i for i, _ in runs} == set(range(PARTS))
    # each kill made the task it interrupted run again (Ray re-sends a restarted
    # worker's tasks in no set order); the other worker's tasks ran once each
    counts = {i: sum(1 for j, _ in runs if j == i) for i in range(PARTS)}
    assert sum(counts.values()) == PARTS + 2, counts
    assert [counts[i] for i in range(1, PARTS, 2)] == [1] * (PARTS // 2), counts


@pytest.mark.slow
def test_a_job_that_failed_after_its_recoveries_restarts_exact_by_job_id(ray_cluster, tmp_path):
    from twister_nb import TSetEnvironment
    from twister_nb.errors import JobFailedError

    first_log, flag = tmp_path / "first.txt", tmp_path / "evict"
    flag.write_text("every worker that runs the second stage is lost\n")

    def evicted(itr, collector, ctx: TSetContext):
        if os.path.exists(flag):  # the same code (and fingerprint) on both runs
            os.kill(os.getpid(), signal.SIGKILL)
        for x in itr:
            collector.collect(x + 1)

    def build(env):
        first = env.parallelize_list(DATA, 2).compute(_counted(first_log)).persist()
        return first.compute(evicted).reduce(operator.add)

    env = TSetEnvironment(name="evicted", resources=[{"instances": 2}],
                          config={"runtime.max_task_retries": 1}, banner=False)
    try:
        job_id = env.job_id
        with pytest.raises(JobFailedError) as info:
            build(env).collect()
        assert "was lost" in str(info.value).splitlines()[0]
    finally:
        env.close()
    assert _runs(first_log) == [0, 1]

    flag.unlink()
    again = TSetEnvironment(name="evicted", job_id=job_id, resources=[{"instances": 2}],
                            banner=False)
    try:
        assert build(again).collect() == [sum(3 * x + 1 for x in DATA)]
    finally:
        again.close()
    assert _runs(first_log) == [0, 1]  # the persisted stage was restored, not run again
