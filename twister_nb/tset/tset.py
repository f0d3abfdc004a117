"""The user-facing TSet classes: Twister2's Python API over the logical graph.

``TSet`` and ``KeyedTSet`` are data; ``TLink`` is how data moves to the next
transform (``direct()``, ``reduce(fn)``, ``partition(pf)`` ...). Transforms
called on a TSet go through ``direct()``, as in Twister2. Each object wraps an
immutable :mod:`~twister_nb.tset.ops` node and its environment; nothing runs
until an action (``for_each``, ``sink``, ``cache``, ``persist``, ``collect``,
``get_data``).

Why this module is long: it is the user-facing API surface (every transform,
link and action of Twister2's TSet, KeyedTSet and TLink), each a few documented
lines.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cloudpickle

from twister_nb.tset import ops
from twister_nb.tset.functions import DataObject
from twister_nb.tset.identity import tset_id
from twister_nb.tset.signature import convention

if TYPE_CHECKING:
    from twister_nb.tset.environment import TSetEnvironment

__all__ = ["TSet", "KeyedTSet", "TLink", "CachedTSet", "PersistedTSet"]


def check_picklable(obj: Any, where: str) -> None:
    """Fail at build time, not on a worker, when a function cannot travel."""
    try:
        cloudpickle.dumps(obj)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the same thing
        what = getattr(obj, "__qualname__", None) or type(obj).__name__
        raise TypeError(
            f"{where}: {what} cannot be sent to the workers ({type(exc).__name__}: {exc}). "
            "A user function must be picklable: avoid capturing open files, locks, "
            "sockets or clients in its closure; create them inside the function instead."
        ) from exc


def _check_partition_func(pf: Any, where: str) -> None:
    if not callable(getattr(pf, "partition", None)):
        raise TypeError(
            f"{where}: {pf!r} is not a PartitionFunc; pass an object with "
            "partition(source_index, value) -> int (and optional prepare/commit), "
            "e.g. env.functions.partition.load_balanced()"
        )
    check_picklable(pf, where)


def _check_comparator(cmp: Callable[[Any, Any], int] | None, where: str) -> None:
    if cmp is not None:
        convention("comparator", cmp)
        check_picklable(cmp, where)


class _Node:
    """What TSets and links share: an environment and a logical node."""

    def __init__(self, env: "TSetEnvironment", op: ops.LogicalOp) -> None:
        self._env = env
        self._op = op

    @property
    def id(self) -> str:  # noqa: A003 - Twister2's name
        """Stable fingerprint of this TSet (see :mod:`twister_nb.tset.identity`)."""
        return tset_id(self._op)

    @property
    def name(self) -> str:
        return self._op.label

    @property
    def parallelism(self) -> int:
        return self._op.parallelism

    @property
    def op(self) -> ops.LogicalOp:
        """The logical node (for the planner and the graph view)."""
        return self._op

    @property
    def env(self) -> "TSetEnvironment":
        return self._env

    def visualize(self, **kwargs: Any) -> Any:
        """Draw the graph up to this TSet (see :func:`twister_nb.tset.graph.visualize`)."""
        from twister_nb.tset.graph import visualize  # the view is optional

        return visualize(self._op, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, parallelism={self.parallelism}, id={self.id!r})"


class _Transforms(_Node):
    """Transforms and actions: on a link they apply to what the link delivers;
    on a TSet they go through ``direct()``."""

    def _link(self) -> "TLink":
        raise NotImplementedError

    def _transform(self, cls: type[ops.AbstractTransform], op_name: str, fn: Any,
                   keyed: bool = False) -> ops.AbstractTransform:
        conv = convention(op_name, fn)
        check_picklable(fn, f"{op_name}()")
        link = self._link()._op
        return cls(inputs=(link,), parallelism=link.parallelism, fn=fn, convention=conv,
                   keyed=keyed)

    def map(self, fn: Callable[..., Any]) -> "TSet":
        """``fn(value)`` or ``fn(value, ctx)`` for every value."""
        return TSet(self._env, self._transform(ops.Map, "map", fn))

    def flat_map(self, fn: Callable[..., Any]) -> "TSet":
        """``fn(value, collector[, ctx])`` collects any number of outputs per value."""
        return TSet(self._env, self._transform(ops.FlatMap, "flat_map", fn))

    def compute(self, fn: Callable[..., Any]) -> "TSet":
        """``fn(itr, collector, ctx)`` once per partition, or ``fn(itr[, ctx])``
        returning one value per partition."""
        return TSet(self._env, self._transform(ops.Compute, "compute", fn))

    def filter(self, fn: Callable[..., bool]) -> "TSet":  # noqa: A003
        """Keep the values for which ``fn(value[, ctx])`` is true."""
        keyed = self._link()._op.keyed
        cls = KeyedTSet if keyed else TSet
        return cls(self._env, self._transform(ops.Filter, "filter", fn, keyed=keyed))

    def map_to_tuple(self, fn: Callable[..., tuple[Any, Any]]) -> "KeyedTSet":
        """``fn(value[, ctx])`` returns ``(key, value)``: the result is keyed."""
        return KeyedTSet(self._env, self._transform(ops.MapToTuple, "map_to_tuple", fn,
                                                    keyed=True))

    def map_batches(self, fn: Callable[..., Any], batch_size: int | None = None) -> "TSet":
        """``fn(batch)`` or ``fn(batch, ctx)`` on numpy / Arrow batches of each
        partition; the result holds what ``fn`` returns, one value per batch.

        Records that are arrays (numpy, Arrow ``Array``/``RecordBatch``/``Table``)
        are sliced along their first axis without copying (numpy slices are
        read-only: return a new array instead of writing in place); runs of plain
        records are packed with ``numpy.asarray``. ``batch_size`` is the most rows
        a batch holds; by default a batch is about 512 KiB, which keeps a
        chain like ``x * 5 + 2`` inside the CPU cache. Return a batch to keep
        working on batches, a number (``b.sum()``) to reduce them, and use
        :meth:`unbatch` to go back to one record per row.
        """
        if batch_size is not None and (not isinstance(batch_size, int)
                                       or isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"map_batches(): batch_size must be a positive int or None, "
                             f"got {batch_size!r}")
        op = self._transform(ops.MapBatches, "map_batches", fn)
        return TSet(self._env, op.replace(batch_size=batch_size))

    def unbatch(self) -> "TSet":
        """One record per row of every batch: 1-D numpy arrays give Python
        scalars, N-D arrays their rows, Arrow tables one dict per row."""
        link = self._link()._op
        return TSet(self._env, ops.Unbatch(inputs=(link,), parallelism=link.parallelism))

    # ----------------------------------------------------------------- actions

    def for_each(self, fn: Callable[..., Any]) -> None:
        """Run ``fn(value[, ctx])`` on every value, on the workers. Executes now."""
        self._env.run_action(self._transform(ops.ForEach, "for_each", fn), "run")

    def sink(self, fn: Any) -> None:
        """Hand every value to ``fn(value[, ctx])``, or to ``sink.add(value)`` of an
        object with ``add`` (and optional ``prepare(ctx)``/``close()``). Executes now."""
        target = fn
        if not callable(fn) and callable(getattr(fn, "add", None)):
            target = fn.add
        conv = convention("sink", target)
        check_picklable(fn, "sink()")
        link = self._link()._op
        op = ops.Sink(inputs=(link,), parallelism=link.parallelism, fn=fn, convention=conv)
        self._env.run_action(op, "run")

    def _result_op(self) -> ops.LogicalOp:
        """The node whose data an action on this object returns."""
        return self._op

    def collect(self) -> list[Any]:
        """All values back to the caller, in partition order. Executes now."""
        return self._env.run_action(self._result_op(), "collect")

    def get_data(self) -> DataObject:
        """Every partition back to the caller as a :class:`DataObject`. Executes now."""
        return DataObject(self._env.run_action(self._result_op(), "partitions"))

    def cache(self) -> "CachedTSet":
        """Compute now and keep the partitions in the workers' memory."""
        return self._env.materialize(self._result_op(), storage="memory", lazy=False)

    def lazy_cache(self) -> "CachedTSet":
        """As :meth:`cache`, computed by the first action that uses it."""
        return self._env.materialize(self._result_op(), storage="memory", lazy=True)

    def persist(self) -> "PersistedTSet":
        """Compute now and write the partitions to the checkpoint store; a
        restarted job finds them again instead of recomputing."""
        return self._env.materialize(self._result_op(), storage="store", lazy=False)

    def lazy_persist(self) -> "PersistedTSet":
        """As :meth:`persist`, computed by the first action that uses it."""
        return self._env.materialize(self._result_op(), storage="store", lazy=True)


class TLink(_Transforms):
    """A link: how values reach the next transform. Made by ``direct()``,
    ``reduce(fn)``, ``partition(pf)``, ``keyed_gather()`` and the others."""

    def _link(self) -> "TLink":
        return self

    def _result_op(self) -> ops.LogicalOp:
        # An action on a link returns what the link delivers: an identity map,
        # fused into the same pass, makes it a TSet.
        return self.map(ops.identity)._op


class TSet(_Transforms):
    """A distributed collection of values in ``parallelism`` partitions."""

    def _link(self) -> TLink:
        return self.direct()

    def set_name(self, name: str) -> "TSet":
        """Name this TSet (shown in the graph, the dashboard and errors)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"set_name(): name must be a non-empty string, got {name!r}")
        self._op = self._op.replace(name=name)
        return self

    def add_input(self, key: str, tset: "TSet") -> "TSet":
        """Make ``tset`` (cached or persisted) readable by this TSet's function
        through ``ctx.get_input(key)``."""
        if not isinstance(tset, (CachedTSet, PersistedTSet)):
            raise TypeError(
                f"add_input({key!r}, ...): {tset!r} must be cached or persisted first; "
                "call .cache() or .persist() on it"
            )
        if not isinstance(self._op, ops.AbstractTransform):
            raise TypeError(
                f"add_input({key!r}, ...): {self!r} has no user function to read it; "
                "add inputs to a map, flat_map, compute, filter or for_each TSet"
            )
        others = tuple((k, v) for k, v in self._op.side_inputs if k != key)
        self._op = self._op.replace(side_inputs=others + ((key, tset._op),))
        return self

    # ----------------------------------------------------------------- links

    def _make_link(self, cls: type[ops.AbstractLink], parallelism: int | None = None,
                   **fields: Any) -> TLink:
        par = self._op.parallelism if parallelism is None else parallelism
        return TLink(self._env, cls(inputs=(self._op,), parallelism=par, keyed=self._op.keyed,
                                    **fields))

    def direct(self) -> TLink:
        """Partition i to partition i; fused with the next transform."""
        return self._make_link(ops.Direct)

    def reduce(self, fn: Callable[[Any, Any], Any]) -> TLink:
        """Fold every value with ``fn(a, b)`` into one value, in one partition."""
        convention("reduce", fn)
        check_picklable(fn, "reduce()")
        return self._make_link(ops.Reduce, 1, fn=fn)

    def all_reduce(self, fn: Callable[[Any, Any], Any]) -> TLink:
        """As :meth:`reduce`, with the result in every partition."""
        convention("reduce", fn)
        check_picklable(fn, "all_reduce()")
        return self._make_link(ops.AllReduce, fn=fn)

    def gather(self) -> TLink:
        """Every value, in partition order, in one partition."""
        return self._make_link(ops.Gather, 1)

    def all_gather(self) -> TLink:
        """Every value, in partition order, in every partition."""
        return self._make_link(ops.AllGather)

    def partition(self, pf: Any, parallelism: int | None = None) -> TLink:
        """Send each value to ``pf.partition(source_index, value)``; keeps this
        TSet's parallelism unless ``parallelism`` is given."""
        _check_partition_func(pf, "partition()")
        return self._make_link(ops.Partition, parallelism, pf=pf)

    def replicate(self, replications: int) -> TLink:
        """Broadcast: each of ``replications`` partitions receives every value."""
        if not isinstance(replications, int) or replications < 1:
            raise ValueError(f"replicate(): replications must be a positive int, got {replications!r}")
        return self._make_link(ops.Replicate, replications)

    def union(self, other: "TSet") -> "TSet":
        """Partition i holds partition i of both TSets."""
        if not isinstance(other, TSet):
            raise TypeError(f"union(): expected a TSet, got {other!r}")
        if other._env is not self._env:
            raise ValueError("union(): both TSets must belong to the same environment")
        par = max(self.parallelism, other.parallelism)
        keyed = self._op.keyed and other._op.keyed
        cls = KeyedTSet if keyed else TSet
        return cls(self._env, ops.Union(inputs=(self._op, other._op), parallelism=par, keyed=keyed))


class KeyedTSet(TSet):
    """A TSet of ``(key, value)`` pairs, with the keyed links."""

    def keyed_reduce(self, fn: Callable[[Any, Any], Any]) -> TLink:
        """Fold the values of each key with ``fn(a, b)``; yields ``(key, value)``."""
        convention("reduce", fn)
        check_picklable(fn, "keyed_reduce()")
        return self._make_link(ops.KeyedReduce, fn=fn)

    def keyed_gather(self, partition_func: Any = None,
                     key_comparator: Callable[[Any, Any], int] | None = None,
                     use_disk: bool = False) -> TLink:
        """Group the values of each key; yields ``(key, [values])``, keys ordered
        by ``key_comparator(a, b) -> int`` when given."""
        if partition_func is not None:
            _check_partition_func(partition_func, "keyed_gather()")
        _check_comparator(key_comparator, "keyed_gather()")
        return self._make_link(ops.KeyedGather, pf=partition_func,
                               key_comparator=key_comparator, use_disk=bool(use_disk))

    def keyed_partition(self, pf: Any) -> TLink:
        """Send each pair to ``pf.partition(source_index, key)``."""
        _check_partition_func(pf, "keyed_partition()")
        return self._make_link(ops.KeyedPartition, pf=pf)

    def join(self, other: "KeyedTSet", join_type: str = "inner",
             key_comparator: Callable[[Any, Any], int] | None = None) -> TLink:
        """``(key, (left, right))`` for equal keys; ``None`` for the missing side
        of a ``left``, ``right`` or ``full_outer`` join."""
        if not isinstance(other, KeyedTSet):
            raise TypeError(f"join(): the other side must be a KeyedTSet, got {other!r}; "
                            "use map_to_tuple() to make one")
        if join_type not in ops.JOIN_TYPES:
            raise ValueError(f"join(): join_type {join_type!r} is not one of {ops.JOIN_TYPES}")
        _check_comparator(key_comparator, "join()")
        par = max(self.parallelism, other.parallelism)
        op = ops.Join(inputs=(self._op, other._op), parallelism=par, keyed=True,
                      join_type=join_type, key_comparator=key_comparator)
        return TLink(self._env, op)


class _MaterializedMixin:
    """Cached and persisted TSets hold data. The data is released when its
    ``Materialized`` node is garbage: no handle and no TSet built on it (as a
    parent or through ``add_input``) is left, which is what frees the old
    centroids of a k-means loop."""

    _env: "TSetEnvironment"
    _op: ops.Materialized

    def _track(self) -> None:
        env_ref = weakref.ref(self._env)
        ident = self._op.tset_id
        self._env.retain_tset(ident)
        finalizer = weakref.finalize(self._op, _release, env_ref, ident)
        # Not at interpreter exit: a kernel that restarts must not free the data a
        # new kernel will attach to (a script's job is closed by its own atexit).
        finalizer.atexit = False

    def set_name(self, name: str) -> "TSet":
        super().set_name(name)  # type: ignore[misc]
        self._track()  # the renamed node holds the data now
        return self  # type: ignore[return-value]

    @property
    def id(self) -> str:  # noqa: A003
        return self._op.tset_id


def _release(env_ref: "weakref.ref[TSetEnvironment]", ident: str) -> None:
    env = env_ref()
    if env is not None:
        env.release_tset(ident)


class CachedTSet(_MaterializedMixin, TSet):
    """A TSet whose partitions stay in the workers' memory."""

    def __init__(self, env: "TSetEnvironment", op: ops.Materialized) -> None:
        super().__init__(env, op)
        self._track()


class CachedKeyedTSet(CachedTSet, KeyedTSet):
    """A cached TSet of ``(key, value)`` pairs."""


class PersistedTSet(_MaterializedMixin, TSet):
    """A TSet whose partitions are in the checkpoint store."""

    def __init__(self, env: "TSetEnvironment", op: ops.Materialized) -> None:
        super().__init__(env, op)
        self._track()


class PersistedKeyedTSet(PersistedTSet, KeyedTSet):
    """A persisted TSet of ``(key, value)`` pairs."""


def materialized_handle(env: "TSetEnvironment", op: ops.Materialized) -> TSet:
    """The handle class for a cached or persisted TSet, keyed or not."""
    if op.storage == "memory":
        return (CachedKeyedTSet if op.keyed else CachedTSet)(env, op)
    return (PersistedKeyedTSet if op.keyed else PersistedTSet)(env, op)
