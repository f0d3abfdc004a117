"""Choosing a user function's calling convention from its arity, as Twister2 does.

``map`` takes ``fn(value)`` or ``fn(value, ctx)``; ``compute`` takes
``fn(itr, collector, ctx)`` (collects many), ``fn(itr, collector)``, or
``fn(itr[, ctx])`` returning one value. The convention is decided once, when
the TSet is built, so a wrong function fails before anything runs and the
workers only read a recorded :class:`Convention`.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from typing import Any


class Convention(enum.Enum):
    """How the runtime calls a user function."""

    VALUE = "fn(value)"
    VALUE_CTX = "fn(value, ctx)"
    COLLECT = "fn(value, collector)"
    COLLECT_CTX = "fn(value, collector, ctx)"
    ITER_RETURN = "fn(itr)"
    ITER_CTX_RETURN = "fn(itr, ctx)"
    ITER_COLLECT = "fn(itr, collector)"
    ITER_COLLECT_CTX = "fn(itr, collector, ctx)"
    PAIR = "fn(a, b)"


_COLLECTOR_NAMES = ("c", "col", "coll", "collector", "collect", "out", "output", "emit")


def positional_params(fn: Callable[..., Any]) -> list[inspect.Parameter] | None:
    """The positional parameters of ``fn``, or None when they cannot be known
    (a builtin without a signature, or ``*args``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = []
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            params.append(p)
    required = [p for p in params if p.default is p.empty]
    # Optional trailing parameters are not ours to fill: ``def f(x, ctx=None)``
    # is called as ``f(x)``.
    return required or params


def _describe(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def convention(op: str, fn: Callable[..., Any]) -> Convention:
    """The convention for ``fn`` used as operation ``op``; ``TypeError`` if it fits none.

    >>> convention("map", lambda x: x)
    <Convention.VALUE: 'fn(value)'>
    >>> convention("compute", lambda itr, collector, ctx: None)
    <Convention.ITER_COLLECT_CTX: 'fn(itr, collector, ctx)'>
    """
    if not callable(fn):
        raise TypeError(f"{op}() needs a function, got {fn!r} of type {type(fn).__name__}")
    params = positional_params(fn)
    n = None if params is None else len(params)
    allowed = _ALLOWED[op]
    if n is None:  # unknown: the simplest convention of the operation
        return allowed[0][1]
    if op == "compute" and n == 2:
        second = params[1].name.lower()
        annotation = str(params[1].annotation)
        if "Context" not in annotation and second in _COLLECTOR_NAMES:
            return Convention.ITER_COLLECT
        return Convention.ITER_CTX_RETURN
    for arity, conv in allowed:
        if arity == n:
            return conv
    shapes = " or ".join(conv.value for _, conv in allowed)
    raise TypeError(
        f"{op}(): {_describe(fn)} takes {n} positional argument(s); "
        f"a {op} function must be {shapes}"
    )


_ALLOWED: dict[str, list[tuple[int, Convention]]] = {
    "map": [(1, Convention.VALUE), (2, Convention.VALUE_CTX)],
    "filter": [(1, Convention.VALUE), (2, Convention.VALUE_CTX)],
    "map_to_tuple": [(1, Convention.VALUE), (2, Convention.VALUE_CTX)],
    "map_batches": [(1, Convention.VALUE), (2, Convention.VALUE_CTX)],
    "for_each": [(1, Convention.VALUE), (2, Convention.VALUE_CTX)],
    "sink": [(1, Convention.VALUE), (2, Convention.VALUE_CTX)],
    "flat_map": [(2, Convention.COLLECT), (3, Convention.COLLECT_CTX)],
    "compute": [
        (1, Convention.ITER_RETURN),
        (2, Convention.ITER_CTX_RETURN),
        (3, Convention.ITER_COLLECT_CTX),
    ],
    "reduce": [(2, Convention.PAIR)],
    "comparator": [(2, Convention.PAIR)],
}
