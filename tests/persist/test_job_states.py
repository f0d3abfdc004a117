"""Job states are true: a failed job is recorded failed (and a restart that succeeds
clears it), a job whose driver was SIGKILLed stops after its idle limit, and a
persist() that fills the disk names the TSet and the path and leaves nothing behind.
Each is caused for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from twister_nb import TSetEnvironment
from twister_nb.errors import JobFailedError, UserFunctionError


def _record(job_store, job_id):
    return job_store.open().read_job(job_id)


def _fails(x):
    raise ValueError(f"bad record {x}")


@pytest.mark.slow
def test_failed_job_is_failed_and_a_successful_restart_clears_it(ray_cluster, job_store):
    env = TSetEnvironment(name="states", resources=[{"instances": 2}], config=job_store.config)
    with pytest.raises(UserFunctionError):
        env.parallelize_list([1, 2, 3], 2).map(_fails).collect()
    env.close()
    record = _record(job_store, env.job_id)
    assert record["status"] == "failed", record
    assert "bad record" in record["error"]

    again = TSetEnvironment(name="states", config=job_store.config, job_id=env.job_id)
    try:
        assert again.parallelize_list([1, 2, 3], 2).map(lambda x: x * 2).collect() == [2, 4, 6]
    finally:
        again.close()
    record = _record(job_store, env.job_id)
    assert record["status"] == "finished", record
    assert record.get("error") is None
    assert record["restarts"] == 1


DRIVER = textwrap.dedent("""
    import json, os, signal, sys
    from twister_nb import TSetEnvironment
    env = TSetEnvironment(name="orphan", resources=[{"instances": 2}],
                          config=json.loads(sys.argv[1]))
    assert env.parallelize_list(list(range(10)), 2).collect() == list(range(10))
    print("JOB", env.job_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the driver dies; its job stays behind
""")


@pytest.mark.slow
def test_a_job_whose_driver_was_killed_stops_after_its_idle_limit(ray_cluster, job_store):
    import ray

    from twister_nb.runtime.jobs import find_master, job_workers

    config = {**job_store.config, "twister2.job.idle_timeout": 3}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(config)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr
    job_id = done.stdout.split("JOB ", 1)[1].split()[0]
    # its JobMaster and workers, named after the job or taken from the warm pool
    actors = [find_master(job_id, config), *job_workers(job_id, config)]
    assert actors[0] is not None and len(actors) >= 2, "the job outlives its driver"

    def live_actors() -> int:
        alive = 0
        for actor in actors:
            try:
                ray.get(actor.__ray_ready__.remote(), timeout=10)
            except ray.exceptions.RayActorError:
                continue
            except ray.exceptions.GetTimeoutError:
                pass  # busy, not gone
            alive += 1
        return alive

    deadline = time.monotonic() + 90  # 15 s driver lease + 3 s limit + checks
    while live_actors() and time.monotonic() < deadline:
        time.sleep(1)
    assert live_actors() == 0, "the JobMaster and its workers are gone"
    record = _record(job_store, job_id)
    assert record["status"] == "stopped", record
    assert "idle" in record["stopped_reason"] and "idle_timeout" in record["stopped_reason"]


@pytest.mark.slow
def test_disk_full_during_persist_names_the_tset_and_leaves_nothing(ray_cluster, tiny_disk):
    import numpy as np

    env = TSetEnvironment(name="full", resources=[{"instances": 2}],
                          config={"twister2.checkpointing.store": tiny_disk.as_uri()})
    try:
        big = env.parallelize_array(np.arange(600_000, dtype=np.int64), 4)  # 4 x 1.2 MB
        with pytest.raises(JobFailedError) as info:
            big.map_batches(lambda b: b + 1).set_name("too-big").persist()
        first = str(info.value).splitlines()[0]
        assert first.startswith("persist() of 'too-big' failed: StoreWriteError"), first
        assert str(tiny_disk) in first and "No space left on device" in first
        assert "twister2.checkpointing.store" in first, "what to do"
        parts = [os.path.join(d, f) for d, _, files in os.walk(tiny_disk) for f in files
                 if f.startswith(("part-", ".part-"))]
        assert parts == [], f"the failed attempt left {parts}"
        # the job goes on: a small persist fits now that nothing was left behind
        small = env.parallelize_list(list(range(100)), 2).persist()
        assert small.collect() == list(range(100))
    finally:
        env.close()


@pytest.mark.slow
def test_disk_full_for_task_checkpoints_loses_no_result(ray_cluster, tiny_disk, capsys):
    """finished_tasks 1 on a store that fills up: each worker commits its task as
    it ends; the commits that do not fit are said, one line per task, and the
    action's result is exact. A restart of the action recovers exactly the tasks
    that were committed."""
    import numpy as np

    from twister_nb.checkpoint import open_store
    from twister_nb.checkpoint.tasks import is_task_id

    # 8 tasks of 600 KB: the commits of both workers at once always fit in 2 MiB, 8 never do
    data = np.arange(600_000, dtype=np.int64)
    config = {"twister2.checkpointing.store": tiny_disk.as_uri(),
              "twister2.checkpointing.policy": "finished_tasks",
              "twister2.checkpointing.policy_params": "finished.tasks:1"}
    env = TSetEnvironment(name="full-tasks", resources=[{"instances": 2}], config=config)
    try:
        plus = env.parallelize_array(data, 8).map_batches(lambda b: b + 1).set_name("plus")
        assert np.array_equal(np.concatenate(plus.collect()), data + 1)  # batches, in order
        counts = env.info()["last_action"]["tasks"][0]
        out = capsys.readouterr().out
        failed = [line for line in out.splitlines() if "was not checkpointed" in line]
        assert counts["checkpointed"] >= 2 and failed and counts["checkpointed"] + len(failed) == 8, (
            counts, out)
        assert all("No space left on device" in line and "'plus'" in line for line in failed), failed
        store = open_store(config)
        committed = [t for t in store.list_tsets(env.job_id)
                     if is_task_id(t) and store.latest(env.job_id, t) is not None]
        assert len(committed) == counts["checkpointed"]
        assert np.array_equal(np.concatenate(plus.collect()), data + 1)
        assert env.info()["last_action"]["tasks"][0]["recovered"] == counts["checkpointed"]
    finally:
        env.close()


@pytest.mark.slow
def test_close_ends_a_job_whose_driver_died(ray_cluster, job_store):
    """`twister-nb close JOB_ID` from a shell; then `clear` is allowed."""
    environ = {**os.environ, **job_store.environ}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(job_store.config)],
                          capture_output=True, text=True, timeout=300)
    job_id = done.stdout.split("JOB ", 1)[1].split()[0]
    cli = [sys.executable, "-m", "twister_nb.cli"]
    refused = subprocess.run([*cli, "clear", "--yes", job_id], env=environ,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "is running; close it first" in refused.stderr
    closed = subprocess.run([*cli, "close", job_id], env=environ, capture_output=True,
                            text=True, timeout=120)
    assert closed.returncode == 0, closed.stderr
    assert f"closed job {job_id}" in closed.stdout
    assert _record(job_store, job_id)["status"] == "finished"
    cleared = subprocess.run([*cli, "clear", "--yes", job_id], env=environ,
                             capture_output=True, text=True, timeout=120)
    assert cleared.returncode == 0, cleared.stderr
    again = subprocess.run([*cli, "close", job_id], env=environ, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 1 and "is not running" in again.stderr


def _slow(x):
    import time as _time

    _time.sleep(30)
    return x


@pytest.mark.slow
def test_a_cancelled_action_leaves_a_cancelled_job(ray_cluster, job_store):
    import threading

    from twister_nb.errors import ActionCancelledError

    env = TSetEnvironment(name="cancel", resources=[{"instances": 2}], config=job_store.config)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            env.parallelize_list([1, 2], 2).map(_slow).collect()
        except BaseException as exc:  # noqa: BLE001 - inspected below
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while env.running() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    assert env.cancel()
    thread.join(60)
    assert not thread.is_alive(), "cancel stopped the action"
    assert isinstance(raised[0], ActionCancelledError), raised
    assert "was cancelled" in str(raised[0]) and "failed" not in str(raised[0])
    env.close()
    record = _record(job_store, env.job_id)
    assert record["status"] == "cancelled", record
