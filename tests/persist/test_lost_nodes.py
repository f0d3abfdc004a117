"""A lost node (issue 13, points 2 and 3), on a real Ray cluster of a head and
two worker nodes on this machine (``twister_nb.testing.multinode``), with the
checkpoints on SeaweedFS, which every node reaches.

A job's workers spread over the nodes; killing a worker node mid-stage (its
raylet and every process on it) leaves an exact result: the lost workers are
restarted on the nodes that remain, their tasks run again, and the cached
partitions they held are made again. A node that joins later takes work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twister_nb.testing.multinode import MultiNodeCluster

PROGRAM = Path(__file__).parent / "programs" / "node_loss_job.py"
EXPECTED = sum(3 * (x + 1) for x in range(4000))

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def three_nodes(ray_cluster):
    cluster = MultiNodeCluster(workers=2, cpus=1)
    try:
        yield cluster
    finally:
        cluster.stop()


def _start(cluster: MultiNodeCluster, seaweed, tmp_path: Path, task_seconds: float):

    store = f"s3://{seaweed.bucket}/{tmp_path.name}"
    env = {**os.environ, "TWISTER_NB_RAY__ADDRESS": cluster.address,
           "TWISTER_NB_TWISTER2__CHECKPOINTING__STORE": store,
           "RUNS_FILE": str(tmp_path / "runs.txt"), "TASK_SECONDS": str(task_seconds)}
    env.update({"TWISTER_NB_TWISTER2__CHECKPOINTING__S3__" + k.upper(): str(v)
                for k, v in seaweed.s3_options.items()})
    proc = subprocess.Popen([sys.executable, str(PROGRAM)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    placed = None
    lines = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("PLACED"):
            placed = json.loads(line.split(" ", 1)[1])
        if line.startswith("READY"):
            return proc, placed
    proc.kill()
    raise AssertionError("".join(lines))


def _finish(proc) -> str:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def test_workers_spread_and_a_node_lost_mid_stage_leaves_an_exact_result(three_nodes, seaweed,
                                                                         tmp_path):
    proc, placed = _start(three_nodes, seaweed, tmp_path, task_seconds=3.0)
    try:
        worker_nodes = [n["node_id"] for n in three_nodes.nodes() if not n["head"]]
        used = set(placed["workers"])
        assert len(used) >= 2, placed  # spread, even with zero-CPU workers
        # a worker node that holds workers and not the JobMaster
        victim = next(i for i, node in enumerate(worker_nodes)
                      if node in used and node != placed["master"])
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(1.5)  # the slow stage is running on every worker
        three_nodes.remove_worker_node(victim)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0, out
    assert f"RESULT {EXPECTED}" in out, out
    runs = sorted(int(x) for x in (tmp_path / "runs.txt").read_text().split())
    assert set(runs) == {0, 1, 2, 3} and len(runs) > 4, runs  # what was lost ran again


def test_a_node_that_joins_takes_work(three_nodes, seaweed, tmp_path):
    three_nodes.remove_worker_node(0)
    three_nodes.remove_worker_node(0)
    added = three_nodes.add_worker_node()
    proc, placed = _start(three_nodes, seaweed, tmp_path, task_seconds=0.0)
    out = _finish(proc)
    assert f"RESULT {EXPECTED}" in out, out
    assert added in placed["workers"], (added, placed)


def test_a_local_folder_store_is_refused_on_several_nodes_unless_shared(three_nodes, tmp_path):
    """A file:// store on a multi-node cluster: one line naming the keys and the
    fix, before the job starts; declared mounted on every node, it runs."""
    seed = Path(__file__).parents[2] / "examples" / "tset_checkpointing.py"
    env = {**os.environ, "TWISTER_NB_RAY__ADDRESS": three_nodes.address,
           "TWISTER_NB_TWISTER2__CHECKPOINTING__STORE": f"file://{tmp_path / 'store'}"}
    cli = [sys.executable, "-m", "twister_nb.cli", "submit", str(seed)]
    refused = subprocess.run(cli, capture_output=True, text=True, timeout=300, env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    # the reason on its error line; below it only the program's own frames
    reason = next(ln for ln in refused.stderr.splitlines() if ln.startswith("error:"))
    assert "has 3 nodes" in reason and "twister2.checkpointing.shared_folder" in reason, reason
    assert "twister_nb/" not in refused.stderr, refused.stderr

    shared = subprocess.run(cli, capture_output=True, text=True, timeout=300,
                            env={**env, "TWISTER_NB_TWISTER2__CHECKPOINTING__SHARED_FOLDER": "true"})
    assert shared.returncode == 0, shared.stdout + shared.stderr
    assert f"SUM = {sum(5 * i + 2 for i in range(10000)) * 4}" in shared.stdout, shared.stdout
