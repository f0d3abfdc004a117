"""The two sides of every exchange: what a producer task sends, what a consumer
task makes of what it receives.

A producer returns ``spec.buckets`` lists (one per destination for partitioned
exchanges, one shared otherwise); the JobMaster hands consumer ``d`` bucket
``d`` (or 0) of every producer, in producer order, so every result is
deterministic. Reductions combine on the producer first (a reduce sends one
value per partition, a keyed reduce one per key).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from twister_nb.plan.physical import ExchangeSpec
from twister_nb.tset.functions import HashingPartitioner, stable_hash


def _fold(fn: Callable[[Any, Any], Any], values: Iterable[Any]) -> list[Any]:
    it = iter(values)
    for acc in it:
        for v in it:
            acc = fn(acc, v)
        return [acc]
    return []


def _combine_by_key(fn: Callable[[Any, Any], Any], pairs: Iterable[tuple[Any, Any]]) -> dict[Any, Any]:
    acc: dict[Any, Any] = {}
    get = acc.get
    missing = pair = _MISSING
    try:
        for pair in pairs:
            k, v = pair
            old = get(k, missing)
            acc[k] = v if old is missing else fn(old, v)
    except (TypeError, ValueError):
        # ``pairs`` may be a map_to_tuple streamed straight into this loop (no
        # list in between): the unpacking above is then its only check.
        if pair is not missing and not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"a keyed link needs (key, value) pairs, got {pair!r}; "
                            "map_to_tuple() functions must return (key, value)") from None
        raise
    return acc


_MISSING = object()


def _route(spec: ExchangeSpec, source: int, items: Iterable[Any], key_of: Callable[[Any], Any],
           pf: Any) -> list[list[Any]]:
    n = spec.dst_parallelism
    buckets: list[list[Any]] = [[] for _ in range(n)]
    if pf is None:
        for item in items:
            buckets[stable_hash(key_of(item)) % n].append(item)
        return buckets
    prepare = getattr(pf, "prepare", None)
    if prepare is not None:
        prepare(set(range(spec.src_parallelism)), set(range(n)))
    commit = getattr(pf, "commit", None)
    for item in items:
        dest = pf.partition(source, key_of(item))
        if not isinstance(dest, int) or not 0 <= dest < n:
            raise ValueError(
                f"{type(pf).__name__}.partition() returned {dest!r}; it must be an int "
                f"in 0..{n - 1} (the destination parallelism is {n})"
            )
        buckets[dest].append(item)
        if commit is not None:
            commit(source, dest)
    return buckets


def _key(pair: Any) -> Any:
    try:
        return pair[0]
    except (TypeError, IndexError, KeyError):
        raise TypeError(f"a keyed link needs (key, value) pairs, got {pair!r}") from None


def _whole(value: Any) -> Any:
    return value


def send(spec: ExchangeSpec, source: int, values: list[Any]) -> list[list[Any]]:
    """Producer side: ``spec.buckets`` lists from partition ``source``'s values."""
    kind = spec.kind
    if kind in ("reduce", "all_reduce"):
        return [_fold(spec.fn, values)]
    if kind in ("gather", "all_gather", "replicate"):
        return [values]
    if kind == "partition":
        return _route(spec, source, values, _whole, spec.pf)
    if kind == "keyed_reduce":
        combined = _combine_by_key(spec.fn, values)
        return _route(spec, source, combined.items(), _key, None)
    if kind in ("keyed_gather", "keyed_partition", "join"):
        pf = spec.pf
        if kind == "keyed_partition" and pf is None:
            pf = HashingPartitioner()
        return _route(spec, source, values, _key, pf)
    raise ValueError(f"unknown exchange {kind!r}")


def receive(spec: ExchangeSpec, buckets: list[list[Any]]) -> list[Any]:
    """Consumer side: one partition's values from every producer's bucket."""
    kind = spec.kind
    if kind in ("reduce", "all_reduce"):
        return _fold(spec.fn, (v for b in buckets for v in b))
    if kind in ("gather", "all_gather", "replicate", "partition", "keyed_partition"):
        if len(buckets) == 1:
            return buckets[0] if isinstance(buckets[0], list) else list(buckets[0])
        return [v for b in buckets for v in b]
    if kind == "keyed_reduce":
        return list(_combine_by_key(spec.fn, (kv for b in buckets for kv in b)).items())
    if kind == "keyed_gather":
        groups: dict[Any, list[Any]] = {}
        for b in buckets:
            for k, v in b:
                groups.setdefault(k, []).append(v)
        keys = list(groups)
        if spec.key_comparator is not None:
            keys.sort(key=functools.cmp_to_key(spec.key_comparator))
        return [(k, groups[k]) for k in keys]
    raise ValueError(f"unknown exchange {kind!r}")


def join(spec: ExchangeSpec, left: list[list[Any]], right: list[list[Any]]) -> list[Any]:
    """``(key, (l, r))`` for one partition of a join; ``None`` for a missing side."""
    lefts: dict[Any, list[Any]] = {}
    rights: dict[Any, list[Any]] = {}
    for b in left:
        for k, v in b:
            lefts.setdefault(k, []).append(v)
    for b in right:
        for k, v in b:
            rights.setdefault(k, []).append(v)
    how = spec.join_type
    keys = list(lefts)
    if how in ("right", "full_outer"):
        keys += [k for k in rights if k not in lefts]
    if spec.key_comparator is not None:
        keys.sort(key=functools.cmp_to_key(spec.key_comparator))
    out: list[Any] = []
    for k in keys:
        ls = lefts.get(k)
        rs = rights.get(k)
        if ls and rs:
            out.extend((k, (lv, rv)) for lv in ls for rv in rs)
        elif ls and how in ("left", "full_outer"):
            out.extend((k, (lv, None)) for lv in ls)
        elif rs and how in ("right", "full_outer"):
            out.extend((k, (None, rv)) for rv in rs)
    return out
