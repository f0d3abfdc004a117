"""The cell's TSet graph, drawn when the cell's first action starts and
coloured as its stages run.

A cell used to draw its graph only when it ended, so the picture told nothing
while a job ran. :class:`LiveGraph` is shown with the dashboard (one display,
updated in place by its display ID): drawn at the first action with every
node ``pending``, redrawn when an action adds its root, and recoloured
whenever a TSet's status changes in the dashboard's state (pending, running,
checkpointing, done, restored, failed; the legend is under the graph), or
the count of a stage's tasks checkpointed or recovered (a line on its node)
changes. Those change a few times per stage, not per record, and a drawing is
one ``dot`` run (~30 ms); the PNG twin an untrusted notebook needs is made once,
for the final drawing (:meth:`LiveGraph.finish`).

It may be redrawn from the thread that feeds the dashboard (a background
cell, a followed job): display updates go by ID, from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from twister_nb.tset.graph import visualize

__all__ = ["LiveGraph"]


class _Waiting:
    """What the graph's place shows before it is drawn (a background cell
    before its first action, an attached kernel for a moment)."""

    def _repr_html_(self) -> str:
        return "<i class='twister-nb-graph-waiting'>the graph is drawn at the first action</i>"

    def __repr__(self) -> str:
        return "(the graph is drawn at the first action)"


class LiveGraph:
    """One display of the graph of ``roots``, kept in step with ``status()``.

    Parameters
    ----------
    show : callable
        IPython's ``display`` (called with ``display_id=True`` once).
    status : callable
        The TSet statuses now (the dashboard state's ``tset_status``).
    names : callable
        TSet ID -> the user's variable names, now.
    rankdir : str
        The direction the data flows in.
    notes : callable, optional
        TSet ID -> a line for its node, now (the dashboard state's ``task_notes``:
        tasks checkpointed and recovered).
    """

    def __init__(self, show: Callable[..., Any], status: Callable[[], Mapping[str, str]],
                 names: Callable[[], Mapping[str, str]], rankdir: str = "TB",
                 notes: Callable[[], Mapping[str, str]] = dict) -> None:
        self._show = show
        self._status = status
        self._names = names
        self._notes = notes
        self._rankdir = rankdir
        #: What is drawn: the roots (a list, as ``visualize`` takes them) or a GraphModel.
        self._roots: Any = None
        self._version = 0
        self._handle: Any = None
        self._drawn: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        self._finished = False
        #: The last picture shown (a ``GraphPicture``, or text without graphviz).
        self.picture: Any = None

    def place(self) -> None:
        """Show the graph's place now (before any action), to draw into later."""
        if self._handle is None:
            self._handle = self._show(_Waiting(), display_id=True)

    def draw(self, roots: Any) -> None:
        """Draw ``roots`` (named TSets and the actions' roots, or the drawing an
        action's event carried), coloured as now."""
        with self._lock:
            self._roots = roots
            self._version += 1
        self._redraw()

    def changed(self, values: Mapping[str, Any]) -> None:
        """A dashboard state subscriber: redraw when a TSet's status, or a
        stage's task checkpoint counts, changed (the key in ``_redraw`` skips
        a drawing that would not change)."""
        if "tset_status" in values or "stages" in values:
            self._redraw()

    def _redraw(self, png: bool = False, graph_format: str = "svg") -> None:
        with self._lock:
            if not self._roots or (self._finished and not png):
                return
            status = dict(self._status() or {})
            notes = dict(self._notes() or {})
            key = (self._version, tuple(sorted(status.items())), tuple(sorted(notes.items())),
                   png)
            if key == self._drawn:
                return
            self._drawn = key
            try:
                picture = visualize(self._roots, format=graph_format, rankdir=self._rankdir,
                                    status=status, names=dict(self._names() or {}), png=png,
                                    notes=notes)
            except Exception as exc:  # noqa: BLE001 - the job stands without its drawing
                picture = _Failed(f"(the graph could not be drawn: {type(exc).__name__}: {exc})")
            if picture is None:
                return
            self.picture = picture
            if self._handle is None:
                self._handle = self._show(picture, display_id=True)
            else:
                self._handle.update(picture)

    def finish(self, roots: Any = None, graph_format: str = "svg") -> Any:
        """The final drawing (of ``roots``, if given; with its PNG twin): it
        stays in the saved notebook."""
        with self._lock:
            if roots is not None:
                self._roots = roots
            self._version += 1
            self._finished = True
        self._redraw(png=True, graph_format=graph_format)
        return self.picture


class _Failed:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text
