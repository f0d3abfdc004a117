"""Job operations, by job ID: the one API every front end calls.

``twister-nb`` (:mod:`twister_nb.cli`), the ``%twister2`` line magic
(:mod:`twister_nb.notebook.commands`) and the Jupyter server extension of a
later issue list, inspect, watch, cancel, close, clear and restart jobs and
start and stop the local cluster through :class:`JobClient`; they only parse
arguments and format what it returns. A job this process drives is reached
through its :class:`~twister_nb.tset.environment.TSetEnvironment` instead
(``env.info()``, ``env.cancel()``, ``env.subscribe(listener)``).

Layer: between the front ends and the runtime (front ends -> ``jobs`` ->
``runtime``, ``tset``, ``checkpoint``; nothing below imports it). At module
level it imports only :mod:`twister_nb.config` and :mod:`twister_nb.errors`;
the API, the store and the runtime (which imports Ray) inside methods, so
importing it, as the CLI does to print its help, imports no Ray. The JobMaster's remote
methods are called in :mod:`twister_nb.runtime.jobs`, never here.

Why this module is long: it is one class, the whole surface
three front ends share; about half of it is the docstrings they are written from.

No method starts a cluster except :meth:`JobClient.cluster_start` and
:meth:`JobClient.close` (which attaches to the job): with the local head down,
no job is live and the store answers alone. Refusals are typed errors
(:class:`~twister_nb.errors.JobNotFoundError`, :class:`JobRunningError`,
:class:`NoProgramError`, :class:`~twister_nb.errors.ClusterError`); each front
end words them its own way.

Examples
--------
>>> from twister_nb.jobs import JobClient
>>> client = JobClient()
>>> [row["job_id"] for row in client.jobs()]  # doctest: +SKIP
['seed-3f2a9c1b7e40']
>>> client.status("seed-3f2a9c1b7e40")["record"]["status"]  # doctest: +SKIP
'finished'
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from twister_nb import config as _config
from twister_nb.errors import JobNotFoundError, TwisterError

__all__ = ["ClusterStatus", "JobClient", "JobDetail", "JobRow", "JobRunningError", "LocalHead",
           "NoProgramError", "Program", "ProgramRun", "WarmUp"]


@dataclass(frozen=True)
class WarmUp:
    """The background connection to the cluster a kernel starts when
    twister_nb loads (:meth:`JobClient.warm_up`)."""

    thread: threading.Thread

    def wait_for_ray_import(self, timeout: float = 60.0) -> None:
        """Return once the connecting thread is not importing Ray (any more):
        it imported it, or it ended without (no cluster runs). Two threads
        importing Ray at once can fail with Python's ``_DeadlockError`` (Ray's
        modules import each other), so a kernel calls this before each cell:
        a cell that imports Ray itself, right after ``%load_ext``, waits for
        the rest of that import (about a second) instead of failing."""
        from twister_nb.runtime.cluster import RAY_IMPORTED

        deadline = time.monotonic() + timeout
        while (self.thread.is_alive() and not RAY_IMPORTED.wait(0.02)
               and time.monotonic() < deadline):
            pass


class JobRunningError(TwisterError):
    """The job has a live JobMaster, and the operation needs it ended first."""


class NoProgramError(TwisterError):
    """The job has no program to re-run: it was not submitted as one (a
    notebook's program is its cells), or its file is gone."""


class JobRow(TypedDict):
    """One job of :meth:`JobClient.jobs`: live, recorded, or both."""

    job_id: str
    name: str
    #: The live JobMaster's, else the record's (``stopped`` for a record that
    #: says running but has no JobMaster).
    status: str
    live: bool
    workers: int
    cached: int
    persisted: int
    created: float | None
    #: The live driver's host, pid and since (None: no driver, or not live).
    driver: dict[str, Any] | None
    #: The latest action (number, kind, label, state, error), if a live job ran one.
    last_action: dict[str, Any] | None
    #: The running action (number, kind, label, started, ``since``: its first
    #: event's cursor), or None.
    running: dict[str, Any] | None


class JobDetail(JobRow):
    """One job of :meth:`JobClient.job`: its row, record and live view."""

    #: Its ``job.json`` in the store (None if the store has none).
    record: dict[str, Any] | None
    #: Its live JobMaster's ``info()``, or the same view of itself its record
    #: carries when this host can trust it (with ``published``: when it was
    #: written; see :mod:`twister_nb.job_rows`); None if none runs.
    info: dict[str, Any] | None


@dataclass(frozen=True)
class Program:
    """What :meth:`JobClient.restart` re-runs: a submitted script and its arguments."""

    path: str
    args: tuple[str, ...] = ()
    cwd: str = "."

    @property
    def exists(self) -> bool:
        """Whether the script is still where it was submitted from."""
        return Path(self.path).is_file()


@dataclass(frozen=True)
class ProgramRun:
    """A program made a job by :meth:`JobClient.launch`: connected, its job ID chosen."""

    path: Path
    args: tuple[str, ...]
    job_id: str
    name: str

    def run(self) -> None:
        """Run the program here as ``__main__``, ``args`` as ``sys.argv[1:]``.
        Its ``TSetEnvironment()`` gets this job's ID and name through the
        process environment (as a child process would), the name as a default:
        a name the program gives wins, and the banner the environment prints
        shows it. Whatever the program raises propagates."""
        from twister_nb.tset import environment as envmod

        os.environ[envmod.JOB_ID_VAR] = self.job_id
        os.environ[envmod.JOB_NAME_VAR] = self.name
        sys.argv = [str(self.path), *self.args]
        sys.path.insert(0, str(self.path.resolve().parent))
        try:
            runpy.run_path(str(self.path), run_name="__main__")
        except Exception as exc:  # recorded in the job, then the caller reports it
            from twister_nb.errors import ActionCancelledError
            from twister_nb.runtime.jobs import record_failure

            # A cancelled action is the JobMaster's to record (``cancelled``), not a failure
            if not isinstance(exc, ActionCancelledError):
                record_failure(self.job_id, f"{type(exc).__name__}: {exc}")
            raise


@dataclass(frozen=True)
class LocalHead:
    """The local Ray head twister_nb owns (``ray.address: local``)."""

    address: str
    pid: int
    #: When it started (seconds since the epoch).
    started: float
    #: Set by :meth:`JobClient.cluster_start` when the head ran already.
    already_running: bool = False
    #: How long its start took, and in how many attempts (a busy machine may need two).
    start_seconds: float = 0.0
    attempts: int = 1

    @classmethod
    def from_state(cls, state: Mapping[str, Any], already_running: bool = False) -> LocalHead:
        return cls(address=state["address"], pid=int(state["pid"]),
                   started=float(state.get("started", 0.0)), already_running=already_running,
                   start_seconds=float(state.get("start_seconds", 0.0)),
                   attempts=int(state.get("attempts", 1)))


@dataclass(frozen=True)
class ClusterStatus:
    """Where jobs run: the configured address and the local head, if it runs."""

    #: Config ``ray.address``: ``local`` (the head twister_nb owns) or an existing cluster's.
    address: str
    head: LocalHead | None
    #: The twister_nb home the local head belongs to.
    home: Path

    @property
    def local(self) -> bool:
        """Whether jobs run on the local head (which twister_nb starts and stops)."""
        return self.address == "local"


class JobClient:
    """Operations on jobs by ID, and on the local cluster.

    A class rather than plain functions so that a caller binds its
    configuration once (the server extension its own, a test a private home)
    and every operation uses it; it holds no other state, so making one is
    free and a long-lived one never goes stale (configuration is read at
    each call: ``%twister2 config KEY=VALUE`` applies to the next one).

    Parameters
    ----------
    config : mapping, optional
        Configuration keys that win over every other layer, as
        ``TSetEnvironment(config=...)`` takes them.
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self._overrides = dict(config or {})

    def __repr__(self) -> str:
        return f"JobClient(config={self._overrides!r})"

    @property
    def config(self) -> dict[str, Any]:
        """The configuration the operations use, read now."""
        return _config.load(self._overrides)

    def _store(self) -> Any:
        from twister_nb.checkpoint import open_store

        return open_store(self.config)

    @property
    def store_uri(self) -> str:
        """Where job records and checkpoints are kept."""
        from twister_nb.checkpoint import store_uri

        return store_uri(self.config)

    def connect(self) -> bool:
        """Connect this process to the job cluster now, if it is running (never
        starts one); True if connected."""
        from twister_nb.runtime.jobs import connect_if_running

        return connect_if_running(self._overrides)

    def warm_up(self) -> WarmUp:
        """Import the runtime now and :meth:`connect` in a thread (errors are left
        to the first real call): a kernel does it when twister_nb loads, so an
        ``attach`` after a restart does not wait for imports and Ray's start-up.
        The runtime's imports are made here, not in the thread; Ray's is made
        in the thread, under the lock every connection of twister_nb takes, and
        code outside twister_nb that imports Ray meanwhile must wait for it
        (:meth:`WarmUp.wait_for_ray_import`)."""
        import twister_nb.runtime.executor  # noqa: F401 - the store, the plan, the runtime

        def connect() -> None:
            try:
                self.connect()
            except Exception:  # noqa: BLE001 - the first cell connects, and says why it cannot
                pass

        thread = threading.Thread(target=connect, name="twister-nb-connect", daemon=True)
        thread.start()
        return WarmUp(thread)

    # ------------------------------------------------------------------ looking

    def jobs(self) -> list[JobRow]:
        """Every job recorded in the store, oldest first, with the live view of
        those a JobMaster runs. The store answers alone, without importing
        Ray, when no job's lease is held, or when each job whose lease is held
        has its JobMaster on this host, either dead (not live) or alive with a
        view of itself in its record that can be trusted
        (:func:`twister_nb.job_rows.answer_here`), and this process is no Ray
        driver already. Else the cluster is asked (every live JobMaster on it:
        its answer wins over a stored view), and the jobs live on it are
        listed too: a JobMaster on another host is always asked through Ray."""
        from twister_nb import job_rows

        stored = job_rows.stored_jobs(self._store())
        here = job_rows.answer_here(stored)
        live = dict(here.live)
        if any(job.maybe_live() and not here.settles(job.job_id) for job in stored):
            from twister_nb.runtime.jobs import live_jobs

            live.update(live_jobs(self._overrides))
        return job_rows.rows(stored, live)  # type: ignore[return-value]

    def info(self, job_id: str) -> dict[str, Any] | None:
        """The live JobMaster's view of a job (name, status, workers, cached and
        persisted TSets, actions, driver), or None if no JobMaster runs it."""
        from twister_nb.runtime.jobs import master_info

        return master_info(job_id, self._overrides)

    def is_live(self, job_id: str) -> bool:
        """Whether a JobMaster runs the job now."""
        return self.info(job_id) is not None

    def record(self, job_id: str) -> dict[str, Any] | None:
        """The job's record in the store (``jobs/<id>/job.json``), or None."""
        return self._store().read_job(job_id)

    def status(self, job_id: str) -> dict[str, Any]:
        """``{"record": ..., "live": ...}``: the job's record, made current first
        if the job is live (its JobMaster writes it in the background), and the
        live JobMaster's view (None if none runs). The cluster is asked only
        when the store cannot tell: the job's lease is held and this host
        cannot settle it (as :meth:`jobs` decides: a JobMaster on another
        host, or this process is a Ray driver already), or the store knows
        nothing of the job. A trusted view is shown with the record as stored
        (written by the JobMaster's thread within ~0.25 s of a change,
        not flushed), and says when it was published (``published``).

        Raises
        ------
        JobNotFoundError
            Neither the cluster nor the store knows the job.
        """
        from twister_nb import job_rows

        store = self._store()
        stored = job_rows.stored_job(store, job_id)
        record = stored.record
        here = job_rows.answer_here([stored])
        live = here.live.get(job_id)
        if not here.settles(job_id) and (stored.maybe_live() or not stored.known):  # ask Ray
            from twister_nb.runtime.jobs import flush_record

            live = self.info(job_id)
            if live is not None:
                flush_record(job_id, self._overrides)
                record = store.read_job(job_id)
        if record is None and live is None:
            raise JobNotFoundError(f"no job {job_id!r} on the cluster or in {self.store_uri}")
        return {"record": job_rows.public_record(record), "live": live}

    def job(self, job_id: str) -> JobDetail:
        """One job's row, as :meth:`jobs` lists it, with its record and its live
        JobMaster's view, as :meth:`status` gives them (the record made current
        first if the job is live).

        Raises
        ------
        JobNotFoundError
            Neither the cluster nor the store knows the job.
        """
        from twister_nb.job_rows import job_row

        found = self.status(job_id)
        row = job_row(job_id, found["live"], found["record"])
        return {**row, "record": found["record"], "info": found["live"]}  # type: ignore[typeddict-item]

    def name(self, job_id: str) -> str | None:
        """The name of a live or recorded job, or None if there is no such job."""
        live = self.info(job_id)
        if live is not None and live.get("name"):
            return live["name"]
        record = self.record(job_id)
        return None if record is None else record.get("name")

    # ------------------------------------------------------------------ watching

    def events(self, job_id: str, cursor: int = 0) -> tuple[list[Any], int]:
        """The job's events from ``cursor`` on, and the cursor to ask with next
        time: one poll, for a caller with its own loop (a REST handler).
        Events are the JobMaster's, as it emits them.

        Raises
        ------
        JobNotFoundError
            No JobMaster runs the job (a stopped job keeps no events).
        """
        from twister_nb.runtime.jobs import events

        answer = events(job_id, cursor, self._overrides)
        if answer is None:
            raise JobNotFoundError(f"no live job {job_id!r}: only a running job has events; "
                                   "`twister-nb jobs` lists the live ones")
        return answer

    def watch(self, job_id: str, cursor: int = 0, *, poll: float = 0.5,
              stop: threading.Event | None = None) -> Iterator[Any]:
        """Yield the job's events from ``cursor`` on as they come, polling every
        ``poll`` seconds, until its JobMaster ends or ``stop`` is set. Watching
        takes nothing from the job's driver; any number of watchers may follow a job.

        Raises
        ------
        JobNotFoundError
            No JobMaster runs the job when watching starts.
        """
        from twister_nb.runtime.jobs import events

        found, cursor = self.events(job_id, cursor)
        stop = stop or threading.Event()
        while True:
            yield from found
            if stop.wait(poll):
                return
            answer = events(job_id, cursor, self._overrides)
            if answer is None:
                return  # the job ended
            found, cursor = answer

    # ------------------------------------------------------------------ acting

    def cancel(self, job_id: str) -> bool:
        """Ask the job to stop its running action (queued tasks are cancelled;
        its driver's action raises). Does not wait. False if no JobMaster runs
        the job. A job this process drives is cancelled with ``env.cancel()``."""
        from twister_nb.runtime.jobs import cancel

        return cancel(job_id, self._overrides)

    def close(self, job_id: str) -> bool:
        """End a live job: its JobMaster records the end and frees its workers
        and cached data. False if no JobMaster runs it. This process becomes
        the job's driver to close it, so a job another live process drives is
        refused (:class:`~twister_nb.errors.JobOwnedError`). A job this process
        drives is closed with ``env.close()``."""
        from twister_nb.tset.environment import TSetEnvironment

        if not self.is_live(job_id):
            return False
        TSetEnvironment(job_id=job_id, config=self._overrides, banner=False).close()
        return True

    def clear(self, job_id: str, confirm: Callable[[], object] | None = None) -> None:
        """Delete a job's record and every checkpoint of it from the store.

        Parameters
        ----------
        confirm : callable, optional
            Called once the job is known to be clearable, before anything is
            deleted; it raises to keep the data (the CLI asks the user).

        Raises
        ------
        JobRunningError
            A JobMaster runs the job: close it first.
        JobNotFoundError
            The store has nothing of the job.
        """
        if self.is_live(job_id):
            raise JobRunningError(f"job {job_id!r} is running; close it first")
        store = self._store()
        if store.read_job(job_id) is None and not store.list_tsets(job_id):
            raise JobNotFoundError(f"the store {store.uri} has nothing of job {job_id!r}")
        if confirm is not None:
            confirm()
        store.clear_job(job_id)

    # ------------------------------------------------------------------ programs

    def program(self, job_id: str) -> Program:
        """The program a submitted job re-runs (``twister-nb submit`` records it).

        Raises
        ------
        JobNotFoundError
            The store has no record of the job.
        NoProgramError
            The job was not submitted as a program (a notebook's job).
        """
        record = self.record(job_id)
        if record is None:
            raise JobNotFoundError(f"no job {job_id!r} in {self.store_uri}")
        program = record.get("program") or {}
        if not program.get("path"):
            raise NoProgramError(f"job {job_id!r} was not submitted as a program")
        return Program(path=program["path"], args=tuple(program.get("args") or ()),
                       cwd=program.get("cwd") or ".")

    def launch(self, path: str | os.PathLike[str], args: Sequence[str] = (), *,
               job_id: str | None = None, name: str | None = None) -> ProgramRun:
        """Make a Python program a job of this process: connect to the cluster
        and choose its job ID. ``.run()`` on the answer then runs it (what
        ``twister-nb submit`` does); the two steps let a front end tell a
        refusal here from an error of the program. The banner is the program's
        environment's, so it names the job as the program does.

        Raises
        ------
        SyntaxError
            The program does not compile (no job, no banner).
        ClusterError
            The cluster could not be reached or started.
        """
        from twister_nb.runtime import cluster
        from twister_nb.tset import environment as envmod

        # A program that cannot even be compiled starts no job (and no cluster).
        compile(Path(path).read_bytes(), str(path), "exec")
        name = name or str(_config.get("job.name", "python-job", self._overrides))
        job_id = job_id or envmod.new_job_id(name)
        cluster.connect(self.config)
        return ProgramRun(path=Path(path), args=tuple(args), job_id=job_id, name=name)

    def relaunch(self, job_id: str) -> ProgramRun:
        """:meth:`launch` a submitted job's program again, from its folder and
        with the same job ID: when it runs, every committed ``persist()`` is
        restored instead of recomputed (what ``twister-nb restart`` does).

        Raises
        ------
        JobNotFoundError, NoProgramError
            As :meth:`program`; NoProgramError also when the program's file is gone.
        ClusterError
            The cluster could not be reached or started.
        """
        program = self.program(job_id)
        if not program.exists:
            raise NoProgramError(f"job {job_id!r}'s program {program.path!r} is gone")
        name = (self.record(job_id) or {}).get("name")
        os.chdir(program.cwd)
        return self.launch(program.path, program.args, job_id=job_id, name=name)

    def restart(self, job_id: str, on_line: Callable[[str], object] = print) -> int:
        """Restart a submitted job in a new process (``twister-nb restart``),
        handing each line it prints to ``on_line`` as it comes, and return its
        exit code. What a kernel or a server calls: the program never runs
        inside them. An interrupt stops the process and is raised again.

        Raises
        ------
        JobNotFoundError, NoProgramError
            As :meth:`program`, checked before anything starts.
        """
        self.program(job_id)
        command = [sys.executable, "-m", "twister_nb.cli", "restart", job_id]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, bufsize=1) as proc:
            try:
                for line in proc.stdout:  # type: ignore[union-attr]
                    on_line(line)
            except KeyboardInterrupt:
                proc.terminate()
                raise
        return proc.returncode

    # ------------------------------------------------------------------ cluster

    @property
    def local_cluster(self) -> bool:
        """Whether jobs run on the local head twister_nb owns (config
        ``ray.address: local``) rather than on an existing cluster."""
        return str(_config.get("ray.address", "local", self._overrides)) == "local"

    def cluster_status(self) -> ClusterStatus:
        """Config ``ray.address`` and the local head, if it runs (never starts it)."""
        from twister_nb.runtime import cluster

        state = cluster.local_status()
        return ClusterStatus(address=str(_config.get("ray.address", "local", self._overrides)),
                             head=None if state is None else LocalHead.from_state(state),
                             home=_config.home())

    def cluster_start(self, num_cpus: int | None = None) -> LocalHead:
        """Start the local head under the twister_nb home, or return the
        running one (``already_running`` says which)."""
        from twister_nb.runtime import cluster

        was = cluster.local_status()
        state = cluster.start_local(num_cpus=num_cpus, config=self._overrides or None)
        from twister_nb.runtime.pool import ensure_keeper, pool_size

        if pool_size(self.config):  # the pool starts its spares now, for the first job
            cluster.connect(self.config)
            ensure_keeper(self.config)
        return LocalHead.from_state(state, already_running=was is not None)

    def cluster_stop(self) -> bool:
        """Stop the local head by its PID (only the one twister_nb started) and
        wait until it and every actor it ran (jobs, the warm pool) are gone;
        False if none was running. This process's Ray driver, if it has one,
        is shut down first: it goes with the head, and so do the head's jobs.
        A :class:`~twister_nb.errors.ClusterError` if some process outlived it."""
        from twister_nb.runtime import cluster

        cluster.disconnect()
        return cluster.stop_local()
