"""The ``%twister2`` subcommands, as plain functions.

``%twister2 jobs | graph | config | cluster start|stop|status | attach JOB_ID |
cancel [JOB_ID] | close | restart JOB_ID | clear JOB_ID``. :func:`parse_command`
parses a command line into ``(name, arguments)``; :func:`run_command` runs it.
Each command is a function usable without IPython; they return what the
magic shows (a table, a picture) or a line to print. They only parse and
format: the work is :class:`~twister_nb.jobs.JobClient`'s (the CLI's too) or,
for the notebook's own job, its environment's.
"""

from __future__ import annotations

import argparse
import datetime
import html
import keyword
import shlex
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

import yaml

from twister_nb import config as _config
from twister_nb.errors import JobNotFoundError
from twister_nb.jobs import JobClient, JobRunningError, NoProgramError
from twister_nb.notebook.errors import UsageError
from twister_nb.notebook.session import NotebookSession
from twister_nb.tset.tset import TLink, TSet

__all__ = ["COMMANDS", "ConfigView", "JobTable", "parse_command", "run_command"]

COMMANDS = ("jobs", "graph", "config", "cluster", "attach", "cancel", "close", "restart", "clear")
USAGE = ("%twister2 jobs | graph [TSET ...] | config [KEY[=VALUE] ...] | cluster start|stop|status "
         "| attach JOB_ID | cancel [JOB_ID] | close | restart JOB_ID | clear JOB_ID")


# --------------------------------------------------------------------------- parsing


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        usage = " ".join(self.format_usage().split()[1:])  # one line, without "usage:"
        raise UsageError(f"{self.prog}: {message}; usage: {usage}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise UsageError(message or self.format_help())


def _parsers() -> dict[str, _Parser]:
    def parser(name: str, description: str) -> _Parser:
        return _Parser(prog=f"%twister2 {name}", description=description, add_help=False)

    p = {}
    p["jobs"] = parser("jobs", "List the jobs: live on the cluster or recorded in the store.")
    p["graph"] = parser("graph", "Draw the graph of TSets (default: the last cell's).")
    p["graph"].add_argument("tsets", nargs="*", metavar="TSET", help="TSet variables to draw")
    p["graph"].add_argument("--rankdir", choices=("TB", "LR", "BT", "RL"), default=None)
    p["graph"].add_argument("--format", choices=("svg", "png"), default=None)
    p["graph"].add_argument("--engine", choices=("auto", "graphviz", "text"), default=None)
    p["config"] = parser("config", "Show configuration, or set KEY=VALUE for new jobs.")
    p["config"].add_argument("items", nargs="*", metavar="KEY[=VALUE]")
    p["cluster"] = parser("cluster", "Start, stop or inspect the local Ray head.")
    p["cluster"].add_argument("action", choices=("start", "stop", "status"))
    p["attach"] = parser("attach", "Make the job JOB_ID the notebook's job.")
    p["attach"].add_argument("job_id", metavar="JOB_ID")
    p["cancel"] = parser("cancel", "Cancel the running action of a job (default: the notebook's).")
    p["cancel"].add_argument("job_id", nargs="?", metavar="JOB_ID")
    p["close"] = parser("close", "End the notebook's job: free its workers and cached data.")
    p["restart"] = parser("restart", "Re-run a submitted program with its job ID.")
    p["restart"].add_argument("job_id", metavar="JOB_ID")
    p["clear"] = parser("clear", "Delete a job's checkpoints and record from the store.")
    p["clear"].add_argument("job_id", metavar="JOB_ID")
    return p


_PARSERS = _parsers()


def parse_command(line: str | Sequence[str]) -> tuple[str, argparse.Namespace]:
    """``"graph t --rankdir LR"`` -> ``("graph", Namespace(tsets=["t"], ...))``."""
    argv = shlex.split(line) if isinstance(line, str) else list(line)
    if not argv:
        raise UsageError(f"%twister2: give a command: {USAGE}")
    name, rest = argv[0], argv[1:]
    if name not in _PARSERS:
        raise UsageError(f"%twister2: unknown command {name!r}; use one of: {USAGE}")
    return name, _PARSERS[name].parse_args(rest)


def run_command(line: str | Sequence[str], session: NotebookSession, ns: MutableMapping[str, Any],
                options: Mapping[str, Any] | None = None) -> Any:
    """Parse and run one ``%twister2`` command line. ``options`` are the
    magic's settings (shown by ``config``, defaults for ``graph``)."""
    name, args = parse_command(line)
    handler: Callable[..., Any] = globals()[f"cmd_{name}"]
    return handler(args, session=session, ns=ns, options=dict(options or {}))


# --------------------------------------------------------------------------- cluster


def cmd_cluster(args: argparse.Namespace, session: NotebookSession, **_: Any) -> str:
    client = JobClient()
    if args.action != "status" and not client.local_cluster:
        address = _config.get("ray.address")
        raise UsageError(f"%twister2 cluster {args.action}: config ray.address is {address!r}, a "
                         "cluster twister_nb does not own; it manages only the local head "
                         "(ray.address: local)", "state")
    if args.action == "start":
        head = client.cluster_start()
        return f"local Ray head running at {head.address} (PID {head.pid})"
    if args.action == "stop":
        session.forget()  # its jobs end with the head (and this kernel's driver too)
        stopped = client.cluster_stop()
        return "local Ray head stopped" if stopped else "no local Ray head was running"
    status = client.cluster_status()
    if not status.local:
        return f"remote cluster at {status.address!r}"
    if status.head is None:
        return "no local Ray head is running (it starts with the first job, or %twister2 cluster start)"
    started = datetime.datetime.fromtimestamp(status.head.started).strftime("%Y-%m-%d %H:%M:%S")
    return (f"local Ray head running at {status.head.address} (PID {status.head.pid}, "
            f"since {started})")


# --------------------------------------------------------------------------- jobs


class JobTable:
    """Jobs as a table; ``*`` marks the notebook's job."""

    COLUMNS = ("job_id", "name", "status", "live", "workers", "cached", "persisted", "created")

    def __init__(self, jobs: list[dict[str, Any]], current: str | None = None) -> None:
        self.jobs = jobs
        self.current = current

    def _rows(self) -> list[list[str]]:
        rows = []
        for job in self.jobs:
            created = job.get("created")
            rows.append([
                ("* " if job["job_id"] == self.current else "") + job["job_id"],
                str(job["name"]), str(job["status"]), "yes" if job["live"] else "no",
                str(job["workers"]), str(job["cached"]), str(job["persisted"]),
                datetime.datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M")
                if created else "",
            ])
        return rows

    def __len__(self) -> int:
        return len(self.jobs)

    def __repr__(self) -> str:
        if not self.jobs:
            return "no jobs"
        rows = [list(self.COLUMNS)] + self._rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.COLUMNS))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def _repr_html_(self) -> str:
        if not self.jobs:
            return "<p>no jobs</p>"
        head = "".join(f"<th>{c}</th>" for c in self.COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self._rows())
        return f"<table><tr>{head}</tr>{body}</table>"


def cmd_jobs(args: argparse.Namespace, session: NotebookSession, **_: Any) -> JobTable:
    return JobTable(JobClient().jobs(), getattr(session.env, "job_id", None))


def _failure_line(job_id: str, record: Mapping[str, Any] | None,
                  info: Mapping[str, Any]) -> str | None:
    """How the job's latest action (or the job, as its record says) failed, if it did."""
    def first_line(error: Any) -> str:
        return str(error or "").strip().split("\n", 1)[0]  # a user error's traceback follows

    last = info.get("last_action")
    if last and last.get("state") in ("failed", "cancelled"):
        return (f"job {job_id!r}: its last action (#{last['action']} {last['kind']} of "
                f"{last['label']!r}) {last['state']}: {first_line(last.get('error'))}")
    if last is None and record and record.get("status") in ("failed", "cancelled"):
        error = f": {first_line(record['error'])}" if record.get("error") else ""
        return f"job {job_id!r} {record['status']}{error}"
    return None


def cmd_attach(args: argparse.Namespace, session: NotebookSession,
               ns: MutableMapping[str, Any], options: dict[str, Any], **_: Any) -> str | None:
    """Make the job the notebook's; a failure is said first, and a running
    action's live dashboard is shown (drawn from the action's start)."""
    from twister_nb.notebook.cell import show_output
    from twister_nb.notebook.follow import follow_running

    fresh = session.current(job_id=args.job_id) is None
    record = JobClient().record(args.job_id) if fresh else None
    env = session.job(job_id=args.job_id)
    ns["env"] = env
    info = env.info()
    lines = [line for line in [_failure_line(env.job_id, record, info)] if line]
    persisted, cached = len(info.get("persisted") or ()), len(info.get("cached") or {})
    running = env.running()
    lines.append(f"attached to job {env.job_id!r} ({env.name}): {persisted} persisted and "
                 f"{cached} cached TSets")
    if running is not None:
        lines.append(f"action #{running['action']} ({running['kind']} of {running['label']!r}) "
                     "is running; env.wait() returns its value")
        print("\n".join(lines), flush=True)
        if options.get("dashboard", True):
            follow_running(env, running, show_output, workers=int(info.get("workers") or 0),
                           max_output_lines=int(options.get("output_lines", 200)))
        return None
    last = info.get("last_action")
    if fresh and last is not None and last.get("state") == "done":
        lines.append(f"its last action (#{last['action']} {last['kind']} of {last['label']!r}) "
                     "ended while no kernel was attached; env.wait() returns its value")
    lines.append("re-run the cells: persist() of a committed TSet returns at once")
    return "\n".join(lines)


def cmd_cancel(args: argparse.Namespace, session: NotebookSession, **_: Any) -> str:
    job_id = args.job_id or getattr(session.env, "job_id", None)
    if job_id is None:
        raise UsageError("%twister2 cancel: the notebook has no job yet; give one: "
                         "%twister2 cancel JOB_ID", "state")
    env = session.current(job_id=job_id)
    if (env is None or not env.cancel()) and not JobClient().cancel(job_id):
        raise UsageError(f"%twister2 cancel: job {job_id!r} is not running; %twister2 jobs "
                         "lists the live ones", "not_found")
    return f"asked job {job_id!r} to cancel its running action"


def cmd_close(args: argparse.Namespace, session: NotebookSession,
              ns: MutableMapping[str, Any], **_: Any) -> str:
    job_id = session.close()
    if job_id is None:
        return "the notebook has no job"
    if getattr(ns.get("env"), "job_id", None) == job_id:
        del ns["env"]
    return f"job {job_id!r} closed: its workers and cached data are freed"


def cmd_restart(args: argparse.Namespace, session: NotebookSession, **_: Any) -> None:
    """Re-run a submitted program with its job ID (``twister-nb restart``), its
    output streamed into the cell. A notebook's job has no program: its cells are."""
    client = JobClient()
    job_id = args.job_id
    try:
        client.program(job_id)
    except JobNotFoundError:
        raise UsageError(f"%twister2 restart: no job {job_id!r} in the store; %twister2 jobs "
                         "lists them", "not_found") from None
    except NoProgramError:
        raise UsageError(f"%twister2 restart: job {job_id!r} was not submitted as a program (a "
                         f"notebook's program is its cells): %twister2 attach {job_id} and re-run "
                         "them; committed persists are skipped", "state") from None
    if session.current(job_id=job_id) is not None:
        raise UsageError(f"%twister2 restart: {job_id!r} is the notebook's job; "
                         "%twister2 close it first", "state")
    code = client.restart(job_id, on_line=lambda line: print(line, end="", flush=True))
    if code:
        raise RuntimeError(f"twister-nb restart {job_id} exited with code {code}; "
                           "its output is above")


def cmd_clear(args: argparse.Namespace, session: NotebookSession, **_: Any) -> str:
    job_id = args.job_id
    if session.current(job_id=job_id) is not None:
        raise UsageError(f"%twister2 clear: {job_id!r} is the notebook's job; "
                         "%twister2 close it first", "state")
    try:
        JobClient().clear(job_id)
    except JobRunningError:
        raise UsageError(f"%twister2 clear: job {job_id!r} is running; close it first "
                         f"(%twister2 attach {job_id}, then %twister2 close)", "state") from None
    except JobNotFoundError:
        raise UsageError(f"%twister2 clear: the store has nothing of job {job_id!r}; "
                         "%twister2 jobs lists the jobs", "not_found") from None
    return f"job {job_id!r} cleared: its record and checkpoints are deleted from the store"


# --------------------------------------------------------------------------- graph, config


def cmd_graph(args: argparse.Namespace, session: NotebookSession, ns: MutableMapping[str, Any],
              options: dict[str, Any], **_: Any) -> Any:
    from twister_nb.tset.graph import visualize

    last = session.last
    status = last.status_map() if last is not None else None
    if args.tsets:
        roots = []
        for name in args.tsets:
            if name not in ns:
                raise UsageError(f"%twister2 graph: no variable {name!r} in the notebook; give the "
                                 "name of a TSet", "not_found")
            if not isinstance(ns[name], (TSet, TLink)):
                raise UsageError(f"%twister2 graph: {name!r} is a {type(ns[name]).__name__}, not a "
                                 "TSet; give the name of a TSet")
            roots.append((name, ns[name]))
    elif last is not None and last.graph_roots():
        roots = last.graph_roots()
    else:
        raise UsageError("%twister2 graph: no %%twister2 cell has built TSets yet; name the TSets: "
                         "%twister2 graph my_tset", "state")
    return visualize(roots, format=args.format or options.get("graph_format"),
                     rankdir=args.rankdir or options.get("rankdir", "TB"), status=status,
                     engine=args.engine)


class ConfigView(dict):
    """Configuration as ``key: value`` lines."""

    def __repr__(self) -> str:
        return "\n".join(f"{k}: {v!r}" for k, v in sorted(self.items()))

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


def cmd_config(args: argparse.Namespace, options: dict[str, Any], **_: Any) -> ConfigView:
    settings: dict[str, Any] = {}
    filters = []
    for item in args.items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not key or (sep and not all(part.isidentifier() or part.isdigit()
                                       for part in key.split("."))):
            raise UsageError(f"%twister2 config: {item!r} is not KEY=VALUE; e.g. "
                             "%twister2 config job.parallelism=8")
        if sep:
            settings[key] = yaml.safe_load(raw) if raw.strip() else None
        else:
            filters.append(key)
    if settings:
        _config.set(settings)  # for the rest of the kernel's life; new jobs read it
    values = {**_config.load(), **{f"TwisterMagics.{k}": v for k, v in options.items()}}
    if filters or settings:
        wanted = filters + list(settings)
        values = {k: v for k, v in values.items() if any(k == f or k.startswith(f + ".")
                                                         for f in wanted)}
    return ConfigView(values)


def valid_variable(name: str) -> bool:
    """Whether ``-o NAME`` can bind ``NAME``."""
    return name.isidentifier() and not keyword.iskeyword(name)


def check_policy(policy: str, params: str | None) -> None:
    """``%%twister2 --checkpoint``: a bad policy name or parameter is one
    :class:`UsageError` naming it, before the cell starts a job or runs."""
    from twister_nb.checkpoint.params import PARAMS_KEY, POLICY_KEY
    from twister_nb.checkpoint.policies import load_policy
    from twister_nb.errors import ConfigError

    try:
        load_policy(_config.load({POLICY_KEY: policy, PARAMS_KEY: params}))
    except ConfigError as exc:
        raise UsageError(f"%%twister2 --checkpoint: {exc}") from None
