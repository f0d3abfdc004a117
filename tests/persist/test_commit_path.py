"""The commit path kept short without losing a guarantee: the job record is
written in the background yet ends up current (flushed on demand and at close),
a JobMaster killed right after a persist loses nothing restore needs, parts
leave their folder's fsync to the manifest, and retention still deletes what it
must although it no longer runs after every commit."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray

from twister_nb import TSetEnvironment
from twister_nb.storage import CheckpointStore
from twister_nb.storage.manifest import MANIFEST_NAME


def _env(config, job_id=None, **extra):
    return TSetEnvironment(name="commit-path", resources=[{"instances": 2}],
                           config={**config, **extra}, job_id=job_id)


def test_job_record_catches_up_with_every_persist(ray_cluster, job_store):
    store = job_store.open()
    env = _env(job_store.config)
    master = env._executor.master
    try:
        first = env.parallelize_list(list(range(10)), 2).map(lambda x: x + 100).persist()
        assert ray.get(master.flush_record.remote(30)) is True
        record = store.read_job(env.job_id)
        assert record["status"] == "running"
        assert record["persisted"][first.id]["version"] == 0
        # a burst of commits: coalesced writes, yet the newest record has them all
        burst = [env.parallelize_list([i, i + 1], 2).map(lambda x: x * 7).set_name(f"b{i}")
                 .persist() for i in range(6)]
        assert ray.get(master.flush_record.remote(30)) is True
        persisted = store.read_job(env.job_id)["persisted"]
        assert set(persisted) == {first.id, *(p.id for p in burst)}
        assert {persisted[p.id]["label"] for p in burst} == {f"b{i}" for i in range(6)}
        last = env.parallelize_list([5], 1).map(lambda x: -x).persist()
    finally:
        env.close()  # no flush asked: closing writes the record before it returns
    record = store.read_job(env.job_id)
    assert record["status"] == "finished" and record.get("ended")
    assert set(record["persisted"]) == {first.id, last.id, *(p.id for p in burst)}


_DRIVER = """
import os, sys
import ray
from twister_nb import TSetEnvironment
from twister_nb.testing import IntSource

COUNT = sys.argv[1]

def triple(itr, collector, ctx):
    with open(COUNT, "a") as f:
        f.write(f"triple {ctx.index}\\n")
    for i in itr:
        collector.collect(i * 3)

env = TSetEnvironment(name="killed", resources=[{"instances": 2}], config=CONFIG,
                      job_id=sys.argv[2] if len(sys.argv) > 2 else None)
persisted = env.create_source(IntSource(1000), 2).compute(triple).set_name("tripled").persist()
if len(sys.argv) > 2:
    print("SUM", persisted.reduce(lambda a, b: a + b).collect()[0], flush=True)
    env.close()
else:
    info = ray.get(env._executor.master.info.remote())
    print("PERSISTED", env.job_id, info["pid"], flush=True)
    sys.stdin.read()  # killed here
"""


@pytest.mark.slow
def test_jobmaster_killed_right_after_persist_still_restores(ray_cluster, job_store, tmp_path):
    """SIGKILL of the driver and of the JobMaster the moment persist() returned:
    the record may miss the checkpoint (it is written in the background), yet
    the job restores it, because restore reads only the manifest."""
    from twister_nb.runtime.executor import live_master

    count = tmp_path / "calls.txt"
    code = _DRIVER.replace("CONFIG", repr(job_store.config))
    proc = subprocess.Popen([sys.executable, "-c", code, str(count)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not line.startswith("PERSISTED"):
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert line.startswith("PERSISTED"), proc.stderr.read()
        _, job_id, master_pid = line.split()
        os.kill(int(master_pid), signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    deadline = time.monotonic() + 60
    while live_master(job_id, job_store.config) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert live_master(job_id, job_store.config) is None, "the JobMaster is still alive"
    first = sorted(count.read_text().splitlines())
    assert first == ["triple 0", "triple 1"]

    again = subprocess.run([sys.executable, "-c", code, str(count), job_id], text=True,
                           capture_output=True, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "restored from its checkpoint" in again.stdout, again.stdout
    assert f"SUM {2 * sum(3 * i for i in range(1000))}" in again.stdout
    assert sorted(count.read_text().splitlines()) == first, "the upstream ran again"
    assert job_store.open().read_job(job_id)["status"] == "finished"


def test_one_folder_fsync_per_checkpoint(tmp_path, monkeypatch):
    """Parts are fsynced, their folder once, by the manifest's commit (local store)."""
    store = CheckpointStore.from_uri(tmp_path / "store", signing_key=b"k" * 32)
    real_fsync = os.fsync
    synced: list[str] = []

    def counting_fsync(fd):  # the real fsync, counted by kind
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    parts = [store.write_part("job", "tset", 0, p, list(range(p, p + 50))) for p in range(4)]
    assert synced == ["file"] * 4, "a part's data is fsynced, not yet its folder"
    assert store.commit("job", "tset", 0, parts, {"label": "t"})
    assert synced == ["file"] * 5 + ["dir"], "the manifest, then the one folder fsync"
    folder = Path(parts[0].path).parent
    assert (folder / MANIFEST_NAME).is_file()
    assert {Path(p.path).parent for p in parts} == {folder}, "parts and manifest share it"
    monkeypatch.setattr(os, "fsync", real_fsync)
    cp = store.latest("job", "tset")
    assert [store.read_part(cp, p) for p in range(4)] == [list(range(p, p + 50)) for p in range(4)]


def test_retention_still_deletes_what_it_must(ray_cluster, tmp_path):
    """Retention now runs only when it can delete something; it still deletes an
    old folder a crashed writer left without a manifest, and versions beyond it."""
    config = {"twister2.checkpointing.store": (tmp_path / "store").as_uri(),
              "twister2.checkpointing.enable": False, "twister2.checkpointing.retention": 3}
    store = CheckpointStore.from_uri(tmp_path / "store", signing_key=b"k" * 32)

    def persist_once(job_id=None):
        env = _env(config, job_id)
        try:
            p = env.parallelize_list(list(range(10)), 2).persist()
            assert p.collect() == list(range(10))
            return env.job_id, p.id
        finally:
            env.close()

    job_id, tset_id = persist_once()
    # a crashed writer's version 1: a part, no manifest, two hours old
    stale = Path(tmp_path / "store" / "jobs" / job_id / "tsets" / tset_id / "1")
    stale.mkdir()
    (stale / "part-0-dead.arrow").write_bytes(b"junk")
    old = time.time() - 7200
    for path in (stale / "part-0-dead.arrow", stale):
        os.utime(path, (old, old))
    persist_once(job_id)  # version 2: three folders fit the retention, but 1 is junk
    assert store.versions(job_id, tset_id, committed=False) == [0, 2]
    for _ in range(3):
        persist_once(job_id)  # versions 3, 4, 5: only the newest three are kept
    assert store.versions(job_id, tset_id, committed=False) == [3, 4, 5]
