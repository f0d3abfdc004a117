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
import time
from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

from twister_nb.events import (ActionEnded, ActionStarted, CheckpointCommitted, ErrorRaised,
                               Event, JobMasterRebuilt, OutputPrinted, StageSubmitted,
                               StartupStep, TaskCheckpointed, TaskCount, TaskFinished,
                               TasksProgressed, TSetRestored, WorkersStarted)

__all__ = ["JOB_STATUSES", "JobProgress", "render_html"]

JOB_STATUSES = ("idle", "starting", "running", "done", "failed", "cancelled")
FIELDS = ("job_id", "job_name", "status", "elapsed", "workers", "stages", "errors", "output",
          "output_dropped", "tset_status", "checkpoints", "restored", "cancel_requested",
          "log_path", "startup", "kernel_gone")
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
        #: The start-up steps seen (step, state, seconds), in order
        self.startup: list[dict[str, Any]] = []
        #: Set when the kernel that fed this state is gone (a reopened notebook)
        self.kernel_gone = False
        self._stages: dict[tuple[int, int], dict[str, Any]] = {}
        self._actions: dict[int, str] = {}  # action number -> running/done/failed
        self._started: float | None = None
        #: Per stage: the running tasks' last counters, and the finished tasks' totals
        self._live: dict[tuple[int, int], dict[int, TaskCount]] = {}
        self._finished_in_out: dict[tuple[int, int], list[int]] = {}
        self._finished_parts: dict[tuple[int, int], set[int]] = {}

    def __repr__(self) -> str:
        return f"JobProgress(job_id={self.job_id!r}, status={self.status!r})"

    # ------------------------------------------------------------------ reading

    @property
    def stages(self) -> list[dict[str, Any]]:
        """One dict per stage of every action seen, in order (copies)."""
        return [dict(s) for _, s in sorted(self._stages.items())]

    def task_notes(self) -> dict[str, str]:
        """TSet ID -> what the graph adds to its node: how many of its stage's
        tasks were checkpointed and recovered (the newest action that ran it),
        e.g. ``3/4 checkpointed · 1 recovered``; TSets with neither are left out."""
        with self._lock:
            notes = {}
            for _, stage in sorted(self._stages.items()):
                note = task_checkpoint_note(stage)
                if note:
                    notes[stage["tset_id"]] = note
                else:
                    notes.pop(stage["tset_id"], None)
            return notes

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

    def set_job(self, job_id: str, job_name: str) -> None:
        """Name the job once it exists (a dashboard shown while it starts has none yet)."""
        with self._lock:
            self.job_id, self.job_name = job_id, job_name
            self._notify({"job_id", "job_name"})

    def set_kernel_gone(self) -> None:
        """The kernel that fed this state is leaving: the state is the last one."""
        with self._lock:
            self.kernel_gone = True
            self._notify({"kernel_gone"})

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

    def tick(self, now: float | None = None) -> None:
        """Move the clock on while an action runs (the dashboard calls it about
        twice a second, so the elapsed time ticks between events)."""
        with self._lock:
            if self._started is None or self.status != "running":
                return
            elapsed = max(self.elapsed, (time.time() if now is None else now) - self._started)
            if elapsed - self.elapsed >= 0.05:
                self.elapsed = elapsed
                self._notify({"elapsed"})

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
                "tasks": summary.parallelism, "done": 0, "running": 0, "records_in": 0,
                "records_out": 0, "seconds": 0.0, "rate": 0.0, "state": "pending",
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
            if cancelled:
                # the status says it; the cell's own error says it once more, not the list
                self.errors = [e for e in self.errors if not (
                    e.get("action") == action and not e.get("tset")
                    and "cancelled" in e["message"])]
        elif "running" not in self._actions.values():
            self.status = "done" if self.status == "running" else self.status
        for (a, _), stage in self._stages.items():
            if a == action:
                stage["running"] = 0
                if state == "done" and stage["state"] == "checkpointing":
                    stage["state"] = "done"
                    self._set_tsets(stage, "done")
        return ("status", "stages", "tset_status", "errors")

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
        stage["submitted"] = event.time
        if stage["state"] == "pending":
            stage["state"] = "running"
            self._set_tsets(stage, "running")
        return ("stages", "tset_status")

    def _on_task(self, event: TaskFinished) -> Iterable[str]:
        stage = self._stages.get((event.action, event.stage))
        if stage is None:
            return ()
        key = (event.action, event.stage)
        stage["done"] += 1
        stage["recovered"] += bool(event.recovered)
        self._live.get(key, {}).pop(event.partition, None)
        self._finished_parts.setdefault(key, set()).add(event.partition)
        finished = self._finished_in_out.setdefault(key, [0, 0])
        finished[0] += int(event.records_in)
        finished[1] += int(event.records_out)
        stage["seconds"] += float(event.seconds)
        self._count(key, stage, event.time)
        if stage["done"] >= stage["tasks"] and stage["state"] not in ("failed", "done"):
            # a persist's last stage is checkpointing until its manifest is committed
            state = "checkpointing" if stage["output"] == "persist" else "done"
            stage["state"] = state
            self._set_tsets(stage, state)
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

    def _count(self, key: tuple[int, int], stage: dict[str, Any], when: float) -> None:
        """A stage's records: its finished tasks' and its running tasks' so far,
        and the rate since it was submitted."""
        live = self._live.get(key, {})
        finished = self._finished_in_out.get(key, [0, 0])
        stage["records_in"] = finished[0] + sum(t.records_in for t in live.values())
        stage["records_out"] = finished[1] + sum(t.records_out for t in live.values())
        stage["running"] = len(live)
        since = stage.get("submitted")
        if since is not None and when > since:
            # what the stage made per second (what it read, while it has made nothing:
            # a task whose input is a whole partition reads it at once)
            stage["rate"] = (stage["records_out"] or stage["records_in"]) / (when - since)

    def _on_progress(self, event: TasksProgressed) -> Iterable[str]:
        changed = False
        for count in event.tasks:
            key = (event.action, count.stage)
            stage = self._stages.get(key)
            if (stage is None or stage["state"] in ("done", "failed")
                    or count.partition in self._finished_parts.get(key, ())):
                continue  # a report that was under way when its task ended
            self._live.setdefault(key, {})[count.partition] = count
            self._count(key, stage, event.time)
            state = "checkpointing" if count.phase == "writing" else "running"
            if stage["state"] != state and stage["state"] != "checkpointing":
                stage["state"] = state
                self._set_tsets(stage, state)
            changed = True
        return ("stages", "tset_status") if changed else ()

    def _on_startup(self, event: StartupStep) -> Iterable[str]:
        step = {"step": event.step, "state": event.state, "seconds": float(event.seconds)}
        for i, known in enumerate(self.startup):
            if known["step"] == event.step and known["state"] == "running":
                self.startup[i] = step
                break
        else:
            self.startup.append(step)
        starting = any(s["state"] == "running" for s in self.startup)
        if starting and self.status == "idle":
            self.status = "starting"
        elif not starting and self.status == "starting":
            self.status = "idle"
        return ("startup", "status")

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
        for stage in self._stages.values():
            if stage["state"] == "checkpointing" and stage["tset_id"] == event.tset_id:
                stage["state"] = "done"
                self._set_tsets(stage, "done")
        return ("checkpoints", "stages", "tset_status")

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
    TasksProgressed: JobProgress._on_progress,
    StartupStep: JobProgress._on_startup,
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
                  "cancelled": "#f57c00", "pending": "#9e9e9e", "starting": "#0097a7",
                  "checkpointing": "#7b1fa2"}


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
    """``1/4 tasks · 2 running · 25,000 in · 12,500 out · 51,000 rec/s``: the
    records of the running tasks count as far as they got; the rate is of the
    records out since the stage was submitted; then the tasks checkpointed and
    recovered from task checkpoints, if any (``· 3 checkpointed · 1 recovered``).

    >>> stage_numbers({"done": 4, "tasks": 4, "records_in": 40000, "records_out": 40000})
    '4/4 tasks · 40,000 in · 40,000 out'
    >>> stage_numbers({"done": 4, "tasks": 4, "records_in": 0, "records_out": 40000,
    ...                "recovered": 4})
    '4/4 tasks · 0 in · 40,000 out · 4 recovered'
    >>> stage_numbers({"done": 1, "tasks": 4, "running": 2, "records_in": 25000,
    ...                "records_out": 12500, "rate": 51234.5})
    '1/4 tasks · 2 running · 25,000 in · 12,500 out · 51,234 rec/s'
    """
    running = stage.get("running") or 0
    rate = stage.get("rate") or 0.0
    return (f"{stage['done']}/{stage['tasks']} tasks"
            + (f" \u00b7 {running} running" if running else "")
            + f" \u00b7 {_fmt_count(stage['records_in'])} in"
            f" \u00b7 {_fmt_count(stage['records_out'])} out"
            + (f" \u00b7 {_fmt_count(int(rate))} rec/s" if rate >= 1 else "")
            # tasks saved as task checkpoints, or recovered from them (issue 12)
            + "".join(f" \u00b7 {stage[k]} {k}" for k in ("checkpointed", "recovered")
                      if stage.get(k)))


def task_checkpoint_note(stage: dict[str, Any]) -> str:
    """A stage's task checkpoints, as its TSet's node in the graph says them.

    >>> task_checkpoint_note({"tasks": 4, "checkpointed": 3, "recovered": 1})
    '3/4 checkpointed · 1/4 recovered'
    >>> task_checkpoint_note({"tasks": 4, "checkpointed": 0, "recovered": 0})
    ''
    """
    return " \u00b7 ".join(f"{stage[k]}/{stage['tasks']} {k}"
                            for k in ("checkpointed", "recovered") if stage.get(k))


def startup_line(step: dict[str, Any]) -> str:
    """``starting the local Ray head: 4.52 s`` (``...`` while it runs).

    >>> startup_line({"step": "starting 2 workers", "state": "done", "seconds": 1.234})
    'starting 2 workers: 1.23 s'
    >>> startup_line({"step": "starting the JobMaster", "state": "running", "seconds": 0})
    'starting the JobMaster ...'
    """
    if step["state"] == "running":
        return f"{step['step']} ..."
    said = "" if step["state"] == "done" else f" ({step['state']})"
    return f"{step['step']}: {float(step['seconds']):.2f} s{said}"


def render_startup(state: dict[str, Any]) -> str:
    """The start-up steps, one line each, with their times."""
    steps = state.get("startup") or []
    if not steps:
        return ""
    line = " \u00b7 ".join(html.escape(startup_line(s)) for s in steps)
    return (f"<div class='twister-nb-startup' style='font-size:smaller;color:#616161'>"
            f"{line}</div>")


def render_header(state: dict[str, Any]) -> str:
    e = html.escape
    color = _STATUS_COLORS.get(state["status"], "#777")
    workers = state["workers"]
    known = f" &middot; {workers} worker{'s' if workers != 1 else ''}" if workers else ""
    status = state["status"]
    gone = ""
    if state.get("kernel_gone"):
        # its kernel is gone: say so rather than claim a live run
        if status in ("running", "starting"):
            status = "unknown"
            color = "#757575"
        gone = (" &middot; <span class='twister-nb-kernel-gone' style='color:#757575'>the kernel "
                "that ran this cell is gone; this is its last state (%twister2 attach JOB_ID "
                "follows the job)</span>")
    clock = f" &middot; {state['elapsed']:.2f} s"
    if status == "idle" and not state["stages"] and state.get("startup"):
        status, clock = "ready", ""  # a job started by a cell that ran no action yet
    return (f"<div class='twister-nb-header'><b>{e(state['job_name'] or 'job')}</b> "
            f"<code>{e(state['job_id'])}</code> &middot; "
            f"<span style='color:{color};font-weight:bold'>{e(status)}</span>"
            f"{clock}{known}{gone}{_log_line(state)}</div>")


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
    return (f"<div class='twister-nb-dashboard'>{render_header(state)}{render_startup(state)}"
            f"{table}"
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
