"""Job events to dashboard state: the state source, apart from any drawing.

The JobMaster emits events (the dataclasses of :mod:`twister_nb.events`:
actions started and ended, stages submitted, tasks finished, output, errors,
checkpoints, restored data, workers); the kernel's executor hands each one to
its listeners. :class:`JobProgress` folds them into plain,
JSON-able state -- status, elapsed time, per-stage tasks done of total and
records in/out, per-TSet status, workers, errors, the last output lines --
and tells its subscribers which fields changed. The widget in
:mod:`~twister_nb.notebook.dashboard` subscribes and copies them into its
synced traits; :func:`render_html` draws the same state as static HTML (what
a saved notebook shows, and what the CLI could print).

``feed`` may be called from any thread (a background run's watcher); it
takes a lock and never prints.

Why this module is long: one handler per event kind, kept with the state it
folds into, and the static HTML drawing of that same state.
"""

from __future__ import annotations

import asyncio
import html
import threading
from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

from twister_nb.events import (ActionEnded, ActionStarted, CheckpointCommitted, ErrorRaised,
                               Event, JobMasterRebuilt, OutputPrinted, StageSubmitted,
                               TaskCheckpointed, TaskFinished, TSetRestored, WorkersStarted)

__all__ = ["JOB_STATUSES", "JobProgress", "render_html"]

JOB_STATUSES = ("idle", "running", "done", "failed", "cancelled")
FIELDS = ("job_id", "job_name", "status", "elapsed", "workers", "stages", "errors", "output",
          "output_dropped", "tset_status", "checkpoints", "restored", "cancel_requested",
          "log_path")
_MATERIALIZED = "materialized"
#: What a caption says for data an earlier action stored, when no variable names it
_STORED = "stored data"

Subscriber = Callable[[dict[str, Any]], None]


class JobProgress:
    """The state of a job as its events describe it.

    Parameters
    ----------
    job_id, job_name : str
        Shown in the header; events do not carry them.
    max_output_lines : int
        Worker output lines kept (the oldest are dropped and counted).
    """

    def __init__(self, job_id: str = "", job_name: str = "", max_output_lines: int = 200) -> None:
        if not isinstance(max_output_lines, int) or max_output_lines < 1:
            raise ValueError(f"JobProgress(max_output_lines=...) must be an int >= 1, "
                             f"got {max_output_lines!r}")
        self._lock = threading.RLock()
        self._subscribers: list[Subscriber] = []
        self.job_id = job_id
        self.job_name = job_name
        self.status = "idle"
        self.elapsed = 0.0
        self.workers = 0
        self.errors: list[dict[str, Any]] = []
        self.output: deque[str] = deque(maxlen=max_output_lines)
        self.output_dropped = 0
        self.tset_status: dict[str, str] = {}
        self.checkpoints: list[dict[str, Any]] = []
        self.restored: list[dict[str, Any]] = []
        self.cancel_requested = False
        #: The job's log (Ray's own messages to the driver go there, not into the cell)
        self.log_path = ""
        #: TSet ID -> the user's variable name (the cell's namespace): what captions say
        self.names: dict[str, str] = {}
        self._stages: dict[tuple[int, int], dict[str, Any]] = {}
        self._actions: dict[int, str] = {}  # action number -> running/done/failed
        self._started: float | None = None

    def __repr__(self) -> str:
        return f"JobProgress(job_id={self.job_id!r}, status={self.status!r})"

    # ------------------------------------------------------------------ reading

    @property
    def stages(self) -> list[dict[str, Any]]:
        """One dict per stage of every action seen, in order (copies)."""
        return [dict(s) for _, s in sorted(self._stages.items())]

    def get(self, name: str) -> Any:
        """The JSON-able value of one state field."""
        value = getattr(self, name)
        if isinstance(value, deque):
            return list(value)
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, list):
            return [dict(v) if isinstance(v, dict) else v for v in value]
        return value

    def snapshot(self) -> dict[str, Any]:
        """Every field, JSON-able."""
        with self._lock:
            return {name: self.get(name) for name in FIELDS}

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback({field: value})`` with the fields each event changed."""
        self._subscribers.append(callback)

    def name_tsets(self, names: dict[str, str]) -> None:
        """Caption stages and checkpoints with the user's variable names
        (TSet ID -> name), as far as they are known; later names add to earlier."""
        with self._lock:
            self.names.update(names)
            for stage in self._stages.values():
                stage["names"] = self._stage_names(stage)
            for item in (*self.checkpoints, *self.restored):
                item["name"] = self.names.get(item.get("tset_id", ""))
            self._notify({"stages", "checkpoints", "restored"})

    def _stage_names(self, stage: dict[str, Any]) -> list[str]:
        return [self.names.get(ident) or (_STORED if label == _MATERIALIZED else label)
                for label, ident in zip(stage["tsets"], stage["tset_ids"])]

    def set_log_path(self, path: str) -> None:
        with self._lock:
            self.log_path = str(path)
            self._notify({"log_path"})

    def set_max_output_lines(self, n: int) -> None:
        with self._lock:
            self.output = deque(self.output, maxlen=n)
            self._notify({"output"})

    # ------------------------------------------------------------------ writing

    def _notify(self, changed: set[str]) -> None:
        if not changed or not self._subscribers:
            return
        values = {name: self.get(name) for name in FIELDS if name in changed}
        for callback in list(self._subscribers):
            callback(values)

    def feed(self, event: Event) -> None:
        """Fold one JobMaster event into the state (the executor's listener).
        Kinds the dashboard does not show are ignored."""
        with self._lock:
            handler = _HANDLERS.get(type(event))
            changed = set(handler(self, event)) if handler is not None else set()
            when = event.time
            if self._started is not None:
                elapsed = max(self.elapsed, when - self._started)
                if elapsed != self.elapsed:
                    self.elapsed = elapsed
                    changed.add("elapsed")
            self._notify(changed)

    __call__ = feed  # a JobProgress is itself an executor listener

    async def listen(self, events: Iterable[Event] | AsyncIterable[Event]) -> None:
        """Feed every event of ``events`` (sync or async), yielding to the event
        loop between them, until it ends."""
        if hasattr(events, "__aiter__"):
            async for event in events:  # type: ignore[union-attr]
                self.feed(event)
        else:
            for event in events:  # type: ignore[union-attr]
                self.feed(event)
                await asyncio.sleep(0)

    def request_cancel(self) -> None:
        with self._lock:
            self.cancel_requested = True
            self._notify({"cancel_requested"})

    def finish(self, status: str | None = None, elapsed: float | None = None) -> None:
        """Close the run: set a final status (default: from the events) and,
        when given, the elapsed seconds measured by the caller."""
        with self._lock:
            changed = set()
            if status is None and self.status == "running":
                status = "failed"  # the watcher stopped before the action ended
            if status is not None and status != self.status:
                if status not in JOB_STATUSES:
                    raise ValueError(f"finish(): status must be one of {JOB_STATUSES}, got {status!r}")
                self.status = status
                changed.add("status")
            if elapsed is not None:
                self.elapsed = float(elapsed)
                changed.add("elapsed")
            self._notify(changed)

    # ------------------------------------------------------------------ events

    def _set_tsets(self, stage: dict[str, Any], state: str) -> None:
        for label, ident in zip(stage["tsets"], stage["tset_ids"]):
            if label == _MATERIALIZED and ident in self.tset_status:
                continue  # data made by an earlier action: its status stands
            if label == _MATERIALIZED and state == "failed":
                continue
            self.tset_status[ident] = state

    def _on_action_started(self, event: ActionStarted) -> Iterable[str]:
        action = event.action
        if self._started is None:
            self._started = event.time
        self.cancel_requested = False  # a cancel ends one action (the JobMaster's rule)
        self._actions[action] = "running"
        for summary in event.stages:
            stage = {
                "action": action, "action_kind": event.action_kind,
                "index": summary.index, "label": summary.label,
                "tset_id": summary.tset_id, "output": summary.output,
                "tsets": [t[0] for t in summary.tsets], "tset_ids": [t[1] for t in summary.tsets],
                "tasks": summary.parallelism, "done": 0, "records_in": 0,
                "records_out": 0, "seconds": 0.0, "state": "pending",
                "checkpointed": 0, "recovered": 0,
            }
            stage["names"] = self._stage_names(stage)
            self._stages[(action, stage["index"])] = stage
            self._set_tsets(stage, "pending")
        self.status = "running"
        return ("status", "stages", "tset_status", "cancel_requested")

    def _on_action_ended(self, event: ActionEnded) -> Iterable[str]:
        action = event.action
        state = event.state
        self._actions[action] = state
        if state in ("failed", "cancelled"):
            unfinished = [s for (a, _), s in sorted(self._stages.items())
                          if a == action and s["state"] != "done"]
            if unfinished and not any(s["state"] == "failed" for s in unfinished):
                running = [s for s in unfinished if s["state"] == "running"] or unfinished
                running[0]["state"] = "failed"
                self._set_tsets(running[0], "failed")
            cancelled = state == "cancelled" or self.cancel_requested or any(
                "cancelled" in e["message"] for e in self.errors if e.get("action") == action)
            self.status = "cancelled" if cancelled else "failed"
        elif "running" not in self._actions.values():
            self.status = "done" if self.status == "running" else self.status
        return ("status", "stages", "tset_status")

    def _on_master_rebuilt(self, event: JobMasterRebuilt) -> Iterable[str]:
        """The running actions died with their JobMaster: their unfinished stages
        failed, and the job runs on (the action runs again on the new JobMaster,
        whose own events end it)."""
        for action, state in self._actions.items():
            if state != "running":
                continue
            self._actions[action] = "lost"
            for (owner, _), stage in self._stages.items():
                if owner == action and stage["state"] != "done":
                    stage["state"] = "failed"
        return ("stages",)

    def _on_stage(self, event: StageSubmitted) -> Iterable[str]:
        stage = self._stages.get((event.action, event.stage))
        if stage is None:
            return ()
        stage["tasks"] = event.tasks
        if stage["state"] == "pending":
            stage["state"] = "running"
            self._set_tsets(stage, "running")
        return ("stages", "tset_status")

    def _on_task(self, event: TaskFinished) -> Iterable[str]:
        stage = self._stages.get((event.action, event.stage))
        if stage is None:
            return ()
        stage["done"] += 1
        stage["recovered"] += bool(event.recovered)
        stage["records_in"] += int(event.records_in)
        stage["records_out"] += int(event.records_out)
        stage["seconds"] += float(event.seconds)
        if stage["done"] >= stage["tasks"] and stage["state"] != "failed":
            stage["state"] = "done"
            self._set_tsets(stage, "done")
        elif stage["state"] == "pending":
            stage["state"] = "running"
            self._set_tsets(stage, "running")
        return ("stages", "tset_status")

    def _on_task_checkpoint(self, event: TaskCheckpointed) -> Iterable[str]:
        stage = self._stages.get((event.action, event.stage))
        if stage is None:
            return ()
        stage["checkpointed"] += 1
        return ("stages",)

    def _on_output(self, event: OutputPrinted) -> Iterable[str]:
        lines = [str(line) for line in event.lines]
        overflow = len(self.output) + len(lines) - (self.output.maxlen or 0)
        if overflow > 0:
            self.output_dropped += overflow
        self.output.extend(lines)
        return ("output", "output_dropped") if overflow > 0 else ("output",)

    def _on_error(self, event: ErrorRaised) -> Iterable[str]:
        message = str(event.message)
        error = {"action": event.action, "message": message,
                 "summary": _summary(message), "tset": event.tset,
                 "tset_id": event.tset_id, "partition": event.partition,
                 "worker": event.worker, "traceback": event.traceback or ""}
        self.errors.append(error)
        changed = ["errors"]
        ident, label = event.tset_id, event.tset
        for (action, _), stage in sorted(self._stages.items()):
            if action != event.action or stage["state"] == "done":
                continue
            if (ident and ident in stage["tset_ids"]) or (label and label in stage["tsets"]):
                stage["state"] = "failed"
                self._set_tsets(stage, "failed")
                changed += ["stages", "tset_status"]
                break
        return changed

    def _on_checkpoint(self, event: CheckpointCommitted) -> Iterable[str]:
        self.checkpoints.append({**_fields(event), "name": self.names.get(event.tset_id)})
        return ("checkpoints",)

    def _on_restored(self, event: TSetRestored) -> Iterable[str]:
        ident = event.tset_id
        # what was found in memory has no version or size: those are left out
        self.restored.append({k: v for k, v in _fields(event).items() if v is not None}
                             | {"name": self.names.get(ident)})
        self.tset_status[ident] = "restored"
        if self.status == "idle":
            self.status = "done"
        return ("restored", "tset_status", "status")

    def _on_workers(self, event: WorkersStarted) -> Iterable[str]:
        self.workers = int(event.count)
        return ("workers",)


#: Which handler folds which kind of event; kinds not listed change nothing shown.
_HANDLERS: dict[type[Event], Callable[[JobProgress, Any], Iterable[str]]] = {
    ActionStarted: JobProgress._on_action_started,
    ActionEnded: JobProgress._on_action_ended,
    JobMasterRebuilt: JobProgress._on_master_rebuilt,
    StageSubmitted: JobProgress._on_stage,
    TaskFinished: JobProgress._on_task,
    TaskCheckpointed: JobProgress._on_task_checkpoint,
    OutputPrinted: JobProgress._on_output,
    ErrorRaised: JobProgress._on_error,
    CheckpointCommitted: JobProgress._on_checkpoint,
    TSetRestored: JobProgress._on_restored,
    WorkersStarted: JobProgress._on_workers,
}


def _fields(event: Event) -> dict[str, Any]:
    """An event's own fields (not ``seq`` and ``time``), as the state keeps them."""
    return {k: v for k, v in event.to_dict().items() if k not in ("kind", "seq", "time")}


def _summary(message: str) -> str:
    """The first line of an error message."""
    return message.strip().splitlines()[0] if message.strip() else ""


# --------------------------------------------------------------------------- HTML

#: The colours of JupyterLab's light theme that the live widget's bar styles use
#: (``info``, ``success``, ``danger``, ``warning``), so the saved copy looks the same.
_STATUS_COLORS = {"idle": "#757575", "running": "#0097a7", "done": "#388e3c", "failed": "#d32f2f",
                  "cancelled": "#f57c00", "pending": "#9e9e9e"}


def _fmt_count(n: int) -> str:
    return f"{n:,}"


def stage_caption(stage: dict[str, Any]) -> str:
    """``#1 persist: source_x → two_computes`` (the user's names where known).

    >>> stage_caption({"action": 1, "action_kind": "persist", "label": "compute",
    ...                "tsets": ["source", "compute"], "names": ["source_x", "compute"]})
    '#1 persist: source_x → compute'
    """
    shown = stage.get("names") or stage["tsets"]
    # a fused chain names a variable once (``src → map → map`` bound to one name), and
    # a link is not named again before its result (``reduce → reduce result``)
    deduped = [n for i, n in enumerate(shown) if (i == 0 or n != shown[i - 1])
               and not (i + 1 < len(shown) and shown[i + 1].startswith(n + " "))]
    tsets = " \u2192 ".join(deduped) or stage["label"]
    return f"#{stage['action']} {stage['action_kind']}: {tsets}"


def stage_numbers(stage: dict[str, Any]) -> str:
    """``4/4 tasks · 40,000 in · 40,000 out``, and the tasks checkpointed and
    recovered from task checkpoints, if any (``· 3 checkpointed · 1 recovered``)."""
    saved = "".join(f" \u00b7 {stage[k]} {k}" for k in ("checkpointed", "recovered")
                    if stage.get(k))
    return (f"{stage['done']}/{stage['tasks']} tasks \u00b7 {_fmt_count(stage['records_in'])} in "
            f"\u00b7 {_fmt_count(stage['records_out'])} out{saved}")


def render_header(state: dict[str, Any]) -> str:
    e = html.escape
    color = _STATUS_COLORS.get(state["status"], "#777")
    workers = state["workers"]
    known = f" &middot; {workers} worker{'s' if workers != 1 else ''}" if workers else ""
    return (f"<div class='twister-nb-header'><b>{e(state['job_name'] or 'job')}</b> "
            f"<code>{e(state['job_id'])}</code> &middot; "
            f"<span style='color:{color};font-weight:bold'>{e(state['status'])}</span> &middot; "
            f"{state['elapsed']:.2f} s{known}{_log_line(state)}</div>")


def _log_line(state: dict[str, Any]) -> str:
    """Where Ray's own messages went (they are not shown in the cell)."""
    path = state.get("log_path")
    if not path:
        return ""
    return (f"<div class='twister-nb-log' style='font-size:smaller;color:#757575'>Ray's "
            f"messages: <span style='font-family:monospace'>{html.escape(path)}</span></div>")


def render_errors(state: dict[str, Any]) -> str:
    e = html.escape
    parts = []
    for err in state["errors"]:
        where = ""
        if err.get("tset") and repr(err["tset"]) not in err["summary"]:
            # a user function's message already says where; others may not
            where = ", ".join([f"TSet {err['tset']!r}"] + [
                f"{k} {err[k]}" for k in ("partition", "worker") if err.get(k) is not None]) + ": "
        detail = err["message"] + (("\n\n" + err["traceback"]) if err.get("traceback") else "")
        parts.append(
            f"<details class='twister-nb-error' style='color:#d62728'><summary>"
            f"{e(where)}{e(err['summary'])}</summary>"
            f"<pre>{e(detail)}</pre></details>")
    return "".join(parts)


def render_output(state: dict[str, Any]) -> str:
    if not state["output"]:
        return ""
    dropped = state["output_dropped"]
    note = f"<div><em>{dropped} earlier lines not shown</em></div>" if dropped else ""
    lines = state["output"]
    text = html.escape("\n".join(lines))
    return (f"<details class='twister-nb-output'><summary>worker output ({len(lines)} "
            f"line{'s' if len(lines) != 1 else ''})</summary>{note}"
            f"<pre style='max-height:12em;overflow-y:auto;margin:0'>{text}</pre></details>")


def render_html(state: dict[str, Any]) -> str:
    """The whole dashboard as static HTML, from :meth:`JobProgress.snapshot` (or
    the widget's traits)."""
    e = html.escape
    rows = []
    for stage in state["stages"]:
        color = _STATUS_COLORS.get(stage["state"], "#777")
        total = max(1, stage["tasks"])
        width = 100 * min(stage["done"], total) / total
        bar_color = _STATUS_COLORS.get("running" if stage["state"] == "pending" else stage["state"],
                                       "#757575")
        rows.append(
            f"<tr><td>{e(stage_caption(stage))}</td>"
            f"<td><div class='twister-nb-bar' style='width:10em;height:0.9em;background:#eee'>"
            f"<div style='width:{width:.0f}%;height:100%;background:{bar_color}'></div></div></td>"
            f"<td>{e(stage_numbers(stage))}</td>"
            f"<td style='color:{color}'>{e(stage['state'])}</td></tr>")
    table = f"<table class='twister-nb-stages'>{''.join(rows)}</table>" if rows else ""
    return (f"<div class='twister-nb-dashboard'>{render_header(state)}{table}"
            f"{render_materialized(state)}{render_errors(state)}{render_output(state)}</div>")


def _fmt_bytes(n: Any) -> str:
    """``1536`` -> ``1.5 KiB``.

    >>> _fmt_bytes(1536), _fmt_bytes(10)
    ('1.5 KiB', '10 B')
    """
    size = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover


def render_materialized(state: dict[str, Any]) -> str:
    """Lines for the checkpoints written and the data found again."""
    e = html.escape
    lines = []
    for cp in state["checkpoints"]:
        lines.append(f"persisted {cp.get('name') or cp.get('label') or cp.get('tset_id')} version "
                     f"{cp.get('version')}: {_fmt_bytes(cp.get('bytes'))} in "
                     f"{float(cp.get('seconds') or 0):.2f} s")
    for r in state["restored"]:
        where = "the store" if r.get("storage") == "store" else "the workers' memory"
        version = f" version {r['version']}" if r.get("version") is not None else ""
        lines.append(f"restored {r.get('name') or r.get('label') or r.get('tset_id')}{version} "
                     f"from {where}: no recompute")
    return "".join(f"<div class='twister-nb-materialized'>{e(line)}</div>" for line in lines)
