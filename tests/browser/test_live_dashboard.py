"""Live progress as a person sees it, in a real JupyterLab in Chromium.

A slow job (4 tasks of ~8 s on 2 workers) run from a notebook cell:

* the dashboard shows records in and out of the running stage, moving,
  before its first task has finished, and its clock ticks;
* the start-up steps are listed with their times;
* the graph below it is drawn while the job runs and recoloured as its stage
  runs: the SVG in the page is read at two moments (running, then done);
* a page reload mid-job (the notebook saved, its kernel alive; a
  ``--background`` cell, so the kernel is free to answer the new page) brings
  the dashboard back, still live: its counters go on moving and it ends
  ``done`` with plain Python's counts;
* after a kernel restart the notebook reopened shows no ``Error displaying
  widget``: each finished dashboard is its static final state;
* a reload during a *foreground* cell brings its dashboard back live while the
  cell runs (the cell awaits its work, ``twister_nb/notebook/awaited.py``);
* a restart during a foreground cell leaves its dashboard's last state (the lab
  extension's ``orphans.ts``), kept when saved; a copy saved while it was live
  says the kernel is gone, not ``model not found``.

Screenshots go to ``test-artifacts/browser/live-*.png`` (``live-foreground-*``,
``live-restart-*``).
"""

from __future__ import annotations

import re
import time
import urllib.parse

import pytest
import test_jupyterlab as lab_tests
from playwright.sync_api import expect

pytestmark = pytest.mark.slow

jupyterlab = lab_tests.jupyterlab  # the same real JupyterLab server fixture

N, PARTS = 32_000, 4  # 8,000 records of ~1 ms per task: ~8 s a task, 2 tasks per worker
JOB_CELL = """\
%%twister2 --name live-lab{flags}
import os, time
def slow(x):
    time.sleep(0.001)
    while x == {last} and os.path.exists({hold!r}) and not os.path.exists({go!r}):
        time.sleep(0.05)  # the last record waits while the test holds the job
    return x + 1
total = sum(env.parallelize_list(list(range({n})), {parts}).map(slow).collect())"""


def _job_cell(root, flags: str = "") -> str:
    return JOB_CELL.format(last=N - 1, n=N, parts=PARTS, hold=str(root / "hold"),
                           go=str(root / "go"), flags=flags)
EXPECTED = sum(x + 1 for x in range(N))
NUMBERS = re.compile(r"(\d+)/(\d+) tasks(?: \u00b7 (\d+) running)? \u00b7 ([\d,]+) in "
                     r"\u00b7 ([\d,]+) out")
RUNNING_FILL, DONE_FILL = "#9ecae1", "#a1d99b"


def _stage_row(dashboard) -> tuple[int, int, int, int, int] | None:
    """(done, tasks, running, in, out) of the dashboard's first stage row; None
    while it has none (a job's dashboard shows before its first stage starts)."""
    m = NUMBERS.search(dashboard.inner_text())
    if m is None:
        return None
    done, tasks, running, rin, rout = m.groups()
    return (int(done), int(tasks), int(running or 0), int(rin.replace(",", "")),
            int(rout.replace(",", "")))


def _numbers(dashboard) -> tuple[int, int, int, int, int]:
    """The first stage row's numbers, which must be shown (see _stage_row)."""
    row = _stage_row(dashboard)
    assert row, dashboard.inner_text()
    return row


def _clock(dashboard) -> float:
    header = dashboard.locator(".twister-nb-header").inner_text()
    return float(re.search(r"(\d+\.\d\d) s", header).group(1))


def _node_fills(cell) -> list[str]:
    """The fill colours of the graph's nodes, read from the SVG the page shows."""
    img = cell.locator(".jp-OutputArea-output[data-mime-type='image/svg+xml'] img").first
    expect(img).to_be_visible(timeout=lab_tests.UI_MS)
    svg = urllib.parse.unquote((img.get_attribute("src") or "").split(",", 1)[1])
    nodes = re.findall(r'<g id="node\d+" class="node">(.*?)</g>', svg, re.S)
    return [m.group(1) for n in nodes if (m := re.search(r'fill="([^"]+)"', n))]


def _wait_for(check, timeout: float = 60.0, every: float = 0.2):
    """Poll ``check()`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen in {timeout:.0f} s")
        time.sleep(every)


def _ends_done_then_total_and_close(page, notebook, dash, shot: str) -> None:
    """The dashboard ends ``done`` with plain Python's counts; then the notebook's
    third cell prints the total (plain Python's) and its fourth closes the job."""
    expect(dash.locator(".twister-nb-header")).to_contain_text(
        "done", timeout=lab_tests.RUN_ALL_MS)
    assert _numbers(dash)[:2] + _numbers(dash)[3:] == (PARTS, PARTS, N, N)
    lab_tests._shot(page, shot)
    lab_tests._wait_kernel_idle(page, lab_tests.RUN_ALL_MS)
    cells = notebook.locator(".jp-CodeCell")
    lab_tests._run(page, cells.nth(2))
    expect(cells.nth(2).locator(lab_tests.STDOUT)).to_contain_text(
        f"TOTAL {EXPECTED}", timeout=lab_tests.UI_MS)
    lab_tests._run(page, cells.nth(3))
    expect(cells.nth(3).locator(lab_tests.STDOUT)).to_contain_text(
        "closed", timeout=lab_tests.UI_MS)


def test_live_counters_clock_graph_and_a_reload_mid_job(jupyterlab) -> None:
    # A --background cell (a foreground cell reloaded mid-run: the test below).
    name = lab_tests._write_notebook(jupyterlab.root, "live.ipynb", [
        "%load_ext twister_nb", _job_cell(jupyterlab.root, " --background -o run"),
        "run.wait(); print('TOTAL', total)", "%twister2 close"])
    # the job's last record waits until the page has come back from its reload
    (jupyterlab.root / "hold").touch()
    with lab_tests._lab_page(jupyterlab, "live") as page:
        notebook = lab_tests._open(page, jupyterlab, name)
        cells = notebook.locator(".jp-CodeCell")
        lab_tests._run(page, cells.nth(0))
        lab_tests._run(page, cells.nth(1))
        job = cells.nth(1)
        dash = lab_tests._live_dashboard(job)
        expect(dash.locator(".twister-nb-header")).to_contain_text("running",
                                                                   timeout=lab_tests.RUN_ALL_MS)
        # the start-up steps, with their times: the JobMaster and its workers started for
        # the job, or taken from the warm pool (on by default) in one step
        expect(dash.locator(".twister-nb-startup")).to_contain_text(re.compile(
            r"(starting the JobMaster|taking a JobMaster and its workers from the pool): "
            r"\d+\.\d\d s"))
        expect(dash.locator(".twister-nb-startup")).to_contain_text(
            re.compile(r"(starting \d workers?|from the pool): \d+\.\d\d s"),
            timeout=lab_tests.UI_MS)

        # records in and out while the first tasks run: before any task finished
        first = _wait_for(lambda: (n := _stage_row(dash)) and n[0] == 0 and n[4] > 0 and n)
        assert first[1] == PARTS and first[2] >= 1 and first[3] >= first[4], first
        clock = _clock(dash)
        fills_running = _node_fills(job)
        lab_tests._shot(page, "live-01-counters-moving")
        later = _wait_for(lambda: (n := _numbers(dash))[4] > first[4] and n)
        assert later[0] <= 1, (first, later)
        # and its clock ticks (waited for: under load the counters once moved while it
        # read 3.67 s at both looks)
        _wait_for(lambda: _clock(dash) > clock, 30)
        # the graph, drawn while the job runs, its map running
        assert RUNNING_FILL in fills_running and DONE_FILL not in fills_running, fills_running

        # save, then reload the page mid-job: the dashboard comes back, still live
        page.keyboard.press("Control+s")
        expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=lab_tests.UI_MS)
        page.reload(timeout=lab_tests.PAGE_LOAD_MS)
        notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
        expect(notebook).to_be_visible(timeout=lab_tests.PAGE_LOAD_MS)
        job = notebook.locator(".jp-CodeCell").nth(1)
        dash = lab_tests._live_dashboard(job)
        expect(job.locator(".jp-OutputArea-output").filter(
            has_text=re.compile("Error displaying widget"))).to_have_count(0)
        expect(dash.locator(".twister-nb-header")).to_be_visible(timeout=lab_tests.PAGE_LOAD_MS)
        lab_tests._shot(page, "live-02-reloaded")
        expect(dash.locator(".twister-nb-header")).to_contain_text("running")
        after = _wait_for(lambda: _stage_row(dash))
        assert after[0] < PARTS, after
        (jupyterlab.root / "go").touch()
        # still live: it moves on after the reload
        _wait_for(lambda: (n := _numbers(dash))[0] > after[0] or n[4] > after[4], 120)
        # ... to the end, with plain Python's counts
        _ends_done_then_total_and_close(page, notebook, dash, "live-03-done-after-reload")


def test_graph_colours_change_during_a_run_and_a_reopened_notebook_after_restart(
        jupyterlab) -> None:
    name = lab_tests._write_notebook(jupyterlab.root, "reopen.ipynb", [
        "%load_ext twister_nb", _job_cell(jupyterlab.root), "print('TOTAL', total)"])
    with lab_tests._lab_page(jupyterlab, "reopen") as page:
        notebook = lab_tests._open(page, jupyterlab, name)
        cells = notebook.locator(".jp-CodeCell")
        for i in range(3):
            lab_tests._run(page, cells.nth(i))
        job = cells.nth(1)
        dash = lab_tests._live_dashboard(job)
        expect(dash.locator(".twister-nb-header")).to_contain_text(
            "running", timeout=lab_tests.RUN_ALL_MS)
        running = _wait_for(lambda: (f := _node_fills(job)) and RUNNING_FILL in f and f)
        expect(cells.nth(2).locator(lab_tests.STDOUT)).to_contain_text(
            f"TOTAL {EXPECTED}", timeout=lab_tests.RUN_ALL_MS)
        done = _node_fills(job)
        assert RUNNING_FILL in running and set(done) == {DONE_FILL}, (running, done)
        # the finished dashboard is its static final state: no widget needed to show it
        static = job.locator(".jp-OutputArea-output .twister-nb-dashboard")
        expect(static.locator(".twister-nb-header")).to_contain_text("done")
        expect(static).to_contain_text(f"4/4 tasks \u00b7 {N:,} in \u00b7 {N:,} out")
        lab_tests._shot(page, "reopen-01-done")

        # Kernel > Restart Kernel..., save, then open the notebook again
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel…$")).click()
        page.locator(".jp-Dialog button.jp-mod-accept", has_text=re.compile(r"^Restart$")).click()
        lab_tests._wait_kernel_idle(page, lab_tests.PAGE_LOAD_MS)
        page.keyboard.press("Control+s")
        expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=lab_tests.UI_MS)
        notebook = lab_tests._open(page, jupyterlab, name)
        job = notebook.locator(".jp-CodeCell").nth(1)
        expect(job.locator(".twister-nb-dashboard .twister-nb-header")).to_contain_text(
            "done", timeout=lab_tests.UI_MS)
        assert not notebook.locator(".jp-OutputArea-output",
                                    has_text=re.compile("Error displaying widget")).count()
        assert not notebook.locator(".jp-OutputArea-output",
                                    has_text=re.compile("Loading widget")).count()
        assert set(_node_fills(job)) == {DONE_FILL}
        lab_tests._shot(page, "reopen-02-after-restart")


HELD_CELL = """\
%%twister2 --name live-foreground --no-graph
import os, time
def slow(x):
    time.sleep(0.001)
    while x % {per_part} == {half} and not os.path.exists({resume!r}):
        time.sleep(0.05)  # each task waits half-way until the test has reloaded the page
    while x == {last} and not os.path.exists({finish!r}):
        time.sleep(0.05)  # the last record waits until the test has seen the page live
    return x + 1
total = sum(env.parallelize_list(list(range({n})), {parts}).map(slow).collect())
total"""


def _held_cell(root) -> str:
    """HELD_CELL: its tasks wait half-way until ``root/resume`` exists, its last
    record until ``root/finish`` does."""
    return HELD_CELL.format(per_part=N // PARTS, half=N // PARTS // 2, last=N - 1, n=N,
                            parts=PARTS, resume=str(root / "resume"),
                            finish=str(root / "finish"))


def _start_held(page, lab, name: str):
    """Open the notebook, run its first two cells (the load, the held cell); the
    notebook and the held cell's live dashboard, once it says ``running``."""
    notebook = lab_tests._open(page, lab, name)
    cells = notebook.locator(".jp-CodeCell")
    lab_tests._run(page, cells.nth(0))
    lab_tests._run(page, cells.nth(1))
    dash = lab_tests._live_dashboard(cells.nth(1))
    expect(dash.locator(".twister-nb-header")).to_contain_text("running",
                                                               timeout=lab_tests.RUN_ALL_MS)
    return notebook, dash


def test_a_reload_during_a_foreground_cell_brings_the_dashboard_back_live(jupyterlab) -> None:
    """The kernel answers the reloaded page while a foreground cell runs (the
    cell awaits its work, twister_nb.notebook.awaited): the dashboard comes back
    live, not ``Loading widget...`` until the cell ends; its counters move on
    after the reload, and it ends ``done`` with plain Python's counts and total."""
    root = jupyterlab.root
    cell = _held_cell(root)
    name = lab_tests._write_notebook(root, "foreground.ipynb", [
        "%load_ext twister_nb", cell, "print('TOTAL', total)", "%twister2 close"])
    with lab_tests._lab_page(jupyterlab, "live-foreground") as page:
        notebook, dash = _start_held(page, jupyterlab, name)
        # the first tasks are half-way and wait there: records out, none done
        held = _wait_for(lambda: (n := _stage_row(dash)) and n[4] >= N // PARTS // 2 and n)
        assert held[0] == 0, held
        lab_tests._shot(page, "live-foreground-01-before-reload")

        # save, then reload the page while the cell runs in the foreground
        page.keyboard.press("Control+s")
        expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=lab_tests.UI_MS)
        reloaded = time.monotonic()
        page.reload(timeout=lab_tests.PAGE_LOAD_MS)
        notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
        expect(notebook).to_be_visible(timeout=lab_tests.PAGE_LOAD_MS)
        job = notebook.locator(".jp-CodeCell").nth(1)
        dash = lab_tests._live_dashboard(job)
        # live again while the cell still runs: the job is held until the test lets it go
        expect(dash.locator(".twister-nb-header")).to_contain_text(
            "running", timeout=lab_tests.PAGE_LOAD_MS)
        seconds = time.monotonic() - reloaded
        expect(job.locator(".jp-OutputArea-output").filter(
            has_text=re.compile("Loading widget|Error displaying widget"))).to_have_count(0)
        back = _wait_for(lambda: _stage_row(dash))
        assert back[0] == 0 and back[4] >= held[4], (held, back)
        lab_tests._shot(page, "live-foreground-02-reloaded-live")
        # ... and it moves on after the reload, while the cell runs
        (root / "resume").touch()
        _wait_for(lambda: _numbers(dash)[4] > back[4], 120)
        clock = _clock(dash)
        _wait_for(lambda: _clock(dash) > clock, 30)  # and its clock ticks
        expect(dash.locator(".twister-nb-header")).to_contain_text("running")
        lab_tests._shot(page, "live-foreground-03-moving-after-reload")
        (root / "finish").touch()
        # the cell's value, in the kernel: plain Python's total
        _ends_done_then_total_and_close(page, notebook, dash, "live-foreground-04-done")
    print(f"page reload to the live dashboard of a foreground cell: {seconds:.2f} s; "
          f"screenshots in {lab_tests.ARTIFACTS}")


GONE = "the kernel that ran this cell is gone"
LOST = GONE + ", and the dashboard\u2019s last state was not saved"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def test_a_restart_during_a_foreground_cell_leaves_the_dashboards_last_state(jupyterlab) -> None:
    """Kernel > Restart while a foreground cell's dashboard is live: the page
    turns it into its last state (counters as they were, ``unknown``, the
    kernel gone, no Cancel), which a saved notebook shows when it is opened
    again; a copy saved while it was live, opened after the kernel went, says
    the kernel is gone instead of ``Error displaying widget: model not found``."""
    from twister_nb.jobs import JobClient

    root = jupyterlab.root
    cell = _held_cell(root)
    name = lab_tests._write_notebook(root, "restarted.ipynb", ["%load_ext twister_nb", cell])
    job_id = None
    try:
        with lab_tests._lab_page(jupyterlab, "live-restart") as page:
            notebook, dash = _start_held(page, jupyterlab, name)
            job_id = dash.locator(".twister-nb-header code").inner_text()
            # the tasks wait half-way: these numbers stay until the test lets them go
            held = _wait_for(lambda: (n := _stage_row(dash)) and n[4] >= N // PARTS // 2
                             and (time.sleep(1.0) or _numbers(dash) == n) and n)
            page.keyboard.press("Control+s")
            expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=lab_tests.UI_MS)
            (root / "lost.ipynb").write_bytes((root / name).read_bytes())  # saved live
            lab_tests._shot(page, "live-restart-01-running")

            lab_tests._restart_kernel(page)
            job = notebook.locator(".jp-CodeCell").nth(1)
            frozen = lab_tests._any_dashboard(job)
            expect(frozen.locator(".twister-nb-header")).to_contain_text(GONE,
                                                                         timeout=lab_tests.UI_MS)
            expect(job.locator(f".jp-OutputArea-output[data-mime-type='{WIDGET_MIME}']")
                   ).to_have_count(0)
            expect(frozen.locator(".twister-nb-header")).not_to_contain_text("running")
            expect(frozen.locator("button")).to_have_count(0)
            assert _numbers(frozen) == held, (held, _numbers(frozen))
            lab_tests._shot(page, "live-restart-02-last-state")

            # saved and opened again: the same last state, no widget needed
            page.keyboard.press("Control+s")
            expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=lab_tests.UI_MS)
            notebook = lab_tests._open(page, jupyterlab, name)
            job = notebook.locator(".jp-CodeCell").nth(1)
            again = lab_tests._any_dashboard(job)
            expect(again.locator(".twister-nb-header")).to_contain_text(GONE,
                                                                        timeout=lab_tests.UI_MS)
            assert _numbers(again) == held, (held, _numbers(again))
            expect(notebook.locator(".jp-OutputArea-output").filter(
                has_text=re.compile("Error displaying widget|Loading widget"))).to_have_count(0)
            lab_tests._shot(page, "live-restart-03-reopened")

            # the copy saved while it was live: its model is nowhere now
            notebook = lab_tests._open(page, jupyterlab, "lost.ipynb")
            expect(page.locator(".lm-TabBar-tab.lm-mod-current", has_text="lost.ipynb")
                   ).to_be_visible(timeout=lab_tests.UI_MS)
            job = notebook.locator(".jp-CodeCell").nth(1)
            expect(job.locator(".jp-OutputArea-output[data-mime-type='text/html']")
                   ).to_contain_text(LOST, timeout=lab_tests.UI_MS)
            expect(job.locator(".jp-OutputArea-output").filter(
                has_text=re.compile("Error displaying widget"))).to_have_count(0,
                                                                         timeout=lab_tests.UI_MS)
            lab_tests._shot(page, "live-restart-04-saved-live-reopened")
    finally:
        (root / "resume").touch()
        (root / "finish").touch()
        if job_id:
            JobClient().close(job_id)  # the restart left it running, as it should
