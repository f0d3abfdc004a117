"""Jobs by ID: attach from Python, one owner per job, the store going away,
the checkpointing switch, retention, and the CLI's job commands."""

from __future__ import annotations

import json

import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from twister_nb import TSetEnvironment
from twister_nb.cli import main
from twister_nb.errors import JobNotFoundError


def _env(job_store, job_id=None, **config):
    return TSetEnvironment(name="jobs", resources=[{"instances": 2}],
                           config={**job_store.config, **config}, job_id=job_id)


def test_persisted_tset_is_usable_like_a_cached_one(ray_cluster, job_store):
    env = _env(job_store)
    try:
        data = [(i, float(i) / 3, f"s{i}", None if i % 5 == 0 else [i, i + 1]) for i in range(50)]
        persisted = env.parallelize_list(data, 2).persist()
        assert persisted.collect() == data  # exact values and types back
        assert persisted.map(lambda r: r[0]).reduce(lambda a, b: a + b).collect() == [sum(range(50))]
        lookup = env.parallelize_list([0, 49], 2).map(
            lambda i, ctx: (i, len(list(ctx.get_input("table").consumer()))))
        lookup.add_input("table", persisted)
        assert lookup.collect() == [(0, 25), (49, 25)]
    finally:
        env.close()


def test_attach_by_job_id_restores_without_recompute(ray_cluster, job_store, capsys):
    env = _env(job_store)
    t = env.parallelize_list(list(range(100)), 2).map(lambda x: x * x)
    t.persist()
    env.close()
    capsys.readouterr()
    env2 = _env(job_store, env.job_id)
    try:
        started = time.perf_counter()
        again = env2.parallelize_list(list(range(100)), 2).map(lambda x: x * x).persist()
        took = time.perf_counter() - started
        assert again.collect() == [x * x for x in range(100)]
        out = capsys.readouterr().out
        assert "restored from its checkpoint" in out
        assert took < 2.0  # a pointer (the benchmark measures it properly)
    finally:
        env2.close()


def test_unknown_job_id_is_a_clear_error(ray_cluster, job_store):
    with pytest.raises(JobNotFoundError, match="no job 'nope-000'"):
        _env(job_store, "nope-000")


def test_changed_function_does_not_reuse_stale_data(ray_cluster, job_store, capsys):
    env = _env(job_store)
    env.parallelize_list(list(range(10)), 2).map(lambda x: x + 1).persist()
    env.close()
    env2 = _env(job_store, env.job_id)
    try:
        capsys.readouterr()
        changed = env2.parallelize_list(list(range(10)), 2).map(lambda x: x + 2).persist()
        assert changed.collect() == [x + 2 for x in range(10)]
        assert "restored" not in capsys.readouterr().out
    finally:
        env2.close()


def test_checkpointing_disabled_only_offloads_and_retention_keeps_n(ray_cluster, job_store, capsys):
    # Off: a re-attached job recomputes its persists (they only offload data);
    # every attach writes a new version, and only the newest two are kept.
    cfg = {"twister2.checkpointing.enable": False, "twister2.checkpointing.retention": 2}
    store = job_store.open()
    job_id = None
    for _ in range(4):
        env = _env(job_store, job_id, **cfg)
        job_id = env.job_id
        try:
            p = env.parallelize_list(list(range(10)), 2).persist()
            assert p.collect() == list(range(10))
        finally:
            env.close()
    out = capsys.readouterr().out
    assert "restored" not in out and out.count("checkpointed") == 4
    assert store.versions(job_id, p.id) == [2, 3]  # the newest two


_ATTACH = """
import sys
from twister_nb import TSetEnvironment
from twister_nb.errors import JobOwnedError
try:
    env = TSetEnvironment(job_id=sys.argv[1], config={CONFIG})
except JobOwnedError as exc:
    print("REFUSED", exc)
    sys.exit(3)
print("ATTACHED", flush=True)
sys.stdin.read()  # hold the job until the test closes our stdin
env.close()
"""


@pytest.mark.slow
def test_two_processes_race_for_one_job(ray_cluster, job_store):
    env = _env(job_store)
    env.parallelize_list([1], 1).persist()
    job_id = env.job_id
    env.close()
    code = _ATTACH.replace("{CONFIG}", repr(job_store.config))
    procs = [subprocess.Popen([sys.executable, "-c", code, job_id], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = []
    try:
        # the loser exits by itself; the winner waits on its stdin
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.2)
    finally:
        for p in procs:
            try:
                out, err = p.communicate(input="", timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            outs.append((p.returncode, out, err))
    codes = sorted(code for code, _, _ in outs)
    assert codes == [0, 3], outs
    refused = next(out for code, out, _ in outs if code == 3)
    assert "is attached to another process" in refused
    # the store was not harmed: the committed checkpoint still restores
    env2 = _env(job_store, job_id)
    try:
        assert env2.parallelize_list([1], 1).persist().collect() == [1]
    finally:
        env2.close()


def test_cli_jobs_status_clear(ray_cluster, job_store, monkeypatch):
    for key, value in job_store.environ.items():
        monkeypatch.setenv(key, value)
    env = _env(job_store)
    persisted = env.parallelize_list([1, 2], 2).persist()
    job_id = env.job_id
    runner = CliRunner()
    listed = runner.invoke(main, ["jobs"])
    assert listed.exit_code == 0, listed.output
    line = next(row for row in listed.output.splitlines() if row.startswith(job_id))
    assert "(live)" in line
    # the live job's record (written in the background) is current when shown
    shown_live = runner.invoke(main, ["status", job_id])
    assert shown_live.exit_code == 0, shown_live.output
    assert persisted.id in json.loads(shown_live.output)["record"]["persisted"]
    env.close()
    listed = runner.invoke(main, ["jobs"])
    line = next(row for row in listed.output.splitlines() if row.startswith(job_id))
    assert "finished" in line and "(live)" not in line
    shown = runner.invoke(main, ["status", job_id])
    assert shown.exit_code == 0 and '"status": "finished"' in shown.output
    assert runner.invoke(main, ["status", "nope"]).exit_code == 1
    cleared = runner.invoke(main, ["clear", job_id, "--yes"])
    assert cleared.exit_code == 0, cleared.output
    store = job_store.open()
    assert store.read_job(job_id) is None and store.list_tsets(job_id) == []
    assert runner.invoke(main, ["clear", job_id, "--yes"]).exit_code == 1
