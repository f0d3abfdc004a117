"""Twister2's TSet tutorial shapes: caching with add_input/get_input, k-means
with all_reduce over 10 iterations, and memory of cached TSets freed."""

from __future__ import annotations

import gc
import random

import ray

from twister_nb import SourceFunc


def test_cache_then_add_input_get_input(env):
    data = list(range(40))
    cached = env.parallelize_list(data, 4).map(lambda x: x * 10).cache()
    assert cached.get_data().partition_count == 4

    def add_cached(itr, collector, ctx):
        offsets = list(ctx.get_input("offsets").consumer())
        first = ctx.get_input("offsets").first()
        for x, off in zip(itr, offsets):
            collector.collect((x + off, first))

    out = env.parallelize_list(data, 4).compute(add_cached)
    out.add_input("offsets", cached)
    got = out.collect()
    parts = [data[i * 10:(i + 1) * 10] for i in range(4)]
    expected = [(x + x * 10, part[0] * 10) for part in parts for x in part]
    assert got == expected


def test_cached_tset_feeds_several_actions_without_recompute(env):
    class Once(SourceFunc):
        def __init__(self):
            super().__init__()
            self.i = 0

        def has_next(self):
            return self.i < 5

        def next(self):
            self.i += 1
            print("computed", self.i)
            return self.i

    cached = env.create_source(Once(), 2).cache()
    assert cached.map(lambda x: x * 2).collect() == [2, 4, 6, 8, 10] * 2
    assert cached.reduce(lambda a, b: a + b).collect() == [30]
    # the cached data is read, not recomputed: collecting it again is exact
    assert cached.collect() == [1, 2, 3, 4, 5] * 2


def test_add_input_needs_cached(env):
    t = env.parallelize_list([1], 1)
    m = t.map(lambda x, ctx: x)
    try:
        m.add_input("x", t)
    except TypeError as exc:
        assert "cache" in str(exc)
    else:
        raise AssertionError("add_input of an uncached TSet must fail")


def _kmeans_reference(points, centers, iterations):
    import numpy as np

    pts = np.asarray(points)
    c = np.asarray(centers, dtype=float)
    for _ in range(iterations):
        d = ((pts[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        nearest = d.argmin(axis=1)
        sums = np.zeros_like(c)
        counts = np.zeros(len(c))
        for k in range(len(c)):
            mask = nearest == k
            sums[k] = pts[mask].sum(axis=0)
            counts[k] = mask.sum()
        c = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)
    return c


def test_kmeans_with_all_reduce_10_iterations(env):
    import numpy as np

    rng = random.Random(7)
    points = [(rng.gauss(cx, 0.5), rng.gauss(cy, 0.5))
              for cx, cy in [(0, 0), (5, 5), (0, 5), (5, 0)] for _ in range(250)]
    rng.shuffle(points)
    initial = points[:4]
    k = len(initial)

    pts = env.parallelize_list(points, 4).compute(lambda itr: np.asarray(list(itr))).cache()
    centers = env.parallelize_list([np.asarray(initial)], 1).cache()

    def assign(part, ctx):
        c = ctx.get_input("centers").first()
        d = ((part[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        nearest = d.argmin(axis=1)
        sums = np.zeros((k, 2))
        counts = np.zeros(k)
        for j in range(k):
            mask = nearest == j
            sums[j] = part[mask].sum(axis=0)
            counts[j] = mask.sum()
        return sums, counts, c

    def combine(a, b):
        return a[0] + b[0], a[1] + b[1], a[2]

    def new_centers(r):
        sums, counts, old = r
        return np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], old)

    held_before = _held(env)
    for _ in range(10):
        step = pts.map(assign)
        step.add_input("centers", centers)
        centers = step.all_reduce(combine).map(new_centers).cache()
    gc.collect()
    result = centers.get_data().get_partition(0).first()
    expected = _kmeans_reference(points, initial, 10)
    assert np.allclose(result, expected)
    # the centres of earlier iterations were freed: only pts and the last centres remain
    held_after = _held(env)
    assert len(held_after) - len(held_before) <= 1, (held_before, held_after)


def _held(env):
    """TSet IDs the job's workers hold right now."""
    master = env._executor.master
    info = ray.get(master.info.remote())
    return set(info["cached"])
