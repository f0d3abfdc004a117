"""A node that joins a running job is used by its next action (issue 13, point 2).

A real Ray cluster of a head and one worker node (``twister_nb.testing.multinode``),
checkpoints on SeaweedFS, which every node reaches. A job of four workers (two
to a node) caches a TSet and runs an action; a node joins; the next action
moves one worker there (``Scheduler.use_new_nodes``), with the cached
partitions it held copied, not recomputed. Then that node is lost between
actions: the moved worker restarts on a node that remains (its placement group
is placed again), and the action after it is exact too, its lost cached
partition made again. Each task notes the node it ran on in a file (the side
channel), and every result is checked against plain Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from twister_nb.testing.multinode import MultiNodeCluster

PARTS = 4
DATA = list(range(4000))
PROGRAM = f'''\
import os
import sys

import ray

from twister_nb import TSetContext, TSetEnvironment

# read here, in the driver: the workers run with the cluster's environment
NOTES = os.environ["NOTES_FILE"]
env = TSetEnvironment(name="node-join", resources=[{{"instances": {PARTS}}}])


def note(what, ctx):
    with open(NOTES, "a") as f:
        f.write(f"{{what}} {{ctx.index}} {{ray.get_runtime_context().get_node_id()}}\\n")


def plus_one(itr, collector, ctx: TSetContext):
    note("cache", ctx)
    for x in itr:
        collector.collect(x + 1)


def times(factor):
    def run(itr, collector, ctx: TSetContext):
        note(f"times{{factor}}", ctx)
        for x in itr:
            collector.collect(x * factor)
    return run


cached = env.parallelize_list(list(range({len(DATA)})), {PARTS}).compute(plus_one).cache()
print("FIRST", cached.compute(times(3)).reduce(lambda a, b: a + b).collect()[0], flush=True)
print("READY", flush=True)
sys.stdin.readline()  # the test adds a node meanwhile
print("SECOND", cached.compute(times(5)).collect(), flush=True)
print("READY", flush=True)
sys.stdin.readline()  # the test removes that node meanwhile
print("THIRD", cached.compute(times(7)).collect(), flush=True)
env.close()
'''

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def two_nodes():
    cluster = MultiNodeCluster(workers=1, cpus=1)
    try:
        yield cluster
    finally:
        cluster.stop()


def _notes(path: Path, what: str) -> list[tuple[int, str]]:
    """(partition, node) of every run of the tasks noted as ``what``."""
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(int(p), node) for kind, p, node in rows if kind == what]


def test_a_node_that_joins_is_used_by_the_next_action(two_nodes, seaweed, tmp_path):
    program = tmp_path / "node_join.py"
    program.write_text(PROGRAM)
    notes = tmp_path / "notes.txt"
    env = {**os.environ, "TWISTER_NB_RAY__ADDRESS": two_nodes.address,
           "TWISTER_NB_RUNTIME__WORKERS": str(PARTS),
           "TWISTER_NB_TWISTER2__CHECKPOINTING__STORE": f"s3://{seaweed.bucket}/{tmp_path.name}",
           "NOTES_FILE": str(notes)}
    env.update({"TWISTER_NB_TWISTER2__CHECKPOINTING__S3__" + k.upper(): str(v)
                for k, v in seaweed.s3_options.items()})
    proc = subprocess.Popen([sys.executable, str(program)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []

    def ready() -> None:
        while not (lines and lines[-1].startswith("READY")):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        lines.append("")  # the next wait is for the next READY

    try:
        ready()
        before = {node for _, node in _notes(notes, "times3")}
        added = two_nodes.add_worker_node()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        ready()
        old_nodes = {n["node_id"] for n in two_nodes.nodes()} - {added}
        two_nodes.remove_worker_node(1)  # the added one
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    out = "".join(lines) + out
    assert proc.returncode == 0, out
    assert f"FIRST {sum(3 * (x + 1) for x in DATA)}" in out, out
    assert f"SECOND {[5 * (x + 1) for x in DATA]}" in out, out
    assert f"THIRD {[7 * (x + 1) for x in DATA]}" in out, out

    assert before == old_nodes, (before, old_nodes)  # the job spread over both nodes
    after = _notes(notes, "times5")
    assert sorted(p for p, _ in after) == list(range(PARTS)), after
    assert added in {node for _, node in after}, (added, after, out)
    # the cached partitions were made once before the node was lost (the moved
    # worker's were copied to it); lost with it, they were made again, on the
    # nodes that remain
    made = _notes(notes, "cache")
    assert sorted(p for p, _ in made[:PARTS]) == list(range(PARTS)), made
    assert made[PARTS:] and added not in {node for _, node in made[PARTS:]}, made
    moved = [ln for ln in out.splitlines() if "moved to node" in ln]
    assert len(moved) == 1 and "1 cached partition copied, none recomputed" in moved[0], out
    assert added not in {node for _, node in _notes(notes, "times7")}
