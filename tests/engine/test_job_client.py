"""The job-operations API (``twister_nb.jobs.JobClient``) and the environment's
public door to its job (info, cancel, events, action hooks), on a real cluster.

The CLI and the magics tests prove the front ends over the same calls; these
pin the API a server extension will call."""

from __future__ import annotations

import json
import threading

import pytest

from twister_nb import TSetEnvironment
from twister_nb.errors import JobNotFoundError
from twister_nb.jobs import JobClient, JobRunningError, NoProgramError
from twister_nb.testing import CLI, kill_and_wait, run_fresh

#: ``JobClient().jobs()`` in a fresh process, printed as JSON.
_LIST_JOBS = ("import json; from twister_nb.jobs import JobClient; "
              "print(json.dumps(JobClient().jobs()))")


def test_a_job_seen_through_the_client_while_live_and_after(ray_cluster):
    client = JobClient()
    env = TSetEnvironment(name="client", resources=[{"instances": 2}])
    job_id = env.job_id
    try:
        assert env.parallelize_list([1, 2, 3], 2).map(lambda x: x * 2).collect() == [2, 4, 6]
        assert client.info(job_id)["name"] == "client" == env.info()["name"]
        assert job_id in {row["job_id"]: row for row in client.jobs() if row["live"]}
        status = client.status(job_id)  # the record is flushed first: it is current
        assert status["record"]["name"] == "client" and status["live"]["job_id"] == job_id
        events, cursor = client.events(job_id)
        assert events and cursor >= len(events)
        stop = threading.Event()
        stop.set()  # one poll: what the JobMaster holds now
        assert len(list(client.watch(job_id, stop=stop))) == len(events)
        with pytest.raises(JobRunningError):
            client.clear(job_id)
        with pytest.raises(NoProgramError):
            client.program(job_id)  # a job made by a test process, not a submitted program
    finally:
        env.close()
    assert client.info(job_id) is None and not client.is_live(job_id)
    assert client.name(job_id) == "client"  # from the record
    assert client.close(job_id) is False and client.cancel(job_id) is False
    with pytest.raises(JobNotFoundError):
        client.events(job_id)
    client.clear(job_id)
    assert client.name(job_id) is None
    with pytest.raises(JobNotFoundError):
        client.status(job_id)
    with pytest.raises(JobNotFoundError):
        client.clear(job_id)


def test_environment_events_and_action_hooks(fresh_env):
    seen: list = []
    with fresh_env.subscribed(seen.append):
        fresh_env.parallelize_list([1, 2], 2).collect()
    assert seen, "a subscribed listener gets the action's events"
    count = len(seen)
    fresh_env.parallelize_list([1, 2], 2).collect()
    assert len(seen) == count, "an unsubscribed listener gets nothing more"

    actions: list = []

    def skip(action, root):
        actions.append(action)
        return False

    fresh_env.add_action_hook(skip)
    try:
        assert fresh_env.parallelize_list([1, 2], 2).collect() is None  # skipped: nothing ran
    finally:
        fresh_env.remove_action_hook(skip)
    assert actions == ["collect"]
    assert fresh_env.parallelize_list([1, 2], 2).collect() == [1, 2]
    assert fresh_env.cancel() is True  # nothing runs: the JobMaster just notes it
    assert fresh_env.info()["job_id"] == fresh_env.job_id


def _fresh_row(job_id: str) -> dict:
    """The job's row as a fresh process lists it, which must not import Ray."""
    listed = run_fresh(_LIST_JOBS)
    assert not listed.ray_imported, listed.stderr
    return {row["job_id"]: row for row in json.loads(listed.stdout)}[job_id]


def _fresh_cli(*args: str) -> str:
    """``twister-nb ARGS`` in a fresh process, which must not import Ray."""
    run = run_fresh(CLI, *args)
    assert not run.ray_imported, run.stderr
    return run.stdout


@pytest.mark.slow
def test_a_fresh_process_lists_a_live_job_without_ray_and_a_killed_one_as_stopped(ray_cluster):
    """The JobMaster's view of itself in its record answers ``jobs`` and
    ``status`` on its host without Ray, as its ``info()`` would; SIGKILLed, it
    is not live at the next listing (its lease is still fresh: its pid says so)."""
    from twister_nb.runtime.jobs import flush_record

    client = JobClient()
    env = TSetEnvironment(name="view", resources=[{"instances": 2}])
    job_id = env.job_id
    try:
        data = list(range(40))
        cached = env.parallelize_list(data, 2).map(lambda x: x * 3).cache()
        assert sorted(cached.collect()) == [x * 3 for x in data]
        info = client.info(job_id)  # the live JobMaster, through Ray: the reference
        assert info["workers"] == 2 and len(info["cached"]) == 1
        assert flush_record(job_id)  # its last published view is in the store
        row = _fresh_row(job_id)
        assert row["live"] and (row["status"], row["workers"], row["cached"]) == (
            info["status"], info["workers"], len(info["cached"]))
        line = next(r for r in _fresh_cli("jobs").splitlines() if r.startswith(job_id))
        assert f"{info['status']} (live)" in line
        shown = json.loads(_fresh_cli("status", job_id))
        assert {k: shown["live"][k] for k in ("status", "workers", "cached", "pid", "driver")} \
            == {k: info[k] for k in ("status", "workers", "cached", "pid", "driver")}
        assert shown["record"]["name"] == "view" and "live_view" not in shown["record"]
        kill_and_wait(info["pid"])
        row = _fresh_row(job_id)
        assert (row["live"], row["status"]) == (False, "stopped")
        line = next(r for r in _fresh_cli("jobs").splitlines() if r.startswith(job_id))
        assert "stopped" in line and "(live)" not in line
        assert json.loads(_fresh_cli("status", job_id))["live"] is None
        assert client.info(job_id) is None  # and Ray agrees
    finally:
        try:
            env.close()
        except Exception:  # noqa: BLE001 - its JobMaster was killed on purpose
            pass
