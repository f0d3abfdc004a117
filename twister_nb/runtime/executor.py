"""The driver side of a job: plans actions, hands them to the JobMaster, watches.

This is the default :class:`~twister_nb.tset.environment.Executor`, which the
package root sets. It runs in the kernel (or a script): it connects to the cluster,
finds or creates the job's detached JobMaster, and for each action submits the
plan and polls the JobMaster's event log, printing worker output as it comes
and handing every event to the listeners (the dashboard), until the result is
ready. The kernel owns no data: results of ``collect`` come straight from the
workers' object refs.

Why this module is long: it is the whole driver side of the Executor protocol,
one short method per call the environment makes (most are one JobMaster call
through ``_ask``); the work is in the JobMaster and its parts.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twister_nb.checkpoint import open_store
from twister_nb.checkpoint.policies import load_policy, policy_config
from twister_nb.checkpoint.variables import commit_variables, committed_variables
from twister_nb.events import (CheckpointCommitted, Event, JobMasterRebuilt, OutputPrinted,
                               TSetRestored)
from twister_nb.plan.planner import dumps_with_modules, plan as make_plan
from twister_nb.runtime import cluster, ray_log
from twister_nb.errors import JobFailedError, JobMasterLostError, JobNotFoundError, JobOwnedError
from twister_nb.runtime.job_master import ACTOR_PREFIX, LEASE_TTL, JobMaster
from twister_nb.runtime.pool import SPARE_PREFIX, take_master
from twister_nb.runtime.ray_errors import ray_error_line
from twister_nb.runtime.store_reach import require_shared_store
from twister_nb.tset import watchers
from twister_nb.tset.identity import is_library_path
from twister_nb.tset.ops import LogicalOp, Parallelize

if TYPE_CHECKING:
    from twister_nb.tset.environment import TSetEnvironment

Listener = Callable[[Event], None]

#: Seconds a leaving process waits for its JobMaster to note why it left
#: (Jupyter sends SIGTERM 2.5 s after its shutdown request).
LEAVE_TIMEOUT = 1.5


def live_master(job_id: str, config: Mapping[str, Any], store: Any = None) -> Any:
    """The job's live JobMaster actor, or None.

    A JobMaster started for its job is named after it; one a job took from the
    pool (:mod:`twister_nb.runtime.pool`) has the pool's name, which the job's
    record keeps (``actor``): with ``store`` given, that name is tried next.

    While a killed actor is being torn down, Ray can still hold its name but
    no longer its class, and ``get_actor`` then fails an internal assertion
    instead of raising ValueError; that actor is not live either.
    """
    import ray

    namespace = config.get("ray.namespace", cluster.NAMESPACE_DEFAULT)
    names = [ACTOR_PREFIX + job_id]
    if store is not None:
        try:
            actor = (store.read_job(job_id) or {}).get("actor")
        except Exception:  # noqa: BLE001 - an unreadable record names no actor
            actor = None
        if actor and actor.startswith(SPARE_PREFIX):
            names.append(actor)
    for name in names:
        try:
            return ray.get_actor(name, namespace=namespace)
        except (ValueError, AssertionError):
            continue
    return None


def new_master(job_id: str, name: str, config: dict[str, Any], store: Any,
               program: dict[str, Any] | None, address: str) -> Any:
    """Start the job's detached JobMaster (or get the one that just won the race)."""
    import ray

    max_workers = _max_workers(config)
    return ray.remote(JobMaster).options(
        name=ACTOR_PREFIX + job_id, lifetime="detached", num_cpus=0, max_concurrency=32,
        namespace=config.get("ray.namespace", cluster.NAMESPACE_DEFAULT), get_if_exists=True,
    ).remote(job_id, name, config, int(max_workers), store, program, address)


def _max_workers(config: Mapping[str, Any]) -> int:
    """The most workers a job starts: ``runtime.workers``, else the cluster's CPUs."""
    return int(config.get("runtime.workers") or cluster.cluster_cpus())


def _program() -> dict[str, Any] | None:
    """What ``twister-nb restart`` re-runs: this process's script, if it is one.

    Only a script run as ``python prog.py`` or ``twister-nb submit prog.py``
    counts; a module run with ``-m`` (pytest, ipykernel, our CLI) or anything
    installed is not a job's program, and re-running it could recurse.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or getattr(main, "__spec__", None) is not None or "ipykernel" in sys.modules:
        return None
    script = Path(path).resolve()
    if script.suffix != ".py" or not script.is_file() or is_library_path(str(script)):
        return None
    return {"path": str(script), "args": sys.argv[1:], "cwd": os.getcwd()}


def print_output(event: Event) -> None:
    """Default listener: worker output, restored and written checkpoints, to stdout."""
    if isinstance(event, OutputPrinted):
        for line in event.lines:
            print(line)
    elif isinstance(event, TSetRestored) and event.storage == "store":
        print(f"persist(): {event.label!r} restored from its checkpoint (version "
              f"{event.version}, {event.bytes:,} bytes); nothing recomputed")
    elif isinstance(event, CheckpointCommitted):
        print(f"persist(): {event.label!r} checkpointed (version {event.version}, "
              f"{event.bytes:,} bytes, {event.seconds:.2f} s)")
    else:
        return
    sys.stdout.flush()


class RayExecutor:
    """Runs a :class:`TSetEnvironment`'s actions on Ray through its JobMaster."""

    def __init__(self, env: "TSetEnvironment", *, attach_only: bool = False) -> None:
        self._env = env
        # A bad checkpoint policy is refused before the job starts.
        self._policy_config, self._policy = env.config, load_policy(env.config)
        self._cluster = cluster.connect(env.config)  # before importing Ray: it sets Ray's variables

        self.store = open_store(env.config)
        master = live_master(env.job_id, env.config, self.store)
        if master is None:
            if attach_only and self.store.read_job(env.job_id) is None:
                raise JobNotFoundError(
                    f"no job {env.job_id!r}: none is running on {self._cluster['address']} and "
                    f"none is recorded in {self.store.uri}; `twister-nb jobs` lists the jobs"
                )
            require_shared_store(self.store.uri, env.config)
            master = take_master(env.job_id, env.name, env.config, self.store, _program(),
                                 self._cluster["address"], _max_workers(env.config))
            if master is None:
                with watchers.startup_step("starting the JobMaster"):
                    master = self._started(new_master(env.job_id, env.name, env.config,
                                                      self.store, _program(),
                                                      self._cluster["address"]))
        master = self._started(master)
        self._master = master
        self._token = uuid.uuid4().hex
        #: TSets this job has a committed checkpoint of, as far as this driver knows
        #: (the attach answer, then the commits it is told of): a persist() of one
        #: asks the JobMaster to restore it before planning anything.
        self._committed: set[str] = set()
        self._cursor = self._attach()  # events from now on (not the whole log)
        # Ray's own messages to this driver (the raylet's warnings) go to the job's log
        self.log_path = ray_log.capture(env.job_id, cluster.ray_logs_dir(self._cluster))
        self._deliver_lock = threading.Lock()
        self.listeners: list[Listener] = [print_output]
        self._poll = float(env.config.get("runtime.poll_interval", 0.1))
        self._stop = threading.Event()
        self._rebuilding = threading.Lock()
        self._left = False
        self._start_heartbeat()

    def _started(self, master: Any, again: str = "") -> Any:
        """``master`` once it answers (its constructor ran)."""
        import ray

        try:
            ray.get(master.info.remote())
        except ray.exceptions.RayActorError as exc:
            raise JobFailedError(f"job {self._env.job_id!r} could not start{again}: "
                                 f"{ray_error_line(exc)}") from None
        return master

    def _ask(self, ref: Any, timeout: float | None = None) -> Any:
        """The answer of a JobMaster call; a JobMaster that is gone is one clear
        :class:`JobMasterLostError`, never a raw Ray error."""
        import ray

        try:
            return ray.get(ref, timeout=timeout)
        except ray.exceptions.RayActorError as exc:
            raise JobMasterLostError(self._env.job_id, ray_error_line(exc)) from None

    def _attach(self) -> int:
        """Become the job's driver, taking over from a driver that died here;
        the event cursor from which this driver is handed the job's events."""
        host, pid = socket.gethostname(), os.getpid()
        answer = self._ask(self._master.attach.remote(self._token, host, pid))
        if not answer["ok"]:
            holder = answer["holder"]
            if holder["host"] == host and not cluster.pid_alive(holder["pid"]):
                answer = self._ask(self._master.attach.remote(self._token, host, pid, True))
            else:
                raise JobOwnedError(
                    f"job {self._env.job_id!r} is attached to another process "
                    f"(pid {holder['pid']} on {holder['host']}); close it there "
                    f"(env.close() or stop its kernel) or wait {LEASE_TTL:.0f} s after it died"
                )
        self._send_policy()
        self._committed.update(answer["persisted"])
        return int(answer["cursor"])

    def _send_policy(self) -> None:
        """A custom (``module:Class``) policy travels to the JobMaster by value:
        the JobMaster's process need not import the user's module."""
        if type(self._policy).__module__.startswith("twister_nb."):
            return
        import ray.cloudpickle

        data = dumps_with_modules(self._policy, {type(self._policy).__module__}, ray.cloudpickle)
        self._ask(self._master.set_policy.remote(self._policy_config, data))

    def _start_heartbeat(self) -> None:
        threading.Thread(target=self._heartbeat, args=(self._master,),
                         name="twister-nb-heartbeat", daemon=True).start()

    def _heartbeat(self, master: Any) -> None:
        """Keep this driver's seat on ``master`` while it lives (a rebuilt
        JobMaster gets a heartbeat of its own)."""
        import ray

        while not self._stop.wait(LEASE_TTL / 3):
            try:
                if not ray.get(master.heartbeat.remote(self._token), timeout=LEASE_TTL):
                    return  # another driver took over
            except Exception:  # noqa: BLE001 - this JobMaster is gone; nothing to keep alive
                return

    def __reduce__(self) -> Any:
        raise TypeError("a RayExecutor lives in its driver and cannot be pickled")

    def banner_fields(self) -> dict[str, str]:
        return cluster.banner_fields(self._cluster, self._env.job_id)

    @property
    def master(self) -> Any:
        """The job's JobMaster actor handle (for the runtime layer and tests;
        front ends go through the environment or :mod:`twister_nb.jobs`)."""
        return self._master

    def info(self) -> dict[str, Any]:
        """The JobMaster's view of the job (``JobMaster.info``)."""
        return self._ask(self._master.info.remote(), timeout=30)

    def cancel(self) -> bool:
        """Ask the JobMaster to stop the running action (it does not wait)."""
        self._master.cancel.remote()
        return True

    def _drain(self) -> None:
        self._deliver(*self._ask(self._master.events.remote(self._cursor, self._token)))

    def _deliver(self, events: list[Event], cursor: int) -> None:
        """Hand the events this driver has not seen yet to the listeners, once
        each. Every answer holds all events from a cursor this driver had already
        reached up to ``cursor``, so the ones before ``self._cursor`` were delivered
        (an answer may repeat the poll before it; a background cell's thread polls
        too). The lock keeps threads from delivering an event twice."""
        with self._deliver_lock:
            seen = self._cursor
            self._cursor = max(seen, cursor)
            for event in events:
                if event.seq >= seen:
                    if isinstance(event, CheckpointCommitted):
                        self._committed.add(event.tset_id)
                    for listener in self.listeners:
                        listener(event)
                    if watchers.watched():  # twister-nb submit's progress lines
                        watchers.announce(event)

    def execute(self, root: LogicalOp, action: str, *, materialize_id: str | None = None) -> Any:
        """Run one action on the job. A JobMaster lost on the way (killed, its
        node gone) is rebuilt once from the store, and the action runs again on
        the new one: committed checkpoints are restored, lost caches remade."""
        lost_master = self._master
        try:
            return self._execute_once(root, action, materialize_id)
        except JobMasterLostError as lost:
            self._rebuild(lost_master, lost.cause_text)
        return self._execute_once(root, action, materialize_id)

    def _tell(self, line: str) -> None:
        """A line of the driver's own to the listeners (the JobMaster is not there to say it)."""
        for listener in self.listeners:
            listener(OutputPrinted(lines=(line,)))

    def _rebuild(self, lost_master: Any, cause: str) -> None:
        """Start a new JobMaster for this job (its record and committed
        checkpoints are in the store) once the lost one is gone, attach, and
        heartbeat to it. Another thread of this driver (a background cell and a
        wait) may have lost the same one: the first rebuilds, the others use it."""
        with self._rebuilding:
            if self._master is not lost_master:
                return  # rebuilt by another thread meanwhile
            self._tell(f"[job] the JobMaster was lost ({cause}); starting a new one from the "
                       "store and running the action again")
            for listener in self.listeners:
                listener(JobMasterRebuilt(cause=cause, time=time.time()))
            self._start_again()

    def _start_again(self) -> None:
        """A new JobMaster for this job, once the lost one's name is free."""
        deadline = time.monotonic() + LEASE_TTL
        while live_master(self._env.job_id, self._env.config, self.store) is not None:
            if time.monotonic() > deadline:
                raise JobMasterLostError(self._env.job_id, "the lost JobMaster is still "
                                         f"registered after {LEASE_TTL:.0f} s")
            time.sleep(0.1)
        self._master = self._started(new_master(self._env.job_id, self._env.name,
                                                self._env.config, self.store, _program(),
                                                self._cluster["address"]), " again")
        cursor = self._attach()
        with self._deliver_lock:
            self._cursor = cursor
        self._start_heartbeat()  # the last one ended with the lost JobMaster

    def _execute_once(self, root: LogicalOp, action: str, materialize_id: str | None) -> Any:
        import ray

        if (action == "persist" and materialize_id is not None
                and (materialize_id in self._committed
                     or any(isinstance(op, Parallelize) for op in root.post_order()))):
            # A committed checkpoint is a pointer: no recompute. Ask for it first when
            # the job has one (a restarted job's persist(): 2.2 ms, against 4.6 ms with
            # a plan made, sent and unpacked) or when planning would pickle a graph's
            # data (parallelize_*). Otherwise the JobMaster's execute restores one
            # itself (one the driver was not told of), which saves this call on a
            # first persist. The answer brings the events (restored, or why not).
            info, events, cursor = self._ask(self._master.restore.remote(materialize_id,
                                                                         self._cursor))
            self._deliver(events, cursor)
            if info is not None:
                return None
        plan = make_plan(root, action, ray.cloudpickle)
        # The JobMaster returns the events this driver has not seen with the
        # outcome, so an action that ends between two polls costs no extra call;
        # a longer one is polled (worker output, the dashboard) while it runs. The
        # lines a worker streams reach the JobMaster before its task returns, so
        # the answer holds every line of the action.
        ref = self._master.execute.remote(plan, materialize_id, self._token, self._cursor)
        try:
            while True:
                ready, _ = ray.wait([ref], timeout=self._poll)
                if ready:
                    break
                self._drain()
        except KeyboardInterrupt:
            # Jupyter interrupts a kernel before it restarts or shuts it down: the
            # environment tells a leaving process (the job goes on without it)
            # from the stop button (cancel).
            reason = self._env.leaving()
            if reason:
                self.detach(reason)
                raise
            self._master.cancel.remote()
            with_timeout = ray.wait([ref], timeout=30)
            if with_timeout[0]:
                self._drain()
            raise
        outcome, events, cursor = self._ask(ref)
        self._deliver(events, cursor)
        return self._value(action, outcome)

    def _value(self, action: str, outcome: tuple[str, Any]) -> Any:
        """An action's value for the caller: rows straight from the workers."""
        import ray

        status, value = outcome
        if status == "error":
            raise value
        if action == "collect":
            return list(itertools.chain.from_iterable(ray.get(value)))
        if action == "partitions":
            return ray.get(value)
        return None

    # ------------------------------------------------------------ re-attaching

    def catalog(self) -> dict[str, dict[str, Any]]:
        """The job's cached and persisted TSets: tset_id -> label, storage, parallelism, keyed."""
        return self._ask(self._master.catalog.remote())

    def running(self) -> dict[str, Any] | None:
        """The action the job runs now (started by this or an earlier driver)."""
        return self._ask(self._master.running.remote())

    def wait_running(self, timeout: float | None = None) -> Any:
        """Follow the running action to its end (printing its output) and return
        its value: what a kernel that re-attached mid-action gets."""
        import ray

        running = self.running()
        if running is None:
            # It may have ended while no driver was attached: its outcome is kept.
            last = self._ask(self._master.unclaimed.remote(self._token))
            return None if last is None else self._value(last["kind"], last["outcome"])
        ref = self._master.result.remote(running["action"], timeout)
        while True:
            ready, _ = ray.wait([ref], timeout=self._poll)
            self._drain()
            if ready:
                break
        outcome = self._ask(ref)
        if outcome is None:
            raise TimeoutError(f"action {running['action']} of job {self._env.job_id!r} "
                               f"is still running after {timeout} s")
        return self._value(running["kind"], outcome)

    def commit_variables(self, snapshot: dict[str, Any]) -> int:
        """The loop variables, from this driver straight to the store (their
        TSets were committed by the actions that persisted them)."""
        return commit_variables(self.store, self._env.job_id, snapshot)

    def snapshot(self) -> dict[str, Any]:
        """Checkpoint every finished task not saved yet (``env.snapshot()``); what was saved."""
        return self._ask(self._master.snapshot.remote())

    def set_checkpoint_policy(self, policy: str, params: Any = None) -> dict[str, Any]:
        """Check the policy here (a bad one is a ConfigError naming it), then
        make it the JobMaster's."""
        changed = policy_config(self._env.config, policy, params)
        self._policy_config, self._policy = changed, load_policy(changed)
        if not type(self._policy).__module__.startswith("twister_nb."):
            self._send_policy()
            return self._policy.describe()
        return self._ask(self._master.set_policy.remote(changed))

    def committed_variables(self) -> dict[str, Any] | None:
        return committed_variables(self.store, self._env.job_id)

    def events(self, cursor: int = 0) -> tuple[list[Event], int]:
        """The job's events from ``cursor`` on, as any watcher reads them (the
        driver's own delivery to its listeners is not touched)."""
        return self._ask(self._master.events.remote(cursor))

    def detach(self, reason: str) -> None:
        """Leave the job without ending it (the process is going away): its
        running action goes on, and its record says why this driver left."""
        import ray

        self._stop.set()
        if self._left:
            return  # said already (a leaving kernel may say it from two threads)
        self._left = True
        try:
            ray.get(self._master.detach.remote(self._token, reason), timeout=LEAVE_TIMEOUT)
        except Exception:  # noqa: BLE001 - the process leaves anyway; the seat times out
            pass

    def release(self, tset_id: str) -> None:
        try:
            self._master.release.remote(tset_id)
        except Exception:  # noqa: BLE001 - the job may be gone already; nothing to free
            pass

    def close(self) -> None:
        import ray

        self._stop.set()
        ray_log.release(self._env.job_id)
        if not ray.is_initialized():
            return  # this process left the cluster already (a script's exit): Ray's calls
            # would start a new driver; the job ends by its idle limit
        try:
            ray.get(self._master.shutdown.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - closing a dead job is fine
            pass
        try:
            ray.kill(self._master, no_restart=True)
        except Exception:  # noqa: BLE001
            pass
