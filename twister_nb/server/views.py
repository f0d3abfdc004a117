"""Jobs as the sidebar shows them: rows, progress and details as JSON.

Plain functions over what :class:`twister_nb.jobs.JobClient` returns, kept
apart from the handlers so they are tested without a server. A job's progress
and dashboard are folded from its events by the notebook's
:class:`~twister_nb.notebook.progress.JobProgress`, the same fold (and the same
static drawing, :func:`~twister_nb.notebook.progress.render_html`) a cell's
dashboard uses: the sidebar and the cell cannot disagree on what an event means.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twister_nb.events import Event
from twister_nb.notebook.progress import JobProgress, render_html

__all__ = ["KernelInfo", "detail_json", "driver_json", "fold", "progress_json", "row_json"]


@dataclass(frozen=True)
class KernelInfo:
    """A kernel of this Jupyter server, found by the PID of a job's driver."""

    kernel_id: str
    #: The kernel's spec name (``python3``).
    name: str
    #: The notebook (or console) path of its session, "" if it has none.
    path: str = ""


def fold(events: Iterable[Event], job_id: str = "", name: str = "") -> JobProgress:
    """The job's state after ``events``, as a cell's dashboard folds them."""
    progress = JobProgress(job_id=job_id, job_name=name)
    for event in events:
        progress.feed(event)
    return progress


def progress_json(snapshot: Mapping[str, Any], action: int | None = None
                  ) -> dict[str, Any] | None:
    """Tasks done of all tasks of action ``action`` (every action seen if None),
    from a :meth:`JobProgress.snapshot`; None if it has no stages.

    >>> progress_json({"stages": [{"action": 1, "done": 3, "tasks": 4},
    ...                           {"action": 1, "done": 0, "tasks": 4}]})
    {'done': 3, 'total': 8, 'fraction': 0.375}
    """
    stages = [s for s in snapshot.get("stages", ())
              if action is None or s.get("action") == action]
    if not stages:
        return None
    done = sum(min(int(s["done"]), int(s["tasks"])) for s in stages)
    total = sum(int(s["tasks"]) for s in stages)
    return {"done": done, "total": total, "fraction": done / total if total else 0.0}


def driver_json(driver: Mapping[str, Any] | None, kernels: Mapping[int, KernelInfo],
                host: str | None = None) -> dict[str, Any] | None:
    """The job's driver: this server's kernel (its ID and notebook) when its PID
    is one of them on this host, else a process (``pid`` on ``host``); None
    when no driver holds the job.

    >>> k = {42: KernelInfo("k-1", "python3", "a.ipynb")}
    >>> driver_json({"host": "h", "pid": 42, "since": 1.0}, k, host="h")["kind"]
    'kernel'
    >>> driver_json({"host": "other", "pid": 42, "since": 1.0}, k, host="h")["kind"]
    'process'
    >>> driver_json(None, k) is None
    True
    """
    if not driver:
        return None
    out = {"host": driver.get("host", ""), "pid": driver.get("pid"),
           "since": driver.get("since"), "kind": "process"}
    kernel = kernels.get(int(driver.get("pid") or 0))
    if kernel is not None and out["host"] == (host or socket.gethostname()):
        out.update(kind="kernel", kernel_id=kernel.kernel_id, kernel_name=kernel.name,
                   path=kernel.path)
    return out


def row_json(row: Mapping[str, Any], kernels: Mapping[int, KernelInfo],
             progress: Mapping[str, Any] | None = None,
             now: float | None = None) -> dict[str, Any]:
    """One job of the sidebar's list: its :meth:`JobClient.jobs` row, its age
    in seconds, its driver as :func:`driver_json` says, its checkpoints (the
    persisted TSets) and the running action's progress (None when none runs).

    >>> r = row_json({"job_id": "j-1", "name": "j", "status": "finished", "live": False,
    ...               "workers": 0, "cached": 0, "persisted": 2, "created": 100.0},
    ...              kernels={}, now=160.0)
    >>> r["age"], r["checkpoints"], r["driver"], r["progress"]
    (60.0, 2, None, None)
    """
    now = time.time() if now is None else now
    created = row.get("created")
    return {**row,
            "age": None if created is None else max(0.0, now - float(created)),
            "checkpoints": row.get("persisted", 0),
            "driver": driver_json(row.get("driver"), kernels),
            "progress": None if progress is None else dict(progress)}


def detail_json(job: Mapping[str, Any], state: JobProgress | None, cursor: int,
                kernels: Mapping[int, KernelInfo], restartable: bool) -> dict[str, Any]:
    """One job in full: its :meth:`JobClient.job` row with record and live view
    (``info``), its dashboard state folded from every event its JobMaster keeps
    (None for a job that is not live) and that dashboard drawn as HTML, its
    stages and TSet states (the graph), its checkpoints and errors, the event
    cursor to follow it from, and whether ``restart`` can re-run it."""
    record = job.get("record") or {}
    live = job.get("info") or {}
    snapshot = None if state is None else state.snapshot()
    running = job.get("running")
    errors = [str(e) for e in (record.get("error"), live.get("error")) if e]
    if snapshot is not None:
        errors += [e["message"] for e in snapshot["errors"]]
    errors = list(dict.fromkeys(errors))  # each once, in order
    progress = None
    if snapshot is not None and running:
        progress = progress_json(snapshot, running.get("action"))
    row = {k: v for k, v in job.items() if k not in ("record", "info")}
    return {
        **row_json(row, kernels, progress),
        "record": record,
        "info": live or None,
        "dashboard": snapshot,
        "dashboard_html": None if snapshot is None else render_html(snapshot),
        "stages": [] if snapshot is None else snapshot["stages"],
        "tset_status": {} if snapshot is None else snapshot["tset_status"],
        "checkpoint_list": _checkpoints(record, live),
        "errors": errors,
        "cursor": cursor,
        "restartable": restartable,
    }


def _checkpoints(record: Mapping[str, Any], live: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The persisted TSets: the record's entries (ID, label, version, ...), and
    any the live JobMaster uses that the record does not list yet.

    >>> _checkpoints({"persisted": {"t1": {"version": 2}}}, {"persisted": ["t1", "t2"]})
    [{'tset_id': 't1', 'version': 2}, {'tset_id': 't2'}]
    """
    recorded = dict(record.get("persisted") or {})
    out = [{"tset_id": tset_id, **dict(entry)} for tset_id, entry in recorded.items()]
    out += [{"tset_id": tset_id} for tset_id in live.get("persisted") or ()
            if tset_id not in recorded]
    return out
