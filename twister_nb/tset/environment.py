"""``TSetEnvironment``: one job, the factory of its sources, the door to its executor.

The API layer builds graphs and never imports Ray: actions are handed to an
:class:`~twister_nb.tset.executor.Executor`. A caller passes one in
(``TSetEnvironment(executor=...)``: a unit test's recorder, the notebook's
offline executor of a dry run); otherwise the environment makes the default
one, the Ray runtime (see :mod:`twister_nb.tset.executor`).

Front ends never reach the executor: the environment is their door to the
job (:meth:`TSetEnvironment.cancel`, :meth:`~TSetEnvironment.info`,
:meth:`~TSetEnvironment.subscribe` to its events, and
:meth:`~TSetEnvironment.add_action_hook` to see each action before it runs).
Creating an environment starts (or attaches to) its job and prints the job
banner first, as Twister2 does.

Why this module is long: it is Twister2's ``TSetEnvironment`` API in one class
and the one door of every front end to a job (sources, actions, loop
variables, watching, attaching, leaving), each a short documented method that
hands over to where the work is done (the executor,
:mod:`~twister_nb.tset.variables`, :mod:`~twister_nb.tset.tset`); splitting the
class would split the API a user reads.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from twister_nb import config as _config
from twister_nb.errors import DataLostError
from twister_nb.tset import ops
from twister_nb.tset.executor import (ActionHook, Executor, ExecutorFactory, LeaveCheck, Listener,
                                      WaitHook, make_executor)
from twister_nb.tset.functions import Functions
from twister_nb.tset.identity import tset_id
from twister_nb.tset.signature import convention
from twister_nb.tset.tset import KeyedTSet, TSet, check_picklable, materialized_handle
from twister_nb.tset.variables import LoopVariables

__all__ = ["TSetEnvironment", "Twister2Environment"]

#: Environment variables through which ``twister-nb submit``/``restart`` hand a
#: program its job; not configuration, so they bypass :mod:`twister_nb.config`.
JOB_ID_VAR = "TWISTER_NB__JOB_ID"
JOB_NAME_VAR = "TWISTER_NB__JOB_NAME"


#: How many damaged checkpoints one action recovers from before giving up.
_MAX_RECOVERIES = 8


def format_banner(name: str, job_id: str, fields: Mapping[str, str]) -> str:
    """Twister2's job banner lines (``Job Name``, ``Job ID``, then ``fields``)."""
    rows = {"Job Name": name, "Job ID": job_id, **fields}
    return "\n".join(f"{k:<16}:       {v}" for k, v in rows.items())


def new_job_id(name: str) -> str:
    """A fresh job ID: the job's name and a random suffix."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


def _default_parallelism(resources: Any, config: Mapping[str, Any]) -> int:
    if not resources:
        return int(_config.get("job.parallelism", 4, config))
    if isinstance(resources, Mapping):
        resources = [resources]
    total = 0
    for spec in resources:
        instances = spec.get("instances", 1) if isinstance(spec, Mapping) else None
        if not isinstance(instances, int) or instances < 1:
            raise ValueError(
                f"TSetEnvironment(resources=...): each entry needs a positive int 'instances', "
                f"got {spec!r}; e.g. resources=[{{'cpu': 1, 'ram': 512, 'instances': 4}}]"
            )
        total += instances
    return total


def _bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """``(start, end)`` of contiguous, nearly equal chunks, the first ones one longer."""
    size, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append((start, end))
        start = end
    return out


def _split(values: list[Any], parts: int) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(values[a:b]) for a, b in _bounds(len(values), parts))


@dataclass(frozen=True)
class Making:
    """How a materialized TSet is made: the graph, and ``cache`` or ``persist``."""

    op: ops.LogicalOp
    action: str


class TSetEnvironment:
    """A Twister2 job: creates sources and runs actions on the cluster.

    Parameters
    ----------
    name : str, optional
        The job's name (default: config ``job.name``, ``python-job``).
    resources : list of dict, optional
        Twister2's worker specs; the sum of their ``instances`` is the default
        parallelism of sources created with ``parallelism=0``.
    config : dict, optional
        Configuration keys for this job (they win over every other layer).
    job_id : str, optional
        Attach to or restart the job with this ID instead of starting a new one.
    create : bool
        With ``job_id``: start the job with that ID when no job has it (as
        ``twister-nb submit --job-id`` does) instead of raising
        :class:`~twister_nb.errors.JobNotFoundError`.
    executor : Executor or callable, optional
        What runs the job's actions: an executor, or a factory called as
        ``executor(env, attach_only=...)`` (a class is a factory). Default: the
        Ray runtime.
    banner : bool, optional
        Print the job banner (default: yes).
    """

    def __init__(self, name: str | None = None, resources: list[dict[str, Any]] | None = None,
                 config: Mapping[str, Any] | None = None, job_id: str | None = None, *,
                 create: bool = False, executor: Executor | ExecutorFactory | None = None,
                 banner: bool = True) -> None:
        self._overrides = dict(config or {})
        # checked when the job starts: a wrong value is one error naming its key
        self.config: dict[str, Any] = _config.validate(self._overrides)
        self.name: str = name or os.environ.get(JOB_NAME_VAR) or self.config.get("job.name", "python-job")
        self.job_id: str = job_id or os.environ.get(JOB_ID_VAR) or new_job_id(self.name)
        self.default_parallelism = _default_parallelism(resources, self.config)
        self.functions = Functions()
        self._lock = threading.RLock()
        self._refs: Counter[str] = Counter()
        #: The lazy caches and persists, made by the first action that reads them.
        self._pending: dict[str, Making] = {}
        #: The graph and action (``cache``/``persist``) each materialized TSet was
        #: made by, by TSet ID: to make it again if its data is lost.
        self._lineage: dict[str, Making] = {}
        self._closed = False
        self._hooks: list[ActionHook] = []
        self._variables = LoopVariables(load=self._load_variables, save=self._save_variables,
                                        handle=self._reference_handle)
        self._wait_hooks: list[WaitHook] = []
        self._leave_check: LeaveCheck | None = None
        # An explicit job_id attaches: it must name a live or recorded job (or create it).
        self._executor = make_executor(self, executor,
                                       attach_only=job_id is not None and not create)
        if "ipykernel" not in sys.modules:
            # A script's job ends with the script; a notebook's outlives its kernel.
            atexit.register(self.close)
        if banner:
            print(self.banner(), flush=True)

    # ------------------------------------------------------------------ info

    def banner(self) -> str:
        """The job banner: name, ID, cluster and runtime, as Twister2 prints it."""
        return format_banner(self.name, self.job_id, self._executor.banner_fields())

    def __repr__(self) -> str:
        return f"TSetEnvironment(name={self.name!r}, job_id={self.job_id!r})"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ended this job (for this process)."""
        return self._closed

    def info(self) -> dict[str, Any]:
        """The job's live state as its JobMaster tells it: name, status,
        workers, cached and persisted TSets, actions run, its driver."""
        return self._executor.info()

    def cancel(self) -> bool:
        """Ask the job to stop its running action (queued tasks are cancelled,
        the action raises). False if this job cannot run actions (an offline one)."""
        return self._executor.cancel()

    def set_leave_check(self, check: LeaveCheck | None) -> None:
        """What tells an interrupt that means "this process is going away" (a
        kernel restart or shutdown: the job goes on, see :meth:`detach`) from
        one that means "stop" (the stop button: the action is cancelled). The
        notebook sets it; without one every interrupt cancels."""
        self._leave_check = check

    def leaving(self) -> str | None:
        """Why this process is going away (e.g. ``"kernel restarted"``), or None:
        what the executor asks when an action is interrupted."""
        return None if self._leave_check is None else self._leave_check()

    def detach(self, reason: str) -> None:
        """Leave the job without ending it: this process is going away (a
        kernel restart). Its running action goes on, the job's record and
        events say ``reason``, and a new process attaches by job ID."""
        self._executor.detach(reason)

    # ------------------------------------------------------------------ watching

    def events(self, cursor: int = 0) -> tuple[list[Any], int]:
        """The job's events from ``cursor`` on and the cursor to ask with next,
        as any watcher reads them: a dashboard that draws an action from its
        start (``running()["since"]``). Listeners are not called."""
        return self._executor.events(cursor)

    @property
    def listeners(self) -> list[Listener]:
        """The watchers of this job's events, in the order they are called.

        The list itself: :meth:`subscribe` adds to it; a caller that must wrap
        the watchers for a while (a ``--background`` cell keeps them quiet off
        the main thread) replaces its items and puts them back.
        """
        return self._executor.listeners

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event)`` with every event of this job from now on:
        progress, worker output, checkpoints, errors, as the JobMaster emits them
        (they reach the listener while an action of this process runs or waits)."""
        self._executor.listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling ``listener``; no error if it was not subscribed."""
        with contextlib.suppress(ValueError):
            self._executor.listeners.remove(listener)

    @contextlib.contextmanager
    def subscribed(self, listener: Listener) -> Iterator[None]:
        """:meth:`subscribe` for the length of a ``with`` block."""
        self.subscribe(listener)
        try:
            yield
        finally:
            self.unsubscribe(listener)

    def add_action_hook(self, hook: ActionHook) -> None:
        """Call ``hook(action, root)`` before each action of this job runs
        (``action`` is ``run``, ``collect``, ``partitions``, ``cache`` or
        ``persist``; ``root`` the node it computes). It returns True to let the
        action run, False to skip it (the action returns None), or raises to
        stop it. The notebook uses it to record a cell's actions, show the
        dashboard at the first one, and run nothing in a dry run."""
        self._hooks.append(hook)

    def remove_action_hook(self, hook: ActionHook) -> None:
        """Stop calling ``hook``; no error if it was not added."""
        with contextlib.suppress(ValueError):
            self._hooks.remove(hook)

    # ------------------------------------------------------------------ sources

    def _parallelism(self, parallelism: int) -> int:
        if not isinstance(parallelism, int) or parallelism < 0:
            raise ValueError(f"parallelism must be an int >= 0 (0: the default), got {parallelism!r}")
        return parallelism or self.default_parallelism

    def _source(self, source_func: Any, parallelism: int, keyed: bool, where: str) -> ops.Source:
        if isinstance(source_func, type):
            raise TypeError(f"{where}: pass an instance, {source_func.__name__}(), not the class")
        missing = [m for m in ("has_next", "next") if not callable(getattr(source_func, m, None))]
        if missing:
            raise TypeError(
                f"{where}: {source_func!r} is not a SourceFunc (it has no {' or '.join(missing)}()); "
                "subclass twister_nb.SourceFunc and implement has_next() and next()"
            )
        check_picklable(source_func, where)
        return ops.Source(parallelism=self._parallelism(parallelism), func=source_func, keyed=keyed)

    def create_source(self, source_func: Any, parallelism: int = 0) -> TSet:
        """A TSet read from ``source_func``; each of ``parallelism`` instances runs a copy."""
        return TSet(self, self._source(source_func, parallelism, False, "create_source()"))

    def create_keyed_source(self, source_func: Any, parallelism: int = 0) -> KeyedTSet:
        """As :meth:`create_source`, where ``next()`` returns ``(key, value)``."""
        return KeyedTSet(self, self._source(source_func, parallelism, True, "create_keyed_source()"))

    def parallelize_list(self, lst: list[Any], parallelism: int = 0) -> TSet:
        """A TSet of ``lst`` split into contiguous partitions."""
        values = list(lst)
        check_picklable(values, "parallelize_list()")
        par = self._parallelism(parallelism)
        return TSet(self, ops.Parallelize(parallelism=par, partitions=_split(values, par)))

    def parallelize_array(self, data: Any, parallelism: int = 0) -> TSet:
        """A TSet of batches: ``data`` (a numpy array, or an Arrow ``Table`` /
        ``RecordBatch``) cut along its first axis into ``parallelism`` contiguous
        pieces, each partition holding its piece as one record. Made for
        :meth:`~twister_nb.tset.tset.TSet.map_batches`."""
        import numpy as np
        import pyarrow as pa

        if not (isinstance(data, np.ndarray) and data.ndim >= 1) and not isinstance(
                data, (pa.Table, pa.RecordBatch)):
            raise TypeError(f"parallelize_array(): expected a numpy array (at least 1-D) or an "
                            f"Arrow Table/RecordBatch, got {type(data).__name__}; "
                            "use parallelize_list() for a list")
        par = self._parallelism(parallelism)
        parts = tuple((data[a:b],) for a, b in _bounds(len(data), par))
        return TSet(self, ops.Parallelize(parallelism=par, partitions=parts))

    def parallelize_dict(self, d: Mapping[Any, Any], parallelism: int = 0,
                         key_comparator: Callable[[Any, Any], int] | None = None) -> KeyedTSet:
        """A keyed TSet of ``d``'s items, ordered by ``key_comparator`` when given."""
        if not isinstance(d, Mapping):
            raise TypeError(f"parallelize_dict(): expected a dict, got {type(d).__name__}")
        items = list(d.items())
        if key_comparator is not None:
            import functools

            convention("comparator", key_comparator)
            items.sort(key=lambda kv: functools.cmp_to_key(key_comparator)(kv[0]))
        check_picklable(items, "parallelize_dict()")
        par = self._parallelism(parallelism)
        return KeyedTSet(self, ops.Parallelize(parallelism=par, partitions=_split(items, par),
                                               keyed=True))

    # ------------------------------------------------------------------ running

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"job {self.job_id!r} is closed; create a new TSetEnvironment")

    def _materialize_pending(self, root: ops.LogicalOp) -> None:
        """Compute the lazy caches/persists ``root`` reads, before ``root`` itself."""
        for node in root.post_order():
            if isinstance(node, ops.Materialized) and node.tset_id in self._pending:
                making = self._pending.pop(node.tset_id)
                self.run_action(making.op, making.action, materialize_id=node.tset_id)

    def run_action(self, root: ops.LogicalOp, action: str, *,
                   materialize_id: str | None = None) -> Any:
        """Run the graph up to ``root`` as ``action`` (``run``, ``collect``,
        ``partitions``, ``cache``, ``persist``): what every TSet action calls.

        The lazy caches and persists ``root`` reads run first, the action hooks
        see the action, and a checkpoint found damaged or a cached partition
        lost with its worker on the way is recomputed from its lineage before
        the action runs again (at most ``_MAX_RECOVERIES`` times).
        """
        self._check_open()
        self._materialize_pending(root)
        for attempt in range(_MAX_RECOVERIES + 1):
            try:
                # A list, not a generator: every hook sees the action, even after a skip.
                if not all([hook(action, root) for hook in list(self._hooks)]):  # noqa: C419
                    return None  # a hook skipped it (a dry run)
                return self._executor.execute(root, action, materialize_id=materialize_id)
            except DataLostError as exc:
                lineage = self._lineage.get(exc.tset_id)
                if lineage is None or attempt == _MAX_RECOVERIES:
                    raise
                # Make the lost TSet again as it was made (its own lost inputs
                # are recovered the same way), then run the action again.
                self.run_action(lineage.op, lineage.action, materialize_id=exc.tset_id)
        raise AssertionError("unreachable")

    def materialize(self, op: ops.LogicalOp, storage: str, lazy: bool) -> TSet:
        """Cache (``storage="memory"``) or persist (``"store"``) the TSet of
        ``op``, now or at the first action that reads it (``lazy``): what
        ``cache()``, ``persist()`` and their lazy forms call. Returns the handle."""
        ident = tset_id(op)
        node = ops.Materialized(parallelism=op.parallelism, name=op.name, keyed=op.keyed,
                                tset_id=ident, storage=storage)
        action = "cache" if storage == "memory" else "persist"
        # to make it again if its data is lost
        self._lineage[ident] = Making(ops.detached(op), action)
        if lazy:
            self._pending[ident] = Making(op, action)
        else:
            self.run_action(op, action, materialize_id=ident)
        return materialized_handle(self, node)

    # ------------------------------------------------------------------ loop state

    def init_variable(self, name: str, default: Any) -> Any:
        """A loop variable: the value this job committed last when it is resumed
        (its job ID given again), else ``default`` (Twister2's checkpointing
        environment). A TSet value comes back as a handle to its checkpoint."""
        return self._variables.init(name, default)

    def update_variable(self, name: str, value: Any) -> None:
        """Stage a new value of a loop variable; :meth:`commit` makes it durable."""
        self._variables.update(name, value)

    def commit(self) -> int:
        """Make every loop variable durable at once, the TSets they hold
        persisted first; a resumed job's :meth:`init_variable` starts from
        here. Returns the snapshot's number."""
        self._check_open()
        return self._variables.commit()

    def snapshot(self) -> dict[str, Any]:
        """Checkpoint the outputs of every finished task not saved yet: the
        partitions of the cached TSets and the finished tasks of a running action
        (COMPSs's ``compss_snapshot()``). A re-run of this job ID recovers those
        tasks from the store instead of running them. (A running action's workers
        keep their finished outputs unless ``twister2.checkpointing.on_sigterm``
        is false and no checkpoint policy is on; then its tasks are not saved.)

        Returns
        -------
        dict
            What was saved: ``tsets`` (their names), ``partitions``, ``bytes``.
        """
        self._check_open()
        return self._executor.snapshot()

    def set_checkpoint_policy(self, policy: str, params: Any = None) -> dict[str, Any]:
        """Use another checkpoint policy from the next task on (as
        ``twister2.checkpointing.policy``/``policy_params`` at the job's start
        would): ``env.set_checkpoint_policy("finished_tasks", "finished.tasks:5")``.
        A bad name or parameter is a ``ConfigError`` naming it. Returns the
        policy's name, parameters and avoided names."""
        self._check_open()
        return self._executor.set_checkpoint_policy(policy, params)

    def _load_variables(self) -> dict[str, Any] | None:
        return self._executor.committed_variables()

    def _save_variables(self, snapshot: dict[str, Any]) -> int:
        return self._executor.commit_variables(snapshot)

    def _reference_handle(self, reference: Any) -> TSet:
        return materialized_handle(self, reference.node())

    # ------------------------------------------------------------------ attaching

    def tsets(self) -> dict[str, TSet]:
        """Handles to the job's cached and persisted TSets, by name: after a
        kernel restart, ``TSetEnvironment(job_id=...).tsets()["points"]``.
        A name used twice gets the TSet ID appended."""
        catalog = self._executor.catalog()
        labels = [entry["label"] for entry in catalog.values()]
        handles: dict[str, TSet] = {}
        for ident, entry in catalog.items():
            node = ops.Materialized(parallelism=entry["parallelism"], name=entry["label"],
                                    keyed=entry["keyed"], tset_id=ident, storage=entry["storage"])
            name = entry["label"] if labels.count(entry["label"]) == 1 else f"{entry['label']}@{ident}"
            handles[name] = materialized_handle(self, node)
        return handles

    def running(self) -> dict[str, Any] | None:
        """The action this job runs now, if any (it may have been started by a
        kernel that died)."""
        return self._executor.running()

    def add_wait_hook(self, hook: WaitHook) -> None:
        """Call ``hook(running)`` when :meth:`wait` starts following a running
        action (the notebook shows its live dashboard)."""
        self._wait_hooks.append(hook)

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the running action and return its value. If none runs: the
        value of the latest action when another process (a kernel that was
        restarted) started it and it ended since, else None."""
        if self._wait_hooks:
            running = self._executor.running()
            if running is not None:
                for hook in list(self._wait_hooks):
                    hook(running)
        return self._executor.wait_running(timeout)

    def retain_tset(self, ident: str) -> None:
        """A handle (or a TSet built on one) refers to the materialized TSet ``ident``."""
        with self._lock:
            self._refs[ident] += 1

    def release_tset(self, ident: str) -> None:
        """One reference to ``ident`` is gone; the last one frees its data."""
        with self._lock:
            self._refs[ident] -= 1
            if self._refs[ident] > 0:
                return
            del self._refs[ident]
            self._pending.pop(ident, None)
            self._lineage.pop(ident, None)
        if not self._closed and not sys.is_finalizing():
            self._executor.release(ident)

    def close(self) -> None:
        """End the job: free its workers and its cached data."""
        if not self._closed:
            self._closed = True
            self._executor.close()

    def __enter__(self) -> "TSetEnvironment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Twister2's name for the same class.
Twister2Environment = TSetEnvironment
