"""What a person sees in a cell's outputs, read from a real kernel (nbclient):
one-line usage errors, a failing user function told once with its own frames,
one dashboard, one checkpoint line, the user's names, no Ray log lines, a
background cell's value with a true status, a graph an untrusted notebook can
show."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipywidgets")

pytestmark = pytest.mark.slow

WIDGET = "application/vnd.jupyter.widget-view+json"

CELLS = {
    "load": "%load_ext twister_nb",
    "bogus": "%%twister2 --bogus\nx = 1",
    "frobnicate": "%twister2 frobnicate",
    "parallelism": "%%twister2 --parallelism 0\nx = 1",
    "attach": "%twister2 attach no-such-job",
    "persist": """%%twister2 --name clean-output
src = env.parallelize_list(list(range(100)), 4)
doubled = src.map(lambda x: x * 2)
p = doubled.persist()
p.reduce(lambda a, b: a + b).collect()[0]""",
    "upstream": """%%twister2 --no-dashboard
len(doubled.map(lambda x: x + 1).collect())""",
    "failing": """%%twister2
def bad(x):
    if x == 3:
        raise ValueError('bad value %r' % x)
    return x
src.map(bad).collect()""",
    "background": """%%twister2 --background -o bg
import time
def slow(x):
    time.sleep(0.3)
    return x + 1
slow_sum = sum(src.map(slow).collect())
slow_sum""",
    "status_now": "bg.status",
    "waited": "bg.wait(180), bg.status",
    "batches": """%%twister2 --no-graph
import numpy as np
rows = env.parallelize_array(np.arange(1000), 4)
doubled_rows = rows.map_batches(lambda b: b * 2)
int(sum(int(b.sum()) for b in doubled_rows.collect()))""",
}


def _run(tmp_path: Path) -> dict[str, Any]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src)
                                         for src in CELLS.values()])
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3", allow_errors=True,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env={k: v for k, v in os.environ.items() if not k.startswith("RAY_")})
    return dict(zip(CELLS, nb.cells))


def _errors(cell: Any) -> list[Any]:
    return [o for o in cell.outputs if o.output_type == "error"]


def _text(cell: Any) -> str:
    """Everything a cell shows as text: streams, errors, plain text and HTML."""
    parts = []
    for o in cell.outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type == "error":
            parts.append("\n".join(o.traceback))
        else:
            parts.extend(v for k, v in o.data.items() if k in ("text/plain", "text/html"))
    return "\n".join(parts)


def _views(cell: Any) -> list[str]:
    """The dashboards a cell shows (the model of each), each a widget while it
    runs and its static final state (no widget view) once it ended."""
    views = [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")
             and o.data["text/plain"].startswith("JobDashboard(")]
    assert not any(WIDGET in o.data for o in views), "a finished dashboard needs no widget"
    return [o.metadata["twister_nb"]["dashboard"] for o in views]


def _value(cell: Any) -> str:
    (result,) = [o for o in cell.outputs if o.output_type == "execute_result"]
    return result.data["text/plain"]


@pytest.fixture(scope="module")
def cells(ray_cluster, tmp_path_factory):
    return _run(tmp_path_factory.mktemp("clean-output"))


@pytest.mark.parametrize("name, says", [
    ("bogus", "%%twister2: unrecognized arguments: --bogus"),
    ("frobnicate", "invalid choice: 'frobnicate'"),
    ("parallelism",
     "%%twister2 --parallelism must be a positive int, got 0; e.g. --parallelism 4"),
    ("attach", "no job 'no-such-job'"),
])
def test_a_usage_error_is_one_line(cells, name, says):
    (error,) = _errors(cells[name])
    assert error.ename == "UsageError"
    assert len(error.traceback) == 1, error.traceback
    (line,) = error.traceback
    assert line.startswith("UsageError: ") and says in line and "\n" not in line
    assert "Traceback" not in _text(cells[name])


def test_one_dashboard_one_checkpoint_line_users_names(cells):
    cell = cells["persist"]
    assert int(_value(cell)) == sum(2 * x for x in range(100))
    assert len(set(_views(cell))) == 1
    text = _text(cell)
    # the checkpoint, once: the dashboard's line (the final state replaced the first draw)
    assert "checkpointed (version" not in text
    assert len(re.findall(r"persisted doubled version \d+", text)) == 1, text
    # the user's names; no internal labels
    captions = re.findall(r"<td>(#\d+ \w+: [^<]*)</td>", text)
    assert captions == ["#1 persist: src \u2192 doubled", "#2 collect: doubled",
                        "#2 collect: reduce result"], captions
    assert "_identity" not in text and "map _identity" not in text
    assert "(raylet)" not in text
    # the banner says where Ray's own messages went: the job's log
    log = Path(re.search(r"Job Log\s+:\s+(\S+)", text).group(1))
    assert log.name.startswith("clean-output-") and log.is_file()
    # ... and the dashboard names it too
    assert re.search(f"Ray's messages: <span[^>]*>{re.escape(str(log))}</span>", text)
    # the final state, in the live widget's colours
    assert "done" in text and "#388e3c" in text and "<progress" not in text


def test_the_graph_has_a_picture_and_text_that_an_untrusted_notebook_shows(cells):
    (graph,) = [o.data for o in cells["persist"].outputs
                if o.output_type == "display_data" and "image/svg+xml" in o.data]
    assert "<svg" in graph["image/svg+xml"]
    assert graph["image/png"]  # base64 PNG: what JupyterLab shows when untrusted
    assert "IPython.core.display" not in graph["text/plain"]
    assert "doubled" in graph["text/plain"]


def test_a_failing_user_function_is_told_once_with_its_own_frames(cells):
    cell = cells["failing"]
    (error,) = _errors(cell)
    assert error.ename == "UserFunctionError"
    shown = "\n".join(error.traceback)
    assert shown.startswith("UserFunctionError: user function of TSet 'map' (map) failed "
                            "on partition 0")
    assert shown.count("bad value 3") == 1, shown
    assert shown.count("Traceback (most recent call last)") == 1
    assert ", in bad" in shown
    assert "raise ValueError('bad value %r' % x)" in shown  # the cell's line, from the kernel
    for internal in ("executor.py", "environment.py", "tset.py", "interactiveshell.py"):
        assert internal not in shown
    # the dashboard says what failed, in its own line
    assert len(set(_views(cell))) == 1
    assert "failed" in _text(cell)


def test_a_background_cell_shows_one_dashboard_and_its_handle_says_running(cells):
    cell = cells["background"]
    assert len(set(_views(cell))) == 1, cell.outputs
    assert "status='running'" in _value(cell)
    assert _value(cells["status_now"]) == "'running'"
    assert _value(cells["waited"]) == f"({sum(x + 1 for x in range(100))}, 'done')"
    # its static copy was brought to the final state when it ended
    (static,) = [o.data["text/html"] for o in cell.outputs if o.output_type == "display_data"
                 and o.data["text/plain"].startswith("JobDashboard(")]
    assert "font-weight:bold'>done</span>" in static, static


def test_no_ray_lines_in_any_cell(cells):
    for name, cell in cells.items():
        assert "(raylet)" not in _text(cell), name
        assert "\x1b[" not in "".join(o.get("text", "") for o in cell.outputs), name


def test_batches_are_counted_as_their_rows(cells):
    cell = cells["batches"]
    assert int(_value(cell)) == sum(2 * x for x in range(1000))
    text = _text(cell)
    assert re.search(r"#\d+ collect: rows \u2192 doubled_rows<", text), text
    assert "4/4 tasks \u00b7 1,000 in \u00b7 1,000 out" in text, text


def test_the_graph_names_upstream_tsets_from_earlier_cells(cells):
    cell = cells["upstream"]
    assert int(_value(cell)) == len([x * 2 + 1 for x in range(100)])
    (graph,) = [o.data for o in cell.outputs
                if o.output_type == "display_data" and "image/svg+xml" in o.data]
    assert "doubled = map" in graph["text/plain"] and "src = parallelize" in graph["text/plain"]
    assert "doubled = map" in graph["image/svg+xml"]
