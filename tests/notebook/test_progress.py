"""The dashboard's state source: real job events folded into plain state."""

from __future__ import annotations

import asyncio
import threading

import pytest

from twister_nb.events import (ActionEnded, ActionStarted, ErrorRaised, OutputPrinted,
                               StageSummary, TaskFinished, WorkersStarted)
from twister_nb.notebook.progress import JobProgress, render_html


def _fed(events, **kwargs) -> JobProgress:
    progress = JobProgress("job-1", "tests", **kwargs)
    for event in events:
        progress.feed(event)
    return progress


def test_seed_job_events(job_events):
    p = _fed(job_events["seed"])
    assert p.status == "done"
    assert p.workers == 2  # the session cluster has 2 CPUs
    assert p.elapsed > 0
    assert list(p.output) == ["[worker-0] SUM = 999980000"]
    stages = p.stages
    # persist: source -> compute -> compute fused in one stage of 4 tasks;
    # then reduce + for_each: the persisted partitions, and one reducing task
    assert [(s["action_kind"], s["tsets"], s["done"], s["tasks"]) for s in stages] == [
        ("persist", ["source", "compute", "compute"], 4, 4),
        ("run", ["materialized"], 4, 4),
        ("run", ["reduce", "for_each"], 1, 1),
    ]
    assert stages[0]["records_out"] == 40000 and stages[2]["records_in"] == 1
    assert all(s["state"] == "done" for s in stages)
    assert set(p.tset_status.values()) == {"done"}
    assert len(p.tset_status) == 5
    assert p.errors == []


def test_error_events_keep_the_traceback(job_events):
    p = _fed(job_events["seed"] + job_events["error"])
    assert p.status == "failed"
    (err,) = p.errors
    assert err["tset"] == "map" and err["partition"] in (0, 1) and err["worker"] in (0, 1)
    assert err["summary"].endswith("ValueError: bad value 1") or "bad value" in err["summary"]
    assert "Traceback (most recent call last)" in err["message"]
    assert 'raise ValueError(f"bad value {x!r}")' in err["message"]
    failed = p.stages[-1]
    assert failed["state"] == "failed" and failed["tsets"] == ["parallelize", "map"]
    assert "failed" in p.tset_status.values()
    page = render_html(p.snapshot())
    assert "bad value" in page and "<details" in page and "failed" in page


def test_restored_events(job_events):
    p = _fed(job_events["restored"])
    assert [r["storage"] for r in p.restored] == ["memory"]
    assert "restored" in p.tset_status.values()
    assert p.status == "done"
    assert "restored" in render_html(p.snapshot())


def test_output_is_bounded():
    events = [OutputPrinted(lines=tuple(f"[worker-0] line {i}" for i in range(5))),
              OutputPrinted(lines=("[worker-1] last",))]
    p = _fed(events, max_output_lines=3)
    assert list(p.output) == ["[worker-0] line 3", "[worker-0] line 4", "[worker-1] last"]
    assert p.output_dropped == 3
    assert "3 earlier lines not shown" in render_html(p.snapshot())
    with pytest.raises(ValueError, match="max_output_lines"):
        JobProgress(max_output_lines=0)


def test_subscribers_get_the_changed_fields(job_events):
    p = JobProgress()
    changes = []
    p.subscribe(changes.append)
    p.feed(next(e for e in job_events["seed"] if isinstance(e, WorkersStarted)))
    assert changes == [{"workers": 2}]


def test_listen_from_sync_and_async_sources(job_events):
    p = JobProgress()
    asyncio.run(p.listen(job_events["seed"]))
    assert p.status == "done"

    async def stream():
        for event in job_events["seed"]:
            yield event

    q = JobProgress()
    asyncio.run(q.listen(stream()))
    assert q.snapshot() == p.snapshot()


def test_feed_from_threads(job_events):
    events = job_events["seed"]
    p = JobProgress()
    start = next(i for i, e in enumerate(events) if isinstance(e, TaskFinished))
    for e in events[:start]:
        p.feed(e)
    tasks = [e for e in events[start:] if isinstance(e, TaskFinished) and e.action == 1]
    threads = [threading.Thread(target=p.feed, args=(e,)) for e in tasks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(s["done"] for s in p.stages) == len(tasks)


def test_finish_and_cancel():
    p = JobProgress()
    p.feed(ActionStarted(action=1, action_kind="run", time=10.0, stages=(
        StageSummary(index=0, label="map", tset_id="map-1", parallelism=2, output="run",
                     tsets=(("map", "map-1"),)),)))
    p.request_cancel()
    assert p.cancel_requested
    p.feed(ErrorRaised(action=1, message="job 'x' failed: the action was cancelled",
                       time=11.0))
    p.feed(ActionEnded(action=1, state="failed", seconds=1.0, time=11.0))
    assert p.status == "cancelled" and p.elapsed == 1.0
    # a cancel this dashboard did not ask for (the stop button, another
    # watcher's Cancel): the JobMaster says cancelled
    c = JobProgress()
    c.feed(ActionStarted(action=1, stages=(), time=1.0))
    c.feed(ActionEnded(action=1, state="cancelled", seconds=1.0, time=2.0))
    assert c.status == "cancelled"
    q = JobProgress()
    q.feed(ActionStarted(action=1, stages=(), time=1.0))
    q.finish()  # the watcher stopped while the action ran
    assert q.status == "failed"
    with pytest.raises(ValueError, match="status"):
        q.finish("exploded")


def _stage(index, tsets=("parallelize", "map"), output="collect", tasks=2):
    return StageSummary(index=index, label=tsets[-1], tset_id=f"t{index}", parallelism=tasks,
                        output=output, tsets=tuple((t, f"{t}-{index}") for t in tsets))


def test_running_tasks_counters_show_before_they_finish():
    from twister_nb.events import StageSubmitted, TaskCount, TasksProgressed

    p = _fed([ActionStarted(action=1, action_kind="collect", stages=(_stage(0),), time=10.0),
              StageSubmitted(action=1, stage=0, tasks=2, time=10.0),
              TasksProgressed(action=1, time=11.0, tasks=(
                  TaskCount(stage=0, partition=0, records_in=500, records_out=200),
                  TaskCount(stage=0, partition=1, records_in=500, records_out=100)))])
    (stage,) = p.stages
    assert (stage["done"], stage["running"], stage["records_in"], stage["records_out"]) == (
        0, 2, 1000, 300)
    assert stage["rate"] == 300.0 and stage["state"] == "running"
    assert "0/2 tasks \u00b7 2 running \u00b7 1,000 in \u00b7 300 out \u00b7 300 rec/s" in \
        render_html(p.snapshot())
    # a finished task's own counts replace its live ones; the other stays live
    p.feed(TaskFinished(action=1, stage=0, partition=0, records_in=500, records_out=500,
                        time=12.0))
    p.feed(TasksProgressed(action=1, time=12.0, tasks=(
        TaskCount(stage=0, partition=0, records_in=500, records_out=400),  # late: ignored
        TaskCount(stage=0, partition=1, records_in=500, records_out=300))))
    (stage,) = p.stages
    assert (stage["done"], stage["running"], stage["records_in"], stage["records_out"]) == (
        1, 1, 1000, 800)
    p.feed(TaskFinished(action=1, stage=0, partition=1, records_in=500, records_out=500,
                        time=13.0))
    (stage,) = p.stages
    assert (stage["done"], stage["running"], stage["records_out"], stage["state"]) == (
        2, 0, 1000, "done")


def test_a_persist_stage_is_checkpointing_until_its_commit():
    from twister_nb.events import CheckpointCommitted, StageSubmitted, TaskCount, TasksProgressed

    p = _fed([ActionStarted(action=1, action_kind="persist",
                            stages=(_stage(0, output="persist", tasks=1),), time=1.0),
              StageSubmitted(action=1, stage=0, tasks=1, time=1.0),
              TasksProgressed(action=1, time=1.5, tasks=(
                  TaskCount(stage=0, partition=0, records_in=9, records_out=9,
                            phase="writing"),))])
    assert p.stages[0]["state"] == "checkpointing"
    assert set(p.tset_status.values()) == {"checkpointing"}
    p.feed(TaskFinished(action=1, stage=0, partition=0, records_in=9, records_out=9, time=2.0))
    assert p.stages[0]["state"] == "checkpointing"  # written, not committed yet
    p.feed(CheckpointCommitted(tset_id="t0", label="map", version=1, time=2.1))
    assert p.stages[0]["state"] == "done" and set(p.tset_status.values()) == {"done"}


def test_start_up_steps_and_a_cancel_said_once():
    from twister_nb.events import StartupStep

    p = _fed([StartupStep(step="starting the JobMaster")])
    assert p.status == "starting"
    assert "starting the JobMaster ..." in render_html(p.snapshot())
    p.feed(StartupStep(step="starting the JobMaster", state="done", seconds=1.25))
    assert p.status == "idle" and p.startup == [
        {"step": "starting the JobMaster", "state": "done", "seconds": 1.25}]
    assert "starting the JobMaster: 1.25 s" in render_html(p.snapshot())
    # a job a cell started and ran nothing on yet: ready, not "idle · 0.00 s"
    assert "bold'>ready</span>" in render_html(p.snapshot())
    assert "0.00 s" not in render_html(p.snapshot())
    p.feed(ActionStarted(action=1, action_kind="collect", stages=(_stage(0),), time=1.0))
    p.feed(ErrorRaised(action=1, message="the action of job 'j' was cancelled"))
    p.feed(ActionEnded(action=1, state="cancelled"))
    # the status says it (and the cell's own error, once): not the error list too
    assert p.status == "cancelled" and p.errors == []


def test_a_running_background_cells_handle_counts_its_seconds():
    """``CellRun`` of a ``--background`` cell says how long it has run so far
    (it said ``seconds=0.00`` until the end); once ended, its final time."""
    import time

    from twister_nb.notebook.cell import CellRun

    run = CellRun(job_id="j", job_name="n", dry_run=False, status="running",
                  started=time.perf_counter() - 1.5)
    assert 1.5 <= run.elapsed < 60 and "seconds=1.5" in repr(run)
    run.status, run.seconds = "done", 2.25
    assert run.elapsed == 2.25 and "seconds=2.25" in repr(run)
