"""The scheduler: a job's Worker actors, where partitions live, and running stages.

The JobMaster decides *what* an action runs (a plan, its output, the checkpoint
it reads); this module decides *where*: it starts the job's workers (by default
as many as the cluster's CPUs, never more than the largest parallelism),
places partition ``p`` on worker ``p % n`` (so a cached partition's reader runs
where it is), submits every task of every stage at once in producer-first order
(Ray starts each task when the refs it reads are ready, and a worker runs its
tasks in submission order, so no task waits on one queued behind it), and waits
for them, turning their metadata into events.

:class:`Placement` and :func:`task_inputs` are plain Python, tested without a
cluster; :class:`Scheduler` is the part that talks to Ray.

Why this module is long: submitting a task (run it, or recover it from its
task checkpoint), placing it and reading its inputs are one decision per task;
the task checkpoints in flight are in :mod:`twister_nb.runtime.task_saving`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twister_nb import config as _config
from twister_nb.checkpoint.task_manager import TaskCheckpoints
from twister_nb.errors import ActionCancelledError, JobFailedError, PartitionLostError
from twister_nb.events import (Event, OutputPrinted, StageSubmitted, StartupStep, TaskCount,
                               TaskFinished, WorkersStarted)
from twister_nb.runtime.ray_errors import ray_error_line
from twister_nb.runtime.rebalance import Move, plan_moves
from twister_nb.runtime.task_saving import TaskSaving
from twister_nb.runtime.task_progress import ProgressBoard
from twister_nb.plan.physical import (FetchedRead, LocalRead, MaterializedRead, Plan, StagePlan,
                                      StoreRead, TaskCall, TaskOutput)

#: Programs smaller than this are sent with every task instead of through the object store.
INLINE_PROGRAM = 64 * 1024

#: ``outputs[stage][task]``: the refs a producer task returned (one per bucket).
StageOutputs = dict[int, list[list[Any]]]

#: The cluster's nodes are looked at (for nodes that joined) at most this often, in seconds.
NODE_LOOK_SECONDS = 1.0


#: How long a worker may take to say what it holds (a restarted one starts first).
_HELD_TIMEOUT_S = 30.0


class Placement:
    """Which worker runs each task, and which holds each cached partition.

    >>> placement = Placement()
    >>> placement.hold("t-1", parallelism=3, workers=2)
    >>> placement.owner("t-1", 2), placement.cached()
    (0, {'t-1': 3})
    """

    def __init__(self) -> None:
        self._where: dict[str, dict[int, int]] = {}

    @staticmethod
    def worker_for(partition: int, workers: int) -> int:
        """The worker that runs the task of ``partition`` (and keeps what it caches)."""
        return partition % workers

    def hold(self, tset_id: str, parallelism: int, workers: int) -> None:
        """A cache action left ``tset_id``'s partitions on the workers that made them."""
        self._where[tset_id] = {p: self.worker_for(p, workers) for p in range(parallelism)}

    def holds(self, tset_id: str) -> bool:
        return tset_id in self._where

    def owner(self, tset_id: str, partition: int) -> int:
        """The worker holding a cached partition.

        Raises
        ------
        PartitionLostError
            If no worker holds it (released, or its worker was lost).
        """
        try:
            return self._where[tset_id][partition]
        except KeyError:
            raise PartitionLostError(tset_id, tset_id, partition,
                                     "no worker holds it (it was released, or lost with its "
                                     "worker)") from None

    def holds_all(self, tset_id: str, parallelism: int) -> bool:
        """Whether every partition of ``tset_id`` is held (none lost)."""
        return len(self._where.get(tset_id, ())) == parallelism

    def partitions(self, tset_id: str) -> set[int]:
        """The partitions of ``tset_id`` some worker holds (all of a whole cache)."""
        return set(self._where.get(tset_id, {}))

    def keep_only(self, tset_id: str, partitions: Iterable[int]) -> list[int]:
        """Forget the partitions of ``tset_id`` not in ``partitions`` (lost with
        their worker); those forgotten, sorted.

        >>> placement = Placement()
        >>> placement.hold("t-1", parallelism=4, workers=2)
        >>> placement.keep_only("t-1", [0, 2]), sorted(placement.partitions("t-1"))
        ([1, 3], [0, 2])
        """
        where = self._where.get(tset_id, {})
        lost = sorted(set(where) - set(partitions))
        for p in lost:
            del where[p]
        return lost

    def drop(self, tset_id: str) -> list[int]:
        """Forget ``tset_id``; the workers that held a partition of it, sorted."""
        return sorted(set(self._where.pop(tset_id, {}).values()))

    def cached(self) -> dict[str, int]:
        """Partitions held per cached TSet."""
        return {k: len(v) for k, v in self._where.items()}

    def held_by(self, worker: int) -> list[tuple[str, int]]:
        """The cached ``(tset_id, partition)`` pairs ``worker`` holds."""
        return [(tset_id, p) for tset_id, where in self._where.items()
                for p, w in where.items() if w == worker]

    def held_per_worker(self) -> dict[int, int]:
        """How many cached partitions each worker holds."""
        counts: dict[int, int] = {}
        for where in self._where.values():
            for w in where.values():
                counts[w] = counts.get(w, 0) + 1
        return counts

    def clear(self) -> None:
        self._where.clear()


def task_inputs(stage: StagePlan, partition: int, worker: int, outputs: StageOutputs,
                placement: Placement, checkpoint_for: Callable[[str], Any]
                ) -> tuple[list[int], list[MaterializedRead], list[Any], list[tuple[int, str, int]]]:
    """What the task of ``partition`` reads, as the worker's ``run_task`` takes it.

    Returns
    -------
    counts : list of int
        How many exchange buckets each exchange input brings.
    reads : list of MaterializedRead
        One per materialized input, in order.
    buckets : list
        The producers' refs, for every exchange input in order.
    fetches : list of (worker, tset_id, partition)
        Cached partitions held by another worker, in the order of the
        :class:`FetchedRead` entries; their refs follow the buckets.
    """
    counts: list[int] = []
    buckets: list[Any] = []
    for ei in stage.exchange_inputs:
        producer = outputs[ei.stage]
        bucket = partition if ei.partitioned else 0
        buckets.extend(task_outs[bucket] for task_outs in producer)
        counts.append(len(producer))
    reads: list[MaterializedRead] = []
    fetches: list[tuple[int, str, int]] = []
    for mi in stage.materialized_inputs:
        q = mi.partition_for(partition)
        if mi.storage == "store":
            reads.append(StoreRead(checkpoint_for(mi.tset_id), q))
            continue
        owner = placement.owner(mi.tset_id, q)
        if owner == worker:
            reads.append(LocalRead(mi.tset_id, q))
        else:
            reads.append(FetchedRead())
            fetches.append((owner, mi.tset_id, q))
    return counts, reads, buckets, fetches


class Scheduler:
    """Starts a job's workers, runs the stages of its actions on them, and
    keeps the cached partitions' places.

    Parameters
    ----------
    job_id : str
        Names the workers (``twister_nb.job.<job_id>.worker-<i>``).
    config : mapping
        The job's configuration (``runtime.worker_cpus``), handed to the workers.
    max_workers : int
        The most workers the job starts.
    store : CheckpointStore or None
        Where the workers write and read persisted parts.
    emit : callable
        Takes the events of the run (workers started, stages submitted, tasks
        finished, the lines workers printed).
    actor_prefix : str
        The JobMaster's actor name prefix, which the workers' names share.
    """

    def __init__(self, job_id: str, config: Mapping[str, Any], max_workers: int, store: Any,
                 emit: Callable[[Event], Any], actor_prefix: str) -> None:
        self.job_id = job_id
        self.config = config
        self.max_workers = max(1, max_workers)
        self.placement = Placement()
        self._store = store
        self._emit = emit
        self._prefix = actor_prefix
        self._workers: list[Any] = []
        #: The node of each worker, by index, as last seen (see :meth:`use_new_nodes`).
        self._nodes: list[str] = []
        #: The alive nodes the last look found, and when it looked.
        self._seen: set[str] = set()
        self._looked = 0.0
        self._cpus = float(config.get("runtime.worker_cpus", 0) or 0)
        self._spread: WorkerSpread | None = None
        #: How often a lost worker's task runs again (config ``runtime.max_task_retries``).
        self._retries = int(_config.get("runtime.max_task_retries", config=config))
        self._cancel = threading.Event()
        #: The running action's task checkpoints in flight (None before the first action).
        self._saving: TaskSaving | None = None
        #: The running tasks' counters, coalesced into few events.
        self._board = ProgressBoard(emit)
        #: Task key (see :meth:`run`) -> (action, stage), for the workers' reports.
        self._keys: dict[str, tuple[int, int]] = {}

    @property
    def workers(self) -> int:
        """How many workers the job has now."""
        return len(self._workers)

    def worker_handles(self) -> list[Any]:
        """The job's Worker actors, worker ``i`` at index ``i`` (named or taken from the pool)."""
        return list(self._workers)

    def ensure_workers(self, wanted: int) -> None:
        """Start workers until there are ``wanted`` (at most ``max_workers``)."""
        import ray

        wanted = min(self.max_workers, max(1, wanted))
        if len(self._workers) >= wanted:
            return
        if self._spread is None:
            self._spread = WorkerSpread.for_cluster(self.max_workers, self._cpus)
        count, began = wanted - len(self._workers), time.monotonic()
        self._emit(StartupStep(step=(step := f"starting {count} worker{'s' * (count != 1)}")))
        try:
            new = start_workers(ray.get_runtime_context().current_actor,
                                range(len(self._workers), wanted), self.config, self._spread,
                                self.job_id, self._store, name=f"{self._prefix}{self.job_id}")
        except BaseException:
            self._emit(StartupStep(step=step, state="failed", seconds=time.monotonic() - began))
            raise
        self._workers.extend(new.actors)
        self._nodes.extend(new.nodes)
        self._seen.update(self._nodes)
        self._emit(StartupStep(step=step, state="done", seconds=time.monotonic() - began))
        self._emit(WorkersStarted(count=len(self._workers)))

    def _start_worker(self, index: int, placement: dict[str, Any]) -> StartedWorkers:
        """Worker actor ``index`` of the job, placed by ``placement`` (actor options)."""
        import ray

        assert self._spread is not None
        return start_workers(ray.get_runtime_context().current_actor, range(index, index + 1),
                             self.config, self._spread, self.job_id, self._store,
                             name=f"{self._prefix}{self.job_id}", placement=placement)

    def _worker_name(self, index: int) -> str:
        return f"{self._prefix}{self.job_id}.worker-{index}"

    def use_new_nodes(self) -> None:
        """Move a worker to each node that joined the cluster since the workers
        were placed (:func:`~twister_nb.runtime.rebalance.plan_moves` says which),
        so a node that joins a running job is used from its next action on.

        Called as an action starts; looks at the cluster at most every
        :data:`NODE_LOOK_SECONDS`, and asks the workers where they are only when
        a node it has not seen is alive.
        """
        import ray

        if not self._workers or time.monotonic() - self._looked < NODE_LOOK_SECONDS:
            return
        self._looked = time.monotonic()
        alive = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        if set(alive) <= self._seen:
            return
        self._seen.update(alive)
        try:  # where the workers are now (a lost one restarts elsewhere)
            self._nodes = [p["node"] for p in ray.get([w.ping.remote() for w in self._workers])]
        except ray.exceptions.RayError:
            return  # one is restarting: the next new node tries again
        for move in plan_moves(self._nodes, alive, self.placement.held_per_worker()):
            self._move(move)

    def _move(self, move: Move) -> None:
        """Start worker ``move.worker`` again on node ``move.target``, with the
        cached partitions it held: they are copied (the JobMaster owns the copies,
        so they outlive the old worker), never recomputed."""
        import ray

        assert self._spread is not None
        old = self._workers[move.worker]
        held = self.placement.held_by(move.worker)
        copies = [old.get_partition.remote(tset_id, p) for tset_id, p in held]
        if copies:  # made before the old worker ends
            ray.wait(copies, num_returns=len(copies), fetch_local=False)
        placement = self._spread.pin(move.worker, move.target)
        if placement is None:
            self._emit(OutputPrinted(lines=(
                f"[job] node {move.target[:12]} joined the cluster, but Ray placed the worker "
                f"moving there elsewhere: worker-{move.worker} stays where it is",)))
            return
        ray.kill(old, no_restart=True)
        deadline = time.monotonic() + 30
        while _named_actor_exists(self._worker_name(move.worker)):  # the new one takes it
            if time.monotonic() > deadline:
                raise JobFailedError(f"worker-{move.worker} of job {self.job_id!r} was ended to "
                                     "move it to a new node, but Ray still lists it after 30 s")
            time.sleep(0.02)
        started = self._start_worker(move.worker, placement)
        new = self._workers[move.worker] = started.actors[0]
        self._nodes[move.worker] = started.nodes[0]
        try:
            ray.get(new.adopt.remote(held, *copies))
            kept = (f"{len(held)} cached partition{'s' * (len(held) != 1)} copied, "
                    "none recomputed")
        except ray.exceptions.RayError:  # the old worker had lost them: made again at next use
            kept = "its cached partitions were lost before the move and are made again"
        self._emit(OutputPrinted(lines=(
            f"[job] worker-{move.worker} moved to node {move.target[:12]}, which joined the "
            f"cluster ({kept})",)))

    def adopt(self, workers: Sequence[Any]) -> int:
        """Take workers a pool started (unbound, zero-CPU, on one node) as this
        job's first ones, binding each to the job; those it cannot use (more
        than ``max_workers``; any, when the job wants CPUs per worker or the
        cluster has several nodes) are killed. How many it took."""
        import ray

        usable = list(workers[:self.max_workers]) if not self._workers and self._cpus == 0 else []
        if usable:
            self._spread = WorkerSpread.for_cluster(self.max_workers, self._cpus)
            if self._spread.spread:
                usable = []
        for w in workers[len(usable):]:
            ray.kill(w)
        if not usable:
            return 0
        ray.get([w.bind.remote(self.job_id, dict(self.config), self._store) for w in usable])
        self._workers.extend(usable)
        self._nodes.extend(ping["node"] for ping in ray.get([w.ping.remote() for w in usable]))
        self._seen.update(self._nodes)
        self._emit(WorkersStarted(count=len(self._workers)))
        return len(usable)

    # ------------------------------------------------------------------ running

    def reset_cancel(self) -> None:
        """A new action starts: a cancel asked for before it does not stop it."""
        self._cancel.clear()

    def cancel(self) -> None:
        """Stop the running action: its queued tasks are cancelled."""
        self._cancel.set()

    def progress(self, key: str, partition: int, worker: int, records_in: int,
                 records_out: int, seconds: float, phase: str = "running") -> None:
        """A worker's counters of its running task (``key`` as :meth:`run` gave it)."""
        where = self._keys.get(key)
        if where is None:
            return  # a task of an action that is over
        action, stage = where
        self._board.report(action, TaskCount(stage=stage, partition=partition, worker=worker,
                                             records_in=records_in, records_out=records_out,
                                             seconds=seconds, phase=phase))

    def run(self, plan: Plan, action: int, output_for: Callable[[StagePlan], TaskOutput],
            checkpoint_for: Callable[[str], Any], tasks: TaskCheckpoints | None = None,
            kept: Collection[int] = ()) -> tuple[StageOutputs, dict[int, list[dict[str, Any]]]]:
        """Run every stage of ``plan`` (action number ``action``) and wait for it.

        Returns the refs each task returned besides its metadata, and the
        metadata of every task by stage. With ``tasks``, a task whose outputs
        are committed is recovered from the store instead of run, and the
        policy's task checkpoints are written by the workers as it asks.
        ``kept``: partitions of the final stage that a worker still holds (a
        cache made again after a worker was lost): their tasks do not run.

        Raises
        ------
        Exception
            The first failure of the earliest failing stage (a user function's
            :class:`UserFunctionError`, a lost checkpoint, a lost worker).
        """
        import ray

        self._keys.clear()
        self._board.start(action)
        self.ensure_workers(max(s.parallelism for s in plan.stages))
        self.use_new_nodes()
        workers = self._workers
        n = len(workers)
        outputs: StageOutputs = {}
        metas: dict[Any, int] = {}
        recover = tasks.recover if tasks is not None else {}
        keep = tasks is not None and tasks.keeps
        self._saving = TaskSaving(tasks, workers, action, self._emit)
        for stage in plan.stages:
            # Small programs travel inside the task (Ray inlines small arguments);
            # a large one (parallelize_list data) once through the object store.
            holder: Any = (stage.program if len(stage.program) < INLINE_PROGRAM
                           else [ray.put(stage.program)])
            key = f"{action}.{stage.index}.{id(stage)}"
            self._keys[key] = (action, stage.index)
            out_spec = output_for(stage)
            stage_outs = []
            self._saving.keys[stage.index] = key
            skipped = kept if stage is plan.final else ()
            for p in range(stage.parallelism):
                if p in skipped:
                    stage_outs.append([])
                    continue
                w = self.placement.worker_for(p, n)
                found = recover.get((stage.index, p))
                if found is not None:  # committed: read from the store, never run
                    refs = workers[w].recover_task.options(
                        num_returns=1 + stage.num_outputs).remote(p, found, out_spec)
                else:
                    counts, reads, args, fetches = task_inputs(stage, p, w, outputs,
                                                               self.placement, checkpoint_for)
                    args.extend(workers[owner].get_partition.remote(tset_id, q)
                                for owner, tset_id, q in fetches)
                    if tasks is not None:
                        tasks.instantiated(stage, p, w)
                    call = TaskCall(
                        key, p, tuple(counts), tuple(reads), out_spec,
                        save=tasks.saves[(stage.index, p)] if keep else None,  # type: ignore[union-attr]
                        commit=keep and tasks.commits_as_it_ends(stage.index, p),  # type: ignore[union-attr]
                        keep_min_seconds=tasks.keep_min_seconds if keep else 0.0)  # type: ignore[union-attr]
                    refs = workers[w].run_task.options(num_returns=1 + stage.num_outputs).remote(
                        call.encode(), holder, *args)
                if stage.num_outputs == 0:
                    refs = [refs]
                metas[refs[0]] = stage.index
                stage_outs.append(list(refs[1:]))
            outputs[stage.index] = stage_outs
            self._emit(StageSubmitted(action=action, stage=stage.index,
                                      tasks=stage.parallelism - len(skipped)))
        try:
            results = self._wait(metas, action)
        except BaseException:
            # tasks whose end was not read (a cancel) may have kept their outputs too
            self._saving.finish(everywhere=True)
            raise
        self._saving.finish()
        return outputs, results

    def snapshot(self) -> list[dict[str, Any]]:
        """``env.snapshot()`` during an action: commit every finished task of the
        running action that is not checkpointed yet; what was saved."""
        return self._saving.snapshot() if self._saving is not None else []

    def _wait(self, metas: dict[Any, int], action: int) -> dict[int, list[dict[str, Any]]]:
        """Wait for every task (``metas``: metadata ref -> stage), emitting its
        lines and its end as it finishes; cancel the rest when asked to."""
        import ray

        pending = list(metas)
        results: dict[int, list[dict[str, Any]]] = {}
        first_error: tuple[int, BaseException] | None = None
        saving = self._saving
        while pending:
            saving.poll()
            if self._cancel.is_set():
                for ref in pending:
                    ray.cancel(ref)
                raise ActionCancelledError("the action was cancelled")
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.05)
            if not ready:
                continue
            for ref in ready:
                stage = metas[ref]
                try:
                    meta = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause: BaseException = exc  # a failed input wraps its own task's error
                    while (isinstance(cause, ray.exceptions.RayTaskError)
                           and isinstance(cause.cause, Exception)):
                        cause = cause.cause
                    if first_error is None or stage < first_error[0]:
                        first_error = (stage, cause)
                    continue
                except ray.exceptions.RayError as exc:
                    if first_error is None:
                        first_error = (stage, self._lost(exc))
                    continue
                lines = meta.pop("lines")
                outcomes = meta.pop("saved", ())  # committed by the worker meanwhile, unasked
                if meta.pop("commits_in_flight", False):
                    saving.drain_at_end(meta["worker"])
                if meta.pop("kept", False):
                    saving.kept_by(meta["worker"])
                if lines:
                    self._emit(OutputPrinted(lines=tuple(lines)))
                results.setdefault(stage, []).append(meta)
                self._board.finished(action, stage, meta["partition"])
                self._emit(TaskFinished(action=action, stage=stage,
                                        **{k: v for k, v in meta.items() if k != "part"}))
                if not meta.get("recovered"):
                    saving.finished(stage, meta["partition"])
                for outcome in outcomes:
                    saving.report(outcome)
        if first_error is not None:
            raise first_error[1]
        return results

    def _lost(self, exc: BaseException) -> JobFailedError:
        """A task that failed for Ray's reasons (not the user's), in one line."""
        import ray

        if isinstance(exc, (ray.exceptions.ActorDiedError, ray.exceptions.ActorUnavailableError)):
            return JobFailedError(
                f"a worker of job {self.job_id!r} was lost and its task was tried "
                f"{self._retries + 1} times (runtime.max_task_retries: {self._retries}): "
                f"{ray_error_line(exc)}")
        return JobFailedError(f"a task of job {self.job_id!r} failed in Ray: "
                              f"{ray_error_line(exc)}")

    def save_cached(self, tset_id: str, saves: Sequence[Any]) -> list[dict[str, Any]]:
        """Commit the cached partitions of ``tset_id`` that ``saves`` name as task
        checkpoints, each by the worker holding it (``snapshot()``); what was saved."""
        import ray

        refs = {self._workers[self.placement.owner(tset_id, save.partition)].save_cached.options(
            concurrency_group="save").remote(tset_id, save.partition, save): save for save in saves}
        out = []
        for ref, save in refs.items():
            info = ray.get(ref)
            if info is not None:
                out.append({**info, "label": save.label})
        return out

    # ------------------------------------------------------------------ memory

    def hold(self, tset_id: str, parallelism: int) -> None:
        """A cache action's partitions stay where they were made."""
        self.placement.hold(tset_id, parallelism, len(self._workers))

    def forget_lost(self, tset_id: str) -> list[int]:
        """Ask the workers which partitions of ``tset_id`` they still hold (a
        restarted worker holds nothing) and forget the others; those lost."""
        import ray

        if not self.placement.holds(tset_id):
            return []
        refs = [w.held.remote() for w in self._workers]
        kept: set[int] = set()
        for ref in refs:
            try:
                kept.update(ray.get(ref, timeout=_HELD_TIMEOUT_S).get(tset_id, ()))
            except (ray.exceptions.RayError, TimeoutError):
                continue  # a worker that does not answer holds nothing we can count on
        return self.placement.keep_only(tset_id, kept)

    def release(self, tset_id: str) -> bool:
        """Drop a cached TSet from every worker that holds it; False if none did."""
        if not self.placement.holds(tset_id):
            return False
        for w in self.placement.drop(tset_id):
            self._workers[w].release.remote(tset_id)
        return True

    def shutdown(self) -> None:
        """Kill the workers (and forget what they held)."""
        import ray

        for w in self._workers:
            ray.kill(w)
        self._workers = []
        self._nodes = []
        self.placement.clear()
        if self._spread is not None:
            self._spread.remove()
            self._spread = None


def _named_actor_exists(name: str) -> bool:
    import ray

    try:
        ray.get_actor(name)
    except ValueError:
        return False
    return True


def stage_outputs_of(outputs: StageOutputs, stage: StagePlan) -> Sequence[Any]:
    """The one ref each task of ``stage`` returned (``collect``, ``partitions``)."""
    return [outs[0] for outs in outputs[stage.index]]


@dataclass(frozen=True)
class StartedWorkers:
    """Worker actors just started, and the node each one is on (from its first answer)."""

    actors: list[Any]
    nodes: list[str]


def start_workers(master: Any, indexes: range, config: Mapping[str, Any], spread: "WorkerSpread",
                  job_id: str | None, store: Any, name: str | None = None,
                  placement: dict[str, Any] | None = None) -> StartedWorkers:
    """Start the Worker actors ``indexes`` of ``master`` and wait until each
    answers; the actors and the nodes they are on.

    ``job_id`` None starts spare workers for a pool (unnamed, bound to a job
    later with ``Worker.bind``); else they are named ``<name>.worker-<i>``.
    They are placed by ``spread``, or by ``placement`` (actor options: a worker
    moved to a node that joined, :meth:`WorkerSpread.pin`).
    A lost worker is restarted (empty) by Ray and the tasks it was running run
    again on it, up to ``runtime.max_task_retries`` times each.
    """
    import ray

    from twister_nb.runtime.worker import Worker

    # Task checkpoints are written in a thread of their own ("save"), beside the tasks.
    remote_worker = ray.remote(concurrency_groups={"save": 1})(Worker)
    retries = int(_config.get("runtime.max_task_retries", config=config))
    new = [remote_worker.options(**(placement or spread.options(i)), max_restarts=-1,
                                 max_task_retries=retries,
                                 **({"name": f"{name}.worker-{i}"} if name else {})).remote(
               i, job_id, dict(config), master, store)
           for i in indexes]
    return StartedWorkers(new, [p["node"] for p in ray.get([w.ping.remote() for w in new])])


class WorkerSpread:
    """Where a job's workers go: over every node of a multi-node cluster.

    Ray's ``SPREAD`` put every zero-CPU worker of a job on one node of a
    three-node cluster (zero-CPU actors are not load to it), and a soft node
    affinity was not always kept. A placement group with one bundle per worker
    and the ``SPREAD`` strategy is: its bundles go over the nodes, and when a
    node is lost Ray places its bundles on the nodes that remain, where the
    lost workers restart. A bundle must hold some resource, so on such a
    cluster a worker reserves at least 0.01 CPU. On one node nothing changes.

    A worker moved to a node that joined later (:meth:`pin`) gets a group of
    its own, which this object also keeps and frees.
    """

    _MIN_CPUS = 0.01

    def __init__(self, group: Any, cpus: float) -> None:
        self._group = group
        self._cpus = cpus
        #: Worker index -> the one-bundle group it was moved into.
        self._pinned: dict[int, Any] = {}

    @classmethod
    def for_cluster(cls, workers: int, cpus: float) -> "WorkerSpread":
        import ray

        if sum(1 for n in ray.nodes() if n.get("Alive")) < 2:
            return cls(None, cpus)
        from ray.util.placement_group import placement_group, remove_placement_group

        cpus = max(cpus, cls._MIN_CPUS)
        group = placement_group([{"CPU": cpus}] * workers, strategy="SPREAD")
        try:
            ray.get(group.ready(), timeout=60)
        except ray.exceptions.GetTimeoutError:
            remove_placement_group(group)
            raise JobFailedError(
                f"the cluster cannot place {workers} workers of {cpus} CPU each within 60 s "
                f"(runtime.worker_cpus: {cpus}; other jobs may hold the CPUs): lower "
                "runtime.worker_cpus or runtime.workers") from None
        return cls(group, cpus)

    @property
    def spread(self) -> bool:
        """Whether the workers go over several nodes (a placement group)."""
        return self._group is not None

    def remove(self) -> None:
        """Free the placement groups (the job's workers are gone)."""
        from ray.util.placement_group import remove_placement_group

        for group in [self._group, *self._pinned.values()]:
            if group is not None:
                remove_placement_group(group)
        self._group = None
        self._pinned.clear()

    def pin(self, index: int, node_id: str) -> dict[str, Any] | None:
        """The actor options that put worker ``index`` on node ``node_id``, or
        None if Ray placed them elsewhere.

        A placement group of one bundle, ``STRICT_PACK`` with Ray's soft target
        node: the GCS places it, and its view of the nodes is the cluster's
        own, whereas a soft ``NodeAffinity`` actor is placed by a raylet whose
        view may not have the new node yet (it then stayed on the old node).
        Being a placement group, it moves to the nodes that remain when that
        node is lost, and the worker restarts there (a hard affinity would
        leave it with nowhere to go). Where it landed is checked, not assumed.
        The worker's earlier own group, if it had one, is freed, which ends
        the worker still in it: call this just before ending the worker.
        """
        import ray
        from ray.util.placement_group import (placement_group, placement_group_table,
                                              remove_placement_group)
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        group = placement_group([{"CPU": max(self._cpus, self._MIN_CPUS)}],
                                strategy="STRICT_PACK", _soft_target_node_id=node_id)
        try:
            ray.get(group.ready(), timeout=60)
            placed = placement_group_table(group)["bundles_to_node_id"].get(0)
        except ray.exceptions.GetTimeoutError:
            placed = None
        if placed != node_id:
            remove_placement_group(group)
            return None
        earlier = self._pinned.pop(index, None)
        if earlier is not None:
            remove_placement_group(earlier)
        self._pinned[index] = group
        return {"num_cpus": self._cpus, "scheduling_strategy": PlacementGroupSchedulingStrategy(
            group, placement_group_bundle_index=0)}

    def options(self, index: int) -> dict[str, Any]:
        """The actor options of worker ``index``."""
        if self._group is None:
            return {"num_cpus": self._cpus, "scheduling_strategy": "SPREAD"}
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        return {"num_cpus": self._cpus, "scheduling_strategy": PlacementGroupSchedulingStrategy(
            self._group, placement_group_bundle_index=index)}
