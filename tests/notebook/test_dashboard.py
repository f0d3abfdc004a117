"""The dashboard widget: real job events in, synced trait values out."""

from __future__ import annotations

import asyncio
import threading

import pytest

pytest.importorskip("ipywidgets")

from traitlets import TraitError

from twister_nb.events import OutputPrinted, TaskFinished
from twister_nb.notebook.dashboard import JobDashboard


def test_seed_run_sets_the_traits(job_events):
    dash = JobDashboard("job-1", "tests")
    asyncio.run(dash.listen(job_events["seed"]))
    assert dash.job_id == "job-1" and dash.job_name == "tests"
    assert dash.status == "done"
    assert dash.workers == 2
    assert dash.elapsed > 0
    assert dash.output == ["[worker-0] SUM = 999980000"]
    assert [(s["done"], s["tasks"]) for s in dash.stages] == [(4, 4), (4, 4), (1, 1)]
    assert [s["records_out"] for s in dash.stages] == [40000, 40000, 0]
    assert set(dash.tset_status.values()) == {"done"}
    assert dash.errors == []
    # the drawn children follow the traits
    bars = [row.children[1] for row in dash._stage_box.children]
    assert [(b.value, b.max, b.bar_style) for b in bars] == [(4, 4, "success"), (4, 4, "success"),
                                                             (1, 1, "success")]
    assert "done" in dash._header.value and "job-1" in dash._header.value
    assert "SUM = 999980000" in dash._output_html.value


def test_traits_are_synced_state():
    synced = set(JobDashboard.class_trait_names(sync=True))
    assert {"job_id", "status", "elapsed", "stages", "errors", "output", "workers",
            "tset_status", "cancel_requested"} <= synced
    assert all(JobDashboard.class_traits()[n].help for n in ("job_id", "status", "stages"))
    state = JobDashboard("j").get_state()  # what the frontend (and a saved notebook) gets
    assert state["job_id"] == "j" and state["status"] == "idle"


def test_error_with_traceback(job_events):
    dash = JobDashboard("job-1")
    for event in job_events["seed"] + job_events["error"]:
        dash.feed(event)
    assert dash.status == "failed"
    (err,) = dash.errors
    assert "bad value" in err["summary"] and "Traceback" in err["message"]
    assert dash.stages[-1]["state"] == "failed"
    assert dash._stage_box.children[-1].children[1].bar_style == "danger"
    assert "bad value" in dash._errors_html.value and "<details" in dash._errors_html.value


def test_static_html_shows_the_final_state(job_events):
    dash = JobDashboard("job-1", "tests")
    for event in job_events["seed"]:
        dash.feed(event)
    page = dash._repr_html_()
    assert page == dash.to_html()
    assert "job-1" in page and "done" in page and "4/4 tasks" in page and "40,000 out" in page
    assert "SUM = 999980000" in page
    from IPython.core.formatters import DisplayFormatter

    bundle, _ = DisplayFormatter().format(dash)
    assert "application/vnd.jupyter.widget-view+json" in bundle and "text/html" in bundle
    assert repr(dash) == "JobDashboard(job_id='job-1', status='done')"


def test_output_lines_are_bounded(job_events):
    dash = JobDashboard(max_output_lines=2)
    dash.feed(OutputPrinted(lines=("a", "b", "c")))
    assert dash.output == ["b", "c"] and dash.output_dropped == 1
    dash.max_output_lines = 1
    assert dash.output == ["c"]
    with pytest.raises(TraitError, match="max_output_lines"):
        dash.max_output_lines = 0
    with pytest.raises(TraitError, match="elapsed"):
        dash.elapsed = -1.0
    with pytest.raises(TraitError):
        dash.status = "exploded"
    dash.status = "DONE"  # caseless
    assert dash.status == "done"


def test_cancel_button(job_events):
    calls = []
    dash = JobDashboard("job-1", on_cancel=lambda: calls.append(1))
    assert dash._cancel.disabled  # nothing runs yet
    events = job_events["seed"]
    first_task = next(i for i, e in enumerate(events) if isinstance(e, TaskFinished))
    for event in events[:first_task]:
        dash.feed(event)
    assert dash.status == "running" and not dash._cancel.disabled
    dash._cancel.click()
    dash._cancel.click()  # once is enough
    assert calls == [1] and dash.cancel_requested and dash._cancel.disabled
    for event in events[first_task:]:
        dash.feed(event)
    assert dash._cancel.disabled and dash.status == "done"
    no_callback = JobDashboard()
    for event in events[:first_task]:
        no_callback.feed(event)
    assert no_callback._cancel.disabled


def test_fed_from_a_background_thread(job_events):
    dash = JobDashboard("job-1")
    thread = threading.Thread(target=lambda: [dash.feed(e) for e in job_events["seed"]])
    thread.start()
    thread.join()
    assert dash.status == "done" and dash.output == ["[worker-0] SUM = 999980000"]


def test_restored(job_events):
    dash = JobDashboard("job-1")
    for event in job_events["restored"]:
        dash.feed(event)
    assert [r["storage"] for r in dash.restored] == ["memory"]
    assert "restored" in dash.tset_status.values()
