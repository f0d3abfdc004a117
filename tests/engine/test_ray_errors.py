"""Ray's errors reach the user as ours, in words: a JobMaster that was killed,
and a store that cannot be written when a job starts. Both caused for real."""

from __future__ import annotations

import time

import pytest

from twister_nb import TSetEnvironment
from twister_nb.errors import JobFailedError, JobMasterLostError


def test_a_killed_jobmaster_is_one_clear_error_and_the_next_action_rebuilds_it(ray_cluster,
                                                                              capsys):
    import ray

    from twister_nb.runtime.jobs import find_master

    env = TSetEnvironment(name="lost", resources=[{"instances": 2}])
    try:
        data = list(range(20))
        assert env.parallelize_list(data, 2).collect() == data
        master = find_master(env.job_id, env.config)
        ray.kill(master, no_restart=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # ray.kill returns before the actor is gone
            try:
                ray.get(master.info.remote(), timeout=10)
            except ray.exceptions.RayActorError:
                break
            time.sleep(0.1)
        with pytest.raises(JobMasterLostError) as info:  # outside an action: said, not hidden
            env.info()
        message = str(info.value)
        assert "\n" not in message and "\x1b" not in message, message
        assert f"TSetEnvironment(job_id={env.job_id!r})" in message
        assert isinstance(info.value, JobFailedError), "caught like any failed job"
        # an action rebuilds it from the store and runs, saying so in one line
        assert env.parallelize_list(data, 2).map(lambda x: x + 1).collect() == [
            x + 1 for x in data]
        lines = [ln for ln in capsys.readouterr().out.splitlines() if "JobMaster was lost" in ln]
        assert len(lines) == 1 and "\x1b" not in lines[0], lines
        assert env.info()["status"] in ("idle", "running")
    finally:
        env.close()


def test_an_unwritable_store_says_why_the_job_could_not_start(ray_cluster, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = (blocker / "store").as_uri()  # root can write anywhere; not under a file
    with pytest.raises(JobFailedError) as info:
        TSetEnvironment(name="nostore", config={"twister2.checkpointing.store": store})
    message = str(info.value)
    assert message.startswith("job 'nostore-"), message
    assert "could not start: NotADirectoryError" in message, message
    assert "\n" not in message and "\x1b" not in message
