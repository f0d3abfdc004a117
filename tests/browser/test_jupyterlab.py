"""What a person sees: the tutorial notebook run in a real JupyterLab, in Chromium.

A JupyterLab server runs as a subprocess on 127.0.0.1
(:class:`twister_nb.testing.jupyter.JupyterServer`: a random port and token, a
temporary copy of ``notebooks/`` as its root, its news, update check and
extension-manager calls turned off, twister_nb's server and lab extensions on). Debian's Chromium, driven by Playwright,
opens ``01_persisting.ipynb``, waits for the kernel, clicks *Run > Run All
Cells* and checks the page as a person would read it: the job banner, the TSet
graph drawn as an SVG picture (with the compute function's name in it), the
live dashboard widget rendered (not ipywidgets' placeholder) and finished, with
the job ID the banner printed, and ``SUM = 999980000``.

The kernel JupyterLab starts inherits the session's TWISTER_NB_HOME (set in
``tests/conftest.py``), so it reaches the session's local Ray head, which the
``ray_cluster`` fixture starts. Screenshots are kept in
``test-artifacts/browser/`` (gitignored).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from twister_nb.testing.jupyter import JupyterServer

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    pytest.skip("playwright is not installed (pip install playwright; scripts/setup.sh does it)",
                allow_module_level=True)
if not os.access(CHROMIUM, os.X_OK):  # pragma: no cover - depends on the machine
    pytest.skip(f"Chromium not found at {CHROMIUM} (Debian package 'chromium'; "
                "scripts/setup.sh installs it)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
TUTORIAL = "01_persisting.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
SUM_LINE = "SUM = 999980000"
KERNEL_IDLE = re.compile(r"Python 3 \(ipykernel\) \| Idle")

# Generous: headless Chromium and the kernel share a small machine with other runs.
SERVER_START_S = 120
PAGE_LOAD_MS = 180_000
RUN_ALL_MS = 300_000
UI_MS = 60_000

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",  # all its traffic is to 127.0.0.1
]

#: The built JupyterLab extension (scripts/build_extension.py), enabled in every server
#: here as an install enables it, with the server extension (the repository's jupyter-config/).
LABEXTENSION = ROOT / "twister_nb" / "labextension"

#: The server the tests drive (``.url``, ``.token``, ``.root``, ``.api()``, ``.log_tail()``).
Lab = JupyterServer


@pytest.fixture
def jupyterlab(ray_cluster, tmp_path) -> Iterator[Lab]:
    """A real JupyterLab server on 127.0.0.1, serving a temporary copy of notebooks/,
    with twister_nb's server and lab extensions; its log is
    ``test-artifacts/browser/jupyterlab.log``. The kernels it starts inherit the
    session's TWISTER_NB_HOME (the server drops the test's Ray variables)."""
    root = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    assert os.environ.get("TWISTER_NB_HOME"), "conftest.py sets the session's TWISTER_NB_HOME"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "jupyterlab.log"
    log.unlink(missing_ok=True)
    built = (LABEXTENSION / "package.json").is_file()
    lab = JupyterServer(root=root, workdir=tmp_path, log=log, jupyter_config=ROOT / "jupyter-config",
                        labextensions={"twister-nb": LABEXTENSION} if built else {})
    try:
        try:
            lab.start(SERVER_START_S)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield lab
    finally:
        lab.stop()


def _shot(page: Page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _code_cell(page: Page, source_snippet: str):
    """The notebook's code cell whose source contains ``source_snippet``."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").filter(
        has=page.locator(".jp-InputArea-editor", has_text=source_snippet))
    expect(cell).to_have_count(1)
    return cell


STDOUT = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stdout']"


def _stdout(cell) -> str:
    """The cell's printed text, once it is on screen."""
    out = cell.locator(STDOUT)
    expect(out.first).to_be_visible(timeout=UI_MS)
    expect(out.first).not_to_have_text("", use_inner_text=True, timeout=UI_MS)
    return "\n".join(out.all_inner_texts())


def _wait_kernel_idle(page: Page, timeout: int) -> None:
    """The kernel is started (the status bar names it) and idle (both indicators say so)."""
    expect(page.get_by_role("contentinfo").get_by_role("button", name=KERNEL_IDLE)
           ).to_be_visible(timeout=timeout)
    expect(page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator")
           ).to_have_attribute("data-status", "idle", timeout=timeout)


def test_tutorial_in_jupyterlab(jupyterlab: Lab) -> None:
    for old in [*ARTIFACTS.glob("*.png"), *ARTIFACTS.glob("failure.*")]:
        old.unlink(missing_ok=True)
    started = time.monotonic()
    url = (f"{jupyterlab.url}/lab/tree/{TUTORIAL}?"
           + urllib.parse.urlencode({"token": jupyterlab.token}))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            console_errors: list[str] = []
            page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
            try:
                _run_and_check(page, url)
            except BaseException:
                try:  # what the page showed, and its DOM, for whoever reads the failure
                    _shot(page, "failure")
                    (ARTIFACTS / "failure.html").write_text(page.content())
                except PlaywrightError:
                    pass
                print("browser console errors:", *console_errors[-20:], sep="\n  ")
                print("jupyter lab log (tail):", jupyterlab.log_tail(), sep="\n")
                raise
        finally:
            browser.close()
    print(f"browser test took {time.monotonic() - started:.1f} s; screenshots in {ARTIFACTS}")


def _run_and_check(page: Page, url: str) -> None:
    page.goto(url, timeout=PAGE_LOAD_MS)
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
    expect(notebook).to_be_visible(timeout=PAGE_LOAD_MS)
    expect(page.locator(".jp-Notebook .jp-CodeCell").first).to_be_visible(timeout=UI_MS)
    _wait_kernel_idle(page, PAGE_LOAD_MS)
    _shot(page, "01-opened")

    # What a person does: Run > Run All Cells.
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

    # The dashboard while an action runs: a picture only, as the action may be
    # over before the browser looks (the finished state is checked below).
    reduce_cell = _code_cell(page, "persisted.reduce")
    running = page.locator(".twister-nb-dashboard .twister-nb-header",
                           has_text=re.compile(r"\brunning\b"))
    sum_out = reduce_cell.locator(STDOUT, has_text=f"[worker-0] {SUM_LINE}")
    expect(running.or_(sum_out).first).to_be_attached(timeout=RUN_ALL_MS)
    if running.count():
        try:
            running.first.scroll_into_view_if_needed(timeout=5_000)
            _shot(page, "02-running")
        except PlaywrightError:
            pass

    # The sum appears in the reduce cell's output (the worker's line, printed).
    reduce_cell.scroll_into_view_if_needed(timeout=UI_MS)
    expect(sum_out).to_be_visible(timeout=RUN_ALL_MS)
    # ... and the rest of the notebook runs to the end: no cell waiting or running.
    jobs_cell = _code_cell(page, "%twister2 jobs")
    jobs_cell.scroll_into_view_if_needed(timeout=UI_MS)
    expect(jobs_cell.locator(".jp-InputArea-prompt")).to_have_text(
        re.compile(r"^\[\d+\]:$"), timeout=RUN_ALL_MS)
    _wait_kernel_idle(page, RUN_ALL_MS)
    prompts = notebook.locator(".jp-CodeCell .jp-InputArea-prompt").all_text_contents()
    assert prompts and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts), prompts
    assert not notebook.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        has_text="Traceback").count(), "a cell raised"
    _shot(page, "03-ran-all-cells")

    # The banner of the first %%twister2 cell: the job and its ID.
    job_cell = _code_cell(page, "%%twister2 --name tset-persisting")
    job_cell.scroll_into_view_if_needed(timeout=UI_MS)
    banner = _stdout(job_cell)
    assert re.search(r"^Job Name\s+:\s+tset-persisting$", banner, re.MULTILINE), banner
    job_id = re.search(r"^Job ID\s+:\s+(\S+)$", banner, re.MULTILINE).group(1)
    assert job_id.startswith("tset-persisting-"), job_id
    _shot(page, "03-job-banner")

    # The graph: JupyterLab draws an image/svg+xml output as an <img> of the SVG.
    computes_cell = _code_cell(page, "two_computes = source_x")
    computes_cell.scroll_into_view_if_needed(timeout=UI_MS)
    _check_graph(computes_cell, must_show=["mul_by_five", "add_two"])
    _shot(page, "04-graph")

    # The dashboard of the persist() cell: the widget itself, finished, with the job ID.
    persist_cell = _code_cell(page, "two_computes.persist()")
    persist_cell.scroll_into_view_if_needed(timeout=UI_MS)
    assert re.search(r"Time taken for persist \d+", _stdout(persist_cell))
    _check_graph(persist_cell, must_show=["mul_by_five"])
    dash = _check_dashboard(persist_cell, job_id)
    expect(dash.locator(".twister-nb-bar").first).to_be_visible()
    persist_cell.screenshot(path=str(ARTIFACTS / "05-persist-cell.png"))
    _shot(page, "05-dashboard")

    # The reduce cell: its dashboard shows the worker's output line too.
    reduce_cell.scroll_into_view_if_needed(timeout=UI_MS)
    dash = _check_dashboard(reduce_cell, job_id)
    expect(dash).to_contain_text(SUM_LINE)
    reduce_cell.screenshot(path=str(ARTIFACTS / "06-sum-cell.png"))
    _shot(page, "06-sum")

    # %twister2 jobs lists this job, marked as the notebook's.
    jobs_cell.scroll_into_view_if_needed(timeout=UI_MS)
    expect(jobs_cell.locator(".jp-OutputArea-output")).to_contain_text(f"* {job_id}")
    _shot(page, "07-jobs")


def _check_graph(cell, must_show: list[str]) -> None:
    img = cell.locator(".jp-OutputArea-output[data-mime-type='image/svg+xml'] img").first
    expect(img).to_be_visible(timeout=UI_MS)
    src = img.get_attribute("src") or ""
    assert src.startswith("data:image/svg+xml,"), src[:80]
    svg = urllib.parse.unquote(src.split(",", 1)[1])
    assert "<svg" in svg, svg[:200]
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    for name in must_show:
        assert any(name in t for t in texts), (name, texts)
    # drawn, not a broken image
    size = img.evaluate("i => [i.complete, i.naturalWidth, i.naturalHeight]")
    assert size[0] and size[1] > 20 and size[2] > 20, size
    box = img.bounding_box()
    assert box and box["width"] > 20 and box["height"] > 20, box


def _check_dashboard(cell, job_id: str):
    """A finished cell's dashboard: its static final state (the live widget's
    output replaced when the run ended, so it shows without its kernel), not a
    widget placeholder or error."""
    outputs = cell.locator(".jp-OutputArea-output")
    expect(outputs.filter(has_text=re.compile("Loading widget|Error displaying widget"))
           ).to_have_count(0, timeout=UI_MS)
    dash = _any_dashboard(cell)
    expect(dash).to_have_count(1, timeout=UI_MS)
    expect(dash).to_be_visible()
    header = dash.locator(".twister-nb-header")
    expect(header.locator("code")).to_have_text(job_id)
    expect(header).to_contain_text("done", timeout=UI_MS)
    expect(dash.locator("button", has_text="Cancel")).to_have_count(0)  # nothing live to cancel
    return dash


def _any_dashboard(cell):
    """The cell's dashboard, live (the widget) or finished (its static copy)."""
    return cell.locator(".jp-OutputArea-output .twister-nb-dashboard").filter(
        has=cell.page.locator(".twister-nb-header"))


# --------------------------------------------------------------------------- restart and cancel

SLOW_SLEEP = 30  # the action outlives the restart, the new kernel's start and the attach
SETUP_CELL = """\
%%twister2 --job-id {job_id} --no-graph
import time
base = env.parallelize_list(list(range(1000)), 4).map(lambda x: x * 3).set_name("base").persist()
def slow(x):
    if x % 250 == 0:
        time.sleep({sleep})
    return x + 1"""
EXPECTED_TOTAL = sum(x * 3 + 1 for x in range(1000))


def _write_notebook(root: Path, name: str, cells: list[str]) -> str:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nbformat.write(nb, root / name)
    return name


def _open(page: Page, lab: Lab, name: str):
    page.goto(f"{lab.url}/lab/tree/{name}?" + urllib.parse.urlencode({"token": lab.token}),
              timeout=PAGE_LOAD_MS)
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
    expect(notebook).to_be_visible(timeout=PAGE_LOAD_MS)
    _wait_kernel_idle(page, PAGE_LOAD_MS)
    return notebook


def _run(page: Page, cell) -> None:
    """Select the cell and run it (Shift+Enter), as a person does."""
    cell.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Shift+Enter")


def _live_dashboard(cell):
    return cell.locator(".jp-OutputArea-output > .jupyter-widgets.widget-vbox.twister-nb-dashboard")


@contextlib.contextmanager
def _lab_page(lab: Lab, scenario: str) -> Iterator[Page]:
    """A Chromium page; on failure, ``<scenario>-failure.png/.html`` and the server log."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            try:
                yield page
            except BaseException:
                try:
                    _shot(page, f"{scenario}-failure")
                    (ARTIFACTS / f"{scenario}-failure.html").write_text(page.content())
                except PlaywrightError:
                    pass
                print("jupyter lab log (tail):", lab.log_tail(), sep="\n")
                raise
        finally:
            browser.close()


def test_restart_from_the_kernel_menu_keeps_the_job_and_attach_is_live(jupyterlab: Lab) -> None:
    """Kernel > Restart Kernel during a foreground job: the job goes on; in the
    new kernel, %twister2 attach shows its live dashboard within 1 s and
    env.wait() gives the exact result."""
    job_id = f"lab-restart-{os.getpid()}"
    name = _write_notebook(jupyterlab.root, "restart.ipynb", [
        "%load_ext twister_nb",
        SETUP_CELL.format(job_id=job_id, sleep=SLOW_SLEEP),
        "%%twister2 --no-graph\ntotal = sum(base.map(slow).collect())",
        "%load_ext twister_nb\nfrom twister_nb.jobs import JobClient\n"
        "print('connected:', JobClient().connect())",
        f"%twister2 attach {job_id}",
        "print('TOTAL', sum(env.wait(timeout=120)))",
        "%twister2 close",
    ])
    with _lab_page(jupyterlab, "restart") as page:
        seconds = _restart_and_attach(page, jupyterlab, name)
    print(f"attach cell to live dashboard (seen in the browser): {seconds:.2f} s; "
          f"screenshots in {ARTIFACTS}")


_WATCH_LIVE = """cell => {
  cell.__pressedAt = performance.now();
  const seen = () => [...cell.querySelectorAll(
      '.jupyter-widgets.twister-nb-dashboard .twister-nb-header')]
      .some(h => h.offsetParent !== null && /\\brunning\\b/.test(h.textContent));
  new MutationObserver((_, observer) => {
    if (seen()) { cell.__liveAt = performance.now(); observer.disconnect(); }
  }).observe(cell, {childList: true, subtree: true, characterData: true});
}"""


def _restart_kernel(page: Page) -> None:
    """What a person does: Kernel > Restart Kernel..., then Restart in the dialog;
    returns when the new kernel is idle."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel…$")).click()
    page.locator(".jp-Dialog button.jp-mod-accept", has_text=re.compile(r"^Restart$")).click()
    _wait_kernel_idle(page, PAGE_LOAD_MS)


def _restart_and_attach(page: Page, lab: Lab, name: str) -> float:
    notebook = _open(page, lab, name)
    cells = notebook.locator(".jp-CodeCell")
    expect(cells).to_have_count(7)
    for i in range(3):
        _run(page, cells.nth(i))
    job_cell = cells.nth(2)
    dash = _live_dashboard(job_cell)
    expect(dash.locator(".twister-nb-header")).to_contain_text("running", timeout=RUN_ALL_MS)
    _shot(page, "restart-01-job-running")

    _restart_kernel(page)
    _shot(page, "restart-02-restarted")

    warm = cells.nth(3)
    _run(page, warm)
    expect(warm.locator(STDOUT)).to_contain_text("connected: True", timeout=RUN_ALL_MS)
    attach = cells.nth(4)
    attach.locator(".jp-InputArea-prompt").click()
    # The page notes when the live dashboard first shows "running" in the attach
    # cell (a MutationObserver: Playwright's own polling would add up to 1 s).
    attach.evaluate(_WATCH_LIVE)
    page.keyboard.press("Shift+Enter")
    live = _live_dashboard(attach).locator(".twister-nb-header", has_text="running")
    expect(live).to_be_visible(timeout=UI_MS)
    seconds = attach.evaluate("cell => cell.__liveAt - cell.__pressedAt") / 1000
    _shot(page, "restart-03-attached-live")
    out = _stdout(attach)
    assert "is running; env.wait() returns its value" in out, out
    assert "failed" not in out, out
    attached = _live_dashboard(attach)
    expect(attached.locator(".twister-nb-header code")).to_have_text(
        re.search(r"attached to job '([^']+)'", out).group(1))
    expect(attached).to_contain_text("#2 collect")
    # below it, the job's graph in its current colours: its map running
    graph = attach.locator(".jp-OutputArea-output[data-mime-type='image/svg+xml'] img").first
    expect(graph).to_be_visible(timeout=UI_MS)
    svg = urllib.parse.unquote((graph.get_attribute("src") or "").split(",", 1)[1])
    assert "#9ecae1" in svg and "slow" in svg, svg[:300]  # running; the user's function
    # the time is reported, not asserted (speed is measured in the benchmark): a loaded
    # machine makes any bound flaky; live at all is the behaviour
    print(f"attach to live dashboard: {seconds:.2f} s")

    waiting = cells.nth(5)
    _run(page, waiting)
    expect(waiting.locator(STDOUT)).to_contain_text(f"TOTAL {EXPECTED_TOTAL}", timeout=RUN_ALL_MS)
    expect(_any_dashboard(attach).locator(".twister-nb-header")).to_contain_text(
        "done", timeout=UI_MS)
    _shot(page, "restart-04-exact-result")
    _run(page, cells.nth(6))
    expect(cells.nth(6).locator(STDOUT)).to_contain_text("closed", timeout=UI_MS)
    return seconds


def test_cancel_clicked_during_a_foreground_cell(jupyterlab: Lab) -> None:
    """Cancel on the dashboard of a cell that is still running ends the action
    at once, and the dashboard says cancelled (not failed)."""
    job_id = f"lab-cancel-{os.getpid()}"
    name = _write_notebook(jupyterlab.root, "cancel.ipynb", [
        "%load_ext twister_nb",
        SETUP_CELL.format(job_id=job_id, sleep=60),
        "%%twister2 --no-graph\ntotal = sum(base.map(slow).collect())",
        "%twister2 close",
    ])
    with _lab_page(jupyterlab, "cancel") as page:
        notebook = _open(page, jupyterlab, name)
        cells = notebook.locator(".jp-CodeCell")
        for i in range(3):
            _run(page, cells.nth(i))
        dash = _live_dashboard(cells.nth(2))
        header = dash.locator(".twister-nb-header")
        expect(header).to_contain_text("running", timeout=RUN_ALL_MS)
        cancel = dash.get_by_role("button", name="Cancel")
        expect(cancel).to_be_enabled(timeout=UI_MS)
        _shot(page, "cancel-01-running")
        clicked = time.monotonic()
        cancel.click()
        header = _any_dashboard(cells.nth(2)).locator(".twister-nb-header")
        expect(header).to_contain_text("cancelled", timeout=30_000)
        seconds = time.monotonic() - clicked
        # the cell ended too (its prompt is a number, not [*])
        expect(cells.nth(2).locator(".jp-InputArea-prompt")).to_have_text(
            re.compile(r"^\[\d+\]:$"), timeout=30_000)
        expect(header).not_to_contain_text("failed")
        expect(cancel).to_have_count(0)  # the cell ended: its dashboard is its final state
        # the cancellation is said once: by the cell's error, not by the dashboard again
        said = cells.nth(2).locator(".jp-OutputArea-output").all_inner_texts()
        assert sum(t.count("was cancelled") for t in said) == 1, said
        _shot(page, "cancel-02-cancelled")
        _run(page, cells.nth(3))
        expect(cells.nth(3).locator(STDOUT)).to_contain_text("closed", timeout=UI_MS)
    print(f"Cancel to cancelled: {seconds:.2f} s; screenshots in {ARTIFACTS}")
