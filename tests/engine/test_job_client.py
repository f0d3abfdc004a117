"""The job-operations API (``twister_nb.jobs.JobClient``) and the environment's
public door to its job (info, cancel, events, action hooks), on a real cluster.

The CLI and the magics tests prove the front ends over the same calls; these
pin the API a server extension will call."""

from __future__ import annotations

import threading

import pytest

from twister_nb import TSetEnvironment
from twister_nb.errors import JobNotFoundError
from twister_nb.jobs import JobClient, JobRunningError, NoProgramError


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
