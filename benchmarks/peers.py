"""The optional peers: Dask (bag/array, threaded and a warm distributed
LocalCluster), Ray Data, pandas, and the raw disk. Each is skipped with a note
when its package is missing (``pip install "dask[distributed]" pandas "ray[data]"``).

Task bodies are module-level functions of this module or of
:mod:`benchmarks.userfns`, so Dask workers import them by name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import subprocess
from typing import Any

import numpy as np

from benchmarks import userfns as uf

EXTRAS = 'pip install "dask[distributed]" pandas "ray[data]"'


def available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class Peers:
    """Which peers this run has, and the warm ones (Dask's LocalCluster)."""

    def __init__(self, wanted: set[str] | None, home: str) -> None:
        self.notes: list[str] = []
        self.home = home
        self.wanted = wanted
        self.has_dask = self._check("dask", "dask", "dask.bag") and available("dask.array")
        self.has_distributed = self._check("dask-distributed", "distributed")
        self.has_pandas = self._check("pandas", "pandas")
        self.has_raydata = self._check("ray-data", "ray.data", "pandas")
        if wanted is not None:
            left_out = sorted({"ray-data", "dask", "dask-distributed", "pandas", "s3"} - wanted)
            if left_out:
                self.notes.append(f"peers not run (not in --peers): {', '.join(left_out)}")
        self.client = None
        self._cluster = None

    def want(self, name: str) -> bool:
        return self.wanted is None or name in self.wanted

    def _check(self, name: str, *modules: str) -> bool:
        if not self.want(name):
            return False
        missing = [m for m in modules if not available(m)]
        if missing:
            self.notes.append(f"peer {name} skipped: {', '.join(missing)} not installed "
                              f"({EXTRAS})")
            return False
        return True

    # ------------------------------------------------------------------ dask

    def dask_client(self) -> Any:
        """A warm distributed LocalCluster on 127.0.0.1, dashboard off (started once)."""
        if not self.has_distributed or not self.has_dask:
            return None
        if self.client is None:
            import dask
            from distributed import Client, LocalCluster

            dask.config.set({"distributed.worker.daemon": False,
                             "distributed.admin.tick.limit": "1h",
                             "logging.distributed": "error"})
            folder = os.path.join(self.home, "dask")
            os.makedirs(folder, exist_ok=True)
            self._cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                         host="127.0.0.1", dashboard_address=None,
                                         local_directory=folder, silence_logs=logging.ERROR)
            self.client = Client(self._cluster)
        return self.client

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
        self.client = self._cluster = None


def dask_compute(obj: Any, client: Any) -> Any:
    """Compute with the threaded scheduler (``client is None``) or the cluster."""
    if client is None:
        return obj.compute(scheduler="threads")
    return client.compute(obj, sync=True)


# ----------------------------------------------------------------------------- dask bodies


def bag_source(indexes, n):
    return [v for p in indexes for v in uf.run_source(uf.IntSource(n), p)]


def bag_compute(values, fn):
    return uf.run_compute(fn, values)


def bag_range(indexes, per):
    return [v for p in indexes for v in uf.run_source(uf.RangeSource(per), p)]


def dask_bag_chain(n: int, partitions: int, client: Any) -> int:
    import dask.bag as db

    bag = db.from_sequence(range(partitions), npartitions=partitions)
    bag = bag.map_partitions(bag_source, n)
    bag = bag.map_partitions(bag_compute, uf.mul_by_five)
    bag = bag.map_partitions(bag_compute, uf.add_two)
    return dask_compute(bag.fold(uf.add), client)


def dask_bag_foldby(per: int, partitions: int, client: Any) -> dict[int, int]:
    import dask.bag as db

    bag = db.from_sequence(range(partitions), npartitions=partitions)
    bag = bag.map_partitions(bag_range, per).map(uf.key_one)
    folded = bag.foldby(uf.pair_key, uf.add_pair_value, 0, uf.add, 0)
    return dict(dask_compute(folded, client))


def make_array_part(n: int, p: int) -> np.ndarray:
    return uf.run_source(uf.ArraySource(n), p)[0]


def _held(x: Any, client: Any) -> Any:
    """A Dask array computed and held in memory: by the threaded scheduler, or on the
    distributed workers (waited for, so set-up is never timed)."""
    if client is None:
        return x.persist(scheduler="threads")
    x = client.persist(x)
    from distributed import wait

    wait(x)
    return x


def dask_array(n: int, partitions: int, client: Any) -> Any:
    """``partitions`` chunks of ``0..n-1``, held in memory (persisted)."""
    import dask
    import dask.array as da

    parts = [da.from_delayed(dask.delayed(make_array_part)(n, p), shape=(n,), dtype=np.int64)
             for p in range(partitions)]
    return _held(da.concatenate(parts), client)


def dask_affine_sum(x: Any, client: Any) -> int:
    return int(dask_compute(x.map_blocks(uf.affine).sum(), client))


def dask_points(n: int, partitions: int, seed: int, client: Any) -> Any:
    import dask
    import dask.array as da

    parts = [da.from_delayed(dask.delayed(uf.make_points)(n, p, seed), shape=(n, 2),
                             dtype=np.float64) for p in range(partitions)]
    return _held(da.concatenate(parts), client)


def dask_kmeans(x: Any, centres: np.ndarray, iterations: int, client: Any) -> np.ndarray:
    """k-means over the array's blocks with the same assign/combine/new_centres."""
    import dask

    blocks = list(x.to_delayed().ravel())
    for _ in range(iterations):
        partials = [dask.delayed(uf.assign)(b, centres) for b in blocks]
        reduced = dask.delayed(uf.fold)(uf.combine, partials)
        step = dask.delayed(uf.new_centres)(reduced, centres)
        centres = step.compute(scheduler="threads") if client is None else client.compute(
            step, sync=True)
    return centres


# ----------------------------------------------------------------------------- ray data


def raydata_quiet() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    for attr in ("print_on_execution_start", "enable_operator_progress_bars",
                 "enable_rich_progress_bars", "verbose_stats_logs"):
        if hasattr(ctx, attr):
            with contextlib.suppress(Exception):  # an option this Ray version lacks
                setattr(ctx, attr, False)
    for name in ("ray.data", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)


def rd_source(batch, n):
    values = [v for p in batch["id"] for v in uf.run_source(uf.IntSource(n), int(p))]
    return {"x": np.asarray(values, dtype=np.int64)}


def rd_compute(batch, fn):
    return {"x": np.asarray(uf.run_compute(fn, batch["x"].tolist()), dtype=np.int64)}


def rd_pairs(batch, per):
    keys, values = [], []
    for p in batch["id"]:
        for i in uf.run_source(uf.RangeSource(per), int(p)):
            k, v = uf.key_one(i)
            keys.append(k)
            values.append(v)
    return {"k": np.asarray(keys, dtype=np.int64), "v": np.asarray(values, dtype=np.int64)}


def rd_affine(batch):
    return {"data": uf.affine(batch["data"])}


def raydata_chain(n: int, partitions: int) -> int:
    import ray.data

    ds = ray.data.range(partitions, override_num_blocks=partitions)
    ds = ds.map_batches(rd_source, fn_kwargs={"n": n}, batch_size=1)
    ds = ds.map_batches(rd_compute, fn_kwargs={"fn": uf.mul_by_five}, batch_size=None)
    ds = ds.map_batches(rd_compute, fn_kwargs={"fn": uf.add_two}, batch_size=None)
    return int(ds.sum("x"))


def raydata_groupby(per: int, partitions: int) -> dict[int, int]:
    import ray.data

    ds = ray.data.range(partitions, override_num_blocks=partitions)
    ds = ds.map_batches(rd_pairs, fn_kwargs={"per": per}, batch_size=1)
    rows = ds.groupby("k").count().take_all()
    return {int(r["k"]): int(r["count()"]) for r in rows}


def raydata_array(n: int, partitions: int) -> Any:
    import ray.data

    return ray.data.from_numpy([make_array_part(n, p) for p in range(partitions)]).materialize()


def raydata_affine_sum(ds: Any) -> int:
    return int(ds.map_batches(rd_affine, batch_format="numpy", batch_size=None).sum("data"))


# ----------------------------------------------------------------------------- pandas, disk


def pandas_groupby(total: int) -> dict[int, int]:
    import pandas as pd

    i = np.arange(total, dtype=np.int64)
    df = pd.DataFrame({"k": i % uf.KEYS, "v": np.ones(total, dtype=np.int64)})
    return df.groupby("k")["v"].sum().to_dict()


def dd_write(path: str, nbytes: int) -> int:
    """``dd if=/dev/zero of=path bs=1000000 count=... conv=fsync``; returns bytes written."""
    bs = 1_000_000
    count = max(1, -(-nbytes // bs))
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", f"bs={bs}", f"count={count}",
                    "conv=fsync", "status=none"], check=True)
    return os.path.getsize(path)


def has_dd() -> bool:
    return shutil.which("dd") is not None
