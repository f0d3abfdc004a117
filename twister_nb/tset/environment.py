"""``TSetEnvironment``: one job, the factory of its sources, the door to its executor.

The API layer builds graphs and never imports Ray: actions are handed to an
:class:`Executor` that the package root registers (the Ray runtime), and that a
unit test may replace. Creating an environment starts (or attaches to) its job
and prints the job banner first, as Twister2 does.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from twister_nb import config as _config
from twister_nb.errors import CheckpointLostError
from twister_nb.tset import ops
from twister_nb.tset.functions import Functions
from twister_nb.tset.identity import tset_id
from twister_nb.tset.signature import convention
from twister_nb.tset.tset import (
    CachedKeyedTSet,
    CachedTSet,
    KeyedTSet,
    PersistedKeyedTSet,
    PersistedTSet,
    TSet,
    check_picklable,
)

__all__ = ["TSetEnvironment", "Twister2Environment", "Executor",
           "register_executor"]

#: Environment variables through which ``twister-nb submit``/``restart`` hand a
#: program its job; not configuration, so they bypass :mod:`twister_nb.config`.
JOB_ID_VAR = "TWISTER_NB__JOB_ID"
JOB_NAME_VAR = "TWISTER_NB__JOB_NAME"
BANNER_DONE_VAR = "TWISTER_NB__BANNER_PRINTED"


#: How many damaged checkpoints one action recovers from before giving up.
_MAX_RECOVERIES = 8


class Executor(Protocol):
    """What runs a job's actions (the Ray runtime implements it)."""

    def banner_fields(self) -> dict[str, str]:
        """``Cluster Type``/``Runtime`` lines of the job banner."""

    def execute(self, root: ops.LogicalOp, action: str, *, materialize_id: str | None = None) -> Any:
        """Run the graph up to ``root``; ``action`` is ``run``, ``collect``,
        ``partitions``, ``cache`` or ``persist``."""

    def release(self, tset_id: str) -> None:
        """Free the cached data of ``tset_id``."""

    def close(self) -> None:
        """End the job and free its workers."""

    def catalog(self) -> dict[str, dict[str, Any]]:
        """The job's cached and persisted TSets: id -> label, storage, parallelism, keyed."""

    def running(self) -> dict[str, Any] | None:
        """The action running now, if any."""

    def wait_running(self, timeout: float | None = None) -> Any:
        """The running action's value, once it ends."""


_executor_factory: str | Callable[["TSetEnvironment"], Executor] | None = None


def register_executor(factory: str | Callable[["TSetEnvironment"], Executor]) -> None:
    """Set what executes jobs: a callable, or ``"module:attr"`` imported on first use."""
    global _executor_factory
    _executor_factory = factory


def _make_executor(env: "TSetEnvironment", attach_only: bool) -> Executor:
    factory = _executor_factory
    if factory is None:
        raise RuntimeError("no executor registered; import twister_nb, which registers the Ray runtime")
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(env, attach_only=attach_only)


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
    """

    def __init__(self, name: str | None = None, resources: list[dict[str, Any]] | None = None,
                 config: Mapping[str, Any] | None = None, job_id: str | None = None) -> None:
        self._overrides = dict(config or {})
        self.config: dict[str, Any] = _config.load(self._overrides)
        self.name: str = name or os.environ.get(JOB_NAME_VAR) or self.config.get("job.name", "python-job")
        self.job_id: str = job_id or os.environ.get(JOB_ID_VAR) or new_job_id(self.name)
        self.default_parallelism = _default_parallelism(resources, self.config)
        self.functions = Functions()
        self._lock = threading.RLock()
        self._refs: Counter[str] = Counter()
        self._pending: dict[str, tuple[ops.LogicalOp, str]] = {}
        #: The graph each persisted TSet was computed from, by TSet ID.
        self._lineage: dict[str, ops.LogicalOp] = {}
        self._closed = False
        # An explicit job_id attaches: it must name a live or recorded job.
        self._executor = _make_executor(self, attach_only=job_id is not None)
        if "ipykernel" not in sys.modules:
            # A script's job ends with the script; a notebook's outlives its kernel.
            atexit.register(self.close)
        if not os.environ.get(BANNER_DONE_VAR):
            print(self.banner(), flush=True)

    # ------------------------------------------------------------------ info

    def banner(self) -> str:
        """The job banner: name, ID, cluster and runtime, as Twister2 prints it."""
        return format_banner(self.name, self.job_id, self._executor.banner_fields())

    def __repr__(self) -> str:
        return f"TSetEnvironment(name={self.name!r}, job_id={self.job_id!r})"

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
                op, storage = self._pending.pop(node.tset_id)
                self._run(op, storage, materialize_id=node.tset_id)

    def _run(self, root: ops.LogicalOp, action: str, *, materialize_id: str | None = None) -> Any:
        self._check_open()
        self._materialize_pending(root)
        for attempt in range(_MAX_RECOVERIES + 1):
            try:
                return self._executor.execute(root, action, materialize_id=materialize_id)
            except CheckpointLostError as exc:
                lineage = self._lineage.get(exc.tset_id)
                if lineage is None or attempt == _MAX_RECOVERIES:
                    raise
                # Recompute the damaged TSet as it was persisted (its own damaged
                # inputs are recovered the same way), then run the action again.
                self._run(lineage, "persist", materialize_id=exc.tset_id)
        raise AssertionError("unreachable")

    def _materialize(self, op: ops.LogicalOp, storage: str, lazy: bool) -> TSet:
        ident = tset_id(op)
        node = ops.Materialized(parallelism=op.parallelism, name=op.name, keyed=op.keyed,
                                tset_id=ident, storage=storage)
        action = "cache" if storage == "memory" else "persist"
        if storage == "store":
            self._lineage[ident] = op  # to recompute it if its checkpoint is damaged
        if lazy:
            self._pending[ident] = (op, action)
        else:
            self._run(op, action, materialize_id=ident)
        if storage == "memory":
            cls = CachedKeyedTSet if op.keyed else CachedTSet
        else:
            cls = PersistedKeyedTSet if op.keyed else PersistedTSet
        return cls(self, node)

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
            if entry["storage"] == "memory":
                cls = CachedKeyedTSet if entry["keyed"] else CachedTSet
            else:
                cls = PersistedKeyedTSet if entry["keyed"] else PersistedTSet
            name = entry["label"] if labels.count(entry["label"]) == 1 else f"{entry['label']}@{ident}"
            handles[name] = cls(self, node)
        return handles

    def running(self) -> dict[str, Any] | None:
        """The action this job runs now, if any (it may have been started by a
        kernel that died)."""
        return self._executor.running()

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the running action and return its value (None if none runs)."""
        return self._executor.wait_running(timeout)

    def _retain(self, ident: str) -> None:
        with self._lock:
            self._refs[ident] += 1

    def _release(self, ident: str) -> None:
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
