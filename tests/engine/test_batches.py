"""The batch path on a real Ray cluster: ``map_batches`` over numpy and Arrow
partitions (cached, persisted, parallelized), checked against numpy / pyarrow
doing the same computation in this process."""

from __future__ import annotations

import operator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from twister_nb import SourceFunc
from twister_nb.errors import UserFunctionError


class ArraySource(SourceFunc):
    """Two int64 arrays per partition: partition p holds p*2n .. (p+1)*2n - 1."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.k = 0
        self.p = 0

    def prepare(self, ctx) -> None:
        self.p = ctx.index

    def has_next(self) -> bool:
        return self.k < 2

    def next(self) -> np.ndarray:
        start = (self.p * 2 + self.k) * self.n
        self.k += 1
        return np.arange(start, start + self.n, dtype=np.int64)


def affine_sum(batch: np.ndarray) -> int:
    return int((batch * 5 + 2).sum())


def test_map_batches_on_a_cached_source_matches_numpy(env):
    n = 300_001
    cached = env.create_source(ArraySource(n), 4).cache()
    got = cached.map_batches(affine_sum).reduce(operator.add).collect()
    whole = np.arange(8 * n, dtype=np.int64)
    assert got == [int((whole * 5 + 2).sum())]
    # the batches are cache-sized views: many per partition, none larger than the default
    sizes = cached.map_batches(len).collect()
    assert sum(sizes) == 8 * n and max(sizes) == 65536 and len(sizes) > 8


def test_batches_chain_and_unbatch_back_to_records(env):
    values = list(range(1, 10_001))
    t = env.parallelize_list(values, 4)
    got = (t.map_batches(lambda b: b * 3, batch_size=999)
            .map_batches(lambda b: b[b % 2 == 0])
            .unbatch()
            .collect())
    assert got == [v * 3 for v in values if (v * 3) % 2 == 0]
    assert all(type(v) is int for v in got[:10])


def test_parallelize_array_2d_with_context(env):
    points = np.random.default_rng(7).normal(size=(50_000, 2))

    def partial(batch, ctx):
        return (ctx.index, batch.sum(axis=0), len(batch))

    parts = env.parallelize_array(points, 3).map_batches(partial, batch_size=4096).collect()
    assert sorted({p for p, _, _ in parts}) == [0, 1, 2]
    assert sum(n for _, _, n in parts) == len(points)
    np.testing.assert_allclose(sum(s for _, s, _ in parts), points.sum(axis=0), rtol=1e-12)


def test_arrow_table_batches(env):
    table = pa.table({"k": [i % 7 for i in range(20_000)], "v": list(range(20_000))})
    t = env.parallelize_array(table, 4)
    got = t.map_batches(lambda b: pc.sum(pc.multiply(b["v"], 2)).as_py(), batch_size=3000)
    assert sum(got.collect()) == 2 * sum(range(20_000))
    rows = t.unbatch().collect()
    assert rows == table.to_pylist()


def test_batches_are_read_only_views_of_the_cache(env):
    cached = env.parallelize_array(np.arange(1000, dtype=np.int64), 2).cache()

    def scale_in_place(b):
        b *= 2
        return b

    with pytest.raises(UserFunctionError, match="read-only"):
        cached.map_batches(scale_in_place).collect()
    # the cache is intact after the refused write
    assert np.concatenate(cached.map_batches(lambda b: b.copy()).collect()).tolist() == list(range(1000))


def test_persisted_batches_round_trip_as_arrow(env):
    n = 100_000
    persisted = env.create_source(ArraySource(n), 2).map_batches(lambda b: b * 5 + 2).persist()
    got = persisted.map_batches(lambda b: int(b.sum())).reduce(operator.add).collect()
    assert got == [int((np.arange(4 * n, dtype=np.int64) * 5 + 2).sum())]


def test_batch_function_error_names_the_tset(env):
    bad = env.parallelize_array(np.arange(10), 2).map_batches(lambda b: b.no_such_attribute)
    bad = bad.set_name("broken-batches")
    with pytest.raises(UserFunctionError, match="broken-batches") as info:
        bad.collect()
    assert "AttributeError" in str(info.value)
