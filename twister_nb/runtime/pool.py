"""Warm actors: spare JobMasters, each with its workers started, for new jobs.

Every Ray actor is a new process (Ray reuses no process across drivers), and a
job needs a JobMaster and its workers: 2-3 s of process starts and imports on
a warm 2-core machine, paid before its first action. A :class:`PoolKeeper` (a
detached actor named ``twister_nb.pool`` in the job namespace) keeps
``runtime.pool.size`` spare JobMasters, each with its workers started; a new
job takes one at once (:func:`take_master`), binds it to itself
(``JobMaster.bind``: its record, lease and config), and the keeper starts
another when the machine is quiet again (:func:`machine_busy_share`).

Why wait for quiet: a spare's start is 2-4 s of CPU (three Python processes
and their imports). Started 3 s after the take, as the keeper first did, it ran
beside the job's first actions and made W3's actions 2x slower for 2-3 s
(docs/benchmarks.md, fifth session). It now waits until less than
:data:`QUIET_SHARE` of the keeper's machine's CPU time is busy, or
:data:`REFILL_MAX_WAIT` seconds at most, so a machine that is never quiet
still gets its spare.

Isolation: a spare serves one job only and is never given back. Its workers
have run nothing before the job binds them, and they end with the job, so no
module, global or cached value of one job reaches another (user code travels
by value with each task, as without the pool).

What a job gets from the pool is otherwise what it would have started: its
JobMaster is detached (it outlives the driver), and its workers are restarted
by Ray when lost (a restarted worker asks its JobMaster which job it serves:
its creation arguments named none). Spares and their workers reserve no CPU
(``num_cpus=0``, as the default ``runtime.worker_cpus: 0`` has it); a job that
asks for CPUs per worker, or runs on a multi-node cluster, starts its own
workers (``Scheduler.adopt``). Differences: a spare is named
``twister_nb.pool.master-<id>`` (its job's record says so, which is how a
driver finds it, see ``executor.live_master``) and its workers are unnamed (a
job's JobMaster answers which are its workers: ``runtime.jobs.job_workers``).

The pool is on by default for the local head (``runtime.pool.size: 1``). The
keeper is started by the first job that finds the pool on (and by ``twister-nb
cluster start``); it and its spares end with the local head (``cluster stop``
waits for their processes), or with :func:`stop_pool`. On an existing cluster
(``ray.address`` set) the pool is off unless ``runtime.pool.on_existing_cluster``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from twister_nb import config as _config
from twister_nb.tset.watchers import startup_step

__all__ = ["KEEPER_NAME", "SPARE_PREFIX", "PoolKeeper", "ensure_keeper", "keeper_state",
           "machine_busy_share", "pool_size", "stop_pool", "take_master"]

KEEPER_NAME = "twister_nb.pool"
SPARE_PREFIX = "twister_nb.pool.master-"
#: Seconds the keeper waits after a take before it looks whether the machine is quiet:
#: the job that took one starts its first action meanwhile.
REFILL_DELAY = 1.0
#: The machine is quiet when less than this share of its CPU time was busy over
#: :data:`QUIET_SAMPLE` seconds (0.5 on 2 cores: at most one core busy).
QUIET_SHARE = 0.5
QUIET_SAMPLE = 0.5
#: A spare is started at the latest this many seconds after the take (or after the
#: keeper started), quiet or not.
REFILL_MAX_WAIT = 30.0
#: Seconds between attempts after a spare failed to start.
_RETRY_DELAY = 10.0
#: Seconds during which a second start of the same job gets the spare the first took.
_SAME_JOB_WINDOW = 30.0


def pool_size(config: Mapping[str, Any]) -> int:
    """Spare JobMasters to keep (0: no pool): ``runtime.pool.size``, on the
    local head, or on an existing cluster with ``runtime.pool.on_existing_cluster``."""
    size = int(config.get("runtime.pool.size") or 0)
    if size and str(config.get("ray.address", "local")) != "local" and not config.get(
            "runtime.pool.on_existing_cluster"):
        return 0
    return size


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) CPU jiffies of this machine since boot, from ``/proc/stat``
    (None where there is none)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def machine_busy_share(sample: float = QUIET_SAMPLE) -> float | None:
    """The share (0-1) of this machine's CPU time that was busy over the next
    ``sample`` seconds, every process counted; None if it cannot be read (not Linux)."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(sample)
    after = _cpu_times()
    if after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def _namespace(config: Mapping[str, Any]) -> str:
    from twister_nb.runtime import cluster

    return str(config.get("ray.namespace") or cluster.NAMESPACE_DEFAULT)


def _workers_per_spare(config: Mapping[str, Any]) -> int:
    from twister_nb.runtime import cluster

    return int(config.get("runtime.workers") or cluster.cluster_cpus())


class PoolKeeper:
    """Keeps ``size`` spare JobMasters ready; hands each to one job.

    A plain class, wrapped with ``ray.remote`` by :func:`ensure_keeper`. Its
    state (:meth:`state`) is what the tests read: the spares ready, those
    taken (by job), and how many it started.
    """

    def __init__(self, size: int, config: dict[str, Any]) -> None:
        self._size = size
        self._config = config
        self._ready: list[tuple[str, Any]] = []
        self._taken: dict[str, str] = {}
        #: job -> (name, handle, when) of the spares taken in the last _SAME_JOB_WINDOW s.
        self._recent: dict[str, tuple[str, Any, float]] = {}
        self._started = 0
        self._failures: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._not_before = 0.0
        #: When the next spare starts at the latest, quiet or not.
        self._start_by = time.monotonic() + REFILL_MAX_WAIT
        self._adopt_leftovers()
        threading.Thread(target=self._refill, name="refill", daemon=True).start()

    def _adopt_leftovers(self) -> None:
        """A keeper Ray restarted finds the spares its first life started."""
        import ray

        namespace = _namespace(self._config)
        for actor in ray.util.list_named_actors(all_namespaces=True):
            name = actor.get("name", "")
            if actor.get("namespace") != namespace or not name.startswith(SPARE_PREFIX):
                continue
            try:
                handle = ray.get_actor(name, namespace=namespace)
                if ray.get(handle.info.remote(), timeout=10)["job_id"] is None:
                    self._ready.append((name, handle))
            except Exception:  # noqa: BLE001 - gone or dying: not a spare
                continue

    def take(self, job_id: str) -> tuple[str, Any] | None:
        """A ready spare (its actor name and handle) for ``job_id``, or None.

        Two drivers that start the same new job at once get the same spare (a
        JobMaster started for its job is made with ``get_if_exists`` for the
        same reason), for ``_SAME_JOB_WINDOW`` seconds; its ``bind`` answers
        both. A spare taken longer ago may be closed: a later start of that job
        ID gets another (or starts its own when ``bind`` refuses)."""
        with self._lock:
            recent = self._recent.get(job_id)
            if recent is not None and time.monotonic() - recent[2] < _SAME_JOB_WINDOW:
                return recent[0], recent[1]
            if not self._ready or self._stopped:
                return None
            name, handle = self._ready.pop(0)
            self._taken[job_id] = name
            if len(self._taken) > 100:  # the newest are what anyone asks about
                self._taken.pop(next(iter(self._taken)))
            self._recent = {k: v for k, v in self._recent.items()
                            if time.monotonic() - v[2] < _SAME_JOB_WINDOW}
            self._recent[job_id] = (name, handle, time.monotonic())
            self._not_before = time.monotonic() + REFILL_DELAY
            self._start_by = time.monotonic() + REFILL_MAX_WAIT
        self._wake.set()
        return name, handle

    def state(self) -> dict[str, Any]:
        """``size``, ``ready`` (spare names), ``taken`` (job -> spare name),
        ``started`` (spares started so far) and the last start ``failures``."""
        with self._lock:
            return {"size": self._size, "ready": [n for n, _ in self._ready],
                    "taken": dict(self._taken), "started": self._started,
                    "failures": list(self._failures[-3:])}

    def resize(self, size: int) -> None:
        """Keep ``size`` spares from now on (extra ready ones are stopped)."""
        import ray

        with self._lock:
            self._size = size
            extra, self._ready = self._ready[size:], self._ready[:size]
        for _, handle in extra:
            ray.kill(handle)
        self._wake.set()

    def stop(self) -> int:
        """Stop every ready spare and start no more; how many were stopped."""
        with self._lock:
            self._stopped = True
            count = len(self._ready)
        self.resize(0)
        return count

    def _refill(self) -> None:
        while True:
            with self._lock:
                stopped = self._stopped
                missing = self._size - len(self._ready)
                wait = self._not_before - time.monotonic()
            if stopped:
                return
            if missing <= 0 or wait > 0:
                self._wake.wait(max(wait, 0.05) if missing > 0 else 5.0)
                self._wake.clear()
                continue
            if not self._quiet_or_due():
                continue
            spare = self._start_spare()
            with self._lock:
                if spare is None:
                    self._not_before = time.monotonic() + _RETRY_DELAY
                elif self._stopped or len(self._ready) >= self._size:
                    self._kill(spare[1])
                else:
                    self._ready.append(spare)
                    self._started += 1
                    self._start_by = time.monotonic() + REFILL_MAX_WAIT  # the next, if any

    def _quiet_or_due(self) -> bool:
        """Whether to start a spare now: the machine is quiet (or says nothing
        of its load), or the spare is due. Takes :data:`QUIET_SAMPLE` seconds."""
        with self._lock:
            due = time.monotonic() >= self._start_by
        if due:
            return True
        busy = machine_busy_share()
        return busy is None or busy < QUIET_SHARE

    def _start_spare(self) -> tuple[str, Any] | None:
        import ray

        from twister_nb.runtime.job_master import JobMaster

        name = SPARE_PREFIX + uuid.uuid4().hex[:12]
        handle = None
        try:
            handle = ray.remote(JobMaster).options(
                name=name, namespace=_namespace(self._config), lifetime="detached",
                num_cpus=0, max_concurrency=32).remote(None, config=self._config)
            ray.get(handle.prestart.remote(_workers_per_spare(self._config)))
        except Exception as exc:  # noqa: BLE001 - noted; jobs start their own meanwhile
            with self._lock:
                self._failures.append(f"{type(exc).__name__}: {exc}"[:300])
            if handle is not None:
                self._kill(handle)
            return None
        return name, handle

    @staticmethod
    def _kill(handle: Any) -> None:
        import ray

        ray.kill(handle)


def ensure_keeper(config: Mapping[str, Any]) -> Any | None:
    """The cluster's pool keeper, started now if the pool is on and none runs
    (None if the pool is off)."""
    size = pool_size(config)
    if not size:
        return None
    import ray

    return ray.remote(PoolKeeper).options(
        name=KEEPER_NAME, namespace=_namespace(config), lifetime="detached", num_cpus=0,
        max_concurrency=8, max_restarts=-1, get_if_exists=True,
    ).remote(size, dict(config))


def take_master(job_id: str, name: str, config: dict[str, Any], store: Any,
                program: dict[str, Any] | None, address: str, max_workers: int) -> Any | None:
    """A spare JobMaster bound to ``job_id``, its workers started, or None (no
    pool, no spare ready, or the spare failed: the caller starts one)."""
    keeper = ensure_keeper(config)
    if keeper is None:
        return None
    import ray

    try:
        taken = ray.get(keeper.take.remote(job_id), timeout=10)
    except Exception:  # noqa: BLE001 - a keeper that does not answer: start one as usual
        return None
    if taken is None:
        return None
    actor_name, master = taken
    with startup_step("taking a JobMaster and its workers from the pool"):
        try:
            ray.get(master.bind.remote(job_id, name, config, max_workers, store, program,
                                       address, actor_name))
        except Exception:  # noqa: BLE001 - a spare that fails here is of no use: start one
            ray.kill(master)
            return None
    return master


def stop_pool(config: Mapping[str, Any] | None = None) -> int:
    """Stop the pool keeper and its ready spares (jobs that took one go on);
    how many spares were stopped (0 if no keeper runs)."""
    import ray

    values = _config.load(config)
    try:
        keeper = ray.get_actor(KEEPER_NAME, namespace=_namespace(values))
    except ValueError:
        return 0
    stopped = ray.get(keeper.stop.remote())
    ray.kill(keeper, no_restart=True)
    return int(stopped)


def keeper_state(config: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The keeper's :meth:`PoolKeeper.state`, or None if no keeper runs."""
    import ray

    values = _config.load(config)
    try:
        keeper = ray.get_actor(KEEPER_NAME, namespace=_namespace(values))
    except ValueError:
        return None
    return ray.get(keeper.state.remote())
