"""Running a ``%%twister2`` cell: plain functions the magic hands off to.

A cell runs with the notebook's job (see :mod:`~twister_nb.notebook.session`)
bound to ``env`` in the namespace. :func:`run_cell`:

1. gets the job (``--job-id``/``--name`` may switch to another one),
2. swaps the job's executor for a :class:`_Recorder` for the length of the
   cell. The recorder notes the root of every action (the graph view draws
   them, with the TSets the cell assigned), shows the dashboard at the first
   action and forwards to the real executor; in a dry run it forwards nothing,
3. runs the cell's code in the namespace and returns its last expression's
   value, as a cell would,
4. draws the graph of what the cell built: the TSet values of the namespace
   that the cell assigned or renamed, and the actions' roots, coloured by the
   status the dashboard's state source kept.

**Dry runs** (``--dry-run``) record instead of executing. Actions that return
nothing to the kernel (``for_each``, ``sink``, ``cache``, ``persist``) are
skipped and the cell goes on building, so the whole pipeline is drawn. The
first action that returns data (``collect``, ``get_data``) stops the cell:
code after it would compute on data that does not exist (and a loop waiting
for convergence would never end). If the notebook has no job yet, a dry run
uses an offline job that never connects to a cluster.

Nothing here needs IPython; the magic passes the shell for its input
transformations and tracebacks.
"""

from __future__ import annotations

import ast
import contextlib
import linecache
import platform
import threading
import time
import traceback
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from twister_nb.notebook.progress import JobProgress
from twister_nb.notebook.session import NotebookSession
from twister_nb.tset.environment import TSetEnvironment
from twister_nb.tset.ops import LogicalOp
from twister_nb.tset.tset import TLink, TSet

__all__ = ["CellOptions", "CellRun", "changed_tsets", "offline_environment", "run_cell"]

#: Actions whose result the cell's code reads: a dry run cannot go past them.
DATA_ACTIONS = ("collect", "partitions")


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


@dataclass
class CellRun:
    """What one ``%%twister2`` cell did (``-o VAR`` binds it)."""

    job_id: str
    job_name: str
    dry_run: bool
    status: str = "idle"  # idle (no action), done, failed, cancelled, dry-run
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
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        """Whether the cell has finished (always, unless it runs in the background)."""
        return self._thread is None or not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for a ``--background`` cell; return its value or raise its error."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
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
                f"seconds={self.seconds:.2f}, tsets={sorted(self.tsets)}, "
                f"actions={[a for a, _ in self.actions]})")


class _DryRunStop(Exception):
    """Raised by a dry run's recorder at the first action that returns data."""


class OfflineExecutor:
    """The executor of a job that must not run: a dry run's when the notebook
    has no job yet. It never touches Ray."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def banner_fields(self) -> dict[str, str]:
        return {"Cluster Type": "none (dry run)", "Runtime": f"Python {platform.python_version()}"}

    def execute(self, root: LogicalOp, action: str, *, materialize_id: str | None = None) -> Any:
        raise RuntimeError(
            f"{root.label!r} belongs to the offline job of a %%twister2 --dry-run cell, which "
            "cannot run actions; run the cell again without --dry-run")

    def release(self, tset_id: str) -> None:
        pass

    def close(self) -> None:
        pass

    def cancel(self) -> bool:
        return False  # it never runs an action

    def info(self) -> dict[str, Any]:
        return {"status": "offline", "workers": 0, "cached": {}, "persisted": []}


class _Recorder:
    """Stands in for a job's executor while a cell runs."""

    def __init__(self, inner: Any, dry_run: bool, on_first_action: Callable[[], None]) -> None:
        self._inner = inner
        self._dry_run = dry_run
        self._on_first_action = on_first_action
        self.actions: list[tuple[str, LogicalOp]] = []
        #: Set for a background cell: actions of other threads (cells run while
        #: it works) pass straight through.
        self.thread: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def execute(self, root: LogicalOp, action: str, *, materialize_id: str | None = None) -> Any:
        __tracebackhide__ = True
        if self.thread is not None and threading.get_ident() != self.thread:
            return self._inner.execute(root, action, materialize_id=materialize_id)
        self.actions.append((action, root))
        if self._dry_run:
            if action in DATA_ACTIONS:
                raise _DryRunStop(action)
            return None
        if len(self.actions) == 1:
            self._on_first_action()
        return self._inner.execute(root, action, materialize_id=materialize_id)


def offline_environment(name: str | None = None, parallelism: int | None = None) -> TSetEnvironment:
    """A job that builds graphs but never runs (no cluster, no banner)."""
    resources = [{"instances": parallelism}] if parallelism else None
    return TSetEnvironment(name=name, resources=resources, executor=OfflineExecutor(),
                           banner=False)


# --------------------------------------------------------------------------- namespace


def _tset_state(value: Any) -> tuple[int, int]:
    return (id(value), id(value._op))


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


@contextlib.contextmanager
def _swapped(env: TSetEnvironment, recorder: _Recorder, listener: Any,
             parallelism: int | None) -> Iterator[None]:
    executor = env._executor
    listeners = getattr(executor, "listeners", None)
    default = env.default_parallelism
    env._executor = recorder  # type: ignore[assignment]
    if listeners is not None:
        listeners.append(listener)
    if parallelism:
        env.default_parallelism = parallelism
    try:
        yield
    finally:
        env._executor = executor
        env.default_parallelism = default
        if listeners is not None and listener in listeners:
            listeners.remove(listener)


def _default_display(obj: Any, **kwargs: Any) -> Any:
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a dependency of ipykernel
        print(obj)
        return None
    return display(obj, **kwargs)


def cancel_action(env: TSetEnvironment) -> bool:
    """Ask the job's JobMaster to stop its running action; False if it has none."""
    executor = env._executor
    master = getattr(executor, "master", None)
    if master is None:
        return False
    master.cancel.remote()
    return True


def run_cell(session: NotebookSession, cell: str, ns: MutableMapping[str, Any],
             options: CellOptions | None = None, *, shell: Any = None,
             display: Callable[..., Any] | None = None) -> tuple[CellRun, Any]:
    """Run a ``%%twister2`` cell; returns the run record and the cell's value.

    The cell's own exceptions propagate (after the dashboard and the graph are
    finished and the run is recorded in ``session.last``).
    """
    __tracebackhide__ = True
    opts = options or CellOptions()
    show = display or _default_display
    if opts.dry_run and session.current(job_id=opts.job_id, name=opts.name) is None:
        env = offline_environment(opts.name)  # a dry run starts no job
    else:
        env = session.job(job_id=opts.job_id, name=opts.name)
    ns["env"] = env
    progress = JobProgress(env.job_id, env.name, opts.output_lines)
    last = session.last
    if last is not None and last.job_id == env.job_id and last.progress is not None:
        progress.workers = last.progress.workers  # a job announces its workers once
    run = CellRun(job_id=env.job_id, job_name=env.name, dry_run=opts.dry_run, progress=progress)
    handle: list[Any] = []

    def show_dashboard() -> None:
        if not opts.dashboard:
            return
        try:
            from twister_nb.notebook.dashboard import JobDashboard
        except ImportError as exc:  # the job runs anyway; say how to get the dashboard
            print(f"(no job dashboard: {exc}; `pip install ipywidgets` shows it)")
            return
        run.dashboard = JobDashboard(on_cancel=lambda: cancel_action(env), progress=progress)
        handle.append(show(run.dashboard, display_id=True))

    recorder = _Recorder(env._executor, opts.dry_run, show_dashboard)
    before = tset_values(ns)
    started = time.perf_counter()
    value = None
    if opts.background and not opts.dry_run:
        return _run_in_background(run, env, cell, ns, opts, recorder, progress, before, started,
                                  session, show, show_dashboard, handle)
    try:
        with _swapped(env, recorder, progress, opts.parallelism):
            value = execute_code(cell, ns, shell)
    except _DryRunStop as stop:
        print(f"dry run: stopped at the first {stop.args[0]!r} action (its data would be read "
              "by the code after it); the graph shows what was built until then")
    except BaseException as exc:
        run.error = exc
        raise
    finally:
        run.seconds = time.perf_counter() - started
        run.actions = recorder.actions
        run.tsets = changed_tsets(before, ns)
        _finish(run, progress, opts, handle)
        session.last = run
        if opts.output_var:
            ns[opts.output_var] = run
        if opts.graph and (run.tsets or run.actions):
            _show_graph(run, opts, show)
    return run, value


def _main_thread_only(listener: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """A listener that stays quiet off the main thread: a background cell's
    output goes to its dashboard, never printed from a thread into a random cell."""

    def quiet_off_main(event: dict[str, Any]) -> None:
        if threading.current_thread() is threading.main_thread():
            listener(event)

    return quiet_off_main


def _run_in_background(run: CellRun, env: TSetEnvironment, cell: str,
                       ns: MutableMapping[str, Any], opts: CellOptions, recorder: _Recorder,
                       progress: JobProgress, before: dict[str, tuple[int, int]],
                       started: float, session: NotebookSession, show: Callable[..., Any],
                       show_dashboard: Callable[[], None],
                       handle: list[Any]) -> tuple[CellRun, Any]:
    """``--background``: the dashboard now, the cell in a thread, the kernel free.

    The thread only sets widget traits (the dashboard, and an HTML widget for
    the graph): output printed from a thread would land in whichever cell runs.
    """
    show_dashboard()
    graph_box = None
    if opts.graph:
        try:
            import ipywidgets

            graph_box = ipywidgets.HTML(value="<i>the graph is drawn when the cell ends</i>")
            show(graph_box)
        except ImportError:
            graph_box = None
    executor = env._executor
    listeners = getattr(executor, "listeners", None)
    quieted: list[tuple[int, Any]] = []
    if listeners is not None:
        for i, listener in enumerate(listeners):
            listeners[i] = _main_thread_only(listener)
            quieted.append((i, listener))

    def body() -> None:
        recorder.thread = threading.get_ident()
        try:
            with _swapped(env, recorder, progress, opts.parallelism):
                run.value = execute_code(cell, ns, None)
        except BaseException as exc:  # noqa: BLE001 - kept for run.wait() and the dashboard
            run.error = exc
            if not any(e.get("message") == str(exc) for e in progress.errors):
                progress.feed({"kind": "error", "message": f"{type(exc).__name__}: {exc}",
                               "traceback": "".join(traceback.format_exception(exc))})
        finally:
            if listeners is not None:
                for i, listener in quieted:
                    if i < len(listeners):
                        listeners[i] = listener
            run.seconds = time.perf_counter() - started
            run.actions = recorder.actions
            run.tsets = changed_tsets(before, ns)
            _finish(run, progress, opts, [])
            if graph_box is not None and (run.tsets or run.actions):
                _draw_into(graph_box, run, opts)

    thread = threading.Thread(target=body, name=f"twister2-background-{env.job_id}", daemon=True)
    run._thread = thread
    session.last = run
    if opts.output_var:
        ns[opts.output_var] = run
    thread.start()
    return run, run


def _draw_into(box: Any, run: CellRun, opts: CellOptions) -> None:
    """Put the graph into an HTML widget (a trait: safe from a thread)."""
    from twister_nb.notebook.graph import visualize

    try:
        graph = visualize(run.graph_roots(), format="svg", rankdir=opts.rankdir,
                          status=run.status_map())
        data = getattr(graph, "data", None)
        box.value = data if isinstance(data, str) and "<svg" in data else f"<pre>{graph}</pre>"
        run.graph = graph
    except Exception as exc:  # noqa: BLE001 - the cell's result stands without its drawing
        box.value = f"<pre>(the graph could not be drawn: {type(exc).__name__}: {exc})</pre>"


def _show_graph(run: CellRun, opts: CellOptions, show: Callable[..., Any]) -> None:
    """Draw what the cell built; a drawing problem never hides the cell's own result."""
    from twister_nb.notebook.graph import visualize

    try:
        run.graph = visualize(run.graph_roots(), format=opts.graph_format, rankdir=opts.rankdir,
                              status=None if opts.dry_run else run.status_map())
    except Exception as exc:  # noqa: BLE001 - reported in one line, the cell stands
        print(f"(the graph could not be drawn: {type(exc).__name__}: {exc})")
        return
    if run.graph is not None:
        show(run.graph)


def _finish(run: CellRun, progress: JobProgress, opts: CellOptions, handle: list[Any]) -> None:
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
    if handle and hasattr(handle[0], "update"):
        handle[0].update(run.dashboard)  # the saved notebook's HTML shows the final state
