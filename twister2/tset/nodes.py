"""Twister2's ``TSet``, ``TLink`` and ``KeyedTSet``: a mutable graph replayed on twister_nb.

Twister2's graph is mutable: ``add_input`` changes the TSet it is called on,
and every TSet built from it sees the change at its next action (``kmeans.py``
re-adds the new ``centroids`` to ``mapped`` each iteration, after ``reduced``
was built from it). twister_nb's graph is immutable (a TSet's ID is the
fingerprint of what it is). So each node here keeps how it is made from its
parents (``make``) and its inputs, and :meth:`_Node.built` makes the twister_nb
object again whenever an ``add_input`` changed the graph since the last time
(:class:`GraphVersion`). An action builds, then runs on twister_nb through the
program's copy (:mod:`twister2.spmd`), so it runs once for all workers.

What differs from twister_nb's own API, on purpose (Twister2's behaviour):
``sink`` of a direct (or any iterator) link receives the partition's iterator;
``for_each`` returns an empty TSet (Twister2's ``forEach`` is ``void`` in Java,
its Python wrapper a TSet of nothing); ``get_data()`` of a TSet that is not
cached is None; ``compute`` collects with three parameters, else returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twister2 import adapt
from twister2.data.DataObject import DataObject
from twister_nb.tset.identity import value_digest

if TYPE_CHECKING:
    from twister2.Twister2Environment import Twister2Environment

__all__ = ["TSet", "TLink", "KeyedTSet", "GraphVersion"]


class GraphVersion:
    """Counts the changes (``add_input``) of one program's graph."""

    def __init__(self) -> None:
        self.number = 0

    def changed(self) -> None:
        self.number += 1


class _Node:
    """A node of the Twister2 graph: its parents, how its twister_nb object is
    made from theirs, and the inputs added to it."""

    def __init__(self, env: "Twister2Environment", make: Callable[..., Any],
                 parents: tuple["_Node", ...] = (), single: bool = False) -> None:
        self._env = env
        self._make = make
        self._parents = parents
        #: a link that delivers one value per partition (reduce, all_reduce)
        self._single = single
        self._inputs: dict[str, _Node] = {}
        self._memo: tuple[int, Any] | None = None

    def built(self) -> Any:
        """The twister_nb TSet or TLink this node is now (made again after a change)."""
        version = self._env.graph.number
        if self._memo is not None and (self._memo[0] == version or not (self._parents or self._inputs)):
            return self._memo[1]
        made = self._make(*[p.built() for p in self._parents])
        for key, tset in self._inputs.items():
            made.add_input(key, tset.built())
        self._memo = (version, made)
        return made

    def _action(self, kind: str, run: Callable[[Any], Any], fn: Any = None) -> Any:
        target = self.built()
        ident = target.id if fn is None else f"{target.id}/{value_digest(fn)}"
        return self._env.copy.once(kind, ident, lambda: run(target))

    @property
    def parallelism(self) -> int:
        return self.built().parallelism

    @property
    def name(self) -> str:
        return self.built().name

    @property
    def id(self) -> str:  # noqa: A003 - Twister2's name
        return self.built().id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, parallelism={self.parallelism})"


class TLink(_Node):
    """How values reach the next transform (``direct()``, ``reduce(fn)`` ...)."""

    def _then(self, make: Callable[[Any], Any]) -> "TSet":
        return TSet(self._env, make, (self,))

    def map(self, lam: Callable[..., Any]) -> "TSet":  # noqa: A003
        fn = adapt.per_value(lam, "map")
        return self._then(lambda link: link.map(fn))

    def flat_map(self, lam: Callable[..., Any]) -> "TSet":
        fn = adapt.per_value_collect(lam)
        return self._then(lambda link: link.flat_map(fn))

    def compute(self, compute_func: Callable[..., Any]) -> "TSet":
        fn = adapt.per_partition(compute_func)
        return self._then(lambda link: link.compute(fn))

    def sink(self, sink_func: Callable[..., Any]) -> None:
        """Run ``sink_func`` once per partition on its iterator (on each value of
        a reduce or all_reduce link). Executes now."""
        fn = adapt.sink_partition(sink_func, self._single)
        self._action("sink", lambda link: link.compute(fn).for_each(adapt.discard), sink_func)

    def for_each(self, foreach_func: Callable[..., Any]) -> "TSet":
        """Run ``foreach_func`` on every value, on the workers. Executes now."""
        fn = adapt.per_value(foreach_func, "for_each")
        self._action("for_each", lambda link: link.for_each(fn), foreach_func)
        return _Void(self._env, adapt.discard)


class TSet(_Node):
    """A distributed collection of values; transforms go through ``direct()``."""

    def __init__(self, env: "Twister2Environment", make: Callable[..., Any],
                 parents: tuple[_Node, ...] = (), cached: bool = False) -> None:
        super().__init__(env, make, parents)
        self._cached = cached

    def _link(self, make: Callable[[Any], Any], single: bool = False) -> TLink:
        return TLink(self._env, make, (self,), single)

    def direct(self) -> TLink:
        return self._link(lambda t: t.direct())

    def reduce(self, reduce_func: Callable[[Any, Any], Any]) -> TLink:
        fn = adapt.pair(reduce_func)
        return self._link(lambda t: t.reduce(fn), single=True)

    def all_reduce(self, reduce_func: Callable[[Any, Any], Any]) -> TLink:
        fn = adapt.pair(reduce_func)
        return self._link(lambda t: t.all_reduce(fn), single=True)

    def gather(self) -> TLink:
        return self._link(lambda t: t.gather())

    def all_gather(self) -> TLink:
        return self._link(lambda t: t.all_gather())

    def partition(self, partition_func: Any) -> TLink:
        return self._link(lambda t: t.partition(partition_func))

    def add_input(self, name: str, input_tset: "TSet") -> "TSet":
        """Make ``input_tset`` (cached or persisted) readable through
        ``ctx.get_input(name)``: this TSet changes, and so does every TSet built
        from it, from their next action on."""
        if not isinstance(input_tset, TSet):
            raise TypeError(f"add_input({name!r}, ...): expected a TSet, got {input_tset!r}")
        self._inputs[name] = input_tset
        self._env.graph.changed()
        self.built()  # a wrong input fails here, as Twister2's addInput does
        return self

    def _materialized(self, kind: str, run: Callable[[Any], Any]) -> "TSet":
        handle = self._action(kind, run)
        return type(self)(self._env, lambda: handle, cached=kind != "persist")

    def cache(self) -> "TSet":
        """Compute now and keep the partitions in the workers' memory."""
        return self._materialized("cache", lambda t: t.cache())

    def lazy_cache(self) -> "TSet":
        """As :meth:`cache`, computed by the first action that reads it."""
        return self._materialized("lazy_cache", lambda t: t.lazy_cache())

    def persist(self) -> "TSet":
        """Compute now and write the partitions to the checkpoint store."""
        return self._materialized("persist", lambda t: t.persist())

    def get_data(self) -> DataObject | None:
        """The partitions of a cached TSet; None for any other (as in Twister2)."""
        if not self._cached:
            return None
        ident = self.id
        return DataObject(self._action("get_data", lambda t: t.get_data()), ident)

    # what a TSet does through direct()
    def map(self, lam: Callable[..., Any]) -> TSet:  # noqa: A003
        return self.direct().map(lam)

    def flat_map(self, lam: Callable[..., Any]) -> TSet:
        return self.direct().flat_map(lam)

    def sink(self, sink_func: Callable[..., Any]) -> None:
        return self.direct().sink(sink_func)

    def compute(self, compute_func: Callable[..., Any]) -> TSet:
        return self.direct().compute(compute_func)

    def for_each(self, foreach_func: Callable[..., Any]) -> TSet:
        return self.direct().for_each(foreach_func)


class KeyedTSet(TSet):
    """A TSet of ``(key, value)`` pairs, with the keyed links."""

    def keyed_reduce(self, reduce_func: Callable[[Any, Any], Any]) -> TLink:
        fn = adapt.pair(reduce_func)
        return self._link(lambda t: t.keyed_reduce(fn))

    def keyed_gather(self, partition_func: Any = None,
                     key_comparator: Callable[[Any, Any], int] | None = None,
                     use_disk: bool = False) -> TLink:
        return self._link(lambda t: t.keyed_gather(partition_func, key_comparator, use_disk))

    def keyed_partition(self, partition_func: Any) -> TLink:
        return self._link(lambda t: t.keyed_partition(partition_func))


class _Void(TSet):
    """What ``for_each`` returns: Twister2's TSet of nothing."""

    def built(self) -> Any:
        raise TypeError("this TSet is what for_each() returned: it holds no data "
                        "(Twister2's forEach returns nothing); use the TSet for_each ran on")

    def __repr__(self) -> str:
        return "TSet(what for_each() returned: no data)"
