"""The raw Ray peer: warm actors running the same user functions, composed by hand.

This is "the cost of Ray itself": as many actors as the cluster has CPUs
(``num_cpus=0``, like twister_nb's workers), partition ``p`` on actor
``p % actors`` (twister_nb's placement), every task submitted at once, partial
results combined in the driver. Each task is one actor call of a module-level
function ``fn(held, *args)``, where ``held`` is the actor's dict of partitions
it keeps between calls (the hand-made ``cache()``).

Import only after :func:`twister_nb.runtime.cluster.connect`.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np

from benchmarks import userfns as uf
from twister_nb.tset.functions import stable_hash


class RawActor:
    """A warm actor holding partitions between calls."""

    def __init__(self) -> None:
        self.held: dict[Any, Any] = {}

    def pid(self) -> int:
        return os.getpid()

    def call(self, fn, *args):
        return fn(self.held, *args)

    def clear(self) -> int:
        n = len(self.held)
        self.held.clear()
        return n


class RawRay:
    """A pool of warm :class:`RawActor` s on the connected cluster."""

    def __init__(self, actors: int) -> None:
        import ray

        self._ray = ray
        cls = ray.remote(num_cpus=0)(RawActor)
        self.actors = [cls.remote() for _ in range(actors)]
        self.pids = ray.get([a.pid.remote() for a in self.actors])

    def on(self, p: int) -> Any:
        return self.actors[p % len(self.actors)]

    def map(self, fn, partitions: int, *args) -> list[Any]:
        """``fn(held, p, *args)`` for every partition, all submitted at once."""
        return self._ray.get([self.on(p).call.remote(fn, p, *args) for p in range(partitions)])

    def clear(self) -> None:
        self._ray.get([a.clear.remote() for a in self.actors])

    def close(self) -> None:
        for a in self.actors:
            with contextlib.suppress(Exception):  # already gone
                self._ray.kill(a)
        self.actors = []


# ----------------------------------------------------------------------------- task bodies
# fn(held, p, *args): module-level, so Ray pickles them by reference.


def chain(held, p, n):
    return uf.chain_partition(n, p)


def chain_persist(held, p, n, folder):
    values = uf.chain_values(n, p)
    uf.write_arrow_fsync(os.path.join(folder, f"part-{p}.arrow"), values)
    return uf.fold(uf.add, values)


def hold_array(held, p, n):
    held[("arr", p)] = uf.run_source(uf.ArraySource(n), p)[0]
    return held[("arr", p)].nbytes


def affine_sum(held, p):
    return uf.array_sum(uf.affine(held[("arr", p)]))


def affine_sum_batches(held, p):
    """The same per-batch function over the same slices, composed by hand."""
    a, rows = held[("arr", p)], uf.W3_BATCH_ROWS
    return sum(uf.affine_sum(a[i:i + rows]) for i in range(0, len(a), rows))


def write_held_arrow(held, p, folder):
    return uf.write_arrow_fsync(os.path.join(folder, f"part-{p}.arrow"), held[("arr", p)])


def write_held_raw(held, p, folder):
    return uf.write_raw_fsync(os.path.join(folder, f"part-{p}.bin"), held[("arr", p)])


def keyed_map_side(held, p, per, buckets):
    """Source, key_one, combine by key, route by the engine's stable hash."""
    values = uf.run_source(uf.RangeSource(per), p)
    combined = uf.combine_by_key(uf.add, map(uf.key_one, values))
    out: list[list[Any]] = [[] for _ in range(buckets)]
    for kv in combined.items():
        out[stable_hash(kv[0]) % buckets].append(kv)
    return tuple(out)


def keyed_reduce_side(held, p, *buckets):
    return list(uf.combine_by_key(uf.add, (kv for b in buckets for kv in b)).items())


def hold_points(held, p, n, seed):
    held[("pts", p)] = uf.run_source(uf.PointsSource(n, seed), p)[0]
    return len(held[("pts", p)])


def assign_held(held, p, centres):
    return uf.assign(held[("pts", p)], centres)


def keyed_reduce(pool: RawRay, partitions: int, per: int) -> dict[int, int]:
    """A hand-made keyed reduce: map side with one return per destination, reduce side."""
    ray = pool._ray
    maps = [pool.on(p).call.options(num_returns=partitions).remote(keyed_map_side, p, per,
                                                                    partitions)
            for p in range(partitions)]
    if partitions == 1:
        maps = [[m] for m in maps]
    reds = [pool.on(d).call.remote(keyed_reduce_side, d, *[m[d] for m in maps])
            for d in range(partitions)]
    out: dict[int, int] = {}
    for part in ray.get(reds):
        out.update(part)
    return out


def kmeans(pool: RawRay, partitions: int, centres: np.ndarray, iterations: int) -> np.ndarray:
    for _ in range(iterations):
        partials = pool.map(assign_held, partitions, centres)
        centres = uf.new_centres(uf.fold(uf.combine, partials), centres)
    return centres
