"""The jobs a cluster runs and a store records, reached by job ID.

The runtime half of :mod:`twister_nb.jobs` (which front ends call): this
module and :mod:`~twister_nb.runtime.executor` are the only ones that call a
JobMaster's remote methods. Nothing here starts a cluster: with the local head
down, nothing is live and every function answers at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twister_nb import config as _config


def connect_if_running(config: Mapping[str, Any] | None = None) -> bool:
    """Connect to the job cluster unless it is the local head and it is not
    running. True if connected."""
    from twister_nb.runtime import cluster

    if str(_config.get("ray.address", "local", config)) == "local" and cluster.local_status() is None:
        return False
    cluster.connect(config)
    return True


def find_master(job_id: str, config: Mapping[str, Any] | None = None) -> Any:
    """The live JobMaster actor of ``job_id``, or None (never starts a cluster).

    Named after the job (``twister_nb.job.<job_id>``) or, taken from the warm
    pool, by the pool's name its record keeps: look it up here, not by name."""
    if not connect_if_running(config):
        return None
    from twister_nb.checkpoint import open_store
    from twister_nb.runtime.executor import live_master

    values = _config.load(config)
    return live_master(job_id, values, open_store(values))


def _info(job_id: str, master: Any, timeout: float) -> dict[str, Any] | None:
    """``info()`` of a JobMaster; one that does not answer in time is listed
    with its status only; None for one that is gone or closed, which is not
    live: ``ray.kill`` returns before the actor is gone, so a job just closed
    can still be found by name for a moment, and then answers ``closed`` (its
    record written, its lease freed) or dies on the call."""
    import ray

    try:
        info = ray.get(master.info.remote(), timeout=timeout)
    except ray.exceptions.RayActorError:
        return None
    except Exception as exc:  # noqa: BLE001 - a busy or dying job is listed, not fatal
        return {"job_id": job_id, "status": f"unreachable ({type(exc).__name__})"}
    return None if info.get("status") == "closed" else info


def master_info(job_id: str, config: Mapping[str, Any] | None = None,
                timeout: float = 30.0) -> dict[str, Any] | None:
    """``info()`` of the job's live JobMaster, or None if none runs."""
    master = find_master(job_id, config)
    return None if master is None else _info(job_id, master, timeout)


def flush_record(job_id: str, config: Mapping[str, Any] | None = None,
                 timeout: float = 5.0) -> bool:
    """Make a live job's record in the store current (its JobMaster writes it
    in the background). False if no JobMaster runs the job or it did not
    finish in time; the record is then as it is."""
    master = find_master(job_id, config)
    if master is None:
        return False
    import ray

    try:
        return bool(ray.get(master.flush_record.remote(timeout), timeout=timeout + 5))
    except Exception:  # noqa: BLE001 - the record is shown as it is
        return False


def record_failure(job_id: str, error: str, config: Mapping[str, Any] | None = None) -> bool:
    """Record in a live job that its program failed outside any action (its
    close then says ``failed``); False if no JobMaster runs the job."""
    master = find_master(job_id, config)
    if master is None:
        return False
    import ray

    try:
        ray.get(master.record_failure.remote(error), timeout=30)
    except Exception:  # noqa: BLE001 - a dying job records nothing more
        return False
    return True


def cancel(job_id: str, config: Mapping[str, Any] | None = None) -> bool:
    """Ask the job's JobMaster to stop its running action (without waiting);
    False if no JobMaster runs the job."""
    master = find_master(job_id, config)
    if master is None:
        return False
    master.cancel.remote()
    return True


def events(job_id: str, cursor: int = 0,
           config: Mapping[str, Any] | None = None) -> tuple[list[Any], int] | None:
    """The job's events from ``cursor`` on and the cursor to ask with next,
    as its JobMaster keeps them; None if no JobMaster runs the job. Reading
    them takes nothing from the job's driver (no token: a watcher, not a driver)."""
    master = find_master(job_id, config)
    if master is None:
        return None
    import ray

    found, after = ray.get(master.events.remote(cursor), timeout=30)
    return list(found), after


def job_workers(job_id: str, config: Mapping[str, Any] | None = None,
                timeout: float = 30.0) -> list[Any]:
    """The live job's Worker actors, worker ``i`` at index ``i`` (empty if no
    JobMaster runs the job).

    The one way to find a job's worker ``i`` (``worker-<i>`` in its output
    lines): its JobMaster answers, whether it started the worker (named
    ``twister_nb.job.<job_id>.worker-<i>``) or took it from the warm pool
    (unnamed: Ray cannot rename an actor)."""
    master = find_master(job_id, config)
    if master is None:
        return []
    import ray

    try:
        return list(ray.get(master.workers.remote(), timeout=timeout))
    except ray.exceptions.RayActorError:
        return []


def live_jobs(config: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """``info()`` of every live JobMaster, by job ID (none if the local head is
    not running: listing never starts a cluster)."""
    if not connect_if_running(config):
        return {}
    import ray

    from twister_nb.runtime import cluster
    from twister_nb.runtime.job_master import ACTOR_PREFIX
    from twister_nb.runtime.pool import SPARE_PREFIX

    namespace = _config.get("ray.namespace", cluster.NAMESPACE_DEFAULT, config)
    jobs = {}
    for actor in ray.util.list_named_actors(all_namespaces=True):
        name = actor.get("name", "")
        if actor.get("namespace") != namespace:
            continue
        if name.startswith(ACTOR_PREFIX) and ".worker-" not in name:
            job_id: str | None = name[len(ACTOR_PREFIX):]
        elif name.startswith(SPARE_PREFIX):
            job_id = None  # a pool's JobMaster: its job (if any yet) says itself
        else:
            continue
        try:
            master = ray.get_actor(name, namespace=namespace)
        except ValueError:  # it ended since the listing
            continue
        info = _info(job_id or name, master, timeout=10)  # listing many: a shorter wait
        if info is None:
            continue
        job_id = job_id or info.get("job_id")
        if job_id:
            jobs[job_id] = info
    return jobs
