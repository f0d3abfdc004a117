"""The live dashboard of an action this kernel did not start.

A kernel that attaches to a job (``%twister2 attach``, ``%%twister2 --job-id``
after a restart) finds its action running, started by the kernel it replaced.
:func:`follow_running` draws that action from its start: it reads the job's
own event log from the action's first event (``running()["since"]``), folds it
into a :class:`~twister_nb.notebook.progress.JobProgress` before the dashboard
is shown (so it is live at once), then a thread keeps reading the log until
the action ends. The thread only sets widget traits, as a ``--background``
cell's does; the driver's own delivery of events to its listeners is not
touched. ``env.wait()`` shows the same dashboard (a wait hook).

Below it, the action's TSet graph in its current colours: the kernel that
attaches did not build that graph, so it is drawn from the drawing the
action's start event carries (``ActionStarted.graph``), and recoloured as the
stages go on (:class:`~twister_nb.notebook.live_graph.LiveGraph`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from twister_nb.events import ActionEnded, ActionStarted
from twister_nb.notebook.live_graph import LiveGraph
from twister_nb.notebook.progress import JobProgress
from twister_nb.tset.environment import TSetEnvironment
from twister_nb.tset.graph import model_from_dict

__all__ = ["follow_running"]

#: Seconds between two reads of the job's event log.
POLL = 0.25


def follow_running(env: TSetEnvironment, running: dict[str, Any],
                   show: Callable[..., Any], *, workers: int = 0,
                   max_output_lines: int = 200, graph_view: bool = True) -> Any:
    """Show the live dashboard of the ``running`` action (``env.running()``),
    drawn from its first event, and keep it live until the action ends.

    Returns the dashboard (a ``JobDashboard``), or None without ipywidgets.
    """
    try:
        from twister_nb.notebook.dashboard import JobDashboard
    except ImportError as exc:
        print(f"(no job dashboard: {exc}; `pip install ipywidgets` shows it)")
        return None
    progress = JobProgress(env.job_id, env.name, max_output_lines)
    progress.workers = workers
    action = running["action"]
    ended = threading.Event()
    drawing: list[dict[str, Any]] = []

    def feed(events: list[Any]) -> None:
        for event in events:
            progress.feed(event)
            if isinstance(event, ActionStarted) and event.action == action and event.graph:
                drawing.append(event.graph)
            if isinstance(event, ActionEnded) and event.action == action:
                ended.set()

    events, cursor = env.events(running["since"])
    feed(events)
    dashboard = JobDashboard(on_cancel=env.cancel, progress=progress)
    dashboard.shown_as(show(dashboard, display_id=True))
    graph = None
    if drawing and graph_view:
        graph = LiveGraph(show, lambda: progress.get("tset_status"), dict,
                          notes=progress.task_notes)
        graph.place()  # drawn by the thread: the dashboard is live first
    model = model_from_dict(drawing[0]) if graph is not None else None
    if not ended.is_set():
        threading.Thread(target=_follow, args=(env, cursor, feed, ended, dashboard, graph, model),
                         name=f"twister2-follow-{env.job_id}", daemon=True).start()
    else:
        if graph is not None:
            graph.draw(model)
        _ended(dashboard, graph)
    return dashboard


def _follow(env: TSetEnvironment, cursor: int, feed: Callable[[list[Any]], None],
            ended: threading.Event, dashboard: Any, graph: LiveGraph | None,
            model: Any) -> None:
    """Draw the graph, then read the log until the action ends (or the job is
    gone or closed)."""
    if graph is not None:
        dashboard.progress.subscribe(graph.changed)
        graph.draw(model)
    while not ended.wait(POLL):
        if env.closed:
            break
        try:
            events, cursor = env.events(cursor)
        except Exception:  # noqa: BLE001 - the job is gone: the dashboard shows its last state
            break
        feed(events)
    _ended(dashboard, graph)


def _ended(dashboard: Any, graph: LiveGraph | None) -> None:
    """The action is over: the dashboard's output becomes its final state, the
    graph's gets its PNG twin (display updates go by ID, from this thread too)."""
    if dashboard.progress.kernel_gone:
        return  # said already by kernel_leaving
    dashboard.finish()
    dashboard.end()
    if graph is not None:
        graph.finish()
