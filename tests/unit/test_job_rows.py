"""``twister-nb jobs`` and ``status`` from the store alone (``twister_nb/job_rows.py``).

A real local store in a private home, with records and leases written as a
JobMaster writes them (``write_job``, ``acquire_lease``, ``release_lease``);
no cluster runs, so nothing may connect to Ray, and the commands must not even
import it (nor must ``--help``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from twister_nb.checkpoint import open_store
from twister_nb.job_rows import job_row, rows, stored_job, stored_jobs

_RUN_CLI = """
import sys
from twister_nb.cli import main
sys.argv = ["twister-nb", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print("RAY-IMPORTED" if "ray" in sys.modules else "NO-RAY", file=sys.stderr)
"""


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
    done = subprocess.run([sys.executable, "-c", _RUN_CLI, *args], env=environ,
                          capture_output=True, text=True, timeout=60)
    return done.stdout, done.stderr


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
