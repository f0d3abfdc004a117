"""Worker: a Ray actor that runs tasks and holds cached partitions.

A plain class, wrapped with ``ray.remote`` by the JobMaster, so importing it
needs no cluster. A worker holds one or more partition indexes of every cached
TSet (Twister2 runs several task instances per worker). Whatever a user
function prints comes back to the watcher as ``[worker-i] ...`` lines: streamed
to the JobMaster while a long task runs, and the rest with the task's result
(:mod:`twister_nb.runtime.task_lines`). Task checkpoints are kept for the
JobMaster to ask for, or committed unasked as each task ends
(:mod:`twister_nb.runtime.background_commits`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twister_nb.plan.physical import (CacheOutput, LocalRead, PersistOutput, ReturnOutput,
                                      SendOutput, StoreRead, TaskCall, TaskOutput)
from twister_nb.runtime.actor_heap import freeze_startup_objects
from twister_nb.runtime.background_commits import BackgroundCommits
from twister_nb.runtime.batches import count_records
from twister_nb.runtime.task_lines import LineStream
from twister_nb.runtime.task import TaskEnv, TaskMeter, run_program, send
from twister_nb.errors import CheckpointLostError, PartitionLostError

if TYPE_CHECKING:
    from twister_nb.checkpoint.tasks import SaveOutcome

#: How often a running task's counters go to the JobMaster (a task shorter than
#: this reports nothing: its end says it all).
REPORT_SECONDS = 0.25


@dataclass
class _Running:
    """The task this worker runs now, as its reporter thread sees it."""

    key: str
    partition: int
    started: float
    meter: TaskMeter = field(default_factory=TaskMeter)
    phase: str = "running"
    #: The counters last reported (nothing is sent while they stand still).
    reported: tuple[int, int, str] | None = None


def _as_list(values: Any) -> list[Any]:
    """A stored partition as the list every step expects (a whole-partition
    numpy array stays one array only for the numpy path, not here)."""
    return values if isinstance(values, list) else list(values)


class Worker:
    """Runs stage programs for partitions and keeps cached partitions."""

    def __init__(self, index: int, job_id: str | None, config: dict[str, Any], master: Any,
                 store: Any = None) -> None:
        self.index = index
        self.job_id = job_id
        self.config = config
        self._master = master
        self._store = store
        if job_id is None:  # a pool's spare: bound to a job later (bind)
            self._bound_again()
        self._cache: dict[tuple[str, int], list[Any]] = {}
        self._programs: OrderedDict[str, bytes] = OrderedDict()
        #: Outputs of finished tasks kept for a task checkpoint:
        #: (key, partition) -> (value, records, the TaskSave that commits them).
        self._unsaved: dict[tuple[str, int], tuple[Any, int, Any]] = {}
        #: Task checkpoints this worker commits unasked (finished_tasks 1), and their outcomes.
        self._commits = BackgroundCommits(self._commit)
        if threading.current_thread() is threading.main_thread():
            self._sigterm = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, self._vacate)
        #: Calls that streamed printed lines to the JobMaster during the running task.
        self._shipped: list[Any] = []
        #: The running task, for the reporter thread (None between tasks).
        self._running: _Running | None = None
        self._reporter: threading.Thread | None = None
        self._say_if_restarted()
        freeze_startup_objects()  # its first tasks pay no collection over them

    def _say_if_restarted(self) -> None:
        """A worker Ray restarted after its process was lost tells its JobMaster
        (:meth:`JobMaster.worker_restarted`), which tells the job's watchers."""
        import ray

        if (self._master is not None and ray.is_initialized()
                and ray.get_runtime_context().was_current_actor_reconstructed):
            self._shipped.append(self._master.worker_restarted.remote(self.index))

    def bind(self, job_id: str, config: dict[str, Any], store: Any) -> bool:
        """Serve ``job_id`` (a pool's spare worker, taken by that job's JobMaster,
        which made it): it has run nothing yet, and serves no other job ever.
        Refused (an ``AssertionError``: the pool's invariant broken) for a worker
        that served another job or holds anything of one."""
        assert self.job_id in (None, job_id), (self.job_id, job_id)
        assert not (self._cache or self._programs or self._unsaved or self._commits.busy()), (
            f"a pool's worker bound to job {job_id!r} holds {len(self._cache)} partitions, "
            f"{len(self._programs)} programs and {len(self._unsaved)} unsaved outputs")
        self.job_id, self.config, self._store = job_id, config, store
        return True

    def _bound_again(self) -> None:
        """A pool's worker that Ray restarts comes back with its creation
        arguments, which named no job: its JobMaster says which it serves now."""
        import ray

        if not (ray.is_initialized()
                and ray.get_runtime_context().was_current_actor_reconstructed):
            return
        binding = ray.get(self._master.worker_binding.remote())
        if binding is not None:
            self.job_id, self.config, self._store = binding

    def ping(self) -> dict[str, Any]:
        import ray

        return {"index": self.index, "pid": os.getpid(),
                "node": ray.get_runtime_context().get_node_id()}

    def _program_bytes(self, key: str, holder: bytes | list[Any]) -> bytes:
        if isinstance(holder, bytes):
            return holder
        data = self._programs.get(key)
        if data is None:
            import ray

            data = ray.get(holder[0])
            self._programs[key] = data
            while len(self._programs) > 64:
                self._programs.popitem(last=False)
        return data

    def _ship(self, lines: list[str]) -> None:
        if lines and self._master is not None:
            self._shipped.append(self._master.worker_output.remote(lines))

    def _shipped_arrived(self) -> None:
        """Wait until the lines this task streamed have reached the JobMaster, so
        they are printed by the action that made them, before its result (the
        driver makes no call after a short action's outcome)."""
        if self._shipped:
            import ray

            ray.wait(self._shipped, num_returns=len(self._shipped), timeout=10)
            self._shipped.clear()

    def run_task(self, call: bytes, holder: bytes | list[Any], *args: Any) -> Any:
        """Run one stage's program on one partition, as ``call`` says (a
        :class:`~twister_nb.plan.physical.TaskCall`, encoded); ``holder`` holds
        the program's bytes, or their object ref in a one-element list.

        ``args`` holds, in order, the exchange buckets (the call's ``exchange_counts[i]``
        of them for input i) and the fetched materialized partitions (one per
        :class:`~twister_nb.plan.physical.FetchedRead` of its ``materialized``; a
        ``LocalRead`` is read from this worker's memory, a ``StoreRead`` from
        the store). With its ``save`` (a :class:`~twister_nb.checkpoint.tasks.TaskSave`:
        a checkpoint policy is on), the task's outputs stay here until
        :meth:`save_tasks` writes them, a SIGTERM makes the worker save them
        (:meth:`_vacate`), or the action's end drops them (:meth:`forget_unsaved`);
        a task that ran less than its ``keep_min_seconds`` keeps nothing (no policy
        on: only a SIGTERM would save them), and ``kept`` in its metadata says
        whether it did.
        With its ``commit`` too (the policy saves every task as it finishes), the
        worker commits them unasked: at once to a local store, or in its commit
        thread while its next task runs to a remote one
        (:class:`~twister_nb.runtime.background_commits.BackgroundCommits`); the
        metadata carries the outcomes of the commits that ended under ``saved``
        (and ``commits_in_flight`` while some have not), and :meth:`drain_commits`
        the rest.
        """
        started = time.perf_counter()
        task = TaskCall.decode(call)
        key, partition, output, save = task.key, task.partition, task.output, task.save
        # A fresh copy per task: each parallel instance owns its functions' state.
        program = pickle.loads(self._program_bytes(key, holder))
        pos = 0
        exchange_inputs = []
        for count in task.exchange_counts:
            exchange_inputs.append(list(args[pos:pos + count]))
            pos += count
        mat_values = []
        for read in task.materialized:
            if isinstance(read, LocalRead):
                mat_values.append(self.get_partition(read.tset_id, read.partition))
            elif isinstance(read, StoreRead):  # a persisted partition, read (memory-mapped) on demand
                mat_values.append(_as_list(self._read_persisted(read.checkpoint, read.partition)))
            else:
                mat_values.append(args[pos])
                pos += 1
        running = _Running(key, partition, time.monotonic())
        env = TaskEnv(worker_id=self.index, index=partition, config=self.config,
                      exchange_inputs=exchange_inputs, materialized=mat_values,
                      meter=running.meter)
        self._start_reporting(running)
        stream = LineStream(f"[worker-{self.index}] ", self._ship)
        buckets: list[list[Any]] = []
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            try:
                out, records_in = run_program(program, env)
                if isinstance(output, SendOutput):  # reduce and partition functions print too
                    buckets = send(program, env, out)
            except BaseException:
                self._running = None
                self._ship(stream.finish())  # what it printed before failing
                self._shipped_arrived()
                raise
        self._shipped_arrived()
        meta = {"partition": partition, "worker": self.index, "records_in": records_in,
                "records_out": count_records(out), "seconds": time.perf_counter() - started,
                "lines": stream.finish()}
        if save is not None:
            kept = buckets if isinstance(output, SendOutput) else out
            if task.commit and self._store.remote:  # beside the next task: S3 round trips
                self._commits.submit(save, kept, meta["records_out"])
            elif task.commit:  # a local commit: cheaper here than in a thread sharing the GIL
                running.phase = "writing"  # the dashboard's "checkpointing"
                self._commits.done(self._commit(save, kept, meta["records_out"]))
            elif meta["seconds"] >= task.keep_min_seconds:
                self._unsaved[(key, partition)] = (kept, meta["records_out"], save)
                meta["kept"] = True
        saved = self._commits.take()
        if saved:
            meta["saved"] = saved
        if self._commits.busy():  # committing beside the next task: drain at the end
            meta["commits_in_flight"] = True
        if isinstance(output, PersistOutput):
            running.phase = "writing"  # the dashboard's "checkpointing"
        try:
            return self._deliver(output, partition, out, buckets, meta)
        finally:
            self._running = None

    def _deliver(self, output: TaskOutput, partition: int, out: Any, buckets: list[list[Any]],
                 meta: dict[str, Any]) -> Any:
        """A finished (or recovered) task's outputs where ``output`` says they go."""
        if isinstance(output, SendOutput):
            return (meta, *buckets)
        if isinstance(output, ReturnOutput):
            return meta, out
        if isinstance(output, CacheOutput):
            self._cache[(output.tset_id, partition)] = out
        elif isinstance(output, PersistOutput):
            write_started = time.perf_counter()
            meta["part"] = self._store.write_part(self.job_id, output.tset_id, output.version,
                                                  partition, out)
            meta["write_seconds"] = time.perf_counter() - write_started
        return meta

    # ------------------------------------------------------------------ task checkpoints

    def recover_task(self, partition: int, checkpoint: Any, output: TaskOutput) -> Any:
        """A task whose outputs are committed: read them from the store (checksum
        and signature checked) instead of running it, and deliver them as
        :meth:`run_task` would."""
        started = time.perf_counter()
        value = self._read_persisted(checkpoint, 0)
        records = int(checkpoint.meta.get("records", 0))
        meta = {"partition": partition, "worker": self.index, "records_in": 0,
                "records_out": records, "seconds": time.perf_counter() - started, "lines": [],
                "recovered": True}
        if isinstance(output, SendOutput):
            return self._deliver(output, partition, None, list(value), meta)
        return self._deliver(output, partition, _as_list(value), [], meta)

    def save_tasks(self, saves: list[tuple[str, Any]]) -> list[SaveOutcome]:
        """Commit the kept outputs of finished tasks as their task checkpoints, in
        order: ``saves`` holds ``(run key, TaskSave)`` pairs, one call for the
        saves the JobMaster had due for this worker (a Ray call costs about as
        much CPU as a task checkpoint's commit, so they travel together). Runs in
        its own thread, beside the tasks. One outcome per save: committed, gone
        already (the action ended), or failed, said in one line; a failure does
        not stop the saves after it."""
        from twister_nb.checkpoint.tasks import SaveOutcome

        out = []
        for key, save in saves:
            kept = self._unsaved.pop((key, save.partition), None)
            out.append(SaveOutcome(save) if kept is None else self._commit(save, kept[0], kept[1]))
        return out

    def drain_commits(self, timeout: float) -> list[SaveOutcome]:
        """The action ended: wait (up to ``timeout`` seconds) for the task
        checkpoints this worker commits unasked, and return the outcomes not
        sent with a task's result yet."""
        return self._commits.drain(timeout)

    def _commit(self, save: Any, value: Any, records: int) -> SaveOutcome:
        from twister_nb.checkpoint.tasks import commit_outcome

        return commit_outcome(self._store, self.job_id, save, value, records)

    def save_cached(self, tset_id: str, partition: int, save: Any) -> dict[str, Any] | None:
        """Commit a cached partition this worker holds as its task's checkpoint
        (``env.snapshot()``). None if it no longer holds it."""
        from twister_nb.checkpoint.tasks import commit_task

        values = self._cache.get((tset_id, partition))
        if values is None:
            return None
        return commit_task(self._store, self.job_id, save, values, count_records(values))

    def _vacate(self, signum: int, frame: Any) -> None:
        """SIGTERM (an eviction notice: HTCondor's vacate, a preemption, a drain):
        let the commits in flight end, commit the kept outputs of every task
        this worker finished and nobody saved yet, then exit. Ray restarts the worker and runs its unfinished
        task again; a re-run of the job recovers the finished ones."""
        from twister_nb.checkpoint.tasks import commit_task

        self._commits.wait(timeout=60)  # those in flight first: they are the oldest
        saved = 0
        for key in list(self._unsaved):
            kept = self._unsaved.pop(key, None)
            if kept is None:
                continue  # the save thread took it meanwhile
            try:
                commit_task(self._store, self.job_id, kept[2], kept[0], kept[1])
                saved += 1
            except Exception as exc:  # noqa: BLE001 - leaving anyway; say what was lost
                print(f"[worker-{self.index}] SIGTERM: task {key[1]} not checkpointed: {exc}",
                      file=sys.__stderr__, flush=True)
        print(f"[worker-{self.index}] SIGTERM: {saved} finished tasks checkpointed; leaving",
              file=sys.__stderr__, flush=True)
        os._exit(1)  # Ray's own handler waits for the threads of a threaded actor

    def forget_unsaved(self, action_prefix: str) -> int:
        """Drop the kept outputs of an action's tasks (the action ended)."""
        keys = [k for k in self._unsaved if k[0].startswith(action_prefix)]
        for k in keys:
            self._unsaved.pop(k, None)
        return len(keys)

    # ------------------------------------------------------------------ live progress

    def _start_reporting(self, running: _Running) -> None:
        """Make ``running`` the task the reporter thread reports (started once)."""
        self._running = running
        if self._reporter is None and self._master is not None:
            self._reporter = threading.Thread(target=self._report_loop, name="progress",
                                              daemon=True)
            self._reporter.start()

    def _report_loop(self) -> None:
        """About every 0.25 s, send the running task's counters to the JobMaster
        (one non-blocking call, only when they changed, only for a task running
        longer than that): the dashboard's live records in and out."""
        while True:
            time.sleep(REPORT_SECONDS)
            running = self._running
            if running is None:
                continue
            seconds = time.monotonic() - running.started
            if seconds < REPORT_SECONDS:
                continue
            records_in, records_out = running.meter.sample()
            now = (records_in, records_out, running.phase)
            if now == running.reported:
                continue
            running.reported = now
            try:
                self._master.task_progress.remote(running.key, running.partition, self.index,
                                                  records_in, records_out, seconds,
                                                  running.phase)
            except Exception:  # noqa: BLE001 - progress is a view; the task goes on
                pass

    def _read_persisted(self, checkpoint: Any, partition: int) -> Any:
        """A persisted partition, its checksum checked as it is read; a damaged
        part becomes :class:`CheckpointLostError`, which makes the driver
        recompute the TSet (restore checks sizes only, unless configured)."""
        from twister_nb.storage import CheckpointCorruptError

        try:
            return self._store.read_part(checkpoint, partition)
        except CheckpointCorruptError as exc:
            raise CheckpointLostError(checkpoint.tset_id, checkpoint.meta.get("label", ""),
                                      str(exc)) from None

    def get_partition(self, tset_id: str, partition: int) -> list[Any]:
        """A cached partition this worker holds. A worker Ray restarted after it
        was lost holds nothing: :class:`PartitionLostError`, which makes the
        driver recompute the TSet."""
        try:
            return self._cache[(tset_id, partition)]
        except KeyError:
            raise PartitionLostError(tset_id, tset_id, partition,
                                     f"worker {self.index} no longer holds it (it was lost and "
                                     "restarted)") from None

    def adopt(self, keys: list[tuple[str, int]], *partitions: list[Any]) -> int:
        """Hold the cached partitions ``keys`` (their values in ``partitions``)
        that this worker's earlier actor held: it moved to a node that joined
        the cluster (``Scheduler.use_new_nodes``); how many."""
        for (tset_id, p), values in zip(keys, partitions):
            self._cache[(tset_id, p)] = values
        return len(keys)

    def held(self) -> dict[str, list[int]]:
        """Which partitions of which TSets this worker holds."""
        out: dict[str, list[int]] = {}
        for tset_id, p in self._cache:
            out.setdefault(tset_id, []).append(p)
        return out

    def release(self, tset_id: str) -> int:
        keys = [k for k in self._cache if k[0] == tset_id]
        for k in keys:
            del self._cache[k]
        return len(keys)
