"""The graph view in an untrusted notebook, in a real JupyterLab in Chromium.

JupyterLab renders ``image/svg+xml`` only in a trusted notebook; a notebook
someone sent you (not signed by your Jupyter) is untrusted, and a bare IPython
``SVG`` then shows ``<IPython.core.display.SVG object>``. The graph view's
output carries a PNG twin, which JupyterLab renders untrusted. The notebook here
holds both outputs, as saved by a kernel (unsigned, so untrusted): the old one
shows its text, the graph view's shows the picture.
"""

from __future__ import annotations

import base64
import json
import urllib.parse

import nbformat
import pytest
import test_jupyterlab as lab_tests
from playwright.sync_api import expect, sync_playwright

pytestmark = pytest.mark.slow

jupyterlab = lab_tests.jupyterlab  # the same real JupyterLab server fixture
NOTEBOOK = "untrusted_graph.ipynb"


def _display(bundle: dict) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data=bundle)


def test_the_graph_shows_in_an_untrusted_notebook(jupyterlab) -> None:
    from IPython.core.formatters import DisplayFormatter

    from twister_nb.notebook.recorder import offline_environment
    from twister_nb.tset.graph import visualize

    env = offline_environment("untrusted-graph")  # builds graphs, never runs
    src = env.parallelize_list(list(range(10)), 2)
    doubled = src.map(lambda x: x * 2)
    picture = visualize({"src": src, "doubled": doubled})
    assert picture is not None and "<svg" in picture.data, "needs graphviz's dot"
    bundle, _ = DisplayFormatter().format(picture)
    bundle["image/png"] = base64.b64encode(bundle["image/png"]).decode()
    old = {"image/svg+xml": bundle["image/svg+xml"],
           "text/plain": "<IPython.core.display.SVG object>"}
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("old_graph", outputs=[_display(old)]),
        nbformat.v4.new_code_cell("new_graph", outputs=[_display(bundle)]),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    (jupyterlab.root / NOTEBOOK).write_text(json.dumps(nb))  # unsigned: untrusted

    url = (f"{jupyterlab.url}/lab/tree/{NOTEBOOK}?"
           + urllib.parse.urlencode({"token": jupyterlab.token}))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=lab_tests.CHROMIUM, headless=True,
                                     args=lab_tests.CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 1000}).new_page()
            page.goto(url, timeout=lab_tests.PAGE_LOAD_MS)
            cells = page.locator(".jp-Notebook .jp-CodeCell")
            expect(cells).to_have_count(2, timeout=lab_tests.PAGE_LOAD_MS)
            old_cell, new_cell = cells.nth(0), cells.nth(1)
            # untrusted for real: the bare SVG output falls back to its text
            expect(old_cell.locator(".jp-OutputArea-output")).to_contain_text(
                "<IPython.core.display.SVG object>", timeout=lab_tests.UI_MS)
            assert not old_cell.locator("img").count()
            # the graph view's output: the PNG picture, drawn
            img = new_cell.locator(
                ".jp-OutputArea-output[data-mime-type='image/png'] img").first
            expect(img).to_be_visible(timeout=lab_tests.UI_MS)
            assert (img.get_attribute("src") or "").startswith("data:image/png;base64,")
            assert img.evaluate("i => i.complete && i.naturalWidth > 0")
            assert "IPython.core.display" not in new_cell.inner_text()
            lab_tests.ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(lab_tests.ARTIFACTS / "untrusted-graph.png"),
                            full_page=True)
        finally:
            browser.close()
