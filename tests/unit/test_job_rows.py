"""``twister-nb jobs`` and ``status`` from the store alone (``twister_nb/job_rows.py``).

A real local store in a private home, with records and leases written as a
JobMaster writes them (``write_job``, ``acquire_lease``, ``release_lease``);
no cluster runs, so nothing may connect to Ray, and the commands must not even
import it (nor must ``--help``). The trust rule for a live JobMaster's view of
itself (its lease held by a live process of this host) is checked with leases
held by this process, by another host, and by a process that exited.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from twister_nb import job_rows
from twister_nb.checkpoint import open_store
from twister_nb.job_rows import (StoredJob, answer_here, job_row, pid_alive, public_record, rows,
                                 stored_job, stored_jobs)
from twister_nb.storage import JOB_LIVE_VIEW, Lease
from twister_nb.testing import CLI, run_fresh


@pytest.fixture
def home_store(tmp_path):
    """A store in a home of its own, with three jobs: one finished (its lease
    released), one whose JobMaster died long ago (its lease expired), one whose
    lease is held now."""
    environ = {**os.environ, "TWISTER_NB_HOME": str(tmp_path / "home")}
    config = {"twister2.checkpointing.store": (tmp_path / "home" / "store").as_uri()}
    store = open_store(config)
    for n, (job_id, status) in enumerate([("done-1", "finished"), ("dead-2", "running"),
                                          ("held-3", "running")]):
        store.write_job(job_id, {"job_id": job_id, "name": f"job{n}", "created": 1000.0 + n,
                                 "status": status, "persisted": {"t1": {}} if n == 0 else {}})
    store.release_lease(store.acquire_lease("done-1", "jobmaster", 15.0))
    store.acquire_lease("dead-2", "jobmaster", 0.01)  # expired at once, never renewed
    store.acquire_lease("held-3", "jobmaster", 600.0)
    store.write_job("no-lease-4", {"job_id": "no-lease-4", "name": "x", "status": "finished"})
    return store, environ


def _cli(environ, *args):
    run = run_fresh(CLI, *args, env=environ)
    return run.stdout, run.stderr + ("\nRAY-IMPORTED" if run.ray_imported else "\nNO-RAY")


def test_a_lease_tells_whether_a_job_may_be_live(home_store):
    store, _ = home_store
    found = {job.job_id: job for job in stored_jobs(store)}
    assert set(found) == {"done-1", "dead-2", "held-3", "no-lease-4"}
    for job in found.values():
        lease = store.read_lease(job.job_id)
        # the reference: held, and expired (if at all) less than one TTL ago
        for now in (lease.acquired_at if lease else 0.0, (lease.expires_at if lease else 0.0) + 20):
            expected = (lease is not None and not lease.released
                        and lease.expires_at + lease.ttl_s > now)
            assert job.maybe_live(now) is expected, (job.job_id, now)
    later = time.time() + 1  # the 0.01 s lease of dead-2 expired more than its TTL ago
    assert not found["done-1"].maybe_live(later) and not found["dead-2"].maybe_live(later)
    assert found["held-3"].maybe_live(later) and not found["no-lease-4"].maybe_live(later)
    assert not stored_job(store, "nobody").known and found["no-lease-4"].known


def test_rows_are_the_records_when_nothing_is_live(home_store):
    store, _ = home_store
    listed = rows(stored_jobs(store), {})
    assert [r["job_id"] for r in listed] == ["no-lease-4", "done-1", "dead-2", "held-3"]
    by_id = {r["job_id"]: r for r in listed}
    assert by_id["done-1"] == job_row("done-1", None, store.read_job("done-1"))
    assert (by_id["done-1"]["status"], by_id["done-1"]["persisted"]) == ("finished", 1)
    assert by_id["dead-2"]["status"] == "stopped" and not by_id["dead-2"]["live"]
    live = {"held-3": {"name": "job2", "status": "idle", "workers": 2, "cached": {"a": 1},
                       "created": 1002.0}}
    row = {r["job_id"]: r for r in rows(stored_jobs(store), live)}["held-3"]
    assert (row["status"], row["live"], row["workers"], row["cached"]) == ("idle", True, 2, 1)


def test_cli_jobs_status_and_help_import_no_ray(home_store):
    store, environ = home_store
    out, err = _cli(environ, "jobs")
    assert err.strip().endswith("NO-RAY"), err
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == {"done-1", "dead-2", "held-3", "no-lease-4"}
    assert "finished" in lines["done-1"] and "(live)" not in lines["done-1"]
    # no local head runs, so the held lease's job is not live either
    assert "stopped" in lines["held-3"] and "stopped" in lines["dead-2"]
    out, err = _cli(environ, "status", "done-1")
    assert err.strip().endswith("NO-RAY"), err
    assert json.loads(out) == {"record": store.read_job("done-1"), "live": None}
    out, err = _cli(environ, "status", "nobody")
    assert "no job 'nobody'" in err and err.strip().endswith("NO-RAY")
    out, err = _cli(environ, "--help")
    assert "jobs" in out and err.strip().endswith("NO-RAY"), err


def _view(pid: int, published: float, **state) -> dict:
    """A JobMaster's view of itself as its record carries it."""
    return {"job_id": "j", "name": "n", "status": "idle", "workers": 2, "cached": {"t": 2},
            "persisted": [], "created": 1.0, "driver": None, "last_action": None,
            "running": None, "pid": pid, "host": socket.gethostname(),
            "published": published, **state}


def test_a_view_is_trusted_only_from_a_live_unexpired_holder_of_this_host():
    now = 1000.0
    lease = Lease("j", "jobmaster", 3, "tok", acquired_at=now - 20, expires_at=now + 10,
                  ttl_s=15.0, host="here", pid=4242)
    view = _view(4242, now - 4)
    job = StoredJob("j", {"job_id": "j", "status": "running", JOB_LIVE_VIEW: view}, lease)
    alive = {4242}.__contains__
    assert job.trusted_view(now, host="here", alive=alive) == view
    assert not job.holder_gone(host="here", alive=alive)
    cases = {  # what breaks the trust, one thing at a time
        "another host": dict(host="there"),
        "the holder dead": dict(alive=lambda pid: False),
        "the lease expired": dict(now=now + 11),
        "the view older than a TTL": dict(now=now + 9.5, stale=True),
    }
    for what, case in cases.items():
        stale = case.pop("stale", False)
        at = case.pop("now", now)
        probe = job if not stale else dataclasses.replace(
            job, record={JOB_LIVE_VIEW: _view(4242, now - 16)})
        args = {"host": "here", "alive": alive, **case}
        assert probe.trusted_view(at, **args) is None, what
    # the view of another process (an older JobMaster's), a released lease, no view
    other = dataclasses.replace(job, record={JOB_LIVE_VIEW: _view(99, now - 1)})
    released = dataclasses.replace(job, lease=dataclasses.replace(lease, released=True))
    bare = dataclasses.replace(job, record={"job_id": "j"})
    for probe in (other, released, bare):
        assert probe.trusted_view(now, host="here", alive=alive) is None
    # a dead holder here settles the job (not live); elsewhere or released it does not
    assert job.holder_gone(host="here", alive=lambda pid: False)
    assert not job.holder_gone(host="there", alive=lambda pid: False)
    assert not released.holder_gone(host="here", alive=lambda pid: False)


def test_pid_alive_tells_a_running_process_from_an_exited_and_a_zombie():
    assert pid_alive(os.getpid()) and not pid_alive(0) and not pid_alive(-1)
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert not pid_alive(done.pid)  # exited and reaped
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # exited, not reaped yet: a zombie
            with open(f"/proc/{zombie.pid}/stat", "rb") as stat:
                if stat.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    break
            time.sleep(0.02)
        assert not pid_alive(zombie.pid)
    finally:
        zombie.wait()


def test_answer_here_from_a_real_store_with_live_and_dead_holders(tmp_path, monkeypatch):
    """Leases held by this (live) process and by one that exited, as a
    JobMaster's are: one trusted view, one job settled as gone, and a view
    that names another pid than the lease's left to Ray."""
    # As in a fresh process: an earlier test of this session may have made it a Ray driver.
    monkeypatch.setattr(job_rows, "connected_to_ray", lambda: False)
    uri = (tmp_path / "store").as_uri()
    store = open_store({"twister2.checkpointing.store": uri})
    now = time.time()
    store.acquire_lease("live-1", "jobmaster", 600.0)
    store.write_job("live-1", {"job_id": "live-1", "status": "running",
                               JOB_LIVE_VIEW: _view(os.getpid(), now)})
    store.acquire_lease("other-2", "jobmaster", 600.0)
    store.write_job("other-2", {"job_id": "other-2", "status": "running",
                                JOB_LIVE_VIEW: _view(os.getpid() + 1, now)})
    code = ("import sys; from twister_nb.checkpoint import open_store; "
            "open_store({'twister2.checkpointing.store': sys.argv[1]})"
            ".acquire_lease('killed-3', 'jobmaster', 600.0)")
    subprocess.run([sys.executable, "-c", code, uri], check=True, timeout=60)
    store.write_job("killed-3", {"job_id": "killed-3", "status": "running",
                                 JOB_LIVE_VIEW: _view(store.read_lease("killed-3").pid, now)})
    found = stored_jobs(store)
    here = answer_here(found)
    assert set(here.live) == {"live-1"} and here.gone == {"killed-3"}
    assert not here.settles("other-2") and all(job.maybe_live() for job in found)
    listed = {r["job_id"]: r for r in rows(found, here.live)}
    assert (listed["live-1"]["live"], listed["live-1"]["workers"], listed["live-1"]["cached"]) \
        == (True, 2, 1)
    assert (listed["killed-3"]["live"], listed["killed-3"]["status"]) == (False, "stopped")
    assert JOB_LIVE_VIEW not in public_record(store.read_job("live-1"))
