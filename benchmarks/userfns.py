"""The user functions of every workload, shared by twister_nb and all its peers.

Each peer runs *these* functions (sources, ``compute`` bodies, reduce and
k-means functions), composed by hand where the peer has no TSet API, so a
ratio measures the systems and not two different programs. The helpers at the
bottom (:func:`run_source`, :func:`run_compute`, :func:`fold`, ...) are that
hand composition; they do what the engine's inner loop does, in plain Python.

Everything here is plain Python and numpy: no Ray, no Dask.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

import numpy as np

# W1, W2: the seed's source and functions (IntSource(n): 0 .. n-1, mul_by_five,
# add_two, add) are the test suite's too, so they live in twister_nb.testing and
# are re-exported here. Being twister_nb's, they travel to Ray workers by reference,
# as they did when the benchmark lived in twister_nb.bench.
from twister_nb.testing.seed import IntSource, add, add_two, mul_by_five
from twister_nb.tset.functions import Collector, SourceFunc


def chain_sum(n: int, partitions: int) -> int:
    """SUM of the seed chain (``x*5+2`` over ``partitions`` copies of ``0..n-1``)."""
    return partitions * (5 * n * (n - 1) // 2 + 2 * n)


# ----------------------------------------------------------------------------- W3, W4


class ArraySource(SourceFunc):
    """One int64 numpy array ``0 .. n-1`` per partition: a whole-partition batch,
    which is what the API allows today in place of a batch path."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.done = False

    def has_next(self) -> bool:
        return not self.done

    def next(self) -> np.ndarray:
        self.done = True
        return np.arange(self.n, dtype=np.int64)


def affine(a: np.ndarray) -> np.ndarray:
    """``x*5+2`` on a whole array (in place on the fresh product: one temporary)."""
    out = a * 5
    out += 2
    return out


def array_sum(a: np.ndarray) -> int:
    return int(a.sum())


def affine_sum(batch: np.ndarray) -> int:
    """W3's per-batch function for ``map_batches``: ``sum(x*5+2)`` of one batch."""
    return array_sum(affine(batch))


#: Rows per batch in W3 when composed by hand: twister_nb's default batch (512 KiB of int64).
W3_BATCH_ROWS = 65536


def same(x):
    return x


# ----------------------------------------------------------------------------- W5

KEYS = 10_000


class RangeSource(SourceFunc):
    """Partition ``p`` yields ``p*per .. (p+1)*per - 1`` (so the whole TSet is
    ``0 .. parallelism*per - 1``)."""

    def __init__(self, per: int) -> None:
        super().__init__()
        self.per = per
        self.i = 0
        self.stop = per

    def prepare(self, ctx) -> None:
        self.i = ctx.index * self.per
        self.stop = self.i + self.per

    def has_next(self) -> bool:
        return self.i < self.stop

    def next(self) -> int:
        res = self.i
        self.i = res + 1
        return res


def key_one(i):
    return (i % KEYS, 1)


def pair_key(kv):
    return kv[0]


def add_pair_value(acc, kv):
    return acc + kv[1]


def expected_counts(total: int) -> dict[int, int]:
    base, extra = divmod(total, KEYS)
    return {k: base + (1 if k < extra else 0) for k in range(KEYS)}


# ----------------------------------------------------------------------------- W6

K = 16
_TRUE_CENTRES = np.array([(x, y) for x in range(4) for y in range(4)], dtype=np.float64) * 6.0


def make_points(n: int, index: int, seed: int = 7) -> np.ndarray:
    """Partition ``index`` of the k-means input: ``n`` 2-D points around 16 centres."""
    rng = np.random.default_rng(seed + index)
    which = rng.integers(0, K, n)
    return _TRUE_CENTRES[which] + rng.normal(0.0, 1.0, (n, 2))


class PointsSource(SourceFunc):
    """One ``(n, 2)`` float64 array per partition."""

    def __init__(self, n: int, seed: int = 7) -> None:
        super().__init__()
        self.n = n
        self.seed = seed
        self.index = 0
        self.done = False

    def prepare(self, ctx) -> None:
        self.index = ctx.index

    def has_next(self) -> bool:
        return not self.done

    def next(self) -> np.ndarray:
        self.done = True
        return make_points(self.n, self.index, self.seed)


def initial_centres(n: int, seed: int = 7) -> np.ndarray:
    return make_points(n, 0, seed)[:K].copy()


def assign(part: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-centre coordinate sums and counts of the points nearest to each centre."""
    d = part @ centres.T
    d *= -2.0
    d += (centres * centres).sum(axis=1)
    nearest = d.argmin(axis=1)
    counts = np.bincount(nearest, minlength=K).astype(np.float64)
    sums = np.stack([np.bincount(nearest, weights=part[:, j], minlength=K) for j in range(2)],
                    axis=1)
    return sums, counts


def combine(a, b):
    return a[0] + b[0], a[1] + b[1]


def new_centres(reduced, old: np.ndarray) -> np.ndarray:
    sums, counts = reduced
    return np.where(counts[:, None] > 0, sums / np.maximum(counts, 1.0)[:, None], old)


# the TSet forms: centres travel as the all_reduce value's third member


def assign_ctx(part, ctx):
    centres = ctx.get_input("centres").first()
    sums, counts = assign(part, centres)
    return sums, counts, centres


def combine3(a, b):
    return a[0] + b[0], a[1] + b[1], a[2]


def new_centres3(r):
    return new_centres((r[0], r[1]), r[2])


# ----------------------------------------------------------------------------- hand composition


def fake_ctx(index: int, parallelism: int) -> Any:
    return SimpleNamespace(index=index, parallelism=parallelism, worker_id=0)


def run_source(src: SourceFunc, index: int = 0, parallelism: int = 1) -> list[Any]:
    """What the engine does with a source on partition ``index``."""
    import copy

    src = copy.deepcopy(src)  # each instance owns its state, as in the engine
    src.prepare(fake_ctx(index, parallelism))
    out: list[Any] = []
    append, has_next, nxt = out.append, src.has_next, src.next
    while has_next():
        append(nxt())
    return out


def run_compute(fn: Callable[..., Any], values: Iterable[Any]) -> list[Any]:
    """A ``compute(fn(itr, collector, ctx))`` over one partition."""
    out: list[Any] = []
    fn(iter(values), Collector(out.append), None)
    return out


def fold(fn: Callable[[Any, Any], Any], values: Iterable[Any]) -> Any:
    it = iter(values)
    acc = next(it)
    for v in it:
        acc = fn(acc, v)
    return acc


def combine_by_key(fn: Callable[[Any, Any], Any], pairs: Iterable[tuple[Any, Any]]) -> dict:
    acc: dict[Any, Any] = {}
    for k, v in pairs:
        if k in acc:
            acc[k] = fn(acc[k], v)
        else:
            acc[k] = v
    return acc


def chain_partition(n: int, index: int = 0) -> int:
    """The seed chain on one partition, composed by hand: source, two computes, partial sum."""
    values = run_source(IntSource(n), index)
    values = run_compute(mul_by_five, values)
    values = run_compute(add_two, values)
    return fold(add, values)


def chain_values(n: int, index: int = 0) -> list[int]:
    values = run_source(IntSource(n), index)
    values = run_compute(mul_by_five, values)
    return run_compute(add_two, values)


def write_arrow_fsync(path: str, values: Any) -> int:
    """Raw persist of one partition: Arrow IPC (uncompressed) + fsync + rename.
    ``values`` is a list of ints or a numpy array. Returns the bytes written."""
    import pyarrow as pa

    arr = pa.array(values)
    batch = pa.record_batch([arr], names=["records"])
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        with pa.ipc.new_file(pa.PythonFile(f, mode="w"), batch.schema) as w:
            w.write_batch(batch)
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    os.replace(tmp, path)
    return size


def write_raw_fsync(path: str, data: np.ndarray) -> int:
    """Raw ``write`` + ``fsync`` of an array's bytes."""
    with open(path, "wb") as f:
        f.write(memoryview(np.ascontiguousarray(data)).cast("B"))
        f.flush()
        os.fsync(f.fileno())
        return f.tell()
