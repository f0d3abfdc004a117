"""The jobs sidebar's REST API (``twister_nb/server``) on a real Jupyter server.

A real JupyterLab server (:class:`twister_nb.testing.jupyter.JupyterServer`) runs
with the repository's ``jupyter-config/`` (which enables the server extension, as an
install does) and the session's twister_nb home, so it sees the session's Ray head
and store. Jobs are real: one driven by this test process, one submitted with
``twister-nb submit`` from a shell. Every answer is checked against what the job
API (:class:`~twister_nb.jobs.JobClient`) or the computation itself says.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from twister_nb.events import decode
from twister_nb.jobs import JobClient
from twister_nb.runtime.ray_errors import ANSI_CODE
from twister_nb.testing.jupyter import JupyterServer
from twister_nb.testing.programs import slow_program

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "twister_nb.cli"]
API = "/twister2/api"

#: A submitted program whose one action runs long enough to be watched and cancelled:
#: 8 tasks of 2.5 s on 2 CPUs.
SLOW_PROGRAM = slow_program("api-slow", tasks=8, seconds=2.5)

QUICK_PROGRAM = """\
from twister_nb import TSetEnvironment

env = TSetEnvironment(name="api-quick", resources=[{"instances": 2}])
data = env.parallelize_list(list(range(100)), 2).map(lambda x: x + 1).set_name("plus").persist()
print("TOTAL", sum(data.collect()), flush=True)
env.close()
"""


@pytest.fixture(scope="module")
def server(ray_cluster, tmp_path_factory):
    """The real server, for this module's tests, stopped by its PID at the end."""
    work = tmp_path_factory.mktemp("jupyter-server")
    (work / "root").mkdir()
    lab = JupyterServer(root=work / "root", workdir=work, log=work / "server.log",
                        jupyter_config=ROOT / "jupyter-config")
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


def _job(server: JupyterServer, job_id: str) -> dict | None:
    return next((j for j in server.api(f"{API}/jobs")["jobs"] if j["job_id"] == job_id), None)


def _wait(predicate, timeout: float, what: str, step: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def test_the_extension_is_enabled_by_the_packaged_config(server):
    listed = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"],
                            env=server.environ(), capture_output=True, text=True, timeout=120)
    text = ANSI_CODE.sub("", listed.stdout + listed.stderr)
    assert "twister_nb.server enabled" in text, text
    assert re.search(r"^\s+twister_nb\.server\s+OK$", text, re.MULTILINE), text


def test_list_detail_and_events_of_a_job_this_process_drives(server, ray_cluster):
    from twister_nb import TSetEnvironment

    env = TSetEnvironment(name="api-list", resources=[{"instances": 2}])
    try:
        values = list(range(50))
        plus = env.parallelize_list(values, 2).map(lambda x: x + 1).set_name("plus").persist()
        total = sum(plus.collect())
        assert total == sum(x + 1 for x in values)
        job_id = env.info()["job_id"]
        client = JobClient()

        row = _job(server, job_id)
        assert row is not None, "the sidebar's list lacks the job"
        expected = client.job(job_id)
        assert row["name"] == "api-list" and row["live"] is True
        assert row["status"] == expected["status"]
        assert row["checkpoints"] == expected["persisted"] == 1
        assert row["driver"]["kind"] == "process" and row["driver"]["pid"] == os.getpid()
        assert row["age"] >= 0 and row["progress"] is None  # nothing runs now

        detail = server.api(f"{API}/jobs/{job_id}")
        assert detail["job_id"] == job_id and detail["info"]["job_id"] == job_id
        assert [c["tset_id"] for c in detail["checkpoint_list"]] == list(
            client.status(job_id)["record"]["persisted"])
        # the dashboard folded from the job's events: both actions, every task done
        kinds = [s["action_kind"] for s in detail["stages"]]
        assert kinds and set(kinds) <= {"persist", "collect"} and "persist" in kinds
        assert all(s["done"] == s["tasks"] for s in detail["stages"]), detail["stages"]
        assert detail["dashboard"]["status"] == "done"
        assert job_id in detail["dashboard_html"]
        assert detail["restartable"] is False  # a job of a process, not a program

        first = server.api(f"{API}/jobs/{job_id}/events?cursor=0")
        ours, cursor = client.events(job_id, 0)
        assert first["cursor"] == cursor and first["live"] is True
        assert [decode(e) for e in first["events"]] == ours
        committed = [e for e in first["events"] if e["kind"] == "checkpoint"]
        assert len(committed) == 1
        # nothing new: a long-poll waits its timeout, then answers with none
        started = time.monotonic()
        later = server.api(f"{API}/jobs/{job_id}/events?cursor={cursor}&timeout=1")
        assert later["events"] == [] and later["cursor"] == cursor
        assert time.monotonic() - started >= 0.9
        # ... and one that an action ends early answers with its events
        env.parallelize_list(values, 2).map(lambda x: x * 2).collect()
        fresh = server.api(f"{API}/jobs/{job_id}/events?cursor={cursor}&timeout=5")
        assert fresh["cursor"] > cursor
        assert [e["seq"] for e in fresh["events"]] == list(range(cursor, fresh["cursor"]))

        # this process drives the job: closing it from the server is refused
        status, answer = server.request(f"{API}/jobs/{job_id}/close", "POST")
        assert status == 409 and "pid" in answer["message"], answer
    finally:
        env.close()
    # closed: still listed from the store, not live, its events none
    row = _job(server, job_id)
    assert row["live"] is False and row["status"] == client.job(job_id)["status"]
    gone = server.api(f"{API}/jobs/{job_id}/events?cursor=0")
    assert gone == {"events": [], "cursor": 0, "live": False}


def _submit(tmp_path: Path, source: str, job_id: str) -> subprocess.Popen:
    program = tmp_path / f"{job_id}.py"
    program.write_text(source)
    return subprocess.Popen([*CLI, "submit", "--job-id", job_id, str(program)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_a_submitted_job_progresses_and_cancel_stops_it(server, tmp_path):
    job_id = f"api-slow-{os.getpid()}"
    proc = _submit(tmp_path, SLOW_PROGRAM, job_id)
    try:
        row = _wait(lambda: (r := _job(server, job_id)) and r["progress"] and r, 120,
                    "the submitted job's action in the list")
        assert row["status"] == "running" and row["driver"]["kind"] == "process"
        assert row["progress"]["total"] == 8
        seen = row["progress"]["done"]
        moved = _wait(lambda: (r := _job(server, job_id)) and r["progress"]
                      and r["progress"]["done"] > seen and r, 60, "progress to move")
        assert 0 < moved["progress"]["done"] < 8
        assert moved["progress"]["fraction"] == moved["progress"]["done"] / 8

        answer = server.api(f"{API}/jobs/{job_id}/cancel", "POST")
        assert answer == {"job_id": job_id, "operation": "cancel", "done": True}
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and "cancelled" in out.lower(), out
    assert not re.search(r"^TOTAL ", out, re.MULTILINE), out  # the action never ended well
    row = _wait(lambda: (r := _job(server, job_id)) and not r["live"] and r, 60, "the job's end")
    assert row["status"] == "cancelled" == JobClient().record(job_id)["status"]


def test_close_clear_and_restart(server, tmp_path, ray_cluster):
    from twister_nb import TSetEnvironment

    client = JobClient()
    # a live job nobody drives: its driver detached (as a restarting kernel does)
    env = TSetEnvironment(name="api-close", resources=[{"instances": 2}])
    job_id = env.info()["job_id"]
    env.parallelize_list([1, 2, 3], 1).set_name("kept").persist()
    env.detach("kernel restarted")
    assert _job(server, job_id)["driver"] is None

    status, answer = server.request(f"{API}/jobs/{job_id}/clear", "POST")
    assert status == 409 and "close it first" in answer["message"], answer
    assert server.api(f"{API}/jobs/{job_id}/close", "POST")["done"] is True
    assert client.is_live(job_id) is False
    assert server.api(f"{API}/jobs/{job_id}/cancel", "POST")["done"] is False  # nothing runs
    assert server.api(f"{API}/jobs/{job_id}/clear", "POST")["done"] is True
    assert client.record(job_id) is None
    status, answer = server.request(f"{API}/jobs/{job_id}")
    assert status == 404 and job_id in answer["message"], answer

    # restart: a submitted program runs again (same job ID, its checkpoint restored)
    quick = f"api-quick-{os.getpid()}"
    proc = _submit(tmp_path, QUICK_PROGRAM, quick)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and f"TOTAL {sum(x + 1 for x in range(100))}" in out, out
    before = client.record(quick)["restarts"]
    detail = server.api(f"{API}/jobs/{quick}")
    assert detail["restartable"] is True and detail["live"] is False
    answer = server.api(f"{API}/jobs/{quick}/restart", "POST")
    assert answer["job_id"] == quick and "restarting" in answer["message"]
    _wait(lambda: (client.record(quick) or {}).get("restarts") == before + 1
          and client.record(quick)["status"] == "finished" and not client.is_live(quick),
          240, "the restarted job to finish")
    # a job that is not a program: 400, said in words
    status, answer = server.request(f"{API}/jobs/{job_id}-none/restart", "POST")
    assert status == 404, answer


def test_bad_requests_and_no_token(server):
    status, answer = server.request(f"{API}/jobs/no-such-job-123")
    assert status == 404 and "no-such-job-123" in answer["message"], answer
    status, answer = server.request(f"{API}/jobs/no-such-job-123/cancel", "POST")
    assert status == 404, answer
    status, answer = server.request(f"{API}/jobs/no-such-job-123/explode", "POST")
    assert status == 404 and "cancel" in answer["message"], answer
    status, answer = server.request(f"{API}/jobs/..bad/events?cursor=0")
    assert status == 400 and "job_id must match" in answer["message"], answer
    status, answer = server.request(f"{API}/jobs/x/events?cursor=minus")
    assert status == 400 and "cursor must be an integer" in answer["message"], answer
    status, answer = server.request(f"{API}/jobs/x/events?timeout=999")
    assert status == 400 and "timeout" in answer["message"], answer
    # without the token (and without a login cookie): refused, for reading and acting
    for path, method in ((f"{API}/jobs", "GET"), (f"{API}/jobs/x", "GET"),
                         (f"{API}/jobs/x/cancel", "POST")):
        status, _ = server.request(path, method, token=False)
        assert status == 403, (path, method, status)
