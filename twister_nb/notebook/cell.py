"""Running a ``%%twister2`` cell: plain functions the magic hands off to.

A cell runs with the notebook's job (see :mod:`~twister_nb.notebook.session`)
bound to ``env`` in the namespace. :func:`run_cell`:

1. gets the job (``--job-id``/``--name`` may switch to another one),
2. for the length of the cell, adds an
   :class:`~twister_nb.notebook.recorder.ActionRecorder` to the job's action
   hooks and subscribes the dashboard's state source to the job's events. The
   recorder notes the root of every action (the graph view draws them, with
   the TSets the cell assigned) and shows the dashboard at the first action;
   in a dry run it lets nothing run,
3. runs the cell's code in the namespace and returns its last expression's
   value, as a cell would (``--background``: in a thread, the same way),
4. finishes the run and draws the graph of what the cell built: the TSet
   values of the namespace that the cell assigned or renamed, and the
   actions' roots, coloured by the status the dashboard's state source kept.

**Dry runs** (``--dry-run``) record instead of executing. Actions that return
nothing to the kernel (``for_each``, ``sink``, ``cache``, ``persist``) are
skipped and the cell goes on building, so the whole pipeline is drawn. The
first action that returns data (``collect``, ``get_data``) stops the cell:
code after it would compute on data that does not exist (and a loop waiting
for convergence would never end). If the notebook has no job yet, a dry run
uses an offline job that never connects to a cluster.

Nothing here needs IPython; the magic passes the shell for its input
transformations and tracebacks.

Why this module is long: it is one cell's whole run, the foreground and the
``--background`` paths sharing one runner (job, start-up steps, dashboard,
live graph, code, finish) and the record it leaves; the parts that stand alone
(recorder, live graph, output, follow) are modules of their own.
"""

from __future__ import annotations

import ast
import linecache
import threading
import time
import traceback
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from twister_nb.events import ErrorRaised, Event
from twister_nb.notebook.follow import follow_running
from twister_nb.notebook.live_graph import LiveGraph
from twister_nb.notebook.output import put_back, quiet_what_the_dashboard_shows, tset_names
from twister_nb.notebook.progress import JobProgress
from twister_nb.notebook.recorder import (
    ActionRecorder,
    DryRunStop,
    OfflineExecutor,
    offline_environment,
)
from twister_nb.notebook.session import NotebookSession
from twister_nb.runtime.ray_log import job_log_path
from twister_nb.tset import watchers
from twister_nb.tset.ops import LogicalOp
from twister_nb.tset.tset import TLink, TSet

# OfflineExecutor and offline_environment live in recorder.py; named here too
# because the cell is where a dry run's offline job comes from.
__all__ = ["CellOptions", "CellRun", "OfflineExecutor", "changed_tsets", "offline_environment",
           "run_cell", "show_output"]


@dataclass
class CellOptions:
    """What the ``%%twister2`` flags and the magic's config traits ask for."""

    job_id: str | None = None
    name: str | None = None
    parallelism: int | None = None
    graph: bool = True
    dashboard: bool = True
    dry_run: bool = False
    output_lines: int = 200
    rankdir: str = "TB"
    graph_format: str = "svg"
    #: Bind the :class:`CellRun` to this name (``-o VAR``).
    output_var: str | None = None
    #: Return at once and run the cell in a thread; the dashboard keeps updating.
    background: bool = False
    #: The job's checkpoint policy from this cell on (``--checkpoint``), and its parameters.
    checkpoint: str | None = None
    checkpoint_params: str | None = None


@dataclass
class CellRun:
    """What one ``%%twister2`` cell did (``-o VAR`` binds it)."""

    job_id: str
    job_name: str
    dry_run: bool
    #: idle (no action), running (a background cell), done, failed, cancelled, dry-run
    status: str = "idle"
    seconds: float = 0.0
    #: TSets the cell assigned or changed, by variable name.
    tsets: dict[str, Any] = field(default_factory=dict)
    #: ``(action, root op)`` of every action, in order.
    actions: list[tuple[str, LogicalOp]] = field(default_factory=list)
    progress: JobProgress | None = None
    dashboard: Any = None
    graph: Any = None
    error: BaseException | None = None
    #: The cell's value (a background cell sets it when it ends).
    value: Any = None
    #: The thread of a ``--background`` cell (None for a cell run in the foreground).
    thread: threading.Thread | None = field(default=None, repr=False)
    #: When the cell's code started (``time.perf_counter()``): a running cell's
    #: ``elapsed`` counts from here.
    started: float | None = field(default=None, repr=False)

    @property
    def elapsed(self) -> float:
        """Seconds the cell has run: ``seconds`` once it ended, the time so far
        while a ``--background`` cell runs."""
        if self.status == "running" and self.started is not None:
            return time.perf_counter() - self.started
        return self.seconds

    @property
    def done(self) -> bool:
        """Whether the cell has finished (always, unless it runs in the background)."""
        return self.thread is None or not self.thread.is_alive()

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for a ``--background`` cell; return its value or raise its error."""
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                raise TimeoutError(f"the background cell of job {self.job_id!r} is still running")
        if self.error is not None:
            raise self.error
        return self.value

    def graph_roots(self) -> list[Any]:
        """What the graph view draws: named TSets, then the actions' roots."""
        return [(name, t) for name, t in self.tsets.items()] + [op for _, op in self.actions]

    def status_map(self) -> dict[str, str] | None:
        return self.progress.get("tset_status") if self.progress is not None else None

    def __repr__(self) -> str:
        return (f"CellRun(job_id={self.job_id!r}, status={self.status!r}, "
                f"seconds={self.elapsed:.2f}, tsets={sorted(self.tsets)}, "
                f"actions={[a for a, _ in self.actions]})")


# --------------------------------------------------------------------------- namespace


def _tset_state(value: Any) -> tuple[int, int]:
    return (id(value), id(value.op))


def tset_values(ns: MutableMapping[str, Any]) -> dict[str, tuple[int, int]]:
    """The TSets and links of a namespace (public names only), with what
    identifies their current value."""
    return {k: _tset_state(v) for k, v in list(ns.items())
            if not k.startswith("_") and isinstance(v, (TSet, TLink))}


def changed_tsets(before: dict[str, tuple[int, int]], ns: MutableMapping[str, Any]) -> dict[str, Any]:
    """TSets the cell assigned or changed (``set_name``, ``add_input``), by name."""
    after = tset_values(ns)
    return {k: ns[k] for k, state in after.items() if before.get(k) != state}


def execute_code(cell: str, ns: MutableMapping[str, Any], shell: Any = None) -> Any:
    """Run ``cell`` in ``ns``; the value of its last expression (None if it
    ends with a statement). With a shell: its input transformations
    (``%magics`` inside the cell) and its code cache (tracebacks show lines)."""
    __tracebackhide__ = True
    if shell is not None:
        code = shell.transform_cell(cell)
        filename = shell.compile.cache(code, shell.execution_count, raw_code=cell)
    else:
        code = cell
        filename = f"<twister2-cell-{abs(hash(cell)):x}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    tree = ast.parse(code, filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, filename, "exec"), ns)  # noqa: S102 - running the user's cell is the point
    if last is not None:
        return eval(compile(last, filename, "eval"), ns)
    return None


def show_output(obj: Any, **kwargs: Any) -> Any:
    """Show ``obj`` in the running cell's output (IPython's ``display``)."""
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a dependency of ipykernel
        print(obj)
        return None
    return display(obj, **kwargs)


def run_cell(session: NotebookSession, cell: str, ns: MutableMapping[str, Any],
             options: CellOptions | None = None, *, shell: Any = None,
             display: Callable[..., Any] | None = None) -> tuple[CellRun, Any]:
    """Run a ``%%twister2`` cell; returns the run record and the cell's value
    (a ``--background`` cell returns at once, its record as its value).

    The cell's own exceptions propagate (after the dashboard and the graph are
    finished and the run is recorded in ``session.last``).
    """
    __tracebackhide__ = True
    runner = _CellRunner(session, cell, ns, options or CellOptions(), shell,
                         display or show_output)
    if runner.opts.background and not runner.opts.dry_run:
        return runner.start_background()
    return runner.run()


def _main_thread_only(listener: Callable[[Event], None]) -> Callable[[Event], None]:
    """A listener that stays quiet off the main thread: a background cell's
    output goes to its dashboard, never printed from a thread into a random cell."""

    def quiet_off_main(event: Event) -> None:
        if threading.current_thread() is threading.main_thread():
            listener(event)

    return quiet_off_main


class _CellRunner:
    """One cell, run in the foreground (:meth:`run`) or in a thread
    (:meth:`start_background`): the same job, hooks, code and finish."""

    def __init__(self, session: NotebookSession, cell: str, ns: MutableMapping[str, Any],
                 opts: CellOptions, shell: Any, show: Callable[..., Any]) -> None:
        self.session, self.cell, self.ns, self.opts, self.shell, self.show = (
            session, cell, ns, opts, shell, show)
        self.progress = JobProgress("", opts.name or "", opts.output_lines)
        self.run_record = CellRun(job_id="", job_name="", dry_run=opts.dry_run,
                                  progress=self.progress)
        #: Listeners swapped for quieter ones while the dashboard shows (put back at the end).
        self.quieted: list[tuple[int, Callable[[Event], None]]] = []
        #: The dashboard's display handle, to show its final state in the saved notebook.
        self.handle: Any = None
        #: The graph, drawn at the first action and coloured as the stages run.
        self.live_graph: LiveGraph | None = None
        self.env: Any = None
        before = session.env
        current = session.current(job_id=opts.job_id, name=opts.name)
        if opts.dry_run and current is None:
            env = offline_environment(opts.name)  # a dry run starts no job
        else:
            if current is None and opts.job_id is None and opts.dashboard:
                self.show_dashboard()  # a new job: its start-up steps show while they run
            env = self._open_job()
            if opts.job_id is not None and env is not before and opts.dashboard:
                running = env.running()  # left by the kernel this one replaced
                if running is not None:
                    follow_running(env, running, show, workers=int(env.info()["workers"]),
                                   max_output_lines=opts.output_lines, graph_view=opts.graph)
        if opts.checkpoint is not None and not opts.dry_run:
            env.set_checkpoint_policy(opts.checkpoint, opts.checkpoint_params)
        ns["env"] = self.env = env
        self.progress.set_job(env.job_id, env.name)
        self.run_record.job_id, self.run_record.job_name = env.job_id, env.name
        last = session.last
        if last is not None and last.job_id == env.job_id and last.progress is not None:
            self.progress.workers = last.progress.workers  # a job announces its workers once
        self.recorder = ActionRecorder(opts.dry_run, self.show_dashboard, self.draw_graph)
        self.before = tset_values(ns)
        self.started = self.run_record.started = time.perf_counter()

    def _open_job(self) -> Any:
        """The cell's job, its start-up steps (head, Ray, JobMaster) fed to the
        dashboard while they run."""
        watchers.watch_process(self.progress)
        try:
            return self.session.job(job_id=self.opts.job_id, name=self.opts.name, create=True)
        finally:
            watchers.unwatch_process(self.progress)

    def show_dashboard(self) -> None:
        """Show the dashboard, once (a background cell shows it before its first action)."""
        if not self.opts.dashboard:
            return
        self.progress.name_tsets(tset_names(self.ns))  # the names bound until this action
        if self.run_record.dashboard is not None:
            return
        try:
            from twister_nb.notebook.dashboard import JobDashboard
        except ImportError as exc:  # the job runs anyway; say how to get the dashboard
            print(f"(no job dashboard: {exc}; `pip install ipywidgets` shows it)")
            return
        run = self.run_record
        if self.env is not None:
            self._log_path()
        run.dashboard = JobDashboard(on_cancel=self.cancel, progress=self.progress)
        self.handle = self.show(run.dashboard, display_id=True)
        run.dashboard.shown_as(self.handle)

    def _log_path(self) -> None:
        log = job_log_path(self.env.job_id)
        if log.exists():  # a Ray job driven here has one (an offline job has none)
            self.progress.set_log_path(str(log))

    def cancel(self) -> Any:
        """The dashboard's Cancel: the job's running action (none while it starts)."""
        return self.env.cancel() if self.env is not None else False

    def draw_graph(self) -> None:
        """At each action: the dashboard's printer quieted once, and the graph
        (shown at the first action) drawn with this action's root."""
        if self.run_record.dashboard is not None and not self.opts.background and not self.quieted:
            self.quieted = quiet_what_the_dashboard_shows(self.env.listeners)
        if self.run_record.dashboard is not None and not self.progress.log_path:
            self._log_path()
        if not self.opts.graph or self.opts.dry_run:
            return
        if self.live_graph is None:
            self.live_graph = LiveGraph(self.show, lambda: self.progress.get("tset_status"),
                                        lambda: self.progress.names, self.opts.rankdir,
                                        self.progress.task_notes)
            self.progress.subscribe(self.live_graph.changed)
        self.live_graph.draw(self._graph_roots())

    def _graph_roots(self) -> list[Any]:
        """What the graph draws now: the TSets the cell assigned so far, the actions' roots."""
        named = changed_tsets(self.before, self.ns)
        return [(name, t) for name, t in named.items()] + [op for _, op in self.recorder.actions]

    def _execute(self, shell: Any) -> Any:
        """The cell's code, with its recorder hooked and its progress subscribed."""
        __tracebackhide__ = True
        env = self.env
        default = env.default_parallelism
        env.add_action_hook(self.recorder)
        env.subscribe(self.progress)
        if self.opts.parallelism:
            env.default_parallelism = self.opts.parallelism
        try:
            return execute_code(self.cell, self.ns, shell)
        finally:
            env.remove_action_hook(self.recorder)
            env.unsubscribe(self.progress)
            env.default_parallelism = default
            put_back(env.listeners, self.quieted)
            self.quieted = []

    def _finish(self, update_display: bool) -> None:
        watch = self.session.watch
        if watch is not None and watch.reason:
            # the kernel is leaving and the job goes on: its action was not cancelled
            if self.run_record.dashboard is not None:
                self.progress.set_kernel_gone()
                self.run_record.dashboard.end()
            return
        run = self.run_record
        run.seconds = time.perf_counter() - self.started
        run.actions = self.recorder.actions
        run.tsets = changed_tsets(self.before, self.ns)
        self.progress.name_tsets(tset_names(self.ns))
        _finish(run, self.progress, self.opts, self.handle if update_display else None)

    def _publish(self) -> None:
        """Make the run the session's last one, and bind it for ``-o VAR``."""
        self.session.last = self.run_record
        if self.opts.output_var:
            self.ns[self.opts.output_var] = self.run_record

    def run(self) -> tuple[CellRun, Any]:
        """Run the cell here; its exceptions propagate once the run is finished."""
        __tracebackhide__ = True
        run, opts = self.run_record, self.opts
        value = None
        try:
            value = self._execute(self.shell)
        except DryRunStop as stop:
            print(f"dry run: stopped at the first {stop.args[0]!r} action (its data would be read "
                  "by the code after it); the graph shows what was built until then")
        except BaseException as exc:
            run.error = exc
            raise
        finally:
            self._finish(update_display=True)
            self._publish()
            if opts.graph and (run.tsets or run.actions):
                _show_graph(run, opts, self.show, self.live_graph)
        return run, value

    def start_background(self) -> tuple[CellRun, Any]:
        """``--background``: the dashboard now, the cell in a thread, the kernel free.

        The thread only sets widget traits (the dashboard, and an HTML widget for
        the graph): output printed from a thread would land in whichever cell runs.
        """
        run, opts, progress = self.run_record, self.opts, self.progress
        self.show_dashboard()
        if opts.graph:
            self.live_graph = LiveGraph(self.show, lambda: progress.get("tset_status"),
                                        lambda: progress.names, opts.rankdir,
                                        progress.task_notes)
            progress.subscribe(self.live_graph.changed)
            self.live_graph.place()  # drawn into from the thread, at its first action
        listeners = self.env.listeners
        quieted = list(enumerate(listeners))
        for i, listener in quieted:
            listeners[i] = _main_thread_only(listener)

        def body() -> None:
            self.recorder.thread = threading.get_ident()
            try:
                run.value = self._execute(None)
            except BaseException as exc:  # noqa: BLE001 - kept for run.wait() and the dashboard
                run.error = exc
                if not any(e.get("message") == str(exc) for e in progress.errors):
                    progress.feed(ErrorRaised(message=f"{type(exc).__name__}: {exc}",
                                              traceback="".join(traceback.format_exception(exc))))
            finally:
                put_back(listeners, quieted)
                self._finish(update_display=True)  # display updates go by ID, from any thread
                if self.live_graph is not None and (run.tsets or run.actions):
                    run.graph = self.live_graph.finish(run.graph_roots(), opts.graph_format)

        thread = threading.Thread(target=body, name=f"twister2-background-{self.env.job_id}",
                                  daemon=True)
        run.thread = thread
        run.status = "running"  # until the thread's _finish says how it ended
        self._publish()
        thread.start()
        return run, run


def _show_graph(run: CellRun, opts: CellOptions, show: Callable[..., Any],
                live: LiveGraph | None = None) -> None:
    """Draw what the cell built (the live graph's last drawing, when it has one);
    a drawing problem never hides the cell's own result."""
    from twister_nb.tset.graph import visualize

    if live is not None:
        run.graph = live.finish(run.graph_roots(), opts.graph_format)
        return
    try:
        run.graph = visualize(run.graph_roots(), format=opts.graph_format, rankdir=opts.rankdir,
                              status=None if opts.dry_run else run.status_map(),
                              names=run.progress.names if run.progress is not None else None)
    except Exception as exc:  # noqa: BLE001 - reported in one line, the cell stands
        print(f"(the graph could not be drawn: {type(exc).__name__}: {exc})")
        return
    if run.graph is not None:
        show(run.graph)


def _finish(run: CellRun, progress: JobProgress, opts: CellOptions, handle: Any) -> None:
    """Set the run's final status (and the dashboard's), and show the final
    state through ``handle``, the dashboard's display handle, if given."""
    if opts.dry_run:
        run.status = "dry-run"
        return
    if run.actions:
        # "running" left over means the watcher stopped first: failed, or
        # cancelled by an interrupt (the executor cancels the action then).
        cancelled = (isinstance(run.error, KeyboardInterrupt)
                     or (run.error is not None and "cancelled" in str(run.error)))
        progress.finish("cancelled" if cancelled and progress.status in ("running", "failed")
                        else None)
    if run.error is not None:
        run.status = "cancelled" if progress.status == "cancelled" else "failed"
    else:
        run.status = progress.status if run.actions else "idle"
    if handle is not None and run.dashboard is not None:
        run.dashboard.end()  # its output becomes the final state, which needs no kernel
