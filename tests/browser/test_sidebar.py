"""The Twister2 jobs sidebar in a real JupyterLab, in Chromium, with real jobs.

One scenario, as a person would go through it, on the ``jupyterlab`` fixture's server
(twister_nb's server and lab extensions enabled, as an install enables them):

1. a job submitted with ``twister-nb submit`` from a shell and a job of a notebook's
   kernel are both listed, each with its driver (a process; the kernel and its notebook);
2. a running action's progress moves in the list;
3. Cancel in the sidebar stops the notebook's running cell, whose dashboard says
   ``cancelled``;
4. after Kernel > Restart during an action the job is still listed (no driver now), and
   "Attach" in the sidebar inserts and runs ``%twister2 attach ID`` in the notebook,
   which shows the action's live dashboard again;
5. a job panel (its graph and dashboard) opens, and after a page reload the sidebar and
   that panel come back;
6. Clear asks for a confirmation, then the shell's job is gone from the list and the store.

The refresh latency (a job's state change, stamped by its JobMaster's event, to the
sidebar showing it, stamped by a MutationObserver in the page; one clock) is measured
and printed, and kept in ``test-artifacts/browser/sidebar-latency.json``, never asserted.
Screenshots are kept in ``test-artifacts/browser/sidebar-*.png``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
import test_jupyterlab as lab_tests
from playwright.sync_api import Page, expect

from twister_nb.events import ActionEnded, ActionStarted
from twister_nb.jobs import JobClient
from twister_nb.testing.programs import slow_program, slow_total

pytestmark = pytest.mark.slow

jupyterlab = lab_tests.jupyterlab  # the same real JupyterLab server fixture
ARTIFACTS = lab_tests.ARTIFACTS
UI_MS, RUN_MS = lab_tests.UI_MS, lab_tests.RUN_ALL_MS
NOTEBOOK = "sidebar.ipynb"

#: The shell's job: 4 tasks of 4 s, persisted, then collected from its checkpoint.
SHELL_PROGRAM = slow_program("sidebar-shell", tasks=4, seconds=4, persist=True)
SHELL_TOTAL = slow_total(4)

SETUP_CELL = """\
%%twister2 --job-id {job_id} --no-graph
import time
def slow(x):
    time.sleep(PAUSE)
    return x + 1
base = env.parallelize_list(list(range(8)), 8).set_name("base").persist()"""
ACTION_CELL = "%%twister2 --no-graph\nPAUSE = {pause}\ntotal = sum(base.map(slow).collect())"

#: Records (job, status, epoch ms) each time a row of the list shows a new status.
_RECORD_STATUSES = """() => {
  window.__tnbSeen = [];
  const note = row => window.__tnbSeen.push({job: row.dataset.jobId, status: row.dataset.status,
                                             t: performance.timeOrigin + performance.now()});
  document.querySelectorAll('.tnb-job').forEach(note);
  new MutationObserver(records => {
    for (const r of records) {
      if (r.type === 'attributes' && r.target.classList.contains('tnb-job')) note(r.target);
      for (const n of r.addedNodes) {
        if (n.nodeType !== 1) continue;
        if (n.classList.contains('tnb-job')) note(n);
        n.querySelectorAll && n.querySelectorAll('.tnb-job').forEach(note);
      }
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true,
                             attributeFilter: ['data-status']});
}"""


def _row(page: Page, job_id: str):
    return page.locator(f".tnb-sidebar .tnb-job[data-job-id='{job_id}']")


def _tasks_done(row) -> int | None:
    found = re.match(r"(\d+)/(\d+) tasks", row.locator(".tnb-job-progress").inner_text())
    return None if found is None else int(found.group(1))


def _open_sidebar(page: Page) -> None:
    tab = page.locator(".jp-SideBar .lm-TabBar-tab[data-id='twister-nb-jobs']")
    expect(tab).to_be_visible(timeout=UI_MS)
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    expect(page.locator(".tnb-sidebar")).to_be_visible(timeout=UI_MS)


def _latencies(page: Page, job_id: str, changes: list[tuple[str, float, bool]]
               ) -> list[dict]:
    """For each (status, when, seen as): the first time after ``when`` the page showed
    the job's row with that status (or, with ``seen as`` False, with any other)."""
    seen = page.evaluate("() => window.__tnbSeen")
    out = []
    for status, when, equal in changes:
        shown = [s["t"] / 1000 for s in seen if s["job"] == job_id and s["t"] / 1000 >= when - 0.05
                 and (s["status"] == status) == equal]
        out.append({"change": status if equal else f"not {status}", "event_time": when,
                    "latency_s": round(min(shown) - when, 3) if shown else None})
    return out


def test_sidebar_lists_follows_cancels_attaches_and_comes_back(jupyterlab, tmp_path) -> None:
    # its one setting, in JupyterLab's settings (what the settings editor shows)
    plugin = jupyterlab.api("/lab/api/settings/twister-nb:plugin")
    assert plugin["schema"]["properties"]["refreshInterval"]["default"] == 2000
    nb_job, shell_job = f"sidebar-nb-{os.getpid()}", f"sidebar-shell-{os.getpid()}"
    lab_tests._write_notebook(jupyterlab.root, NOTEBOOK, [
        "%load_ext twister_nb",
        SETUP_CELL.format(job_id=nb_job),
        ACTION_CELL.format(pause=5),
        ACTION_CELL.format(pause=8),
        "%twister2 close",
    ])
    program = tmp_path / "shell_job.py"
    program.write_text(SHELL_PROGRAM)
    client = JobClient()
    shell = None
    with lab_tests._lab_page(jupyterlab, "sidebar") as page:
        notebook = lab_tests._open(page, jupyterlab, NOTEBOOK)
        _open_sidebar(page)
        page.evaluate(_RECORD_STATUSES)
        cells = notebook.locator(".jp-CodeCell")
        expect(cells).to_have_count(5)
        try:
            # 1. a job from a shell and one of this notebook's kernel, each with its driver
            shell = subprocess.Popen(
                [sys.executable, "-m", "twister_nb.cli", "submit", "--job-id", shell_job,
                 str(program)], cwd=tmp_path, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True)
            for i in range(2):
                lab_tests._run(page, cells.nth(i))
            shell_row, nb_row = _row(page, shell_job), _row(page, nb_job)
            expect(shell_row.locator(".tnb-job-driver")).to_contain_text("process", timeout=RUN_MS)
            expect(shell_row).to_have_attribute("data-status", "running", timeout=RUN_MS)
            expect(nb_row.locator(".tnb-job-driver")).to_contain_text(
                f"kernel: {NOTEBOOK}", timeout=RUN_MS)
            expect(nb_row.locator(".tnb-job-checkpoints")).to_have_text("1 checkpoint",
                                                                        timeout=RUN_MS)
            lab_tests._shot(page, "sidebar-01-two-jobs")

            # 2. the running action's progress moves (8 tasks of 5 s on 2 workers)
            lab_tests._run(page, cells.nth(2))
            expect(nb_row).to_have_attribute("data-status", "running", timeout=RUN_MS)
            expect(nb_row.locator(".tnb-job-progress")).to_have_text(
                re.compile(r"^\d/8 tasks$"), timeout=UI_MS)
            first = _tasks_done(nb_row)
            deadline = time.monotonic() + 60
            while (_tasks_done(nb_row) or 0) <= first and time.monotonic() < deadline:
                time.sleep(0.2)
            moved = _tasks_done(nb_row)
            assert moved is not None and first < moved < 8, (first, moved)
            expect(nb_row.locator(".tnb-progress-bar")).to_be_visible()
            lab_tests._shot(page, "sidebar-02-progress")

            # 3. Cancel in the sidebar: the cell's dashboard says cancelled
            nb_row.get_by_role("button", name="Cancel").click()
            # the live widget, or its static final copy once the cell has ended
            header = lab_tests._any_dashboard(cells.nth(2)).locator(".twister-nb-header")
            expect(header).to_contain_text("cancelled", timeout=60_000)
            expect(cells.nth(2).locator(".jp-InputArea-prompt")).to_have_text(
                re.compile(r"^\[\d+\]:$"), timeout=60_000)
            expect(nb_row).not_to_have_attribute("data-status", "running", timeout=UI_MS)
            lab_tests._shot(page, "sidebar-03-cancelled")

            # the shell job ran to its end, and the list says so
            out, _ = shell.communicate(timeout=300)
            assert shell.returncode == 0 and f"TOTAL {SHELL_TOTAL}" in out, out
            expect(shell_row).to_have_attribute("data-status", "finished", timeout=UI_MS)
            expect(shell_row.locator(".tnb-job-driver")).to_have_text("driver: none")
            # Clear asks first; then the job's record and checkpoints are gone
            shell_row.get_by_role("button", name="Clear").click()
            dialog = page.locator(".jp-Dialog")
            expect(dialog).to_contain_text(f"Delete the record and every checkpoint of {shell_job}")
            dialog.locator("button.jp-mod-accept", has_text="Clear").click()
            expect(shell_row).to_have_count(0, timeout=UI_MS)
            assert client.record(shell_job) is None

            # 4. a kernel restart during an action: still listed; Attach brings the dashboard
            lab_tests._run(page, cells.nth(3))
            expect(nb_row).to_have_attribute("data-status", "running", timeout=RUN_MS)
            lab_tests._restart_kernel(page)
            expect(nb_row.locator(".tnb-job-driver")).to_have_text("driver: none", timeout=UI_MS)
            expect(nb_row).to_have_attribute("data-status", "running")
            lab_tests._shot(page, "sidebar-04-kernel-restarted")
            nb_row.get_by_role("button", name="Attach").click()
            expect(cells).to_have_count(6, timeout=UI_MS)
            attach = cells.nth(5)
            expect(attach.locator(".jp-InputArea-editor")).to_contain_text(
                f"%twister2 attach {nb_job}")
            live = lab_tests._any_dashboard(attach)  # live, or its final copy once it ended
            expect(live.locator(".twister-nb-header", has_text="running")).to_be_visible(
                timeout=UI_MS)
            expect(live.locator(".twister-nb-header code")).to_have_text(nb_job)
            expect(nb_row.locator(".tnb-job-driver")).to_contain_text(
                f"kernel: {NOTEBOOK}", timeout=UI_MS)
            attach.scroll_into_view_if_needed()
            lab_tests._shot(page, "sidebar-05-attached")

            # 5. the job's panel: graph and dashboard, live; then a page reload
            nb_row.get_by_role("button", name="Open").click()
            panel = page.locator(f".tnb-panel-body[data-job-id='{nb_job}']")
            expect(panel).to_be_visible(timeout=UI_MS)
            expect(panel).to_have_attribute("data-status", "running", timeout=UI_MS)
            expect(panel.locator(".tnb-graph-node")).not_to_have_count(0)
            expect(panel.locator(".tnb-dashboard .twister-nb-header code")).to_have_text(nb_job)
            lab_tests._shot(page, "sidebar-06-panel")
            panel.get_by_role("button", name="Cancel").click()
            expect(panel).not_to_have_attribute("data-status", "running", timeout=60_000)
            lab_tests._shot(page, "sidebar-06-panel-cancelled")
            page.locator(".lm-TabBar-tab", has_text=NOTEBOOK).first.click()
            expect(lab_tests._any_dashboard(attach).locator(".twister-nb-header")
                   ).to_contain_text("cancelled", timeout=60_000)
            latencies = _latencies(page, nb_job, _action_changes(client, nb_job))
            page.keyboard.press("Control+s")  # the notebook keeps the attach cell's output
            expect(page.locator(".lm-TabBar-tab.jp-mod-dirty", has_text=NOTEBOOK)).to_have_count(
                0, timeout=UI_MS)

            page.reload(timeout=lab_tests.PAGE_LOAD_MS)
            expect(page.locator(".tnb-sidebar")).to_be_visible(timeout=lab_tests.PAGE_LOAD_MS)
            expect(_row(page, nb_job)).to_be_visible(timeout=UI_MS)
            panel = page.locator(f".tnb-panel-body[data-job-id='{nb_job}']")
            expect(panel).to_be_attached(timeout=UI_MS)  # restored behind the notebook's tab
            lab_tests._wait_kernel_idle(page, lab_tests.PAGE_LOAD_MS)  # the restore is over
            page.locator(".lm-TabBar-tab", has_text=f"Job {nb_job}").first.click()
            expect(panel).to_be_visible(timeout=UI_MS)
            expect(panel.locator(".tnb-graph-node")).not_to_have_count(0, timeout=UI_MS)
            lab_tests._shot(page, "sidebar-07-after-reload")

            # the notebook closes its job (the kernel drives it again since the attach)
            page.locator(".lm-TabBar-tab", has_text=NOTEBOOK).first.click()
            cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell")
            # saved, and drawn again (its final copy: the action ended meanwhile)
            expect(lab_tests._any_dashboard(cells.nth(5)).locator(".twister-nb-header code")
                   ).to_have_text(nb_job, timeout=UI_MS)
            close = cells.nth(4)
            lab_tests._run(page, close)
            expect(close.locator(lab_tests.STDOUT)).to_contain_text("closed", timeout=UI_MS)
            expect(_row(page, nb_job)).to_have_attribute("data-status", re.compile(
                "^(cancelled|finished)$"), timeout=UI_MS)
        finally:
            if shell is not None and shell.poll() is None:
                shell.kill()
                shell.wait()
    (ARTIFACTS / "sidebar-latency.json").write_text(json.dumps(latencies, indent=1))
    print("sidebar refresh latency (job event to the list showing it):",
          *[f"{x['change']}: {x['latency_s']} s" for x in latencies], sep="\n  ")


def _action_changes(client: JobClient, job_id: str) -> list[tuple[str, float, bool]]:
    """The state changes of the job's actions after its first (the slow ones), from its
    events: each start (running) and end (not running), with the JobMaster's time."""
    events, _ = client.events(job_id, 0)
    changes = []
    for event in events:
        if isinstance(event, ActionStarted) and event.action > 1:
            changes.append(("running", event.time, True))
        elif isinstance(event, ActionEnded) and event.action > 1:
            changes.append(("running", event.time, False))
    assert changes, [type(e).__name__ for e in events]
    return changes
