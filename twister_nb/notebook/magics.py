"""``%%twister2`` and ``%twister2``: the IPython magics.

The magic methods only declare their arguments and hand off to plain
functions (:func:`~twister_nb.notebook.cell.run_cell`,
:func:`~twister_nb.notebook.commands.run_command`). Defaults are ``config=True``
traits of :class:`TwisterMagics`, so ``%config TwisterMagics.graph = False``
(or ``c.TwisterMagics.graph`` in an IPython profile) changes them. User
mistakes raise :class:`~twister_nb.notebook.errors.UsageError`: one line, no
traceback, naming the flag and the fix.

>>> %load_ext twister_nb                      # doctest: +SKIP
>>> %%twister2 --name wordcount --dry-run     # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from IPython.core.error import UsageError as _IPythonUsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, CaselessStrEnum, Int, TraitError, validate

from twister_nb import config as _config
from twister_nb.notebook import awaited, commands
from twister_nb.notebook.cell import CellOptions, run_cell, show_output
from twister_nb.notebook.errors import UsageError
from twister_nb.notebook.follow import follow_running
from twister_nb.notebook.kernel import KernelWatch
from twister_nb.notebook.session import NotebookSession
from twister_nb.tset.environment import TSetEnvironment

__all__ = ["TwisterMagics", "load_ipython_extension"]

#: What a job ID may be (it names a folder in the store).
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}")


def _parse(method: Any, line: str, magic: str) -> argparse.Namespace:
    try:
        return parse_argstring(method, line)
    except _IPythonUsageError as exc:
        raise UsageError(f"{magic}: {exc}; see {magic}? for the options") from None


@magics_class
class TwisterMagics(Magics):
    """Run TSet cells on the notebook's job; inspect jobs, graphs and the cluster."""

    graph = Bool(True, config=True,
                 help="Draw the graph of the TSets a %%twister2 cell builds.")
    dashboard = Bool(True, config=True,
                     help="Show the job dashboard when a %%twister2 cell runs an action.")
    rankdir = CaselessStrEnum(("TB", "LR", "BT", "RL"), default_value="TB", config=True,
                              help="Direction the graph view draws the data flowing in.")
    graph_format = CaselessStrEnum(("svg", "png"), default_value="svg", config=True,
                                   help="Picture format of the graph view.")
    output_lines = Int(200, config=True, help="Worker output lines the dashboard keeps.")

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self.session = NotebookSession()
        if shell is not None:
            self.session.watch = KernelWatch(
                shell, grace=float(_config.get("notebook.leave_grace", 1.0)),
                on_leave=self.session.detach_all)
        self.session.on_open = self._on_open

    def _on_open(self, env: TSetEnvironment) -> None:
        """``env.wait()`` in any cell shows the live dashboard of what it waits for."""

        def show_dashboard(running: dict[str, Any]) -> None:
            if self.dashboard:
                follow_running(env, running, show_output, workers=int(env.info()["workers"]),
                               max_output_lines=self.output_lines)

        env.add_wait_hook(show_dashboard)

    @validate("output_lines")
    def _validate_output_lines(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 1:
            raise TraitError(f"TwisterMagics.output_lines must be >= 1, got {proposal['value']!r}")
        return proposal["value"]

    def options(self) -> dict[str, Any]:
        """The current settings (what ``%twister2 config`` shows)."""
        return {name: getattr(self, name)
                for name in ("graph", "dashboard", "rankdir", "graph_format", "output_lines")}

    @cell_magic("twister2")
    @magic_arguments("%twister2")
    @argument("--job-id", metavar="JOB_ID",
              help="Run on the job JOB_ID: attach to it if it is live or recorded in the "
                   "store, else start it with that ID. It becomes the notebook's job, and "
                   "re-running the cells after a kernel restart is the same job.")
    @argument("--name", help="The job's name; another name than the notebook job's starts a new job.")
    @argument("-p", "--parallelism", type=int, metavar="N",
              help="Default parallelism of the sources this cell creates with parallelism 0.")
    @argument("--graph", action=argparse.BooleanOptionalAction, default=None,
              help="Draw the graph of the TSets the cell built (default: TwisterMagics.graph).")
    @argument("--dashboard", action=argparse.BooleanOptionalAction, default=None,
              help="Show the job dashboard (default: TwisterMagics.dashboard).")
    @argument("--dry-run", action="store_true",
              help="Build and draw the graph; run nothing (stops at the first collect/get_data).")
    @argument("-o", "--out", metavar="VAR", help="Bind the cell's run record (CellRun) to VAR.")
    @argument("--background", action="store_true",
              help="Return at once and run the cell in a thread; the dashboard keeps updating "
                   "and its Cancel button works. The cell returns its CellRun: .wait() gives "
                   "the value.")
    @argument("--checkpoint", metavar="POLICY",
              help="Checkpoint finished tasks from this cell on: none, periodic_time, "
                   "finished_tasks, instantiated_group or module:Class.")
    @argument("--checkpoint-params", metavar="PARAMS",
              help="The policy's parameters, e.g. finished.tasks:5,avoid.checkpoint:[mod.f].")
    def twister2_cell(self, line: str, cell: str) -> Any:
        """Run the cell as TSet code with ``env`` bound to the notebook's job."""
        __tracebackhide__ = True
        args = _parse(self.twister2_cell, line, "%%twister2")
        if args.parallelism is not None and args.parallelism < 1:
            raise UsageError(f"%%twister2 --parallelism must be a positive int, got "
                             f"{args.parallelism}; e.g. --parallelism 4")
        if args.out is not None and not commands.valid_variable(args.out):
            raise UsageError(f"%%twister2 -o: {args.out!r} is not a variable name; e.g. -o run")
        if args.job_id is not None and not _JOB_ID.fullmatch(args.job_id):
            raise UsageError(f"%%twister2 --job-id: {args.job_id!r} is not a job ID; use letters, "
                             "digits, '.', '_' or '-', e.g. --job-id my-analysis")
        if args.checkpoint_params is not None and args.checkpoint is None:
            raise UsageError("%%twister2 --checkpoint-params needs --checkpoint POLICY, e.g. "
                             "--checkpoint finished_tasks --checkpoint-params finished.tasks:5")
        if args.checkpoint is not None:
            commands.check_policy(args.checkpoint, args.checkpoint_params)
        if not cell.strip():
            raise UsageError("%%twister2: the cell is empty; write TSet code below the magic line")
        options = CellOptions(
            job_id=args.job_id, name=args.name, parallelism=args.parallelism,
            graph=self.graph if args.graph is None else args.graph,
            dashboard=self.dashboard if args.dashboard is None else args.dashboard,
            dry_run=args.dry_run, output_lines=self.output_lines, rankdir=self.rankdir.upper(),
            graph_format=self.graph_format.lower(), output_var=args.out,
            background=args.background, checkpoint=args.checkpoint,
            checkpoint_params=args.checkpoint_params)
        if args.background and args.dry_run:
            raise UsageError("%%twister2: --background and --dry-run do not go together; "
                             "a dry run returns at once anyway")

        def run() -> Any:
            __tracebackhide__ = True
            return run_cell(self.session, cell, self.shell.user_ns, options, shell=self.shell)[1]

        if awaited.wanted() and not args.background and not args.dry_run:
            return awaited.CellThread(run)  # the kernel answers the dashboard while it runs
        return run()

    @line_magic("twister2")
    @magic_arguments("twister2")
    @argument("command", nargs="?", choices=commands.COMMANDS, metavar="COMMAND",
              help="jobs, graph, config, cluster, attach, cancel, close, restart or clear.")
    @argument("args", nargs=argparse.REMAINDER, help="The command's arguments.")
    def twister2_line(self, line: str) -> Any:
        """Jobs, graphs, configuration and the cluster: %twister2 jobs | graph [TSET ...] |
        config [KEY[=VALUE] ...] | cluster start|stop|status | attach JOB_ID | cancel [JOB_ID]
        | close | restart JOB_ID | clear JOB_ID."""
        _parse(self.twister2_line, line, "%twister2")
        result = commands.run_command(line, self.session, self.shell.user_ns, self.options())
        if isinstance(result, str):
            print(result)
            return None
        return result


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext twister_nb``: register the magics (they join ``%config``),
    import the dashboard, and connect to a running cluster in the background."""
    ipython.register_magics(TwisterMagics(ipython))
    awaited.install(ipython)  # a foreground cell's dashboard answers a reloaded page
    try:  # imported now: a kernel that re-attaches shows the dashboard at once
        import twister_nb.notebook.dashboard  # noqa: F401
    except ImportError:
        pass  # the cells say how to get it
    from twister_nb.jobs import JobClient

    warm_up = JobClient().warm_up()
    # A cell run while the connection imports Ray waits for that import: one that
    # imports Ray itself at the same time could fail (Python's import deadlock).
    ipython.events.register("pre_run_cell", lambda info=None: warm_up.wait_for_ray_import())
