"""JobMaster: one detached, named Ray actor per job that drives its execution.

The kernel (or the CLI) submits a :class:`~twister_nb.plan.physical.Plan` and
watches; the JobMaster starts the job's Worker actors, submits every task of
every stage at once in producer-first order (Ray starts each task when the
object refs it reads are ready, and a worker runs its tasks in submission
order, so no task waits on one queued behind it), tracks progress, and keeps
an event log that any watcher reads from its own cursor. Data never passes
through the JobMaster: it holds object refs only.

The job record (``jobs/<id>/job.json``) is written by a background thread,
newest record only, so a commit or a status change never waits for it; it is
flushed at :meth:`JobMaster.shutdown` and by :meth:`JobMaster.flush_record`.
Nothing restores from it: a checkpoint is its manifest.

A plain class, wrapped with ``ray.remote`` by :func:`master_handle`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from typing import Any

from twister_nb.checkpoint.manager import CheckpointManager
from twister_nb.events import (ActionEnded, ActionStarted, CheckpointCommitted, DriverAttached,
                               ErrorRaised, Event, OutputPrinted, StageSubmitted, StageSummary,
                               TaskFinished, TSetReleased, TSetRestored, WorkersStarted)
from twister_nb.plan.physical import (FetchedRead, LocalRead, MaterializedRead, Plan, StagePlan,
                                      StoreRead, task_output)
from twister_nb.runtime.event_log import EventLog
from twister_nb.errors import JobFailedError, JobOwnedError, UserFunctionError
from twister_nb.errors import CheckpointLostError

ACTOR_PREFIX = "twister_nb.job."
#: Seconds a job's store lease and a driver's attachment last without renewal.
LEASE_TTL = 15.0
#: Programs smaller than this are sent with every task instead of through the object store.
_INLINE_PROGRAM = 64 * 1024


class JobMaster:
    """Drives one job: workers, stages, progress, events."""

    def __init__(self, job_id: str, name: str, config: dict[str, Any], max_workers: int,
                 store: Any = None, program: dict[str, Any] | None = None,
                 cluster_address: str = "") -> None:
        self.job_id = job_id
        self.name = name
        self.config = config
        self.max_workers = max(1, max_workers)
        self.created = time.time()
        self.status = "idle"
        self._store = store
        self._workers: list[Any] = []
        self._locations: dict[str, dict[int, int]] = {}
        #: What a re-attached driver can get handles to: tset_id -> label, storage, ...
        self._catalog: dict[str, dict[str, Any]] = {}
        #: Outcomes of the latest actions, for a driver that attaches mid-action.
        self._results: dict[int, tuple[str, Any]] = {}
        self._running: dict[str, Any] | None = None
        self._log = EventLog()
        self._run_lock = threading.Lock()
        self._cancel = threading.Event()
        self._actions = 0
        self._driver: dict[str, Any] | None = None
        self._closed = threading.Event()
        self._lease = None
        self._record: dict[str, Any] = {}
        #: The record writer: ``_record_gen`` counts changes, ``_record_done`` is the
        #: newest change written (or that failed to write); both under ``_record_cv``.
        self._record_cv = threading.Condition()
        self._record_gen = 0
        self._record_done = 0
        self._record_thread: threading.Thread | None = None
        self._record_write = threading.Lock()
        #: What this job restores, commits and retires (None: the job has no store).
        self._checkpoints = (None if store is None else
                             CheckpointManager(store, job_id, config, report=self._say))
        if store is not None:
            self._start_record(program or {}, cluster_address)

    # ------------------------------------------------------------------ record and lease

    def _start_record(self, program: dict[str, Any], cluster_address: str) -> None:
        """Claim the job in the store (one owner per job across clusters) and
        write its record; keep the lease alive from a background thread."""
        owner = f"JobMaster of {self.job_id} on Ray cluster {cluster_address or 'unknown'}"
        self._lease = self._store.acquire_lease(self.job_id, owner, LEASE_TTL)
        previous = self._store.read_job(self.job_id) or {}
        self._record = {
            **previous,
            "job_id": self.job_id,
            "name": self.name,
            "created": previous.get("created", self.created),
            "attached": time.time(),
            "program": program or previous.get("program"),
            "config": {k: v for k, v in self.config.items() if "secret" not in k},
            "status": "running",
            "persisted": previous.get("persisted", {}),
            "restarts": previous.get("restarts", -1) + 1,
        }
        self._store.write_job(self.job_id, self._record)
        threading.Thread(target=self._renew_lease, name="lease", daemon=True).start()
        self._record_thread = threading.Thread(target=self._write_records, name="job-record",
                                               daemon=True)
        self._record_thread.start()

    def _renew_lease(self) -> None:
        failing = False
        while not self._closed.wait(LEASE_TTL / 3):
            try:
                self._lease = self._store.renew_lease(self._lease)
                failing = False
            except Exception as exc:  # noqa: BLE001 - reported once; retried while the job lives
                if not failing:
                    self._say(f"cannot renew the job's store lease: {exc}")
                failing = True
                try:
                    self._lease = self._store.acquire_lease(self.job_id, self._lease.owner,
                                                            LEASE_TTL)
                except Exception:  # noqa: BLE001 - still unreachable or held: try again later
                    pass

    def _save_record(self, **changes: Any) -> None:
        """Change the job record; the writer thread stores it soon (coalesced:
        a burst of changes is one write of the newest record)."""
        if self._store is None:
            return
        with self._record_cv:
            self._record.update(changes)
            self._record_gen += 1
            self._record_cv.notify_all()

    def _write_records(self) -> None:
        """The record writer thread: whenever the record changed, write its newest
        state; it ends once the job is closed and nothing is left to write."""
        while True:
            with self._record_cv:
                while self._record_done >= self._record_gen:
                    if self._closed.is_set():
                        return
                    self._record_cv.wait(1.0)
            self._write_record()

    def _write_record(self) -> None:
        """Write the newest record (one writer at a time, so never an older one
        over a newer one). A failure is reported to the watcher; the next change
        writes the whole record again."""
        with self._record_write:
            with self._record_cv:
                gen = self._record_gen
                if self._record_done >= gen:
                    return
                record = dict(self._record)  # its values are replaced, never edited in place
            try:
                self._store.write_job(self.job_id, record)
            except Exception as exc:  # noqa: BLE001 - the job goes on; the watcher is told
                self._say(f"could not update the job record: {exc}")
            with self._record_cv:
                self._record_done = gen
                self._record_cv.notify_all()

    def flush_record(self, timeout: float | None = None) -> bool:
        """Wait until every change made so far to the job record is written (or
        failed to write, which is reported as an event). False on timeout.

        Call it before reading ``jobs/<id>/job.json`` of a live job that must be current.
        """
        if self._store is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._record_cv:
            target = self._record_gen
        while True:
            thread = self._record_thread
            if thread is None or not thread.is_alive():
                self._write_record()  # no writer thread (any more): write it here
            with self._record_cv:
                if self._record_done >= target:
                    return True
                left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                if left <= 0:
                    return False
                self._record_cv.wait(left)

    # ------------------------------------------------------------------ drivers

    def attach(self, token: str, host: str, pid: int, force: bool = False) -> dict[str, Any]:
        """Make the calling driver the job's owner. Refused (``ok: False``, with the
        holder) while another driver that is still heartbeating owns it."""
        current = self._driver
        now = time.time()
        if (current is not None and current["token"] != token and not force
                and now - current["seen"] < LEASE_TTL):
            return {"ok": False, "holder": {k: current[k] for k in ("host", "pid", "since")}}
        self._driver = {"token": token, "host": host, "pid": pid, "seen": now, "since": now}
        self._log.forget()
        self._emit(DriverAttached(host=host, pid=pid))
        return {"ok": True, "status": self.status, "persisted": self._persisted()}

    def heartbeat(self, token: str) -> bool:
        """A driver says it is alive; False if another driver took over."""
        if self._driver is None or self._driver["token"] != token:
            return False
        self._driver["seen"] = time.time()
        return True

    def detach(self, token: str) -> None:
        if self._driver is not None and self._driver["token"] == token:
            self._driver = None
        self._log.forget(token)

    # ------------------------------------------------------------------ events

    def _emit(self, event: Event) -> None:
        self._log.emit(event)

    def _say(self, line: str) -> None:
        """Tell the watcher something, as a ``[job-master]`` output line."""
        self._emit(OutputPrinted(lines=(f"[job-master] {line}",)))

    def events(self, cursor: int = 0, token: str | None = None) -> tuple[list[Event], int]:
        """Events from ``cursor`` on, and the cursor to ask with next time.

        A driver passes its ``token``: asking from ``cursor`` says it has seen every
        event before it, so :meth:`execute` returns it only the newer ones.
        """
        if token is not None and self._driver is not None and self._driver["token"] == token:
            self._log.ack(token, cursor)
        return self._log.since(cursor)

    def worker_output(self, lines: list[str]) -> None:
        self._emit(OutputPrinted(lines=tuple(lines)))

    def info(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "name": self.name, "status": self.status,
                "created": self.created, "workers": len(self._workers),
                "cached": {k: len(v) for k, v in self._locations.items()},
                "persisted": self._persisted(), "actions": self._actions,
                "pid": os.getpid(), "host": socket.gethostname(),
                "driver": None if self._driver is None else
                {k: self._driver[k] for k in ("host", "pid", "since")}}

    # ------------------------------------------------------------------ workers

    def _ensure_workers(self, wanted: int) -> None:
        import ray

        from twister_nb.runtime.worker import Worker

        wanted = min(self.max_workers, max(1, wanted))
        if len(self._workers) >= wanted:
            return
        me = ray.get_runtime_context().current_actor
        remote_worker = ray.remote(Worker)
        cpus = float(self.config.get("runtime.worker_cpus", 0) or 0)
        new = [
            remote_worker.options(num_cpus=cpus, scheduling_strategy="SPREAD", max_restarts=-1,
                                  name=f"{ACTOR_PREFIX}{self.job_id}.worker-{i}").remote(
                i, self.job_id, self.config, me, self._store)
            for i in range(len(self._workers), wanted)
        ]
        ray.get([w.ping.remote() for w in new])
        self._workers.extend(new)
        self._emit(WorkersStarted(count=len(self._workers)))

    # ------------------------------------------------------------------ running

    def has(self, tset_id: str) -> bool:
        return tset_id in self._locations

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
        """The action running now (number, kind, label, start), if any."""
        return None if self._running is None else dict(self._running)

    def result(self, action: int, timeout: float | None = None) -> tuple[str, Any] | None:
        """The outcome of action ``action`` once it ends (None on timeout): what a
        driver that attached mid-action waits for."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while action not in self._results:
            if self._actions < action or (deadline is not None and time.monotonic() > deadline):
                return None
            time.sleep(0.05)
        return self._results[action]

    def cancel(self) -> None:
        """Stop the running action: queued tasks are cancelled."""
        self._cancel.set()

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
        if token is not None and (self._driver is None or self._driver["token"] != token):
            holder = self._driver or {}
            return "error", JobOwnedError(
                f"job {self.job_id!r} is now attached to another process "
                f"(pid {holder.get('pid')} on {holder.get('host')}); attach again to use it")
        with self._run_lock:
            if materialize_id is not None and materialize_id in self._locations:
                self._emit(TSetRestored(tset_id=materialize_id, storage="memory"))
                return "ok", None
            if plan.action == "persist" and self._restore(materialize_id) is not None:
                return "ok", None
            self._cancel.clear()
            self._actions += 1
            self.status = "running"
            action = self._actions
            started = time.time()
            self._running = {"action": action, "kind": plan.action, "started": started,
                             "label": plan.final.label}
            outcome = self._run_action(plan, materialize_id, action, started)
            self._running = None
            self._results[action] = outcome
            for old in [a for a in self._results if a <= action - 8]:
                del self._results[old]
            return outcome

    def _run_action(self, plan: Plan, materialize_id: str | None, action: int,
                    started: float) -> tuple[str, Any]:
        self._emit(ActionStarted(action=action, action_kind=plan.action,
                                 stages=tuple(_stage_summary(s) for s in plan.stages)))
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
        except UserFunctionError as exc:
            self.status = "failed"
            self._save_record(status="failed", error=str(exc))
            self._emit(ErrorRaised(action=action, message=str(exc), tset=exc.tset,
                                   tset_id=exc.tset_id, partition=exc.partition,
                                   worker=exc.worker))
            self._emit(ActionEnded(action=action, state="failed", seconds=time.time() - started))
            return "error", exc
        except Exception as exc:  # noqa: BLE001 - reported to the watcher, not lost
            self.status = "failed"
            self._save_record(status="failed", error=f"{type(exc).__name__}: {exc}")
            err = JobFailedError(f"job {self.job_id!r} failed: {type(exc).__name__}: {exc}")
            self._emit(ErrorRaised(action=action, message=str(err),
                                   traceback=traceback.format_exc()))
            self._emit(ActionEnded(action=action, state="failed", seconds=time.time() - started))
            return "error", err
        self.status = "idle"
        if self._record.get("status") != "running":
            self._save_record(status="running", error=None)
        self._emit(ActionEnded(action=action, state="done", seconds=time.time() - started))
        return "ok", value

    def _submit(self, plan: Plan, materialize_id: str | None, action: int) -> Any:
        import ray

        self._ensure_workers(max(s.parallelism for s in plan.stages))
        workers = self._workers
        n = len(workers)
        version = None
        if plan.action == "persist":
            if self._checkpoints is None:
                raise JobFailedError("persist() needs a checkpoint store; this job has none")
            version = self._checkpoints.next_version(materialize_id)
        outputs: dict[int, list[list[Any]]] = {}
        metas: dict[Any, int] = {}
        final = plan.final
        for stage in plan.stages:
            # Small programs travel inside the task (Ray inlines small arguments);
            # a large one (parallelize_list data) once through the object store.
            holder: Any = (stage.program if len(stage.program) < _INLINE_PROGRAM
                           else [ray.put(stage.program)])
            key = f"{action}.{stage.index}.{id(stage)}"
            out_spec = task_output(stage, plan.action, stage is final, materialize_id, version)
            stage_outs = []
            for p in range(stage.parallelism):
                w = p % n
                args: list[Any] = []
                counts = []
                for ei in stage.exchange_inputs:
                    producer = outputs[ei.stage]
                    bucket = p if ei.partitioned else 0
                    args.extend(task_outs[bucket] for task_outs in producer)
                    counts.append(len(producer))
                mat: list[MaterializedRead] = []
                for mi in stage.materialized_inputs:
                    q = mi.partition_for(p)
                    if mi.storage == "store":
                        mat.append(StoreRead(self._checkpoint(mi.tset_id), q))
                        continue
                    owner = self._owner(mi.tset_id, q)
                    if owner == w:
                        mat.append(LocalRead(mi.tset_id, q))
                    else:
                        mat.append(FetchedRead())
                        args.append(workers[owner].get_partition.remote(mi.tset_id, q))
                refs = workers[w].run_task.options(num_returns=1 + stage.num_outputs).remote(
                    key, holder, p, counts, mat, out_spec, *args)
                if stage.num_outputs == 0:
                    refs = [refs]
                metas[refs[0]] = stage.index
                stage_outs.append(list(refs[1:]))
            outputs[stage.index] = stage_outs
            self._emit(StageSubmitted(action=action, stage=stage.index, tasks=stage.parallelism))
        results = self._wait(metas, action)
        if plan.action == "cache" and materialize_id is not None:
            self._locations[materialize_id] = {p: p % n for p in range(final.parallelism)}
            self._catalog[materialize_id] = {"label": final.label, "storage": "memory",
                                              "parallelism": final.parallelism,
                                              "keyed": plan.keyed}
        if plan.action == "persist":
            self._commit(materialize_id, version, final, results[final.index], action, plan.keyed)
        if plan.action in ("collect", "partitions"):
            return [outs[0] for outs in outputs[final.index]]
        return None

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
                                       where=self._store.uri))
        with self._record_cv:
            persisted = dict(self._record.get("persisted", {}))
            persisted[tset_id] = {"label": stage.label, "version": version, "bytes": size,
                                  "committed": time.time()}
            self._save_record(persisted=persisted)

    def _owner(self, tset_id: str, partition: int) -> int:
        try:
            return self._locations[tset_id][partition]
        except KeyError:
            raise JobFailedError(
                f"cached TSet {tset_id!r} (partition {partition}) is no longer held by the "
                "workers; it was released or its worker was lost. Cache it again."
            ) from None

    def _wait(self, metas: dict[Any, int], action: int) -> dict[int, list[dict[str, Any]]]:
        import ray

        pending = list(metas)
        results: dict[int, list[dict[str, Any]]] = {}
        first_error: tuple[int, BaseException] | None = None
        while pending:
            if self._cancel.is_set():
                for ref in pending:
                    ray.cancel(ref)
                raise JobFailedError("the action was cancelled")
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.05)
            if not ready:
                continue
            for ref in ready:
                stage = metas[ref]
                try:
                    meta = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if isinstance(exc.cause, Exception) else exc
                    if first_error is None or stage < first_error[0]:
                        first_error = (stage, cause)
                    continue
                except ray.exceptions.RayError as exc:
                    if first_error is None:
                        first_error = (stage, JobFailedError(
                            f"a worker of job {self.job_id!r} was lost: {type(exc).__name__}: {exc}"))
                    continue
                if meta["lines"]:
                    self._emit(OutputPrinted(lines=tuple(meta.pop("lines"))))
                else:
                    meta.pop("lines")
                results.setdefault(stage, []).append(meta)
                self._emit(TaskFinished(action=action, stage=stage,
                                        **{k: v for k, v in meta.items() if k != "part"}))
        if first_error is not None:
            raise first_error[1]
        return results

    # ------------------------------------------------------------------ memory

    def release(self, tset_id: str) -> None:
        """Drop a cached TSet from every worker that holds it."""
        if self._checkpoints is not None:
            self._checkpoints.forget(tset_id)
        self._catalog.pop(tset_id, None)
        where = self._locations.pop(tset_id, None)
        if where is None:
            return
        for w in sorted(set(where.values())):
            self._workers[w].release.remote(tset_id)
        self._emit(TSetReleased(tset_id=tset_id))

    def shutdown(self, status: str = "finished") -> None:
        """Record the job's end, free its lease, kill the workers (the driver
        kills this actor next)."""
        import ray

        self.status = "closed"
        self._save_record(status=status, ended=time.time())
        self._closed.set()
        self.flush_record()
        if self._lease is not None:
            try:
                self._store.release_lease(self._lease)
            except Exception:  # noqa: BLE001 - it expires by itself
                pass
        for w in self._workers:
            ray.kill(w)
        self._workers = []
        self._locations.clear()


def _stage_summary(stage: StagePlan) -> StageSummary:
    return StageSummary(index=stage.index, label=stage.label, tset_id=stage.tset_id,
                        parallelism=stage.parallelism, output=stage.output,
                        tsets=tuple(tuple(t) for t in stage.tsets))
