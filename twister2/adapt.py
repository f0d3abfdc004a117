"""User functions called as Twister2 calls them, over twister_nb's calling conventions.

Each adapter is a small function with the parameters twister_nb reads to choose
its convention (:mod:`twister_nb.tset.signature`), which calls the user's
function the Twister2 way: records made writable (:mod:`twister2.records`), the
context a :class:`twister2.TSetContext.TSetContext`, and for ``compute`` the
rule of Twister2's ``TLink.compute``: three parameters collect
(``fn(itr, collector, ctx)``), fewer return one value per partition
(``fn(itr, ctx)``, ``fn(itr)``), whatever the second parameter is called.

An adapter's fingerprint is its code and the user's function (a closure
value), so the TSet IDs stay stable across copies and restarts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from twister2.records import writable, writable_records
from twister2.TSetContext import TSetContext
from twister_nb.tset.signature import Convention, convention

__all__ = ["per_value", "per_value_collect", "per_partition", "pair", "sink_partition", "discard"]


def _arity(fn: Callable[..., Any], where: str) -> int:
    if not callable(fn):
        raise TypeError(f"{where}() needs a function, got {fn!r} of type {type(fn).__name__}")
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.default is p.empty])


def per_value(fn: Callable[..., Any], where: str) -> Callable[..., Any]:
    """``fn(value)`` or ``fn(value, ctx)``: map, for_each, a sink of single values."""
    if convention("map", fn) is Convention.VALUE:
        def call(value):
            return fn(writable(value))
    else:
        def call(value, ctx):
            return fn(writable(value), TSetContext(ctx))
    return call


def per_value_collect(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(value, collector)`` or ``fn(value, collector, ctx)``: flat_map."""
    if convention("flat_map", fn) is Convention.COLLECT:
        def call(value, collector):
            return fn(writable(value), collector)
    else:
        def call(value, collector, ctx):
            return fn(writable(value), collector, TSetContext(ctx))
    return call


def per_partition(fn: Callable[..., Any]) -> Callable[..., Any]:
    """compute, decided as Twister2 decides it: by the number of parameters."""
    arity = _arity(fn, "compute")
    if arity >= 3:
        def call(itr, collector, ctx):
            return fn(writable_records(itr), collector, TSetContext(ctx))
    elif arity == 2:
        def call(itr, ctx):
            return fn(writable_records(itr), TSetContext(ctx))
    else:
        def call(itr):
            return fn(writable_records(itr))
    return call


def sink_partition(fn: Callable[..., Any], single: bool) -> Callable[..., Any]:
    """A sink as a compute over the partition: ``fn`` gets the partition's
    iterator (Twister2's ``SinkFunc<Iterator<T>>`` of a direct or iterator link),
    or each value of a link that delivers one (reduce, all_reduce)."""
    with_ctx = _arity(fn, "sink") >= 2
    if single:
        def call(itr, ctx):
            context = TSetContext(ctx)
            return [fn(writable(v), context) if with_ctx else fn(writable(v)) for v in itr]
    else:
        def call(itr, ctx):
            records = writable_records(itr)
            return fn(records, TSetContext(ctx)) if with_ctx else fn(records)
    return call


def pair(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``fn(a, b)`` of a reduce, on writable records."""
    convention("reduce", fn)

    def call(a, b):
        return fn(writable(a), writable(b))
    return call


def discard(value: Any) -> None:
    """What a sink's action does with the sink's return value."""
