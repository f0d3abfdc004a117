"""The job dashboard: an ipywidgets box whose state lives in synced traits.

:class:`JobDashboard` draws what a :class:`~twister_nb.notebook.progress.JobProgress`
(the state source) folds out of the JobMaster's events: job ID, status,
elapsed seconds, one progress row per stage (tasks done of total, records in
and out, its TSets), workers, errors with their traceback, the last lines of
worker output, and a Cancel button whose callback the caller gives. The
button works while the cell that runs the action waits for it
(:mod:`~twister_nb.notebook.busy_click`).

Python sets the traits; the child widgets react to them (``@observe``), as an
anywidget's view would. ``feed(event)`` is an executor listener: it may be
called from the kernel's main thread while an action runs, or from a
background thread; it only sets traits, never prints. ``_repr_html_`` gives the
same state as static HTML, so a saved notebook (or any viewer without the
widget manager) shows the final state.

When its run ends, the cell replaces the widget's output with
:meth:`JobDashboard.static_copy` (by display ID): JupyterLab keeps no widget
state in a saved notebook by default, and a widget whose kernel is gone shows
``Error displaying widget: model not found`` when the notebook is reopened;
the static copy shows the final state, and looks the same. A dashboard still
live when its kernel leaves (a restart) is marked ``kernel_gone`` and its
output replaced the same way, as far as the page still listens
(:func:`kernel_leaving`).

ipywidgets is a dependency of the package; this module is only imported when
a dashboard is wanted (the magics import it lazily).
"""

from __future__ import annotations

import html
import threading
import weakref
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

import ipywidgets as widgets
from traitlets import (
    Bool,
    CaselessStrEnum,
    Dict,
    Float,
    Int,
    List,
    TraitError,
    Unicode,
    observe,
    validate,
)

from twister_nb.events import Event
from twister_nb.notebook.busy_click import on_busy_click
from twister_nb.notebook.progress import (
    FIELDS,
    JOB_STATUSES,
    JobProgress,
    render_errors,
    render_header,
    render_html,
    render_materialized,
    render_output,
    render_startup,
    stage_caption,
    stage_numbers,
)

__all__ = ["JobDashboard", "StaticDashboard", "kernel_leaving"]

_BAR_STYLES = {"pending": "", "running": "info", "checkpointing": "warning", "done": "success",
               "failed": "danger"}
#: Seconds between two ticks of the elapsed clock while an action runs.
TICK = 0.5


class JobDashboard(widgets.VBox):
    """Live progress of a job's actions, with a Cancel button.

    Parameters
    ----------
    job_id, job_name : str
        The job shown in the header.
    on_cancel : callable, optional
        Called (no arguments) when Cancel is clicked while an action runs;
        without it the button stays disabled.
    max_output_lines : int
        Worker output lines kept.
    progress : JobProgress, optional
        The state source to draw (a new one by default).
    """

    job_id = Unicode("", help="The job's ID.").tag(sync=True)
    job_name = Unicode("", help="The job's name.").tag(sync=True)
    status = CaselessStrEnum(JOB_STATUSES, default_value="idle",
                             help="idle, running, done, failed or cancelled.").tag(sync=True)
    elapsed = Float(0.0, help="Seconds since the first action of this run started.").tag(sync=True)
    workers = Int(0, help="Worker actors of the job.").tag(sync=True)
    stages = List(Dict(), help="One dict per stage: action, TSets, tasks, done, records_in, "
                               "records_out, seconds, state.").tag(sync=True)
    errors = List(Dict(), help="Errors reported by the job: message, summary, TSet, partition, "
                               "worker, traceback.").tag(sync=True)
    output = List(Unicode(), help="The last lines of worker output.").tag(sync=True)
    output_dropped = Int(0, help="Output lines dropped to keep max_output_lines.").tag(sync=True)
    max_output_lines = Int(200, help="Output lines kept.").tag(sync=True)
    tset_status = Dict(help="TSet ID to pending, running, done, failed or restored "
                            "(the graph view colours by it).").tag(sync=True)
    checkpoints = List(Dict(), help="Checkpoints persist() committed: TSet, version, bytes, "
                                    "seconds.").tag(sync=True)
    restored = List(Dict(), help="Cached/persisted TSets found again instead of "
                                 "recomputed.").tag(sync=True)
    cancel_requested = Bool(False, help="Cancel was clicked.").tag(sync=True)
    log_path = Unicode("", help="The job's log, where Ray's own messages to the driver "
                                "go.").tag(sync=True)
    startup = List(Dict(), help="The start-up steps seen: step, state, seconds.").tag(sync=True)
    kernel_gone = Bool(False, help="The kernel that fed this dashboard is gone.").tag(sync=True)

    def __init__(self, job_id: str = "", job_name: str = "",
                 on_cancel: Callable[[], Any] | None = None, max_output_lines: int = 200,
                 progress: JobProgress | None = None, **kwargs: Any) -> None:
        self._on_cancel = on_cancel
        #: (action, stage) -> the row box, its caption, progress bar and numbers
        self._rows: dict[tuple[int, int], tuple[widgets.HBox, widgets.HTML,
                                                widgets.IntProgress, widgets.HTML]] = {}
        self._header = widgets.HTML()
        self._startup_html = widgets.HTML()
        self._ticker: threading.Thread | None = None
        self._stage_box = widgets.VBox()
        self._materialized_html = widgets.HTML()
        self._errors_html = widgets.HTML()
        self._output_html = widgets.HTML()
        self._cancel = widgets.Button(description="Cancel", icon="stop", button_style="danger",
                                      disabled=True, tooltip="Cancel the running action",
                                      layout=widgets.Layout(width="auto"))
        self._cancel.on_click(self._cancel_clicked)
        # ... and while a foreground cell waits for the action (see busy_click)
        on_busy_click(self._cancel, self._cancel_clicked)
        super().__init__(children=[widgets.HBox([self._header, self._cancel]),
                                   self._startup_html, self._stage_box,
                                   self._materialized_html, self._errors_html,
                                   self._output_html], **kwargs)
        self.add_class("twister-nb-dashboard")
        self.progress = progress or JobProgress(job_id, job_name, max_output_lines)
        self.max_output_lines = self.progress.output.maxlen or max_output_lines
        self.progress.subscribe(self._apply)
        self._apply(self.progress.snapshot())

    def __repr__(self) -> str:
        return f"JobDashboard(job_id={self.job_id!r}, status={self.status!r})"

    # ------------------------------------------------------------------ state source

    def feed(self, event: Event) -> None:
        """Fold one JobMaster event in (use the dashboard as an executor listener)."""
        self.progress.feed(event)

    __call__ = feed

    async def listen(self, events: Iterable[Event] | AsyncIterable[Event]) -> None:
        """Feed every event of ``events`` (sync or async)."""
        await self.progress.listen(events)

    def finish(self, status: str | None = None, elapsed: float | None = None) -> None:
        """Close the run (see :meth:`JobProgress.finish`)."""
        self.progress.finish(status, elapsed)

    def _apply(self, values: dict[str, Any]) -> None:
        with self.hold_sync():
            for name, value in values.items():
                setattr(self, name, value)

    def state(self) -> dict[str, Any]:
        """The traits as a plain dict."""
        return {name: getattr(self, name) for name in FIELDS}

    # ------------------------------------------------------------------ rules

    @validate("max_output_lines")
    def _validate_max_output_lines(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 1:
            raise TraitError(f"max_output_lines must be >= 1, got {proposal['value']!r}")
        return proposal["value"]

    @validate("elapsed")
    def _validate_elapsed(self, proposal: dict[str, Any]) -> float:
        if proposal["value"] < 0:
            raise TraitError(f"elapsed must be >= 0 seconds, got {proposal['value']!r}")
        return proposal["value"]

    @validate("output")
    def _validate_output(self, proposal: dict[str, Any]) -> list[str]:
        return list(proposal["value"])[-self.max_output_lines:]  # never more than the bound

    # ------------------------------------------------------------------ drawing

    @observe("max_output_lines")
    def _max_changed(self, change: dict[str, Any]) -> None:
        if self.progress.output.maxlen != change["new"]:
            self.progress.set_max_output_lines(change["new"])

    @observe("job_id", "job_name", "status", "elapsed", "workers", "cancel_requested",
             "log_path", "kernel_gone")
    def _draw_header(self, change: dict[str, Any] | None = None) -> None:
        self._header.value = render_header(self.state())
        self._cancel.disabled = (self._on_cancel is None or self.status != "running"
                                 or self.cancel_requested or self.kernel_gone)
        if self.status == "running" and (self._ticker is None or not self._ticker.is_alive()):
            self._ticker = threading.Thread(target=self._tick, name="twister2-clock", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        """Move the elapsed clock on while an action runs (events may be
        seconds apart; the clock should not stand still)."""
        stop = threading.Event()
        while self.status == "running" and not self.kernel_gone:
            stop.wait(TICK)
            self.progress.tick()

    @observe("startup")
    def _draw_startup(self, change: dict[str, Any] | None = None) -> None:
        self._startup_html.value = render_startup(self.state())

    @observe("stages")
    def _draw_stages(self, change: dict[str, Any] | None = None) -> None:
        added = False
        for stage in self.stages:
            key = (stage["action"], stage["index"])
            row = self._rows.get(key)
            if row is None:
                parts = (widgets.HTML(layout=widgets.Layout(width="45%")),
                         widgets.IntProgress(min=0, layout=widgets.Layout(width="25%")),
                         widgets.HTML())
                row = self._rows[key] = (widgets.HBox(list(parts)), *parts)
                added = True
            _, caption, bar, numbers = row
            caption.value = html.escape(stage_caption(stage))
            bar.max = max(1, stage["tasks"])
            bar.value = min(stage["done"], bar.max)
            bar.bar_style = _BAR_STYLES.get(stage["state"], "")
            numbers.value = html.escape(stage_numbers(stage))
        if added:
            self._stage_box.children = [r[0] for r in self._rows.values()]

    @observe("checkpoints", "restored")
    def _draw_materialized(self, change: dict[str, Any] | None = None) -> None:
        self._materialized_html.value = render_materialized(self.state())

    @observe("errors")
    def _draw_errors(self, change: dict[str, Any] | None = None) -> None:
        self._errors_html.value = render_errors(self.state())

    @observe("output", "output_dropped")
    def _draw_output(self, change: dict[str, Any] | None = None) -> None:
        self._output_html.value = render_output(self.state())

    def _cancel_clicked(self, _button: Any = None) -> None:
        if self._on_cancel is None or self.status != "running" or self.cancel_requested:
            return
        self.progress.request_cancel()
        self._on_cancel()

    # ------------------------------------------------------------------ static view

    def to_html(self) -> str:
        """The dashboard as static HTML."""
        return render_html(self.state())

    def _repr_html_(self) -> str:
        return self.to_html()

    def static_copy(self) -> "StaticDashboard":
        """The state now, as an output that needs no widget (nor its kernel)."""
        return StaticDashboard(self.state(), getattr(self, "model_id", None))

    def shown_as(self, handle: Any) -> None:
        """The display showing this dashboard: replaced by its static copy when
        the kernel leaves while it is live (:func:`kernel_leaving`)."""
        self._handle = handle
        _LIVE.add(self)

    def end(self) -> None:
        """The run is over: its output becomes the static copy (final state)."""
        _LIVE.discard(self)
        handle = getattr(self, "_handle", None)
        if handle is not None and hasattr(handle, "update"):
            handle.update(self.static_copy())


class StaticDashboard:
    """A dashboard's state as HTML only: what a finished cell keeps showing
    (the same drawing as the widget's, in a saved notebook, untrusted too)."""

    def __init__(self, state: dict[str, Any], model_id: str | None = None) -> None:
        self.state = state
        #: The widget it stands for (its state may be saved in the notebook's metadata).
        self.model_id = model_id

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        data = {"text/html": render_html(self.state), "text/plain": repr(self)}
        return data, ({"twister_nb": {"dashboard": self.model_id}} if self.model_id else {})

    def __repr__(self) -> str:
        return f"JobDashboard(job_id={self.state['job_id']!r}, status={self.state['status']!r})"


#: Dashboards shown and not ended yet (a background run, a followed action).
_LIVE: "weakref.WeakSet[JobDashboard]" = weakref.WeakSet()


def kernel_leaving() -> None:
    """The kernel is leaving (restart, shut down): every live dashboard says so
    and shows its last state, as far as the page still listens."""
    for dashboard in list(_LIVE):
        dashboard.progress.set_kernel_gone()
        try:
            dashboard.end()
        except Exception:  # noqa: BLE001 - the kernel leaves anyway
            pass
