"""The README's main command, the cluster commands, lazy caching, and that a
closed job leaves no actor behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray

from twister_nb import SourceFunc

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "twister_nb.cli"]


@pytest.mark.slow
def test_submit_seed_tutorial_prints_banner_then_sum(ray_cluster):
    done = subprocess.run([*CLI, "submit", str(ROOT / "examples" / "tset_checkpointing.py")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0].strip() for line in lines[:4]] == [
        "Job Name", "Job ID", "Cluster Type", "Runtime"]
    assert "[worker-0] SUM = 999980000" in lines
    assert done.stdout.count("SUM =") == 1  # reduce: one value, printed once


def _session_processes(pid: int) -> dict[int, str]:
    """The live processes the head ``pid`` started (its session), by PID: their names."""
    from twister_nb.runtime.cluster import session_pids

    names = {}
    for p in session_pids(pid):
        try:
            names[p] = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
    return names


@pytest.mark.slow
def test_cluster_start_status_stop_in_its_own_home(tmp_path):
    # The warm pool is on (as by default for the local head): the stop must wait for
    # its keeper and spares too, actors Ray runs in process groups of their own.
    env = {**os.environ, "TWISTER_NB_HOME": str(tmp_path / "home"),
           "TWISTER_NB_RUNTIME__POOL__SIZE": "1"}
    pid = None
    try:
        started = subprocess.run([*CLI, "cluster", "start", "--num-cpus", "1"], env=env,
                                 capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stderr
        assert "started" in started.stdout
        pid = int(re.search(r"\(pid (\d+)\)", started.stdout).group(1))
        assert re.search(r"in \d+\.\d s", started.stdout), "how long the start took"
        status = subprocess.run([*CLI, "cluster", "status"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert "running at 127.0.0.1:" in status.stdout
        again = subprocess.run([*CLI, "cluster", "start"], env=env, capture_output=True,
                               text=True, timeout=60)
        assert "already running" in again.stdout
        deadline = time.monotonic() + 120
        while "ray::PoolKeeper" not in _session_processes(pid).values():
            assert time.monotonic() < deadline, f"no pool keeper: {_session_processes(pid)}"
            time.sleep(0.2)
    finally:
        stopped = subprocess.run([*CLI, "cluster", "stop"], env=env, capture_output=True,
                                 text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert _session_processes(pid) == {}, "the head's actors (the pool keeper's) outlived it"
    status = subprocess.run([*CLI, "cluster", "status"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert "not running" in status.stdout


class Counting(SourceFunc):
    def __init__(self, path):
        super().__init__()
        self.path, self.i = path, 0

    def prepare(self, ctx):
        with open(self.path, "a") as f:
            f.write("read\n")

    def has_next(self):
        return self.i < 3

    def next(self):
        self.i += 1
        return self.i


def test_lazy_cache_runs_with_the_next_action_only_once(env, tmp_path):
    log = tmp_path / "reads"
    lazy = env.create_source(Counting(str(log)), 2).lazy_cache()
    assert not log.exists(), "lazy: nothing ran yet"
    assert lazy.map(lambda x: x * 10).collect() == [10, 20, 30] * 2
    assert lazy.collect() == [1, 2, 3] * 2
    assert log.read_text().count("read") == 2  # one per partition, once


def test_hashing_partitioner_groups_equal_values(env):
    words = "a b c a b a d".split()
    got = env.parallelize_list(words, 3).partition(env.functions.partition.hashing()).compute(
        lambda itr: sorted(itr)).collect()
    for value in set(words):
        holders = [i for i, part in enumerate(got) if value in part]
        assert len(holders) == 1
    assert sorted(v for part in got for v in part) == sorted(words)


def test_closed_job_leaves_no_actor(ray_cluster):
    from twister_nb import TSetEnvironment
    from twister_nb.jobs import JobClient
    from twister_nb.runtime.jobs import job_workers

    env = TSetEnvironment(name="lifecycle", resources=[{"instances": 2}])
    assert env.parallelize_list([1, 2], 2).cache().collect() == [1, 2]
    workers = job_workers(env.job_id)
    assert len(workers) == 2
    master = JobClient().record(env.job_id)["actor"]  # named after the job, or the pool's
    env.close()
    with pytest.raises(ValueError):
        ray.get_actor(master, namespace="twister_nb")
    for w in workers:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(w.ping.remote(), timeout=30)
    with pytest.raises(RuntimeError, match="closed"):
        env.parallelize_list([1], 1).collect()


def test_a_script_that_exits_closes_its_job_before_it_disconnects(ray_cluster, tmp_path):
    # At exit a script's job is closed (TSetEnvironment.close), then the process
    # leaves Ray (cluster.disconnect, without Ray's half-second sleep). In the
    # other order the close would find no connection and the job would stay up.
    from twister_nb.jobs import JobClient
    from twister_nb.runtime.jobs import job_workers

    script = tmp_path / "leaves.py"
    script.write_text(
        "from twister_nb import TSetEnvironment\n"
        "env = TSetEnvironment(name='leaves', resources=[{'instances': 2}])\n"
        "print('JOB', env.job_id)\n"
        "print('RESULT', sum(env.parallelize_list(list(range(10)), 2).cache().collect()))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"RESULT {sum(range(10))}" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    job_id = re.search(r"^JOB (\S+)$", done.stdout, re.M).group(1)
    record = JobClient().record(job_id)
    assert record["status"] == "finished", record
    with pytest.raises(ValueError):
        ray.get_actor(record["actor"], namespace="twister_nb")
    assert job_workers(job_id) == []


def test_program_that_imports_ray_first(ray_cluster, tmp_path):
    # Ray reads its connection settings when imported; twister_nb must still
    # reach its loopback, token-auth head when the user imported Ray first.
    script = tmp_path / "early.py"
    script.write_text(
        "import ray\n"
        "from twister_nb import TSetEnvironment\n"
        "env = TSetEnvironment(resources=[{'instances': 2}])\n"
        "print('RESULT', env.parallelize_list([1, 2, 3], 2).map(lambda x: x * 2).collect())\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env=clean)
    assert "RESULT [2, 4, 6]" in done.stdout, done.stdout + done.stderr
