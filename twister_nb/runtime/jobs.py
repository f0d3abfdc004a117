"""The jobs a cluster runs and a store records: one listing for every front end.

``twister-nb jobs`` and ``%twister2 jobs`` show the same rows. Listing never
starts a cluster: with the local head down, nothing is live.
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


def live_jobs(config: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """``info()`` of every live JobMaster, by job ID (none if the local head is
    not running: listing never starts a cluster)."""
    if not connect_if_running(config):
        return {}
    import ray

    from twister_nb.runtime import cluster
    from twister_nb.runtime.job_master import ACTOR_PREFIX

    namespace = _config.get("ray.namespace", cluster.NAMESPACE_DEFAULT, config)
    jobs = {}
    for actor in ray.util.list_named_actors(all_namespaces=True):
        name = actor.get("name", "")
        if actor.get("namespace") != namespace or not name.startswith(ACTOR_PREFIX):
            continue
        job_id = name[len(ACTOR_PREFIX):]
        if ".worker-" in job_id:
            continue
        try:
            jobs[job_id] = ray.get(ray.get_actor(name, namespace=namespace).info.remote(),
                                   timeout=10)
        except Exception as exc:  # noqa: BLE001 - a dying job is listed, not fatal
            jobs[job_id] = {"job_id": job_id, "status": f"unreachable ({type(exc).__name__})"}
    return jobs


def recorded_jobs(config: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The job records of the checkpoint store, by job ID."""
    from twister_nb.checkpoint import open_store

    store = open_store(_config.load(config))
    records = {}
    for job_id in store.list_jobs():
        try:
            records[job_id] = store.read_job(job_id) or {"job_id": job_id}
        except Exception as exc:  # noqa: BLE001 - one bad record does not hide the others
            records[job_id] = {"job_id": job_id, "status": f"unreadable ({type(exc).__name__})"}
    return records


def all_jobs(config: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Live and recorded jobs, one row each, oldest first."""
    live, recorded = live_jobs(config), recorded_jobs(config)
    rows = []
    for job_id in set(live) | set(recorded):
        info, record = live.get(job_id, {}), recorded.get(job_id, {})
        rows.append({
            "job_id": job_id,
            "name": info.get("name") or record.get("name", ""),
            "status": info.get("status") or _stopped(record.get("status", "")),
            "live": job_id in live,
            "workers": info.get("workers", 0),
            "cached": len(info.get("cached") or {}),
            "persisted": len(info.get("persisted") or record.get("persisted") or {}),
            "created": info.get("created") or record.get("created"),
        })
    return sorted(rows, key=lambda r: r["created"] or 0)


def _stopped(status: str) -> str:
    """A recorded status for a job that has no JobMaster (as ``twister-nb jobs`` says)."""
    return "stopped" if status in ("running", "idle") else status
