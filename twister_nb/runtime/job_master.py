"""JobMaster: one detached, named Ray actor per job, the face of its parts.

The kernel (or the CLI) submits a :class:`~twister_nb.plan.physical.Plan` and
watches. The JobMaster itself only keeps the order of actions (one at a time,
their outcomes for a driver that attaches mid-action, the job's status and
catalog) and delegates the rest to plain parts, each with its own reason to
change and its own tests:

* :class:`~twister_nb.runtime.job_record.JobRecord` -- the job record in the
  store (written coalesced by a thread; nothing restores from it) and the
  job's store lease;
* :class:`~twister_nb.runtime.event_log.EventLog` -- the events every watcher
  reads from its own cursor (the one place events are emitted);
* :class:`~twister_nb.runtime.drivers.DriverSeat` -- which driver owns the job;
* :class:`~twister_nb.runtime.scheduler.Scheduler` -- the workers, where
  partitions live, and running the stages;
* :class:`~twister_nb.checkpoint.manager.CheckpointManager` -- which
  checkpoint is restored, committed, retired or known damaged.

Data never passes through the JobMaster: it holds object refs only. Its public
methods are the actor's remote API (the driver's executor and the job
operations call them). A plain class, wrapped with ``ray.remote`` by
:func:`twister_nb.runtime.executor.new_master`.

Why this module is long: it is the actor's whole remote API, one documented
method each; the work is in the parts above.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from typing import Any

from twister_nb.checkpoint import on_sigterm
from twister_nb.checkpoint.manager import CheckpointManager
from twister_nb.checkpoint.policies import is_shipped, load_policy
from twister_nb.checkpoint.task_manager import TaskCheckpoints, stage_task_saves
from twister_nb.checkpoint.tasks import CommittedTasks, TaskSave, drop_task_checkpoints
from twister_nb.errors import (ActionCancelledError, CheckpointLostError, JobFailedError,
                               JobOwnedError, PartitionLostError, UserFunctionError)
from twister_nb.events import (ActionEnded, ActionStarted, CheckpointCommitted, DriverAttached,
                               DriverLeft, ErrorRaised, Event, OutputPrinted, StageSummary,
                               TaskCheckpointed, TSetReleased, TSetRestored, WorkersStarted)
from twister_nb.plan.physical import Plan, StagePlan, TaskOutput, task_output
from twister_nb.runtime.actor_heap import freeze_startup_objects
from twister_nb.runtime.drivers import DriverSeat
from twister_nb.runtime.event_log import EventLog
from twister_nb.runtime.job_record import LEASE_TTL, JobRecord
from twister_nb.runtime.scheduler import Scheduler, stage_outputs_of
from twister_nb.storage import StoreWriteError

__all__ = ["ACTOR_PREFIX", "LEASE_TTL", "JobMaster"]

ACTOR_PREFIX = "twister_nb.job."
#: Outcomes kept for drivers that attach mid-action (the newest actions').
_KEPT_RESULTS = 8
#: How often an action runs again because a task checkpoint it recovered was damaged.
_TASK_DAMAGE_RETRIES = 3


class JobMaster:
    """Drives one job: actions in order, over its record, events, drivers,
    scheduler and checkpoints."""

    def __init__(self, job_id: str | None, name: str = "", config: dict[str, Any] | None = None,
                 max_workers: int = 1, store: Any = None, program: dict[str, Any] | None = None,
                 cluster_address: str = "", actor_name: str = "") -> None:
        self._bind_lock = threading.Lock()
        #: Workers a pool's spare started before it had a job (see :meth:`prestart`).
        self._spares: list[Any] = []
        if job_id is None:  # a pool's spare: a job binds it later (bind)
            self.job_id, self.name, self.config, self.status = None, "", dict(config or {}), "spare"
            return
        self._open(job_id, name, dict(config or {}), max_workers, store, program,
                   cluster_address, actor_name or ACTOR_PREFIX + job_id)

    def _open(self, job_id: str, name: str, config: dict[str, Any], max_workers: int,
              store: Any, program: dict[str, Any] | None, cluster_address: str,
              actor_name: str) -> None:
        self.job_id = job_id
        self.name = name
        self.config = config
        self.created = time.time()
        self.status = "idle"
        self._log = EventLog()
        self._seat = DriverSeat(LEASE_TTL)
        self._scheduler = Scheduler(job_id, config, max_workers, store, self._emit, ACTOR_PREFIX)
        #: What this job restores, commits and retires (None: the job has no store).
        self._checkpoints = (None if store is None else
                             CheckpointManager(store, job_id, config, report=self._say))
        self._record = JobRecord(store, job_id, report=self._say)
        #: When finished tasks are checkpointed (COMPSs's policies; checked by the driver
        #: first). A custom module:Class policy comes from the driver (set_policy), by value.
        self._policy = load_policy(config if is_shipped(config) else {})
        #: Whether a worker told to leave saves the tasks it finished, policy or not
        #: (the job's config is fixed: read once, not on every action).
        self._on_sigterm = on_sigterm(config)
        #: The task saves of each cached TSet's partitions, for ``snapshot()``.
        self._cache_saves: dict[str, list[TaskSave]] = {}
        #: Fingerprints of the task checkpoints this job committed or recovered.
        self._saved: set[str] = set()
        #: The task checkpoints in the store, listed once, for every action to look up.
        self._committed_tasks = None if store is None else CommittedTasks(store, job_id)
        #: What a re-attached driver can get handles to: tset_id -> label, storage, ...
        self._catalog: dict[str, dict[str, Any]] = {}
        #: Outcomes of the latest actions, for a driver that attaches mid-action.
        self._results: dict[int, tuple[str, Any]] = {}
        self._running: dict[str, Any] | None = None
        #: The latest action: number, kind, label, state, error, and the token of
        #: the driver that started it (its outcome waits for a driver that left).
        self._last: dict[str, Any] | None = None
        self._run_lock = threading.Lock()
        self._actions = 0
        self._last_action_end = time.time()
        self._record.open(name, self.created, config, program, cluster_address,
                          actor=actor_name, view=self.info)
        idle_limit = float(config.get("twister2.job.idle_timeout") or 0)
        if idle_limit > 0:
            threading.Thread(target=self._stop_when_idle, args=(idle_limit,), name="idle",
                             daemon=True).start()
        freeze_startup_objects()  # its first calls pay no collection over them

    # ------------------------------------------------------------------ the pool's spare

    def prestart(self, workers: int) -> int:
        """A spare starts its workers before any job has it (the pool calls it
        once); how many it has."""
        from twister_nb.runtime.scheduler import WorkerSpread, start_workers
        import ray

        assert self.job_id is None, f"prestart of job {self.job_id!r}'s JobMaster"
        self._spares = start_workers(ray.get_runtime_context().current_actor, range(workers),
                                     self.config, WorkerSpread(None, 0.0), None, None).actors
        return len(self._spares)

    def bind(self, job_id: str, name: str, config: dict[str, Any], max_workers: int,
             store: Any, program: dict[str, Any] | None, cluster_address: str,
             actor_name: str) -> dict[str, Any]:
        """Make this spare the JobMaster of ``job_id`` (what the constructor does
        for a JobMaster started for its job), its prestarted workers the job's.
        Asked twice for the same job, it answers as it did; a spare serves one
        job only, so another job is refused."""
        with self._bind_lock:
            if self.job_id is None:
                pool_retries = self.config.get("runtime.max_task_retries")
                self._open(job_id, name, dict(config), max_workers, store, program,
                           cluster_address, actor_name)
                spares, self._spares = self._spares, []
                if config.get("runtime.max_task_retries") != pool_retries:
                    for worker in spares:  # started with other retries: of no use to this job
                        self._kill(worker)
                    spares = []
                self._scheduler.adopt(spares)
                self._record.publish()  # its workers
            elif self.job_id != job_id or self.status == "closed":
                raise JobFailedError(f"this pooled JobMaster served job {self.job_id!r} "
                                     f"({self.status}); it takes no other")
        return {"job_id": self.job_id, "workers": self._scheduler.workers}

    @staticmethod
    def _kill(actor: Any) -> None:
        import ray

        ray.kill(actor)

    def worker_binding(self) -> tuple[str, dict[str, Any], Any] | None:
        """What a restarted pool worker serves: ``(job_id, config, store)``, or
        None while this JobMaster is a spare."""
        if self.job_id is None:
            return None
        return self.job_id, dict(self.config), self._record.store

    # ------------------------------------------------------------------ idle limit

    def idle_for(self) -> float:
        """Seconds the job has had neither a live driver nor a running action."""
        if self._running is not None:
            return 0.0
        return min(self._seat.unattended_for(), time.time() - self._last_action_end)

    def _stop_when_idle(self, limit: float) -> None:
        """A job whose driver died keeps its workers (~480 MB) until someone
        attaches; past ``twister2.job.idle_timeout`` it writes its record
        (``stopped``, and why), frees its workers and lease, and ends itself.
        Its checkpoints stay: restart or attach it by ID later."""
        import ray

        while True:
            time.sleep(min(30.0, max(0.2, limit / 5)))
            if self.status == "closed":
                return
            idle = self.idle_for()
            if idle >= limit:
                break
        self._say(f"idle for {idle:.0f} s without a driver or a running action "
                  f"(twister2.job.idle_timeout: {limit:g}); stopping, its checkpoints kept")
        self._record.update(stopped_reason=f"idle for {idle:.0f} s without a driver "
                                           f"(twister2.job.idle_timeout: {limit:g} s)")
        self.shutdown(status="stopped")
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    # ------------------------------------------------------------------ record

    def flush_record(self, timeout: float | None = None) -> bool:
        """Wait until every change made so far to the job record is written (or
        failed to write, which is reported as an event). False on timeout.

        Call it before reading ``jobs/<id>/job.json`` of a live job that must be current.
        """
        return self._record.flush(timeout)

    # ------------------------------------------------------------------ drivers

    def attach(self, token: str, host: str, pid: int, force: bool = False) -> dict[str, Any]:
        """Make the calling driver the job's owner. Refused (``ok: False``, with the
        holder) while another driver that is still heartbeating owns it; else
        ``ok``, ``status``, ``cursor`` (where its events start) and ``persisted``:
        the TSets a ``persist()`` may restore (:meth:`restore`)."""
        holder = self._seat.take(token, host, pid, force)
        if holder is not None:
            return {"ok": False, "holder": holder}
        self._log.forget()
        self._emit(DriverAttached(host=host, pid=pid))
        cursor = self._log.end()
        if self._scheduler.workers:
            # Started before this driver came (a pool's spare has its workers when it is
            # bound; a re-attached kernel's job has them): it reads from ``cursor`` on,
            # so it learns how many here, as a job that starts them on its first action says.
            self._emit(WorkersStarted(count=self._scheduler.workers))
        self._record.publish()
        return {"ok": True, "status": self.status, "persisted": self._committed_tsets(),
                "cursor": cursor}

    def heartbeat(self, token: str) -> bool:
        """A driver says it is alive; False if another driver took over."""
        return self._seat.heartbeat(token)

    def detach(self, token: str, reason: str | None = None) -> None:
        """The driver ``token`` leaves the job (which goes on running). With a
        ``reason`` (``kernel restarted``), the record and the events say why, and
        which action it left running."""
        holder = self._seat.leave(token)  # once, even when asked twice at once
        if holder is not None and reason:
            action = None if self._running is None else self._running["action"]
            self._record.update(driver_left={"reason": reason, "host": holder["host"],
                                             "pid": holder["pid"], "at": time.time(),
                                             "action": action})
            self._emit(DriverLeft(host=holder["host"], pid=holder["pid"], reason=reason,
                                  action=action))
            going_on = f"; action #{action} goes on" if action is not None else ""
            self._say(f"the driver (pid {holder['pid']}) left: {reason}{going_on}")
        if holder is not None:
            self._record.publish()
        self._log.forget(token)

    # ------------------------------------------------------------------ events

    def _emit(self, event: Event) -> Event:
        return self._log.emit(event)

    def _say(self, line: str) -> None:
        """Tell the watcher something, as a ``[job-master]`` output line."""
        self._emit(OutputPrinted(lines=(f"[job-master] {line}",)))

    def events(self, cursor: int = 0, token: str | None = None) -> tuple[list[Event], int]:
        """Events from ``cursor`` on, and the cursor to ask with next time.

        A driver passes its ``token``: asking from ``cursor`` says it has seen every
        event before it, so :meth:`execute` returns it only the newer ones.
        """
        if token is not None and self._seat.held_by(token):
            self._log.ack(token, cursor)
        return self._log.since(cursor)

    def worker_output(self, lines: list[str]) -> None:
        """Lines a worker's user functions printed while a task runs."""
        self._emit(OutputPrinted(lines=tuple(lines)))

    def worker_restarted(self, index: int) -> None:
        """Ray restarted worker ``index`` after its process was lost: its watchers
        are told (Ray re-runs its tasks silently), and the store is listed again
        for task checkpoints (told to leave, it committed what it finished)."""
        if self._committed_tasks is not None:
            self._committed_tasks.forget()
        self._emit(OutputPrinted(lines=(
            f"[job] worker-{index} was lost and has been restarted: the tasks it was "
            "running run again, and a cached partition it held is made again when it is "
            "next used",)))

    def task_progress(self, key: str, partition: int, worker: int, records_in: int,
                      records_out: int, seconds: float, phase: str = "running") -> None:
        """A worker's counters of its running task (about every 0.25 s); the
        scheduler coalesces them into few ``TasksProgressed`` events."""
        self._scheduler.progress(key, partition, worker, records_in, records_out, seconds, phase)

    def info(self) -> dict[str, Any]:
        """The job's state now: status, workers, cached and persisted TSets, driver,
        and the running action (with ``since``, its first event's cursor, so a
        watcher such as the sidebar folds that action's progress alone). A
        pool's spare says only that (``job_id`` None, ``status`` ``spare``).

        It is also the live view the job record carries (published when
        actions start and end, drivers come and go, TSets are released, and
        with every lease renewal), which ``twister-nb jobs`` on this host reads
        instead of asking Ray: see :mod:`twister_nb.job_rows`."""
        if self.job_id is None:
            return {"job_id": None, "status": "spare", "workers": len(self._spares),
                    "pid": os.getpid()}
        return {"job_id": self.job_id, "name": self.name, "status": self.status,
                "created": self.created, "workers": self._scheduler.workers,
                "cached": self._scheduler.placement.cached(),
                "persisted": self._persisted(), "actions": self._actions,
                "last_action": self.last_action(), "running": self.running(),
                "error": self._record.get("error"),
                "pid": os.getpid(), "host": socket.gethostname(), "node": _node_id(),
                "driver": self._seat.holder()}

    # ------------------------------------------------------------------ reading

    def workers(self) -> list[Any]:
        """The job's Worker actors, worker ``i`` at index ``i``.

        Workers a job started are named ``<prefix><job_id>.worker-<i>``; those it
        took from the warm pool cannot be (Ray names an actor at its creation
        only), so this is how anyone finds worker ``i`` of a job: see
        :func:`twister_nb.runtime.jobs.job_workers`. A spare answers its own."""
        if self.job_id is None:
            return list(self._spares)
        return self._scheduler.worker_handles()

    def has(self, tset_id: str) -> bool:
        """Whether the workers hold the cached TSet ``tset_id``."""
        return self._scheduler.placement.holds(tset_id)

    def catalog(self) -> dict[str, dict[str, Any]]:
        """The cached and persisted TSets this job holds, for a re-attached driver.

        A restarted job (a new JobMaster) also offers the checkpoints its record
        lists, restored on the way (a pointer: sizes are checked, not data read)."""
        if self._checkpoints is not None and self._checkpoints.enabled:
            for tset_id in self._record.get("persisted", {}):
                if tset_id not in self._catalog:
                    try:
                        self._restore(tset_id)
                    except Exception as exc:  # noqa: BLE001 - listed without it, and said why
                        self._say(f"checkpoint {tset_id} cannot be restored: {exc}")
        return {k: dict(v) for k, v in self._catalog.items()}

    def running(self) -> dict[str, Any] | None:
        """The action running now (number, kind, label, start, and ``since``: the
        event cursor of its start, for a watcher that draws it from the start)."""
        return None if self._running is None else dict(self._running)

    def last_action(self) -> dict[str, Any] | None:
        """The latest action: number, kind, label, state (``running``, ``done``,
        ``failed``, ``cancelled``) and error, if any ran."""
        if self._last is None:
            return None
        return {k: v for k, v in self._last.items() if k != "token"}

    def unclaimed(self, token: str) -> dict[str, Any] | None:
        """The latest action, ended, with its outcome (``outcome``), when a driver
        other than ``token`` started it: what the kernel that replaced a
        restarted one waits for. Kept until the next action (or close)."""
        last = self._last
        if last is None or last["token"] == token or last["state"] == "running":
            return None
        outcome = self._results.get(last["action"])
        if outcome is None:
            return None
        return {**self.last_action(), "outcome": outcome}  # type: ignore[dict-item]

    def result(self, action: int, timeout: float | None = None) -> tuple[str, Any] | None:
        """The outcome of action ``action`` once it ends (None on timeout): what a
        driver that attached mid-action waits for."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while action not in self._results:
            if self._actions < action or (deadline is not None and time.monotonic() > deadline):
                return None
            time.sleep(0.05)
        return self._results[action]

    # ------------------------------------------------------------------ running

    def cancel(self) -> None:
        """Stop the running action: queued tasks are cancelled."""
        self._scheduler.cancel()

    def execute(self, plan: Plan, materialize_id: str | None = None,
                token: str | None = None, cursor: int | None = None) -> Any:
        """Run ``plan``; returns ``("ok", value)`` or ``("error", exception)``.

        The value is a list of object refs (one per partition) for ``collect``
        and ``partitions``, and None otherwise. A driver that another one took
        over from (``token`` is not the attached driver's) is refused.

        With ``cursor`` (the driver's event cursor when it submitted the plan),
        returns ``(outcome, events, next_cursor)``: the outcome and the events the
        driver has not seen yet, so it needs no extra call to drain them.
        """
        outcome = self._execute(plan, materialize_id, token)
        if cursor is None:
            return outcome
        return (outcome, *self._log.unseen(cursor, token))

    def _execute(self, plan: Plan, materialize_id: str | None,
                 token: str | None) -> tuple[str, Any]:
        if token is not None and not self._seat.held_by(token):
            holder = self._seat.holder() or {}
            return "error", JobOwnedError(
                f"job {self.job_id!r} is now attached to another process "
                f"(pid {holder.get('pid')} on {holder.get('host')}); attach again to use it")
        with self._run_lock:
            if materialize_id is not None and self._scheduler.placement.holds_all(
                    materialize_id, plan.final.parallelism):
                self._emit(TSetRestored(tset_id=materialize_id, storage="memory"))
                return "ok", None
            if plan.action == "persist" and self._restore(materialize_id) is not None:
                self._record.publish()  # its persisted TSets
                return "ok", None
            self._scheduler.reset_cancel()
            self._actions += 1
            self.status = "running"
            action = self._actions
            started = time.time()
            self._running = {"action": action, "kind": plan.action, "started": started,
                             "label": plan.final.label, "since": self._log.end()}
            self._last = {"action": action, "kind": plan.action, "label": plan.final.label,
                          "state": "running", "error": None, "token": token}
            self._record.publish()
            outcome = self._run_action(plan, materialize_id, action, started)
            self._running = None
            status, value = outcome
            self._last.update(state="done" if status == "ok" else
                              "cancelled" if isinstance(value, ActionCancelledError) else "failed",
                              error=None if status == "ok" else str(value))
            self._last_action_end = time.time()
            self._record.publish()
            self._results[action] = outcome
            for old in [a for a in self._results if a <= action - _KEPT_RESULTS]:
                del self._results[old]
            return outcome

    def _run_action(self, plan: Plan, materialize_id: str | None, action: int,
                    started: float) -> tuple[str, Any]:
        """Run one action and turn its end into events, status and an outcome."""
        self._emit(ActionStarted(action=action, action_kind=plan.action,
                                 stages=tuple(_stage_summary(s) for s in plan.stages),
                                 graph=plan.graph))
        try:
            value = self._submit(plan, materialize_id, action)
        except CheckpointLostError as exc:
            # Not a failure of the job: the driver recomputes the TSet and runs
            # the action again. This version is never offered again.
            if self._checkpoints is not None:
                self._checkpoints.mark_damaged(exc.tset_id, exc.reason)
            self._catalog.pop(exc.tset_id, None)
            self.status = "idle"
            self._say(f"{exc.reason}; persisted TSet {exc.label!r} will be recomputed")
            self._emit(ActionEnded(action=action, state="failed", seconds=time.time() - started))
            return "error", exc
        except PartitionLostError as exc:
            # Not a failure of the job either: a worker was lost with a cached
            # partition; the driver caches the TSet again and reruns the action.
            label = self._catalog.pop(exc.tset_id, {}).get("label", exc.label)
            gone = self._scheduler.forget_lost(exc.tset_id) or [exc.partition]
            self.status = "idle"
            lost = PartitionLostError(exc.tset_id, label, exc.partition, exc.reason)
            self._say(f"cached TSet {label!r} lost partition{'s' * (len(gone) > 1)} "
                      f"{', '.join(map(str, gone))} ({exc.reason}); "
                      f"{'they' if len(gone) > 1 else 'it'} will be recomputed")
            self._emit(ActionEnded(action=action, state="failed", seconds=time.time() - started))
            return "error", lost
        except UserFunctionError as exc:
            self.status = "failed"
            self._record.update(status="failed", error=str(exc))
            self._emit(ErrorRaised(action=action, message=str(exc), tset=exc.tset,
                                   tset_id=exc.tset_id, partition=exc.partition,
                                   worker=exc.worker))
            self._emit(ActionEnded(action=action, state="failed", seconds=time.time() - started))
            return "error", exc
        except ActionCancelledError:
            self.status = "idle"
            self._record.update(status="cancelled", error=None)
            err = ActionCancelledError(f"the action of job {self.job_id!r} was cancelled")
            self._emit(ErrorRaised(action=action, message=str(err)))
            self._emit(ActionEnded(action=action, state="cancelled",
                                   seconds=time.time() - started))
            return "error", err
        except Exception as exc:  # noqa: BLE001 - reported to the watcher, not lost
            self.status = "failed"
            self._record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            what = (f"persist() of {plan.final.label!r}" if isinstance(exc, StoreWriteError)
                    else f"job {self.job_id!r}")
            err = (exc if type(exc) is JobFailedError  # says what failed already
                   else JobFailedError(f"{what} failed: {type(exc).__name__}: {exc}"))
            self._emit(ErrorRaised(action=action, message=str(err),
                                   traceback=traceback.format_exc()))
            self._emit(ActionEnded(action=action, state="failed", seconds=time.time() - started))
            return "error", err
        self.status = "idle"
        if self._record.get("status") != "running" or self._record.get("error") is not None:
            self._record.update(status="running", error=None)  # a success clears a failure
        self._emit(ActionEnded(action=action, state="done", seconds=time.time() - started))
        return "ok", value

    def _submit(self, plan: Plan, materialize_id: str | None, action: int) -> Any:
        """Run the plan's stages, then keep what the action made (cache, persist)."""
        version = None
        if plan.action == "persist":
            if self._checkpoints is None:
                raise JobFailedError("persist() needs a checkpoint store; this job has none")
            version = self._checkpoints.next_version(materialize_id)
        final = plan.final

        def output_for(stage: StagePlan) -> TaskOutput:
            return task_output(stage, plan.action, stage is final, materialize_id, version)

        kept = self._kept_partitions(plan, materialize_id)
        tasks = TaskCheckpoints(self._checkpoints, self._policy, plan, action, self._on_sigterm,
                                self._committed_tasks)
        try:
            for attempt in range(_TASK_DAMAGE_RETRIES + 1):
                tasks.begin()
                for line in tasks.recovered_lines():
                    self._say(line)
                try:
                    outputs, results = self._scheduler.run(plan, action, output_for,
                                                           self._checkpoint, tasks, kept)
                    break
                except CheckpointLostError as exc:  # a damaged task checkpoint: run that task
                    if attempt == _TASK_DAMAGE_RETRIES or not tasks.damaged(exc.tset_id,
                                                                             exc.reason):
                        raise
                    self._say(f"a task checkpoint of {exc.label!r} is damaged ({exc.reason}); "
                              "the action runs again and runs that task")
        except BaseException:
            if version is not None:  # what the failed attempt wrote takes no space
                self._checkpoints.discard(materialize_id, version)
            raise
        finally:
            self._tasks_done(tasks)
        if plan.action == "cache" and materialize_id is not None:
            self._scheduler.hold(materialize_id, final.parallelism)
            self._cache_saves[materialize_id] = stage_task_saves(final)
            self._catalog[materialize_id] = {"label": final.label, "storage": "memory",
                                              "parallelism": final.parallelism,
                                              "keyed": plan.keyed}
        if plan.action == "persist":
            self._commit(materialize_id, version, final, results[final.index], action, plan.keyed)
        if plan.action in ("collect", "partitions"):
            return stage_outputs_of(outputs, final)
        return None

    def _kept_partitions(self, plan: Plan, materialize_id: str | None) -> set[int]:
        """A cache made again after a worker was lost: the partitions the other
        workers still hold are kept, and only the lost ones are computed, when
        the cache is one stage (its tasks need nothing but their own inputs).
        Made by more stages, it is made again whole (an exchange feeds every task)."""
        placement = self._scheduler.placement
        if plan.action != "cache" or materialize_id is None or not placement.holds(materialize_id):
            return set()
        if len(plan.stages) > 1:
            self._scheduler.release(materialize_id)
            return set()
        kept = placement.partitions(materialize_id)
        if kept and len(kept) < plan.final.parallelism:
            self._say(f"{plan.final.label!r}: {plan.final.parallelism - len(kept)} of "
                      f"{plan.final.parallelism} partitions made again; the others were kept")
        return kept

    # ------------------------------------------------------------------ task checkpoints

    def _tasks_done(self, tasks: TaskCheckpoints) -> None:
        """An action ended: its per-stage task counts go to the latest action (``info()``,
        ``twister-nb status``) and the record; a line says what was checkpointed."""
        self._saved.update(tasks.saved_fingerprints)
        counts = tasks.stage_counts()
        if self._last is not None:
            self._last["tasks"] = counts
        if any(c["checkpointed"] or c["recovered"] for c in counts):
            self._record.update(task_checkpoints=counts)
        for c in counts:
            if c["checkpointed"]:
                self._say(f"stage {c['stage']} {c['label']!r}: {c['checkpointed']} of "
                          f"{c['tasks']} tasks checkpointed")

    def set_policy(self, config: dict[str, Any], policy: bytes | None = None) -> dict[str, Any]:
        """Use the checkpoint policy ``config`` names from the next task on (the
        driver checked it); its description. A custom policy comes made, as
        ``policy`` (pickled with its module by value)."""
        import pickle

        self._policy = load_policy(config) if policy is None else pickle.loads(policy)
        self._say(f"checkpoint policy: {self._policy.name} {self._policy.params or ''}".rstrip())
        return self._policy.describe()

    def snapshot(self) -> dict[str, Any]:
        """``env.snapshot()`` (COMPSs's ``compss_snapshot()``): commit the outputs of
        every finished task not saved yet -- the running action's finished tasks and
        the partitions of every cached TSet. Returns what was saved: ``tsets``
        (labels), ``partitions``, ``bytes``."""
        if self._checkpoints is None:
            raise JobFailedError("snapshot() needs a checkpoint store; this job has none")
        saved = list(self._scheduler.snapshot())
        for tset_id, saves in list(self._cache_saves.items()):
            held = self._scheduler.placement.partitions(tset_id)
            todo = [s for s in saves if s.fingerprint not in self._saved and s.partition in held]
            for info in self._scheduler.save_cached(tset_id, todo):
                self._saved.add(info["fingerprint"])
                self._emit(TaskCheckpointed(action=0, stage=info["stage"],
                                            partition=info["partition"], label=info["label"],
                                            bytes=info["bytes"], seconds=info["seconds"]))
                saved.append(info)
        self._saved.update(info["fingerprint"] for info in saved)
        if self._committed_tasks is not None:  # the cached partitions' (the others are in)
            self._committed_tasks.add(info["fingerprint"] for info in saved)
        labels = sorted({info["label"] for info in saved})
        total = sum(info["bytes"] for info in saved)
        if saved:
            self._say(f"snapshot(): {len(saved)} partitions of {', '.join(map(repr, labels))} "
                      f"checkpointed ({total:,} bytes)")
        return {"tsets": labels, "partitions": len(saved), "bytes": total}

    # ------------------------------------------------------------------ checkpoints

    def restore(self, tset_id: str, cursor: int | None = None) -> Any:
        """Find a committed, valid checkpoint of ``tset_id`` (if checkpointing is
        enabled) and use it: ``persist()`` then returns at once. Returns what was
        restored, or None.

        With ``cursor`` (the caller's event cursor), returns ``(restored, events,
        next_cursor)``: the events from ``cursor`` on come with the answer.
        """
        info = self._restore(tset_id)
        if cursor is None:
            return info
        return (info, *self._log.unseen(cursor))

    def _persisted(self) -> list[str]:
        return [] if self._checkpoints is None else self._checkpoints.in_use()

    def _committed_tsets(self) -> list[str]:
        """The TSets a ``persist()`` may restore: those in use, and (checkpointing
        enabled) those the job's record lists as committed, sorted."""
        found = set(self._persisted())
        if self._checkpoints is not None and self._checkpoints.enabled:
            found.update(self._record.get("persisted", {}))
        return sorted(found)

    def _restore(self, tset_id: str) -> dict[str, Any] | None:
        if self._checkpoints is None:
            return None
        known = self._checkpoints.using(tset_id)
        cp = self._checkpoints.restore(tset_id)
        if cp is None:
            return None
        if known is None:
            self._catalog[tset_id] = {"label": cp.meta.get("label", tset_id), "storage": "store",
                                      "parallelism": len(cp.parts),
                                      "keyed": bool(cp.meta.get("keyed", False))}
        info = {"tset_id": tset_id, "label": cp.meta.get("label", tset_id),
                "version": cp.version, "parts": len(cp.parts),
                "bytes": sum(p.size for p in cp.parts)}
        self._emit(TSetRestored(storage="store", **info))
        return info

    def _checkpoint(self, tset_id: str) -> Any:
        """The checkpoint a task reads for a persisted input (see
        :meth:`CheckpointManager.for_read`)."""
        if self._checkpoints is None:
            raise CheckpointLostError(tset_id, tset_id,
                                      "no valid committed checkpoint of it is in the store")
        return self._checkpoints.for_read(tset_id)

    def _commit(self, tset_id: str, version: int, stage: StagePlan,
                metas: list[dict[str, Any]], action: int, keyed: bool) -> None:
        assert self._checkpoints is not None
        parts = [m["part"] for m in metas]
        assert sorted(p.part_index for p in parts) == list(range(stage.parallelism)), parts
        started = time.time()
        meta = {"label": stage.label, "parallelism": stage.parallelism, "action": action,
                "keyed": keyed}
        cp = self._checkpoints.commit(tset_id, version, parts, meta)
        self._catalog[tset_id] = {"label": stage.label, "storage": "store",
                                  "parallelism": stage.parallelism, "keyed": keyed}
        size = sum(p.size for p in cp.parts)
        write_seconds = max((m.get("write_seconds", 0.0) for m in metas), default=0.0)
        self._emit(CheckpointCommitted(tset_id=tset_id, label=stage.label, version=version,
                                       bytes=size, seconds=time.time() - started + write_seconds,
                                       where=self._checkpoints.store.uri))
        self._record.add_persisted(tset_id, {"label": stage.label, "version": version,
                                             "bytes": size, "committed": time.time()})
        self._drop_task_checkpoints(stage)

    def _drop_task_checkpoints(self, stage: StagePlan) -> None:
        """A committed ``persist()`` holds what its final stage's task checkpoints
        held (a restart restores it and never reads them): they are deleted, as
        COMPSs keeps only the newest checkpoint of a value."""
        assert self._checkpoints is not None
        fingerprints = {save.fingerprint for save in stage_task_saves(stage)}
        dropped = drop_task_checkpoints(self._checkpoints.store, self.job_id, fingerprints)
        self._saved -= fingerprints
        if dropped:
            self._say(f"{dropped} task checkpoints of {stage.label!r} deleted: its persist() "
                      "holds them")

    # ------------------------------------------------------------------ memory

    def release(self, tset_id: str) -> None:
        """Drop a cached TSet from every worker that holds it."""
        if self._checkpoints is not None:
            self._checkpoints.forget(tset_id)
        self._catalog.pop(tset_id, None)
        if self._scheduler.release(tset_id):
            self._emit(TSetReleased(tset_id=tset_id))
            self._record.publish()

    def record_failure(self, error: str) -> None:
        """The job's program failed outside any action (a driver's own code
        raised): the record says ``failed`` with ``error``, and so will its end."""
        self._record.update(status="failed", error=error)

    def shutdown(self, status: str | None = None) -> None:
        """Record the job's end, free its lease, kill the workers (the driver
        kills this actor next).

        ``status`` defaults to the truth: ``failed`` (its error kept) or
        ``cancelled`` if the job's last action ended so and none succeeded since,
        else ``finished``.
        """
        if self.status == "closed":
            return
        if status is None:
            last = self._record.get("status")
            status = last if last in ("failed", "cancelled") else "finished"
        self.status = "closed"
        self._record.close(status)
        self._scheduler.shutdown()


def _stage_summary(stage: StagePlan) -> StageSummary:
    return StageSummary(index=stage.index, label=stage.label, tset_id=stage.tset_id,
                        parallelism=stage.parallelism, output=stage.output,
                        tsets=tuple((label, ident) for label, ident in stage.tsets))


def _node_id() -> str:
    """The Ray node this process runs on."""
    import ray

    return ray.get_runtime_context().get_node_id()
