"""The warm pool (``runtime.pool.size``, issue 16): spare JobMasters with their
workers started, taken by new jobs, on the session's real local head.

What is asserted comes from the pool's own state (which spare each job took,
how many it started) and from the jobs' events, never from times: a job that
takes a spare starts no JobMaster and no worker of its own, the pool refills,
a spare's workers carry nothing of an earlier job, results are exact against
plain Python, a pooled job is found by its ID and survives a lost worker, and
with the pool off a job starts its own actors as before.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from twister_nb import TSetContext, TSetEnvironment
from twister_nb import config as tnb_config
from twister_nb.events import StartupStep
from twister_nb.jobs import JobClient
from twister_nb.testing import kill_and_wait, worker_pids

POOL = {"runtime.pool.size": 1}
DATA = list(range(2_000))


@pytest.fixture
def pool(ray_cluster):
    """The pool keeper of the session's cluster, started for one test and
    stopped (with its spares) after it."""
    from twister_nb.runtime import pool as pool_mod

    pool_mod.ensure_keeper(tnb_config.load(POOL))
    try:
        yield pool_mod
    finally:
        pool_mod.stop_pool(POOL)


def _ready(pool_mod, started_at_least: int = 1, wait: float = 240.0) -> dict:
    """The keeper's state once a spare is ready and it started that many (a
    wait for the cluster, not a timing assert)."""
    deadline = time.monotonic() + wait
    while True:
        state = pool_mod.keeper_state(POOL)
        if state["ready"] and state["started"] >= started_at_least:
            return state
        assert time.monotonic() < deadline, f"no spare became ready: {state}"
        time.sleep(0.2)


def _pids_and_mark(mark: str | None):
    """A compute that notes, per partition, its worker's pid and what a module
    global of that worker said before this task set it (``mark``)."""

    def compute(itr, collector, ctx: TSetContext):
        import json  # any module the worker process has loaded

        seen = getattr(json, "_tnb_pool_mark", None)
        if mark is not None:
            json._tnb_pool_mark = mark
        collector.collect((ctx.index, os.getpid(), seen, sum(x * 5 + 2 for x in itr)))

    return compute


def _job_steps(env: TSetEnvironment, run) -> tuple[list[str], object]:
    """The start-up steps the job's JobMaster emitted while ``run()`` ran."""
    seen: list = []
    with env.subscribed(seen.append):
        result = run()
    return [e.step for e in seen if isinstance(e, StartupStep)], result


def _expected_sums(parts: int) -> dict[int, int]:
    """Plain Python: each partition's sum of x*5+2 (parallelize_list's contiguous split)."""
    size, extra = divmod(len(DATA), parts)
    out, start = {}, 0
    for p in range(parts):
        stop = start + size + (1 if p < extra else 0)
        out[p] = sum(x * 5 + 2 for x in DATA[start:stop])
        start = stop
    return out


@pytest.mark.slow
def test_jobs_take_spares_that_carry_nothing_of_another_job(pool):
    import ray

    client = JobClient()
    before = _ready(pool)
    first_spare = before["ready"][0]
    # idle, the keeper, its spare JobMaster and the spare's workers reserve no CPU
    deadline = time.monotonic() + 30  # Ray's view of the resources lags a little
    while ray.available_resources().get("CPU", 0) != ray.cluster_resources()["CPU"]:
        assert time.monotonic() < deadline, (ray.available_resources(), ray.cluster_resources())
        time.sleep(0.2)
    env1 = TSetEnvironment(name="pool-one", config=POOL, resources=[{"instances": 4}])
    try:
        taken = pool.keeper_state(POOL)
        assert taken["taken"][env1.job_id] == first_spare  # the spare ready before it
        assert taken["started"] == before["started"]  # nothing started for this job
        assert client.record(env1.job_id)["actor"] == first_spare
        # a second driver starting the same job at once gets the same spare (bind answers both)
        keeper = ray.get_actor(pool.KEEPER_NAME, namespace="twister_nb")
        assert ray.get(keeper.take.remote(env1.job_id))[0] == first_spare
        assert pool.keeper_state(POOL)["ready"] == taken["ready"]
        steps, rows = _job_steps(env1, lambda: env1.parallelize_list(DATA, 4).compute(
            _pids_and_mark("job-one")).collect())
        assert not [s for s in steps if s.startswith("starting")], steps  # no worker started
        assert {r[0]: r[3] for r in rows} == _expected_sums(4)
        job1_pids = {r[1] for r in rows}
        # the pool's workers are unnamed; the job's JobMaster finds worker i (as for any job)
        pids = worker_pids(env1)  # worker i at index i: partition p ran on worker p % n
        assert {r[0]: r[1] for r in rows} == {p: pids[p % len(pids)] for p in range(4)}
        # fresh workers: the first task each ran saw no mark (its later ones see this job's)
        assert {pid: None for pid in job1_pids} == {
            pid: min((r[2] for r in rows if r[1] == pid), key=lambda v: v is not None)
            for pid in job1_pids}
        # found by its ID (through its record: the actor is the pool's, not named after it)
        assert client.info(env1.job_id)["job_id"] == env1.job_id
        listed = {row["job_id"]: row for row in client.jobs()}
        assert listed[env1.job_id]["live"] and listed[env1.job_id]["status"] == "idle"

        refilled = _ready(pool, started_at_least=before["started"] + 1)
        second_spare = refilled["ready"][0]
        assert second_spare != first_spare
        env2 = TSetEnvironment(name="pool-two", config=POOL, resources=[{"instances": 4}])
        try:
            assert pool.keeper_state(POOL)["taken"][env2.job_id] == second_spare
            steps, rows = _job_steps(env2, lambda: env2.parallelize_list(DATA, 4).compute(
                _pids_and_mark(None)).collect())
            assert not [s for s in steps if s.startswith("starting")], steps
            assert {r[0]: r[3] for r in rows} == _expected_sums(4)
            # job one's global is not in job two's workers, which are other processes
            assert [r[2] for r in rows] == [None] * 4
            assert not job1_pids & {r[1] for r in rows}
        finally:
            env2.close()
    finally:
        env1.close()
    assert client.record(env1.job_id)["status"] == "finished"
    assert client.info(env1.job_id) is None and client.info(env2.job_id) is None


@pytest.mark.slow
def test_a_pooled_worker_lost_is_restarted_for_its_job(pool, tmp_path):
    _ready(pool)
    env = TSetEnvironment(name="pool-lost", config=POOL, resources=[{"instances": 4}])
    try:
        rows = env.parallelize_list(DATA, 4).compute(_pids_and_mark(None)).collect()
        victim = rows[0][1]
        kill_and_wait(victim)
        # the restarted worker knows its job again: it writes the job's checkpoint parts
        persisted = env.parallelize_list(DATA, 4).map(lambda x: x * 5 + 2).persist()
        assert sorted(persisted.collect()) == sorted(x * 5 + 2 for x in DATA)
        record = JobClient().status(env.job_id)["record"]
        assert persisted.id in record["persisted"]
        again = env.parallelize_list(DATA, 4).compute(_pids_and_mark(None)).collect()
        assert {r[0]: r[3] for r in again} == _expected_sums(4)
        assert victim not in {r[1] for r in again}
    finally:
        env.close()


@pytest.mark.slow
def test_with_the_pool_off_a_job_starts_its_own_actors(pool):
    state = _ready(pool)
    env = TSetEnvironment(name="pool-off", config={"runtime.pool.size": 0},
                          resources=[{"instances": 4}])
    try:
        steps, rows = _job_steps(env, lambda: env.parallelize_list(DATA, 4).compute(
            _pids_and_mark(None)).collect())
        assert {r[0]: r[3] for r in rows} == _expected_sums(4)
        assert any(s.startswith("starting") for s in steps), steps  # its own workers
        assert env.job_id not in pool.keeper_state(POOL)["taken"]
        assert pool.keeper_state(POOL)["ready"] == state["ready"]  # the spare is still there
        assert JobClient().record(env.job_id)["actor"] == "twister_nb.job." + env.job_id
    finally:
        env.close()


def _spare_masters(pool_mod) -> set[str]:
    """The names of the pool's JobMaster actors alive (ready, starting or taken)."""
    import ray

    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith(pool_mod.SPARE_PREFIX)}


@pytest.mark.slow
def test_the_pool_refills_when_the_machine_is_quiet(pool):
    """A spare's start (2-4 s of CPU) would slow the job that just took one: the
    keeper starts the next while less than half the machine's CPU is busy, so
    with every core kept busy it starts none; once they are free, it does."""
    state = _ready(pool)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(os.cpu_count() or 2)]
    try:
        assert pool.machine_busy_share() > pool.QUIET_SHARE
        env = TSetEnvironment(name="pool-busy", config=POOL, resources=[{"instances": 4}])
        try:
            assert env.job_id in pool.keeper_state(POOL)["taken"]
            rows = env.parallelize_list(DATA, 4).compute(_pids_and_mark(None)).collect()
            assert {r[0]: r[3] for r in rows} == _expected_sums(4)
            time.sleep(pool.REFILL_DELAY + 4 * pool.QUIET_SAMPLE)  # it looked, busy, 4 times
            busy = pool.keeper_state(POOL)
            assert busy["started"] == state["started"] and busy["ready"] == [], busy
            # nor is one starting: the only spare JobMaster alive is the one the job took
            assert _spare_masters(pool) == {busy["taken"][env.job_id]}
        finally:
            env.close()
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    _ready(pool, started_at_least=state["started"] + 1)
