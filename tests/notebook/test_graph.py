"""The graph view: logical graph -> model -> graphviz / text, and rendering.

Graphs are built with the real TSet API on an offline job (it never runs),
so no cluster is needed.
"""

from __future__ import annotations

import re
import shutil
import sys

import pytest

graphviz = pytest.importorskip("graphviz")

from notebook_helpers import SEED_CELL, run_seed

from twister_nb.tset import graph
from twister_nb.notebook.cell import offline_environment

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")


@pytest.fixture
def offline():
    return offline_environment(parallelism=4)


def _seed_graph(offline):
    """The seed's graph, built without running: lazy_persist, and a map in
    place of the final for_each."""
    ns = {"__name__": "__main__", "env": offline}
    body = SEED_CELL.replace("persisted = two_computes.persist()",
                             "persisted = two_computes.lazy_persist()")
    body = body.replace("persisted.reduce(lambda i1, i2: i1 + i2) \\\n"
                        "    .for_each(lambda i: print(\"SUM = %d\" % i))",
                        "summed = persisted.reduce(lambda i1, i2: i1 + i2)\n"
                        "printed = summed.map(lambda i: print(\"SUM = %d\" % i))")
    exec(compile(body, "<seed>", "exec"), ns)  # noqa: S102
    return ns


def _node_stmt(source: str, key: str) -> str:
    """The attributes of one node statement of a DOT source."""
    match = re.search(rf'\t"{re.escape(key)}" \[(.*?)\]\n', source, re.DOTALL)
    assert match, f"no node {key!r} in {source}"
    return match.group(1)


def test_the_offline_job_refuses_to_run(offline):
    with pytest.raises(RuntimeError, match="without --dry-run"):
        run_seed(offline)


def test_model_of_the_seed_pipeline(offline):
    ns = _seed_graph(offline)
    model = graph.build_model({"source_x": ns["source_x"], "two_computes": ns["two_computes"],
                               "persisted": ns["persisted"], "printed": ns["printed"]})
    kinds = sorted(n.kind for n in model.nodes.values())
    # links (direct, reduce) are edges, not nodes
    assert kinds == ["compute", "compute", "map", "materialized", "source"]
    by_kind = {n.kind: n for n in model.nodes.values()}
    assert by_kind["source"].detail == "IntSource"
    assert by_kind["source"].variables == ["source_x"]
    assert by_kind["materialized"].storage == "store"
    assert {n.detail for n in model.nodes.values() if n.kind == "compute"} == {"mul_by_five",
                                                                                "add_two"}
    assert all(n.parallelism == 4 for n in model.nodes.values() if n.kind != "map")
    labels = sorted(e.label for e in model.edges)
    assert labels == ["direct", "direct", "persist", "reduce(<lambda>) 4\u21921"]
    kinds_of_edges = {e.label: e.kind for e in model.edges}
    assert kinds_of_edges["persist"] == "materialize"
    assert kinds_of_edges["reduce(<lambda>) 4\u21921"] == "exchange"


def test_digraph_draws_links_on_edges_and_storage_distinctly(offline):
    ns = _seed_graph(offline)
    g = graph.to_graphviz({"printed": ns["printed"], "two_computes": ns["two_computes"]},
                          rankdir="LR", graph_attr={"size": "4,4"})
    src = g.source
    assert "rankdir=LR" in src and "size=\"4,4\"" in src
    assert "shape=cylinder" in src  # the persisted TSet
    assert 'label="reduce(<lambda>) 4→1"' in src and "label=direct" in src
    assert "direct\"" not in src.split("->")[0]  # no node named after a link
    assert "label=\"two_computes = compute\nadd_two\n×4\"" in src


def test_status_colours_nodes_and_user_attributes_win(offline):
    ns = _seed_graph(offline)
    two = ns["two_computes"]
    source = ns["source_x"]
    g = graph.to_graphviz(two, status={two.id: "failed", source.id: "done"},
                          node_attributes={source.id: {"fillcolor": "pink"}})
    assert graph.STATUS_COLORS["failed"] in _node_stmt(g.source, two.id)
    assert "fillcolor=pink" in _node_stmt(g.source, source.id)
    with pytest.raises(ValueError, match="unknown status"):
        graph.to_graphviz(two, status={two.id: "exploded"})
    with pytest.raises(ValueError, match="rankdir"):
        graph.to_graphviz(two, rankdir="UP")


def test_cached_union_join_and_side_inputs(offline):
    nums = offline.parallelize_list(list(range(8)), 2)
    keyed = offline.parallelize_dict({1: "a", 2: "b"}, 2)
    joined = keyed.join(keyed.map_to_tuple(lambda kv: kv), join_type="left").map(lambda kv: kv)
    union = nums.union(nums.map(lambda x: -x)).partition(
        offline.functions.partition.load_balanced()).map(lambda x: x)
    model = graph.build_model([joined, union])
    labels = {e.label for e in model.edges}
    assert {"join left (left)", "join left (right)", "partition(LoadBalancePartitioner)"} <= labels
    assert not any(n.kind in ("join", "partition", "direct") for n in model.nodes.values())
    union_node = next(n for n in model.nodes.values() if n.kind == "union")
    assert len(model.inputs_of(union_node.key)) == 2


def test_materialized_memory_and_side_input_edges(offline):
    from twister_nb.tset import ops

    base = offline.parallelize_list([1, 2, 3], 1)
    held = ops.Materialized(parallelism=1, tset_id="map-abc", storage="memory")
    user = base.map(lambda x, ctx: x)
    user._op = user._op.replace(side_inputs=(("offsets", held),))
    model = graph.build_model(user)
    side = [e for e in model.edges if e.kind == "side"]
    assert [e.label for e in side] == ["input 'offsets'"]
    src = graph.to_graphviz(user).source
    assert "shape=box3d" in src and "style=dashed" in src


def test_open_link_is_a_point(offline):
    reduced = offline.parallelize_list([1, 2], 2).reduce(lambda a, b: a + b)
    model = graph.build_model({"reduced": reduced})
    terminal = [n for n in model.nodes.values() if n.terminal]
    assert len(terminal) == 1 and terminal[0].variables == ["reduced"]
    assert "shape=point" in graph.to_graphviz(reduced).source
    assert "reduced = reduce link, not read yet" in graph.to_text({"reduced": reduced})
    # once a drawn TSet reads the link, the link's name labels that edge instead
    summed = reduced.map(lambda x: x)
    model = graph.build_model({"reduced": reduced, "summed": summed})
    assert not any(n.terminal for n in model.nodes.values())
    assert [e.label for e in model.edges] == ["reduced = reduce(<lambda>) 2→1"]


def test_text_tree_of_the_seed(offline):
    ns = _seed_graph(offline)
    two = ns["two_computes"]
    text = graph.to_text({"printed": ns["printed"], "two_computes": two},
                         status={two.id: "done"})
    assert text.splitlines() == [
        "printed = map  <lambda>  ×1",
        "   └─ reduce(<lambda>) 4→1 ← persisted  in the store  ×4  [done]",
        "      └─ persist ← two_computes = compute  add_two  ×4  [done]",
        "         └─ direct ← compute  mul_by_five  ×4",
        "            └─ direct ← source  IntSource  ×4",
    ]


@needs_dot
def test_visualize_returns_svg_with_png_and_text_fallbacks(offline):
    """The notebook gets SVG (trusted), PNG (untrusted JupyterLab renders no
    SVG) and the text tree, never ``<IPython.core.display.SVG object>``."""
    from IPython.core.formatters import DisplayFormatter

    ns = _seed_graph(offline)
    out = graph.visualize([ns["printed"], ns["two_computes"]])
    assert "<svg" in out.data and "IntSource" in out.data and "mul_by_five" in out.data
    bundle, _ = DisplayFormatter().format(out)
    assert bundle["image/svg+xml"] == out.data
    assert bundle["image/png"].startswith(b"\x89PNG")  # base64 on the wire
    text = bundle["text/plain"]
    assert "IPython" not in text
    assert text == graph.to_text([ns["printed"], ns["two_computes"]])
    assert "mul_by_five" in text


@needs_dot
def test_visualize_writes_files(offline, tmp_path):
    ns = _seed_graph(offline)
    png = tmp_path / "seed.png"
    out = graph.visualize(ns["printed"], filename=str(png))
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert out.format == "png"
    noext = tmp_path / "seed"
    graph.visualize(ns["printed"], filename=str(noext), format="svg")
    assert (tmp_path / "seed.svg").read_text().startswith("<?xml")


def test_dot_source_needs_no_dot(offline, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    ns = _seed_graph(offline)
    target = tmp_path / "seed.dot"
    out = graph.visualize(ns["printed"], filename=str(target))
    assert target.read_text().startswith("digraph")
    assert "digraph" in str(out)


def test_without_dot_falls_back_to_text_with_hint(offline, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "")  # graphviz finds no dot
    ns = _seed_graph(offline)
    out = graph.visualize([ns["printed"], ns["two_computes"]])
    assert isinstance(out, graph.TextGraph)
    assert "apt-get install graphviz" in str(out)
    assert "direct ← source  IntSource  ×4" in str(out)
    assert "<pre" in out._repr_html_() and "apt-get install graphviz" in out._repr_html_()
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        graph.visualize(ns["printed"], filename=str(tmp_path / "x.png"))
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        graph.visualize(ns["printed"], engine="graphviz")


def test_without_the_graphviz_package(offline, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    ns = _seed_graph(offline)
    out = graph.visualize(ns["printed"])
    assert isinstance(out, graph.TextGraph) and "pip install graphviz" in str(out)
    with pytest.raises(ImportError, match="pip install graphviz"):
        graph.visualize(ns["printed"], engine="graphviz")


def test_engine_text_and_config(offline, monkeypatch):
    from twister_nb import config

    ns = _seed_graph(offline)
    assert isinstance(graph.visualize(ns["printed"], engine="text"), graph.TextGraph)
    with config.set({"notebook.graph.engine": "text"}):
        assert isinstance(graph.visualize(ns["printed"]), graph.TextGraph)
    with pytest.raises(ValueError, match="engine"):
        graph.visualize(ns["printed"], engine="ascii")


def test_tset_visualize_and_bad_input(offline):
    ns = _seed_graph(offline)
    out = ns["two_computes"].visualize(engine="text")
    assert "add_two" in str(out)
    with pytest.raises(TypeError, match="not a TSet"):
        graph.build_model(42)


def test_batch_nodes_say_rows_and_batch_size(offline):
    import numpy as np

    def affine(b):
        return b * 5 + 2

    arr = offline.parallelize_array(np.arange(1000), 4)
    scaled = arr.map_batches(affine, batch_size=128)
    rows = scaled.unbatch()
    model = graph.build_model({"arr": arr, "scaled": scaled, "rows": rows})
    by_kind = {n.kind: n for n in model.nodes.values()}
    assert by_kind["parallelize"].detail == "1000 rows"
    assert by_kind["map_batches"].detail == "affine \u00b7 128 rows"
    assert "unbatch" in by_kind
