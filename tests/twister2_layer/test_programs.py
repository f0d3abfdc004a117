"""Twister2-style programs run unmodified under ``twister-nb submit`` (issue 14).

The programs in ``programs/`` are ours, written in the shapes of Twister2's nine
Python examples (hello, source, keyed source, compute, communication, caching,
checkpointing, python-support's main.py and kmeans.py). Each runs as a real
``twister-nb submit`` on the session's Ray cluster, and its output is checked
against what Twister2 prints, computed here in plain Python: the program's own
lines once per worker (the program runs once per worker), and the lines of its
``for_each``/``sink`` once per partition, from the worker that runs the
partition (``[worker-k]``, partition p on worker p % workers, as Twister2 places
its tasks). Order is checked only where Twister2 defines it (within a partition).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

PROGRAMS = Path(__file__).parent / "programs"
CLI = [sys.executable, "-m", "twister_nb.cli"]
BANNER = ("Job Name", "Job ID", "Cluster Type", "Runtime", "Job Log")
WORKER_LINE = re.compile(r"^\[worker-(\d+)\] (.*)$")

pytestmark = pytest.mark.slow


@dataclass
class Output:
    """What a submitted program printed on stdout, banner apart."""

    banner: list[str]
    #: the program's own lines (every copy's), in order
    program: list[str]
    #: worker -> the lines its partitions printed, in order
    workers: dict[int, list[str]]

    def all_worker_lines(self) -> list[str]:
        return [line for lines in self.workers.values() for line in lines]


def _parse(stdout: str) -> Output:
    banner, program, workers = [], [], {}
    for line in stdout.splitlines():
        found = WORKER_LINE.match(line)
        if found:
            workers.setdefault(int(found.group(1)), []).append(found.group(2))
        elif line.startswith(BANNER):
            banner.append(line)
        else:
            program.append(line)
    return Output(banner, program, workers)


def run(name: str, tmp_path: Path, *, plain: bool = False) -> Output:
    """Run ``programs/<name>.py`` with ``twister-nb submit`` (or ``python3``)."""
    command = [sys.executable, str(PROGRAMS / f"{name}.py")] if plain else [
        *CLI, "submit", str(PROGRAMS / f"{name}.py")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = _parse(done.stdout)
    assert [line.split(":")[0].strip() for line in out.banner] == list(BANNER), out.banner
    return out


def greetings(workers: int) -> Counter:
    return Counter(f"Greetings from worker {k}" for k in range(workers))


def count_source(n: int) -> list[int]:
    """What one instance of the programs' CountSource yields."""
    return list(range(n))


def test_the_program_runs_once_per_worker(ray_cluster, tmp_path):
    out = run("greet", tmp_path)
    assert Counter(out.program) == greetings(3)
    assert out.workers == {}


def test_python3_runs_it_the_same_way(ray_cluster, tmp_path):
    out = run("greet", tmp_path, plain=True)
    assert Counter(out.program) == greetings(3)


def test_a_source_prints_once_per_partition_on_its_worker(ray_cluster, tmp_path):
    out = run("count_source", tmp_path)
    assert Counter(out.program) == greetings(3)
    expected = [f"v : {v}" for v in count_source(6)]
    assert out.workers == {p: expected for p in range(3)}


def test_keyed_gather_groups_every_value_of_a_key(ray_cluster, tmp_path):
    out = run("keyed_source", tmp_path)
    assert Counter(out.program) == greetings(2)
    pairs = [(v % 2, v) for v in count_source(7)] * 2  # two source instances
    expected: dict[int, Counter] = {}
    for key, value in pairs:
        expected.setdefault(key, Counter())[value] += 1
    got: dict[int, Counter] = {}
    for worker, lines in out.workers.items():
        groups = [ast.literal_eval(line.removeprefix("GROUP ")) for line in lines]
        keys = [key for key, _ in groups]
        assert keys == sorted(keys, reverse=True), (worker, keys)  # the comparator b - a
        for key, values in groups:
            got.setdefault(key, Counter()).update(values)
    assert got == expected


def test_chained_computes_and_twister2s_compute_rule(ray_cluster, tmp_path):
    out = run("chained_compute", tmp_path)
    assert Counter(out.program) == greetings(2)
    values = count_source(8)
    for p in range(2):
        assert out.workers[p] == ([f"(v x 3) + 1 = {v * 3 + 1}" for v in values]
                                  + [f"partition sum = {sum(values)}", f"index = {p}"])


def test_reduce_prints_once_on_worker_zero(ray_cluster, tmp_path):
    out = run("reduce_sum", tmp_path)
    assert Counter(out.program) == greetings(3)
    total = sum(v * 3 for v in count_source(12)) * 3
    assert out.workers == {0: [f"TOTAL = {total}"]}


def test_an_input_added_after_building_is_read(ray_cluster, tmp_path):
    out = run("cached_input", tmp_path)
    cached = [v * 4 for v in count_source(5)]
    z = count_source(5)
    assert out.workers == {
        0: [f"(y * 4) + z = {a + b}" for a, b in zip(z, cached)] + ["first of 0: 99"],
        1: [f"(y * 4) + z = {a + b}" for a, b in zip(z, cached)] + ["first of 1: None"],
    }
    assert Counter(out.program) == greetings(2) + Counter(
        [f"DATA worker {k}: 2 partitions, {[cached, cached]}" for k in range(2)]
        + [f"UNCACHED worker {k}: None" for k in range(2)])


def test_persist_is_timed_in_every_worker_and_summed_once(ray_cluster, tmp_path):
    out = run("persisted_sum", tmp_path)
    own = [line for line in out.program if not line.startswith("persist(): ")]
    timed = Counter(re.sub(r"took \d+ s", "took N s", line) for line in own
                    if line.startswith("Persist took"))
    assert timed == Counter(f"Persist took N s in worker {k}" for k in range(2))
    assert Counter(own) - Counter(line for line in own if line.startswith("Persist took")) == \
        greetings(2)
    assert out.workers == {0: [f"SUM = {sum(v * 3 for v in count_source(3000)) * 2}"]}


def test_a_direct_sink_gets_its_partition_and_records_are_writable(ray_cluster, tmp_path):
    out = run("arrays", tmp_path)
    assert re.match(r"Job Name\s*:\s*ArrayJob$", out.banner[0]), out.banner
    assert Counter(out.program) == Counter(f"MY_KEY = 7 in worker {k}" for k in range(2))
    grids = []
    for _ in range(2):  # two source instances, each makes three grids
        for made in range(1, 4):
            x = np.array([[2.0, 2.0], [2.0, made]])
            x[0, 0] = 500
            grids.append(f"GRID {x.reshape(4).tolist()}")
    assert sorted(out.workers) == [0, 1]
    for lines in out.workers.values():  # one sink call per partition, its grids after it
        assert lines[0] == "SINK CALL" and "SINK CALL" not in lines[1:]
        assert len(lines) == 1 + 3  # load_balanced: three grids to each partition
    assert Counter(line for line in out.all_worker_lines() if line != "SINK CALL") == \
        Counter(grids)


def _lloyd_reference(iterations: int, parallelism: int) -> list[list[float]]:
    points = np.random.default_rng(7).random((200, 3))
    centers = np.random.default_rng(11).random((4, 3))
    for _ in range(iterations):
        c = centers.copy()
        nearest = ((points[:, None, :] - c[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        for k in range(len(c)):
            if (nearest == k).any():
                c[k] = points[nearest == k].mean(axis=0)
        total = c
        for _ in range(parallelism - 1):
            total = total + c
        centers = total / parallelism
    return np.round(centers, 9).tolist()


def test_kmeans_iterations_see_the_new_centers(ray_cluster, tmp_path):
    out = run("lloyd", tmp_path)
    expected = f"CENTERS {_lloyd_reference(5, 2)}"
    assert expected != f"CENTERS {_lloyd_reference(1, 2)}"  # the iterations matter
    assert out.workers == {0: [expected, expected]}  # one worker, two partitions
    assert out.program == ["UNCACHED None", "SAME ID True"]


def test_a_failing_function_is_reported_once_with_the_programs_frames(ray_cluster, tmp_path):
    program = PROGRAMS / "failing.py"
    done = subprocess.run([*CLI, "submit", str(program)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [ln for ln in done.stderr.splitlines() if not ln.startswith("[twister-nb] ")]
    assert sum(ln.startswith("error: ") for ln in errors) == 1, errors
    assert "ZeroDivisionError" in errors[0], errors
    assert "failing.py\", line 11" in done.stderr and "in invert" in done.stderr
    for machinery in ("twister2/", "twister_nb/", "runpy", "FailedInAnotherCopy"):
        assert machinery not in done.stderr, f"{machinery} shown:\n{done.stderr}"


def test_outside_a_script_it_is_one_worker_and_the_graph_is_mutable(ray_cluster):
    """In a notebook or an imported module there are no copies: worker 0 alone."""
    from twister2.Twister2Environment import Twister2Environment

    env = Twister2Environment(name="t2-in-process", resources=[{"instances": 2}])
    assert env.worker_id == 0
    base = env.parallelize_list([1, 2, 3, 4], 2).cache()
    scaled = base.map(lambda v, ctx: v * ctx.get_input("factor").first())
    summed = scaled.all_reduce(lambda a, b: a + b)  # built before the input is added
    totals = []
    for factor in (10, 100):
        scaled.add_input("factor", env.parallelize_list([factor, factor], 2).cache())
        data = summed.map(lambda v: v).cache().get_data()
        totals.append([p.first() for p in data.get_partitions()])
    assert totals == [[100, 100], [1000, 1000]]  # sum([1, 2, 3, 4]) * factor, in both
    assert base.for_each(lambda v: None) is not None  # Twister2 returns a TSet
    assert summed.map(lambda v: v).get_data() is None  # not cached: None, as Twister2
    env.close()


def test_restart_finds_the_persisted_tset_again(ray_cluster, tmp_path):
    program = PROGRAMS / "persisted_sum.py"
    first = subprocess.run([*CLI, "submit", str(program)], capture_output=True, text=True,
                           timeout=300, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    job_id = re.search(r"Job ID\s*:\s*(\S+)", first.stdout).group(1)
    again = subprocess.run([*CLI, "restart", job_id], capture_output=True, text=True,
                           timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    out = _parse(again.stdout)
    assert re.search(rf"Job ID\s*:\s*{re.escape(job_id)}$", "\n".join(out.banner), re.M)
    restored = [line for line in out.program if "restored from its checkpoint" in line]
    assert len(restored) == 1, out.program  # once for the job, not once per worker
    assert Counter(line for line in out.program if line.startswith("Greetings")) == greetings(2)
    assert out.workers == {0: [f"SUM = {sum(v * 3 for v in count_source(3000)) * 2}"]}
