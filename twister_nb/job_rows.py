"""What the store alone says about jobs: records, leases, and the rows of ``jobs``.

``twister-nb jobs``, ``twister-nb status JOB_ID`` and ``%twister2 jobs`` are
asked most often when nothing runs. Connecting to Ray (importing it, starting
a driver, asking every JobMaster) costs 1.5-4 s in a fresh process; reading the
store costs a few milliseconds per job. So the store answers first, and the
Ray cluster is asked only about what the store cannot tell: whether a job
whose lease is fresh is really live, and its live view (status, workers,
cached TSets, driver).

Most of that the store tells too, on the JobMaster's host. The lease names
the process that holds it (host and pid: the JobMaster), and a live JobMaster
keeps its own view (its ``info()``, and when it was published) in its record
(``live_view``), published when its state changes (actions start and end,
drivers come and go, TSets are released) and refreshed with every lease
renewal (every 5 s). So, without Ray (:func:`answer_here`):

* a job whose lease holder runs on this host and is dead (no such pid, or a
  zombie) is not live, at once: a JobMaster SIGKILLed here shows as stopped;
* a job whose lease holder runs on this host, is alive and its lease not
  expired, with a view of that same pid published less than one TTL ago, is
  live as its view says (:meth:`StoredJob.trusted_view`).

Everything else the store cannot settle is still asked through Ray: a
JobMaster on another host, a lease past its expiry (within the margin below),
a record without a view. A process that is a Ray driver already
(:func:`connected_to_ray`) asks Ray anyway: it is cheap and exact there, and
right after this process ran an action the record may not be written yet.
What a trusted view may miss: a change of the last milliseconds (the record is
written by a thread), a change mid-action that publishes nothing (a worker
replaced) until the next renewal, a host name shared by two machines' or
containers' process spaces, and a pid reused within a TTL of the JobMaster's
death.

A JobMaster holds its job's lease (``jobs/<id>/leases/``, see
:mod:`twister_nb.storage.lease`) from its start until it closes, renewing it
every third of its TTL, and releases it when it closes, after writing the
record's final status. So a job whose lease is released, or expired for longer
than one TTL (the margin covers clock skew between the head's host and this
one, and a renewal that failed once), has no JobMaster: its record is the whole
truth. A job with no lease was never run by a JobMaster of this store.

What is missed: a job run with a store of its own (a per-job
``twister2.checkpointing.store``) is listed only when Ray is asked anyway
(some job of this store may be live), as it is not in this store.

Layer: beside :mod:`twister_nb.jobs`, which it serves; it imports the store
only (no runtime: importing :mod:`twister_nb.runtime` loads jsonschema, and
Ray after it), so a listing that needs no cluster imports none.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twister_nb.storage import JOB_LIVE_VIEW, CheckpointStore, Lease

__all__ = ["HostAnswer", "StoredJob", "answer_here", "connected_to_ray", "job_row", "pid_alive",
           "public_record", "rows", "stored_job", "stored_jobs"]


@dataclass(frozen=True)
class StoredJob:
    """One job as the store has it: its record and its current lease (either may be None)."""

    job_id: str
    record: dict[str, Any] | None
    lease: Lease | None
    #: The lease file could not be read: the store cannot tell whether the job is live.
    lease_unreadable: bool = False

    @property
    def known(self) -> bool:
        """Whether the store has a record or a lease of the job."""
        return self.record is not None or self.lease is not None or self.lease_unreadable

    def maybe_live(self, now: float | None = None) -> bool:
        """Whether a JobMaster may run the job now: its lease is held (not
        released) and expired, if at all, less than one TTL ago."""
        if self.lease_unreadable:
            return True
        lease = self.lease
        if lease is None or lease.released:
            return False
        return lease.expires_at + lease.ttl_s > (time.time() if now is None else now)

    def holder_here(self, host: str | None = None) -> bool:
        """Whether the job's lease is held (not released) by a process of
        ``host`` (default: this host) whose pid it names: a JobMaster of this host."""
        lease = self.lease
        return (lease is not None and not lease.released and lease.pid > 0
                and lease.host == (socket.gethostname() if host is None else host))

    def trusted_view(self, now: float | None = None, host: str | None = None,
                     alive: Callable[[int], bool] | None = None) -> dict[str, Any] | None:
        """The live JobMaster's view of itself its record carries, if it can be
        trusted without asking Ray, else None: the lease is held by a process of
        ``host`` (default: this host) that is ``alive`` (default:
        :func:`pid_alive`) and not expired at ``now``, and the view is that
        process's, published less than one lease TTL ago."""
        view = (self.record or {}).get(JOB_LIVE_VIEW)
        lease = self.lease
        if not isinstance(view, dict) or lease is None or not self.holder_here(host):
            return None
        now = time.time() if now is None else now
        if (not lease.live(now) or view.get("pid") != lease.pid
                or now - float(view.get("published") or 0.0) > lease.ttl_s):
            return None
        return view if (alive or pid_alive)(lease.pid) else None

    def holder_gone(self, host: str | None = None,
                    alive: Callable[[int], bool] | None = None) -> bool:
        """Whether the job's lease is held by a process of ``host`` (default:
        this host) that is dead (``alive``, default :func:`pid_alive`, says
        no): a JobMaster killed here, which no Ray answer would bring back."""
        lease = self.lease
        return lease is not None and self.holder_here(host) and not (alive or pid_alive)(lease.pid)


@dataclass(frozen=True)
class HostAnswer:
    """What this host tells, without Ray, of the jobs whose JobMaster runs or
    ran on it (:func:`answer_here`)."""

    #: The trusted live views (:meth:`StoredJob.trusted_view`), by job ID.
    live: dict[str, dict[str, Any]]
    #: The jobs whose lease holder here is dead (:meth:`StoredJob.holder_gone`).
    gone: frozenset[str]

    def settles(self, job_id: str) -> bool:
        """Whether the job needs no question to Ray."""
        return job_id in self.live or job_id in self.gone


def answer_here(stored: Iterable[StoredJob]) -> HostAnswer:
    """What this host tells of ``stored`` without Ray; nothing when this
    process is a Ray driver already (:func:`connected_to_ray`): Ray is cheap
    and exact there, and this process's latest change may not be written yet."""
    if connected_to_ray():
        return HostAnswer({}, frozenset())
    live, gone = {}, set()
    for job in stored:
        if job.holder_gone():
            gone.add(job.job_id)
        elif (view := job.trusted_view()) is not None:
            live[job.job_id] = view
    return HostAnswer(live, frozenset(gone))


def public_record(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A job record as ``status`` shows it: without the live view it carries
    (shown as the job's live state when it is trusted)."""
    return None if record is None else {k: v for k, v in record.items() if k != JOB_LIVE_VIEW}


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs: it exists and is not a zombie
    (a SIGKILLed actor its raylet has not reaped yet)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux), or it just went: os.kill said it ran
    return state not in (b"Z", b"X")


def connected_to_ray() -> bool:
    """Whether this process is a Ray driver already (never imports Ray)."""
    ray = sys.modules.get("ray")
    return ray is not None and getattr(ray, "is_initialized", lambda: False)()


def stored_job(store: CheckpointStore, job_id: str) -> StoredJob:
    """The record and current lease of ``job_id`` (None for what the store lacks)."""
    record = store.read_job(job_id)
    try:
        lease = store.read_lease(job_id)
    except (ValueError, TypeError):  # a lease file that does not parse
        return StoredJob(job_id, record, None, lease_unreadable=True)
    return StoredJob(job_id, record, lease)


def stored_jobs(store: CheckpointStore) -> list[StoredJob]:
    """Every job with a folder in the store (a record that does not read is
    listed with its reason as its status: one bad record hides no other)."""
    found = []
    for job_id in store.list_jobs():
        try:
            found.append(stored_job(store, job_id))
        except Exception as exc:  # noqa: BLE001 - listed, with why it cannot be read
            found.append(StoredJob(job_id, {"job_id": job_id,
                                            "status": f"unreadable ({type(exc).__name__})"},
                                   None))
    return found


def rows(stored: Iterable[StoredJob],
         live: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per job of the store or of ``live`` (``info()`` of each live
    JobMaster, by job ID, or its trusted view), oldest first."""
    records = {job.job_id: job.record or {"job_id": job.job_id} for job in stored}
    found = [job_row(job_id, live.get(job_id), records.get(job_id))
             for job_id in set(records) | set(live)]
    return sorted(found, key=lambda r: r["created"] or 0)


def job_row(job_id: str, info: Mapping[str, Any] | None,
            record: Mapping[str, Any] | None) -> dict[str, Any]:
    """One job's row of ``twister-nb jobs``, from its live JobMaster's ``info()``
    or its trusted view (None if none runs) and its record (None if the store
    has none)."""
    info, record = info or {}, record or {}
    return {
        "job_id": job_id,
        "name": info.get("name") or record.get("name", ""),
        "status": info.get("status") or _stopped(record.get("status", "")),
        "live": bool(info),
        "workers": info.get("workers", 0),
        "cached": len(info.get("cached") or {}),
        "persisted": len(info.get("persisted") or record.get("persisted") or {}),
        "created": info.get("created") or record.get("created"),
        "driver": info.get("driver"),
        "last_action": info.get("last_action"),
        "running": info.get("running"),
    }


def _stopped(status: str) -> str:
    """A recorded status for a job that has no JobMaster (as ``twister-nb jobs`` says)."""
    return "stopped" if status in ("running", "idle") else status
