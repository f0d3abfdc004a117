"""The driver side of a job: plans actions, hands them to the JobMaster, watches.

This is the :class:`~twister_nb.tset.environment.Executor` the package root
registers. It runs in the kernel (or a script): it connects to the cluster,
finds or creates the job's detached JobMaster, and for each action submits the
plan and polls the JobMaster's event log, printing worker output as it comes
and handing every event to the listeners (the dashboard), until the result is
ready. The kernel owns no data: results of ``collect`` come straight from the
workers' object refs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twister_nb.plan.planner import plan as make_plan
from twister_nb.runtime import cluster
from twister_nb.runtime.errors import JobFailedError
from twister_nb.runtime.job_master import ACTOR_PREFIX, JobMaster
from twister_nb.tset.ops import LogicalOp

if TYPE_CHECKING:
    from twister_nb.tset.environment import TSetEnvironment

Listener = Callable[[dict[str, Any]], None]


def master_handle(job_id: str, name: str, config: dict[str, Any], *, create: bool = True) -> Any:
    """The job's JobMaster actor: the live one, or a new detached one."""
    import ray

    actor_name = ACTOR_PREFIX + job_id
    namespace = config.get("ray.namespace", cluster.NAMESPACE_DEFAULT)
    try:
        return ray.get_actor(actor_name, namespace=namespace)
    except ValueError:
        if not create:
            return None
    max_workers = config.get("runtime.workers") or cluster.cluster_cpus()
    return ray.remote(JobMaster).options(
        name=actor_name, namespace=namespace, lifetime="detached", num_cpus=0,
        max_concurrency=32, get_if_exists=True,
    ).remote(job_id, name, config, int(max_workers))


def print_output(event: dict[str, Any]) -> None:
    """Default listener: worker output to this process's stdout."""
    if event["kind"] == "output":
        for line in event["lines"]:
            print(line)
        sys.stdout.flush()


class RayExecutor:
    """Runs a :class:`TSetEnvironment`'s actions on Ray through its JobMaster."""

    def __init__(self, env: "TSetEnvironment") -> None:
        self._env = env
        self._cluster = cluster.connect(env.config)  # before importing Ray: it sets Ray's variables
        import ray

        self._master = master_handle(env.job_id, env.name, env.config)
        ray.get(self._master.info.remote())
        self._cursor = ray.get(self._master.events.remote(0))[1]
        self.listeners: list[Listener] = [print_output]
        self._poll = float(env.config.get("runtime.poll_interval", 0.1))

    def __reduce__(self) -> Any:
        raise TypeError("a RayExecutor lives in its driver and cannot be pickled")

    def banner_fields(self) -> dict[str, str]:
        return cluster.banner_fields(self._cluster)

    @property
    def master(self) -> Any:
        return self._master

    def _drain(self) -> None:
        import ray

        events, self._cursor = ray.get(self._master.events.remote(self._cursor))
        for event in events:
            for listener in self.listeners:
                listener(event)

    def execute(self, root: LogicalOp, action: str, *, materialize_id: str | None = None) -> Any:
        import ray

        plan = make_plan(root, action)
        ref = self._master.execute.remote(plan, materialize_id)
        try:
            while True:
                ready, _ = ray.wait([ref], timeout=self._poll)
                self._drain()
                if ready:
                    break
        except KeyboardInterrupt:
            self._master.cancel.remote()
            with_timeout = ray.wait([ref], timeout=30)
            if with_timeout[0]:
                self._drain()
            raise
        try:
            status, value = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            raise JobFailedError(f"the JobMaster of job {self._env.job_id!r} died: {exc}") from None
        if status == "error":
            raise value
        if action == "collect":
            return [v for part in ray.get(value) for v in part]
        if action == "partitions":
            return ray.get(value)
        return None

    def release(self, tset_id: str) -> None:
        try:
            self._master.release.remote(tset_id)
        except Exception:  # noqa: BLE001 - the job may be gone already; nothing to free
            pass

    def close(self) -> None:
        import ray

        try:
            ray.get(self._master.shutdown.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - closing a dead job is fine
            pass
        try:
            ray.kill(self._master, no_restart=True)
        except Exception:  # noqa: BLE001
            pass
