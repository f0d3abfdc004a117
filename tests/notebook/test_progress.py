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
