"""JobMaster: one detached, named Ray actor per job that drives its execution.

The kernel (or the CLI) submits a :class:`~twister_nb.plan.physical.Plan` and
watches; the JobMaster starts the job's Worker actors, submits every task of
every stage at once in producer-first order (Ray starts each task when the
object refs it reads are ready, and a worker runs its tasks in submission
order, so no task waits on one queued behind it), tracks progress, and keeps
an event log that any watcher reads from its own cursor. Data never passes
through the JobMaster: it holds object refs only.

A plain class, wrapped with ``ray.remote`` by :func:`master_handle`.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

from twister_nb.plan.physical import Plan, StagePlan
from twister_nb.runtime.errors import JobFailedError, UserFunctionError

ACTOR_PREFIX = "twister_nb.job."
_MAX_EVENTS = 20000


class JobMaster:
    """Drives one job: workers, stages, progress, events."""

    def __init__(self, job_id: str, name: str, config: dict[str, Any], max_workers: int) -> None:
        self.job_id = job_id
        self.name = name
        self.config = config
        self.max_workers = max(1, max_workers)
        self.created = time.time()
        self.status = "idle"
        self._workers: list[Any] = []
        self._locations: dict[str, dict[int, int]] = {}
        self._events: list[dict[str, Any]] = []
        self._first_seq = 0
        self._events_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._cancel = threading.Event()
        self._actions = 0

    # ------------------------------------------------------------------ events

    def _emit(self, kind: str, **fields: Any) -> None:
        with self._events_lock:
            seq = self._first_seq + len(self._events)
            self._events.append({"seq": seq, "kind": kind, "time": time.time(), **fields})
            if len(self._events) > _MAX_EVENTS:
                drop = len(self._events) - _MAX_EVENTS
                del self._events[:drop]
                self._first_seq += drop

    def events(self, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Events from ``cursor`` on, and the cursor to ask with next time."""
        with self._events_lock:
            start = max(0, cursor - self._first_seq)
            out = self._events[start:]
            return out, self._first_seq + len(self._events)

    def worker_output(self, lines: list[str]) -> None:
        self._emit("output", lines=lines)

    def info(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "name": self.name, "status": self.status,
                "created": self.created, "workers": len(self._workers),
                "cached": {k: len(v) for k, v in self._locations.items()},
                "actions": self._actions}

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
            remote_worker.options(num_cpus=cpus, scheduling_strategy="SPREAD",
                                  name=f"{ACTOR_PREFIX}{self.job_id}.worker-{i}").remote(
                i, self.job_id, self.config, me)
            for i in range(len(self._workers), wanted)
        ]
        ray.get([w.ping.remote() for w in new])
        self._workers.extend(new)
        self._emit("workers", count=len(self._workers))

    # ------------------------------------------------------------------ running

    def has(self, tset_id: str) -> bool:
        return tset_id in self._locations

    def cancel(self) -> None:
        """Stop the running action: queued tasks are cancelled."""
        self._cancel.set()

    def execute(self, plan: Plan, materialize_id: str | None = None) -> tuple[str, Any]:
        """Run ``plan``; returns ``("ok", value)`` or ``("error", exception)``.

        The value is a list of object refs (one per partition) for ``collect``
        and ``partitions``, and None otherwise.
        """
        with self._run_lock:
            if materialize_id is not None and materialize_id in self._locations:
                self._emit("restored", tset_id=materialize_id, storage="memory")
                return "ok", None
            self._cancel.clear()
            self._actions += 1
            self.status = "running"
            action = self._actions
            started = time.time()
            self._emit("action", action=action, state="running", action_kind=plan.action,
                       stages=[_stage_summary(s) for s in plan.stages])
            try:
                value = self._execute(plan, materialize_id, action)
            except UserFunctionError as exc:
                self.status = "failed"
                self._emit("error", action=action, message=str(exc), tset=exc.tset,
                           partition=exc.partition, worker=exc.worker)
                self._emit("action", action=action, state="failed", seconds=time.time() - started)
                return "error", exc
            except Exception as exc:  # noqa: BLE001 - reported to the watcher, not lost
                self.status = "failed"
                err = JobFailedError(f"job {self.job_id!r} failed: {type(exc).__name__}: {exc}")
                self._emit("error", action=action, message=str(err),
                           traceback=traceback.format_exc())
                self._emit("action", action=action, state="failed", seconds=time.time() - started)
                return "error", err
            self.status = "idle"
            self._emit("action", action=action, state="done", seconds=time.time() - started)
            return "ok", value

    def _execute(self, plan: Plan, materialize_id: str | None, action: int) -> Any:
        import ray

        self._ensure_workers(max(s.parallelism for s in plan.stages))
        workers = self._workers
        n = len(workers)
        outputs: dict[int, list[list[Any]]] = {}
        metas: dict[Any, int] = {}
        final = plan.final
        for stage in plan.stages:
            holder = [ray.put(stage.program)]
            key = f"{action}.{stage.index}.{id(stage)}"
            is_final = stage is final
            if is_final and plan.action in ("cache", "persist"):
                out_spec: tuple[Any, ...] = (plan.action, materialize_id)
            else:
                out_spec = (stage.output,)
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
                mat: list[tuple[Any, ...]] = []
                for mi in stage.materialized_inputs:
                    q = mi.partition_for(p)
                    owner = self._owner(mi.tset_id, q)
                    if owner == w:
                        mat.append(("local", mi.tset_id, q))
                    else:
                        mat.append(("ref",))
                        args.append(workers[owner].get_partition.remote(mi.tset_id, q))
                refs = workers[w].run_task.options(num_returns=1 + stage.num_outputs).remote(
                    key, holder, p, counts, mat, out_spec, *args)
                if stage.num_outputs == 0:
                    refs = [refs]
                metas[refs[0]] = stage.index
                stage_outs.append(list(refs[1:]))
            outputs[stage.index] = stage_outs
            self._emit("stage", action=action, stage=stage.index, state="submitted",
                       tasks=stage.parallelism)
        self._wait(metas, action)
        if plan.action in ("cache", "persist") and materialize_id is not None:
            self._locations[materialize_id] = {p: p % n for p in range(final.parallelism)}
        if plan.action in ("collect", "partitions"):
            return [outs[0] for outs in outputs[final.index]]
        return None

    def _owner(self, tset_id: str, partition: int) -> int:
        try:
            return self._locations[tset_id][partition]
        except KeyError:
            raise JobFailedError(
                f"cached TSet {tset_id!r} (partition {partition}) is no longer held by the "
                "workers; it was released or its worker was lost. Cache it again."
            ) from None

    def _wait(self, metas: dict[Any, int], action: int) -> None:
        import ray

        pending = list(metas)
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
                    self._emit("output", lines=meta.pop("lines"))
                else:
                    meta.pop("lines")
                self._emit("task", action=action, stage=stage, **meta)
        if first_error is not None:
            raise first_error[1]

    # ------------------------------------------------------------------ memory

    def release(self, tset_id: str) -> None:
        """Drop a cached TSet from every worker that holds it."""
        where = self._locations.pop(tset_id, None)
        if where is None:
            return
        for w in sorted(set(where.values())):
            self._workers[w].release.remote(tset_id)
        self._emit("released", tset_id=tset_id)

    def shutdown(self) -> None:
        """Kill the workers (the driver kills this actor next)."""
        import ray

        self.status = "closed"
        for w in self._workers:
            ray.kill(w)
        self._workers = []
        self._locations.clear()


def _stage_summary(stage: StagePlan) -> dict[str, Any]:
    return {"index": stage.index, "label": stage.label, "tset_id": stage.tset_id,
            "parallelism": stage.parallelism, "output": stage.output,
            "tsets": stage.tsets}
