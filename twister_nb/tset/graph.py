"""The graph view: a TSet logical graph drawn with graphviz, or as text.

Three steps, kept apart as in dask's ``dot.py``:

1. :func:`build_model` walks the logical graph (pure Python, no graphviz) into
   TSet nodes and edges. Links (``direct``, ``reduce``, ``partition`` ...) are
   not nodes: they label the edge from the TSet they read to the TSet that
   consumes them. A cached or persisted TSet (``ops.Materialized``) is a node
   of its own, joined to the TSet it was computed from when both are drawn.
2. :func:`to_graphviz` turns the model into a ``graphviz.Digraph`` and
   :func:`to_text` into an indented tree.
3. :func:`visualize` renders: SVG (or another format) through the ``dot``
   program. An SVG is a :class:`GraphPicture`, which a notebook gets as SVG, as
   PNG and as the text tree: JupyterLab draws SVG only in a trusted notebook and
   falls back to the PNG (a safe type) in an untrusted one, where a bare IPython
   ``SVG`` showed ``<IPython.core.display.SVG object>``. Other formats are an
   IPython ``Image``. Without ``dot`` (or without
   the graphviz package) it returns the text tree with the command that
   installs what is missing.

It lives with the API, as dask's ``dot.py`` lives beside its collections:
``TSet.visualize()`` is API, and the notebook and the CLI draw with it. It
imports nothing above ``tset``; graphviz and IPython are optional and imported
only when a drawing is rendered.

A ``status`` mapping of TSet ID to ``pending``, ``running``, ``checkpointing``,
``done``, ``failed`` or ``restored`` colours the nodes (the dashboard keeps
one), and a legend of those colours is drawn below the graph. A ``notes``
mapping of TSet ID to a short text adds a line to those nodes (the dashboard
says there how many of a stage's tasks were checkpointed and recovered).

Why this module is long: the model and its two renderings (graphviz, text)
change together whenever a node or link kind is added; each step is a small
function.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twister_nb import config as _config
from twister_nb.tset.batches import is_batch
from twister_nb.tset import ops
from twister_nb.tset.identity import tset_id

__all__ = [
    "STATUSES",
    "GraphModel",
    "GraphPicture",
    "TextGraph",
    "build_model",
    "model_from_dict",
    "model_to_dict",
    "to_graphviz",
    "to_text",
    "visualize",
]

#: Node fill colours by status.
STATUS_COLORS = {
    "pending": "#eeeeee",
    "running": "#9ecae1",
    "checkpointing": "#c5b0d5",
    "done": "#a1d99b",
    "failed": "#fc9272",
    "restored": "#ffe08a",
}
STATUSES = tuple(STATUS_COLORS)
_STORAGE_WORDS = {"memory": "cached", "store": "persisted"}
_STORAGE_FILL = {"memory": "#e7eff9", "store": "#fff5d6"}
_ENGINES = ("auto", "graphviz", "text")
_RANKDIRS = ("TB", "LR", "BT", "RL")
_IMAGE_FORMATS = ("png", "jpeg", "jpg", "gif")
DOT_HINT = ("graphviz's `dot` program was not found; install it to see this graph drawn: "
            "`apt-get install graphviz` (or `conda install graphviz`)")
PACKAGE_HINT = ("the graphviz Python package is not installed; to see this graph drawn: "
                "`pip install graphviz` (or `conda install python-graphviz`)")


# --------------------------------------------------------------------------- model


@dataclass
class Node:
    """One TSet of the drawing."""

    key: str
    tset_id: str
    kind: str
    title: str
    detail: str | None
    parallelism: int
    storage: str | None = None
    variables: list[str] = field(default_factory=list)
    #: The open end of a link that nothing consumes yet (drawn as a point).
    terminal: bool = False

    @property
    def source(self) -> bool:
        return self.kind in ("source", "parallelize")


@dataclass(frozen=True)
class Edge:
    """Data moving from ``src`` to ``dst``: through a link, as a side input
    (``add_input``), or into a cache/persist of ``src``."""

    src: str
    dst: str
    label: str
    kind: str = "link"  # link | exchange | side | materialize
    #: The TSet ID of the link the data goes through, if any.
    link_id: str | None = None


@dataclass
class GraphModel:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def inputs_of(self, key: str) -> list[Edge]:
        return [e for e in self.edges if e.dst == key]

    def roots(self) -> list[str]:
        """Nodes nothing drawn reads: where the text tree starts."""
        read = {e.src for e in self.edges}
        return [k for k in self.nodes if k not in read]


def function_name(value: Any) -> str | None:
    """A short name for a user function or function object.

    >>> function_name(len), function_name(lambda x: x)
    ('len', '<lambda>')
    >>> function_name(functools.partial(max, 1))
    'max'
    """
    if value is None:
        return None
    if isinstance(value, functools.partial):
        return function_name(value.func)
    if isinstance(value, type):
        return value.__name__
    name = getattr(value, "__name__", None)
    if isinstance(name, str) and callable(value):
        return name
    return type(value).__name__


def _as_op(value: Any) -> ops.LogicalOp:
    if isinstance(value, ops.LogicalOp):
        return value
    op = getattr(value, "op", None)
    if isinstance(op, ops.LogicalOp):
        return op
    raise TypeError(f"visualize(): {value!r} is not a TSet, a link or a logical operation")


def _roots(op_or_ops: Any) -> list[tuple[ops.LogicalOp, str | None]]:
    """``(op, variable name)`` pairs from an op, a TSet, a list of them (or of
    ``(name, tset)`` pairs) or a ``{name: tset}`` mapping."""
    if isinstance(op_or_ops, Mapping):
        return [(_as_op(v), str(k)) for k, v in op_or_ops.items()]
    if isinstance(op_or_ops, Iterable) and not isinstance(op_or_ops, (str, bytes)) and not hasattr(
            op_or_ops, "op"):
        return [(_as_op(v[1]), v[0]) if _is_named(v) else (_as_op(v), None) for v in op_or_ops]
    return [(_as_op(op_or_ops), None)]


def _is_named(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)


def _key(op: ops.LogicalOp) -> str:
    if isinstance(op, ops.Materialized):
        return f"{op.tset_id}@{op.storage}"
    return tset_id(op)


def _node(op: ops.LogicalOp) -> Node:
    kind = op.kind
    title = op.label
    detail: str | None = None
    storage = None
    if isinstance(op, ops.Materialized):
        storage = op.storage
        title = op.name or _STORAGE_WORDS.get(op.storage, op.storage)
        detail = "in memory" if op.storage == "memory" else "in the store"
    elif isinstance(op, ops.Source):
        detail = function_name(op.func)
    elif isinstance(op, ops.Parallelize):
        values = [v for p in op.partitions for v in p]
        if values and all(is_batch(v) for v in values):  # parallelize_array
            detail = f"{sum(len(v) for v in values)} rows"
        else:
            detail = f"{len(values)} value{'s' if len(values) != 1 else ''}"
    elif isinstance(op, ops.MapBatches):
        detail = function_name(op.fn)
        if op.batch_size:
            detail += f" \u00b7 {op.batch_size} rows"
    elif isinstance(op, ops.AbstractTransform) and op.fn is not ops.identity:
        detail = function_name(op.fn)
    if op.name and op.name != kind and not isinstance(op, ops.Materialized):
        title = f"{op.name} ({kind})"
    return Node(key=_key(op), tset_id=tset_id(op), kind=kind, title=title, detail=detail,
                parallelism=op.parallelism, storage=storage)


def _link_label(link: ops.AbstractLink, side: int = 0) -> str:
    label = link.kind
    fn = getattr(link, "fn", None) or getattr(link, "pf", None)
    if fn is not None:
        label += f"({function_name(fn)})"
    if isinstance(link, ops.Join):
        label = f"join {link.join_type} ({'left' if side == 0 else 'right'})"
    src = link.inputs[side].parallelism if side < len(link.inputs) else link.parallelism
    if link.parallelism != src:
        label += f" {src}\u2192{link.parallelism}"
    return label


def build_model(op_or_ops: Any, names: Mapping[str, str] | None = None) -> GraphModel:
    """The drawing's nodes and edges, from a root op (or TSet), several, or a
    ``{variable name: tset}`` mapping (the names are shown on the nodes).
    ``names`` (TSet ID -> variable name) names the other computed nodes it knows."""
    model = GraphModel()
    edges: dict[tuple[str, str, str], Edge] = {}
    seen: set[int] = set()

    def add_edge(src: ops.LogicalOp, dst_key: str, label: str, kind: str,
                 link: ops.LogicalOp | None = None) -> None:
        while isinstance(src, ops.AbstractLink):  # a link of a link: not built by the API
            src = src.inputs[0]
        edge = Edge(_key(src), dst_key, label, kind, tset_id(link) if link is not None else None)
        edges.setdefault((edge.src, edge.dst, edge.label), edge)

    def read_link(link: ops.AbstractLink, dst_key: str) -> None:
        kind = "exchange" if isinstance(link, ops.AbstractExchange) else "link"
        for side, src in enumerate(link.inputs):
            add_edge(src, dst_key, _link_label(link, side), kind, link)

    def read(op: ops.LogicalOp, dst_key: str) -> None:
        for inp in op.inputs:
            if isinstance(inp, ops.AbstractLink):
                read_link(inp, dst_key)
            else:  # union reads its inputs partition by partition
                add_edge(inp, dst_key, "direct", "link")
        for name, side_op in op.side_inputs:
            add_edge(side_op, dst_key, f"input {name!r}", "side")

    for root, variable in _roots(op_or_ops):
        for op in root.post_order():
            if id(op) in seen or isinstance(op, ops.AbstractLink):
                continue
            seen.add(id(op))
            node = model.nodes.setdefault(_key(op), _node(op))
            read(op, node.key)
        if isinstance(root, ops.AbstractLink):
            key = f"{tset_id(root)}.out"
            model.nodes.setdefault(key, Node(key=key, tset_id=tset_id(root), kind=root.kind,
                                             title=root.kind, detail=None,
                                             parallelism=root.parallelism, terminal=True))
            read_link(root, key)
        else:
            key = _key(root)
        if variable and variable not in model.nodes[key].variables:
            model.nodes[key].variables.append(variable)

    # A link some drawn TSet reads needs no open end: its name goes on the edges.
    for node in [n for n in model.nodes.values() if n.terminal]:
        read_by = [k for k, e in edges.items() if e.link_id == node.tset_id and e.dst != node.key]
        if not read_by:
            continue
        del model.nodes[node.key]
        for k in [k for k, e in edges.items() if e.dst == node.key]:
            del edges[k]
        for k in read_by:
            e = edges[k]
            label = f"{', '.join(node.variables)} = {e.label}" if node.variables else e.label
            edges[k] = Edge(e.src, e.dst, label, e.kind, e.link_id)

    # A cached/persisted TSet next to the TSet it was computed from.
    computed = {n.tset_id: n.key for n in model.nodes.values() if n.storage is None and
                not n.terminal}
    for node in list(model.nodes.values()):
        if node.storage is not None and node.tset_id in computed:
            word = "cache" if node.storage == "memory" else "persist"
            edge = Edge(computed[node.tset_id], node.key, word, "materialize")
            edges.setdefault((edge.src, edge.dst, edge.label), edge)
    model.edges = list(edges.values())
    for node in model.nodes.values():
        name = (names or {}).get(node.tset_id)
        if name and not node.variables and not node.terminal and node.storage is None:
            node.variables.append(name)
    return model


def model_to_dict(model: GraphModel) -> dict[str, Any]:
    """The drawing as plain values (no user code), to travel in an event: a
    kernel that attaches to a running job draws the graph it did not build."""
    return {"nodes": [dataclasses.asdict(n) for n in model.nodes.values()],
            "edges": [dataclasses.asdict(e) for e in model.edges]}


def model_from_dict(data: Mapping[str, Any]) -> GraphModel:
    """The drawing :func:`model_to_dict` gave."""
    nodes = [Node(**{**n, "variables": list(n.get("variables", []))}) for n in data["nodes"]]
    return GraphModel(nodes={n.key: n for n in nodes}, edges=[Edge(**e) for e in data["edges"]])


# --------------------------------------------------------------------------- graphviz


def _import_graphviz() -> Any:
    """The graphviz package, or an ImportError that says how to install it."""
    try:
        import graphviz
    except ImportError as exc:
        raise ImportError(f"twister_nb's graph view: {PACKAGE_HINT}") from exc
    return graphviz


def _check_status(status: Mapping[str, str] | None) -> dict[str, str]:
    status = dict(status or {})
    bad = {k: v for k, v in status.items() if v not in STATUS_COLORS}
    if bad:
        raise ValueError(f"visualize(status=...): unknown status {bad!r}; use one of {STATUSES}")
    return status


def _node_label(node: Node, note: str | None = None) -> str:
    title = node.title
    if node.terminal:
        title = f"{node.kind} link, not read yet"
    if node.variables and node.variables != [title]:
        title = f"{', '.join(node.variables)} = {title}"
    lines = [title]
    if node.detail:
        lines.append(node.detail)
    lines.append(f"\u00d7{node.parallelism}")
    if note:
        lines.append(note)
    return "\n".join(lines)


def _node_attrs(node: Node, status: str | None, note: str | None = None) -> dict[str, str]:
    if node.terminal:
        return {"shape": "point", "width": "0.12", "label": "",
                "xlabel": ", ".join(node.variables), "tooltip": _node_label(node)}
    attrs = {"label": _node_label(node, note), "shape": "box", "style": "rounded,filled",
             "fillcolor": "white", "tooltip": f"{node.tset_id}"}
    if node.source:
        attrs.update(shape="invhouse", style="filled")
    if node.kind in ("for_each", "sink"):
        attrs.update(shape="house", style="filled")
    if node.storage is not None:
        attrs.update(shape="cylinder" if node.storage == "store" else "box3d", style="filled",
                     penwidth="2", fillcolor=_STORAGE_FILL.get(node.storage, "white"))
    if status is not None:
        attrs["fillcolor"] = STATUS_COLORS[status]
        attrs["tooltip"] = f"{node.tset_id}: {status}"
    return attrs


def _edge_attrs(edge: Edge) -> dict[str, str]:
    attrs = {"label": edge.label}
    if edge.kind == "exchange":
        attrs.update(penwidth="2")
    elif edge.kind == "side":
        attrs.update(style="dashed")
    elif edge.kind == "materialize":
        attrs.update(style="dotted", arrowhead="odot")
    return attrs


def to_graphviz(op_or_ops: Any, *, rankdir: str = "TB", status: Mapping[str, str] | None = None,
                graph_attr: Mapping[str, Any] | None = None,
                node_attr: Mapping[str, Any] | None = None,
                edge_attr: Mapping[str, Any] | None = None,
                node_attributes: Mapping[str, Mapping[str, Any]] | None = None,
                notes: Mapping[str, str] | None = None) -> Any:
    """The logical graph as a ``graphviz.Digraph`` (nothing is rendered).

    Parameters
    ----------
    op_or_ops : TSet, logical op, list of them or ``{name: tset}``
        The roots; everything upstream of them is drawn.
    rankdir : {"TB", "LR", "BT", "RL"}
        Direction the data flows in.
    status : dict of str to str, optional
        TSet ID to ``pending``/``running``/``done``/``failed``/``restored``.
    graph_attr, node_attr, edge_attr : dict, optional
        Graphviz attributes for the graph and for every node/edge.
    node_attributes : dict of str to dict, optional
        Per-node attributes by TSet ID; they win over the computed ones.
    notes : dict of str to str, optional
        TSet ID to a line added to its node (``3/4 checkpointed``).
    """
    graphviz = _import_graphviz()
    if rankdir not in _RANKDIRS:
        raise ValueError(f"visualize(): rankdir must be one of {_RANKDIRS}, got {rankdir!r}")
    states = _check_status(status)
    model = op_or_ops if isinstance(op_or_ops, GraphModel) else build_model(op_or_ops)
    g_attr = {"rankdir": rankdir, **dict(graph_attr or {})}
    n_attr = {"fontname": "Helvetica", "fontsize": "10", **dict(node_attr or {})}
    e_attr = {"fontname": "Helvetica", "fontsize": "9", **dict(edge_attr or {})}
    if status is not None and "label" not in g_attr:
        g_attr.update(label=_legend(), labelloc="b", labeljust="l", fontsize="9",
                      fontname="Helvetica")
    g = graphviz.Digraph(graph_attr=g_attr, node_attr=n_attr, edge_attr=e_attr)
    for node in model.nodes.values():
        attrs = _node_attrs(node, None if node.terminal else states.get(node.tset_id),
                            (notes or {}).get(node.tset_id))
        attrs.update((node_attributes or {}).get(node.tset_id, {}))  # copied: user values win
        g.node(node.key, **attrs)
    for edge in model.edges:
        g.edge(edge.src, edge.dst, **_edge_attrs(edge))
    return g


def _legend() -> str:
    """The status colours as a graphviz HTML-like label: one cell per status."""
    cells = "".join(f'<td bgcolor="{color}" border="1">{name}</td>'
                    for name, color in STATUS_COLORS.items())
    return f'<<table border="0" cellspacing="2" cellpadding="2"><tr>{cells}</tr></table>>'


# --------------------------------------------------------------------------- text


def to_text(op_or_ops: Any, status: Mapping[str, str] | None = None,
            notes: Mapping[str, str] | None = None) -> str:
    """The graph as an indented tree, read upwards from what nothing reads.

    Each line is a TSet; below it, indented, the TSets it reads, each after
    the link it reads through. A TSet read twice is printed once.
    """
    states = _check_status(status)
    model = op_or_ops if isinstance(op_or_ops, GraphModel) else build_model(op_or_ops)
    lines: list[str] = []
    printed: set[str] = set()

    def describe(node: Node) -> str:
        text = _node_label(node, (notes or {}).get(node.tset_id)).replace("\n", "  ")
        state = states.get(node.tset_id)
        return f"{text}  [{state}]" if state else text

    def walk(key: str, prefix: str, branch: str, via: str | None) -> None:
        node = model.nodes[key]
        arrow = f"{via} \u2190 " if via else ""
        again = "  (see above)" if key in printed and model.inputs_of(key) else ""
        lines.append(f"{prefix}{branch}{arrow}{describe(node)}{again}")
        if again or key in printed:
            return
        printed.add(key)
        inputs = model.inputs_of(key)
        child_prefix = prefix + ("   " if branch in ("\u2514\u2500 ", "") else "\u2502  ")
        for i, edge in enumerate(inputs):
            last = i == len(inputs) - 1
            walk(edge.src, child_prefix, "\u2514\u2500 " if last else "\u251c\u2500 ", edge.label)

    for root in model.roots():
        walk(root, "", "", None)
    return "\n".join(lines)


class TextGraph:
    """The text tree, shown as ``<pre>`` in a notebook and as text elsewhere."""

    def __init__(self, text: str, hint: str | None = None) -> None:
        self.text = text
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.text}\n\n({self.hint})" if self.hint else self.text

    __repr__ = __str__

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        hint = f"<div><em>{html.escape(self.hint)}</em></div>" if self.hint else ""
        return (f"<pre class='twister-nb-graph'>{html.escape(self.text)}</pre>{hint}")


# --------------------------------------------------------------------------- rendering


class GraphPicture:
    """The graph as SVG, with a PNG and the text tree beside it.

    A notebook shows the first type it may: the SVG in a trusted notebook, the
    PNG in an untrusted one (JupyterLab renders SVG only when trusted; PNG is
    safe), the text tree where no picture can be shown.
    """

    def __init__(self, svg: str, png: bytes | None, text: str) -> None:
        #: The SVG document (what ``IPython.display.SVG(...).data`` would hold).
        self.data = svg
        self.png = png
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text)

    def _repr_svg_(self) -> str:
        return self.data

    def _repr_png_(self) -> bytes | None:
        return self.png


def _display(data: bytes, fmt: str, graph: Any = None, text: str = "") -> Any:
    if fmt == "svg":
        try:
            png = graph.pipe(format="png") if graph is not None else None
        except Exception:  # noqa: BLE001 - the SVG stands without its PNG twin
            png = None
        return GraphPicture(data.decode("utf-8"), png, text)
    try:
        from IPython.display import Image
    except ImportError:
        return None
    if fmt in _IMAGE_FORMATS:
        return Image(data, format="jpeg" if fmt == "jpg" else fmt)
    return None


def visualize(op_or_ops: Any, filename: str | None = None, format: str | None = None,
              rankdir: str = "TB", status: Mapping[str, str] | None = None, *,
              engine: str | None = None, names: Mapping[str, str] | None = None,
              png: bool = True, notes: Mapping[str, str] | None = None,
              **graph_attr: Any) -> Any:
    """Draw the logical graph up to ``op_or_ops``.

    Parameters
    ----------
    op_or_ops : TSet, logical op, list of them, ``{name: tset}`` or a GraphModel
        What to draw, with everything upstream of it.
    filename : str, optional
        Also write the picture here; the extension picks the format
        (``.dot``/``.gv`` writes the graphviz source and needs no ``dot``).
    format : str, optional
        ``svg`` (default), ``png``, ``pdf``, ...
    rankdir : {"TB", "LR", "BT", "RL"}
        Direction the data flows in.
    status : dict of str to str, optional
        TSet ID to status, which colours the nodes.
    engine : {"auto", "graphviz", "text"}, optional
        Default: config ``notebook.graph.engine``, else ``auto``: graphviz when
        it and its ``dot`` program are installed, the text tree otherwise.
    names : dict of str to str, optional
        TSet ID to the variable it is bound to (a notebook's namespace), shown
        on nodes upstream that ``op_or_ops`` does not name.
    png : bool
        Give an SVG its PNG twin (a second ``dot`` run, ~0.15 s): a live
        view redrawn while a job runs leaves it out until the last drawing.
    notes : dict of str to str, optional
        TSet ID to a line added to its node: the dashboard's count of the
        stage's tasks checkpointed and recovered (``4/8 checkpointed``).
    **graph_attr
        Graphviz graph attributes (``size="8,8"``, ``ranksep="0.3"`` ...).

    Returns
    -------
    A :class:`GraphPicture` (SVG, PNG and text), an IPython ``Image`` for
    other picture formats, a :class:`TextGraph` when drawing falls back to
    text, or None when IPython is not installed (or the format cannot be shown).
    """
    engine = _config.override_with("notebook.graph.engine", engine) or "auto"
    if engine not in _ENGINES:
        raise ValueError(f"visualize(): engine must be one of {_ENGINES}, got {engine!r}")
    if filename is not None:
        ext = os.path.splitext(filename)[1]
        if ext and format is None:
            format = ext[1:].lower()
        elif not ext:
            filename = f"{filename}.{format or 'svg'}"
    fmt = (format or "svg").lower()

    model = op_or_ops if isinstance(op_or_ops, GraphModel) else build_model(op_or_ops, names)

    def text(hint: str | None) -> TextGraph:
        return TextGraph(to_text(model, status, notes), hint)

    if engine == "text":
        tree = text(None)
        if filename is not None:
            with open(filename, "w") as f:
                f.write(str(tree))
        return tree
    try:
        _import_graphviz()
    except ImportError:
        if engine == "graphviz" or filename is not None:
            raise
        return text(PACKAGE_HINT)
    g = to_graphviz(model, rankdir=rankdir, status=status, graph_attr=graph_attr, notes=notes)
    if fmt in ("dot", "gv"):
        if filename is not None:
            with open(filename, "w") as f:
                f.write(g.source)
        return TextGraph(g.source)
    graphviz = _import_graphviz()
    try:
        data = g.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        if engine == "graphviz" or filename is not None:
            raise RuntimeError(f"visualize(): {DOT_HINT}; or save the source with "
                               "filename='graph.dot'") from None
        return text(DOT_HINT)
    if filename is not None:
        with open(filename, "wb") as f:
            f.write(data)
    return _display(data, fmt, g if png else None,
                    to_text(model, status, notes) if fmt == "svg" else "")
