"""A running task's live counters (the dashboard's records in and out while
tasks run), sampled from another thread as the worker's reporter does, and the
JobMaster's coalescing of the workers' reports; no Ray."""

from __future__ import annotations

import pickle
import threading
import time

from twister_nb import SourceFunc
from twister_nb.events import TaskCount, TasksProgressed
from twister_nb.plan.planner import plan
from twister_nb.runtime.task import TaskEnv, TaskMeter, run_program
from twister_nb.runtime.task_progress import ProgressBoard


def _sampled(t) -> tuple[list, list[tuple[int, int]], TaskMeter]:
    """Run ``t``'s one partition while another thread samples its meter."""
    program = pickle.loads(plan(t.op, "collect").final.program)
    meter = TaskMeter()
    env = TaskEnv(worker_id=0, index=0, config={}, exchange_inputs=[], materialized=[],
                  meter=meter)
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(meter.sample())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        out, records_in = run_program(program, env)
    finally:
        done.set()
        sampler.join(10)
    return [out, records_in], samples, meter


def _slow(x):
    time.sleep(0.0002)
    return x * 3


def test_the_meter_counts_records_while_the_task_runs(offline_env):
    n = 2000
    t = offline_env.parallelize_list(list(range(n)), 1).map(_slow)
    (out, records_in), samples, meter = _sampled(t)
    assert out == [x * 3 for x in range(n)] and records_in == n
    # mid-task: every input record read, the map's output as far as it got
    mid = [s for s in samples if 0 < s[1] < n]
    assert mid and all(s[0] == n for s in mid), samples[:5]
    assert [s[1] for s in samples] == sorted(s[1] for s in samples)  # never back
    assert meter.sample() == (n, n)


class SlowCount(SourceFunc):
    def __init__(self, n):
        super().__init__()
        self.n = n
        self.i = 0

    def has_next(self):
        return self.i < self.n

    def next(self):
        time.sleep(0.0002)
        self.i += 1
        return self.i


def test_a_source_counts_its_records_as_it_makes_them(offline_env):
    n = 2000
    t = offline_env.create_source(SlowCount(n), 1).filter(lambda x: x % 2 == 0)
    (out, records_in), samples, meter = _sampled(t)
    assert out == [x for x in range(1, n + 1) if x % 2 == 0] and records_in == n
    # while the source ran: records in climbing, nothing out yet
    assert any(0 < s[0] < n and s[1] == 0 for s in samples), samples[:5]
    assert meter.sample() == (n, n // 2)


def test_the_board_coalesces_reports_and_drops_late_ones():
    sent: list[TasksProgressed] = []
    now = [0.0]
    board = ProgressBoard(sent.append, window=0.2, clock=lambda: now[0])
    board.start(3)
    for step in range(10):  # two workers reporting every 0.05 s for 0.5 s
        now[0] = step * 0.05
        board.report(3, TaskCount(stage=0, partition=0, records_in=step))
        board.report(3, TaskCount(stage=0, partition=1, records_in=2 * step))
    assert 2 <= len(sent) <= 4  # not 20
    assert all(e.action == 3 for e in sent)
    last = {t.partition: t.records_in for e in sent for t in e.tasks}
    assert last[0] >= 4 and last[1] >= 8
    board.finished(3, 0, 0)
    now[0] = 10.0
    board.report(3, TaskCount(stage=0, partition=0, records_in=99))  # in flight at the end
    board.report(2, TaskCount(stage=0, partition=1, records_in=99))  # an older action
    assert all(t.records_in != 99 for e in sent for t in e.tasks)
