"""Task checkpoints: one task's outputs, committed as a unit, found again by fingerprint.

A task checkpoint is a checkpoint like a persisted TSet's, through the same
store protocol (the part first, a signed manifest last, put-if-absent,
checksums), under a reserved ID ``task.<fingerprint>`` in the job's ``tsets/``
folder. It holds one part: the task's partition, or, for a task that feeds an
exchange, the buckets it sends. The worker that ran the task writes and
commits it (:func:`commit_task`), beside the computation; the JobMaster only
says which tasks and learns the result.

The fingerprint (:func:`task_fingerprint`) is what makes a resumed job find
the task again and only it: the stage's TSet ID (itself a fingerprint of the
operation, the user function, its parents' IDs, the parallelism and the name,
so a changed function or input changes it), the exchange it feeds, the
partition and the parallelism. Only the newest version of each is kept, and
none once a ``persist()`` of the TSet commits (:func:`drop_task_checkpoints`):
the persisted checkpoint holds the same partitions, and a restart restores it.

Plain Python, no Ray.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any

from twister_nb.storage import Checkpoint, CheckpointStore

__all__ = ["PREFIX", "CommittedTasks", "SaveOutcome", "TaskSave", "commit_outcome", "commit_task",
           "drop_task_checkpoints", "is_task_id", "task_fingerprint", "task_id"]

#: The reserved ID prefix of task checkpoints (a TSet's ID is a hex fingerprint).
PREFIX = "task."
#: What a task checkpoint holds: the task's partition, or the buckets it sends.
HOLDS_PARTITION = "partition"
HOLDS_BUCKETS = "buckets"


def task_fingerprint(stage_tset_id: str, partition: int, parallelism: int, holds: str,
                     feeds: str = "") -> str:
    """The fingerprint of one task's outputs.

    >>> a = task_fingerprint("map-1", 0, 4, "partition")
    >>> a == task_fingerprint("map-1", 0, 4, "partition"), a == task_fingerprint("map-2", 0, 4, "partition")
    (True, False)
    >>> a == task_fingerprint("map-1", 0, 8, "partition")
    False
    """
    text = "\n".join((stage_tset_id, str(partition), str(parallelism), holds, feeds))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def task_id(fingerprint: str) -> str:
    """The store ID (in ``tsets/``) of a task checkpoint."""
    return PREFIX + fingerprint


def is_task_id(tset_id: str) -> bool:
    """Whether a TSet ID of the store is a task checkpoint's."""
    return tset_id.startswith(PREFIX)


@dataclass(frozen=True)
class TaskSave:
    """What the JobMaster asks a worker to commit for one finished task."""

    fingerprint: str
    #: The version to write: 0 for a first checkpoint, else one past the newest folder.
    version: int
    label: str
    stage: int
    partition: int
    holds: str = HOLDS_PARTITION


@dataclass(frozen=True)
class SaveOutcome:
    """What became of one :class:`TaskSave` a worker was sent: ``info`` (what
    :func:`commit_task` returns) if it committed; neither that nor ``error``
    if the task's outputs were gone already (its action ended); else ``error``,
    one line."""

    save: TaskSave
    info: dict[str, Any] | None = None
    error: str = ""


def commit_task(store: CheckpointStore, job_id: str, save: TaskSave, value: Any,
                records: int) -> dict[str, Any]:
    """Write ``value`` as the part of ``save``'s task checkpoint, then its
    manifest (put-if-absent: a version another writer committed first stands).
    Older versions are deleted once this one is committed. What was saved:
    partition, stage, bytes, seconds.

    The part is a signed pickle, never Arrow: only a resumed task of the same
    program reads it back, and the worker encodes it in its save thread, which
    shares the GIL with the task running beside it (20,000 ints: 0.3 ms of CPU
    pickled and signed, 1.2 ms converted to Arrow; docs/benchmarks.md, POLICY)."""
    started = time.perf_counter()
    ident = task_id(save.fingerprint)
    part = store.write_part(job_id, ident, save.version, 0, value, arrow=False)
    store.commit(job_id, ident, save.version, [part],
                 {"label": save.label, "task": True, "stage": save.stage,
                  "partition": save.partition, "holds": save.holds, "records": records})
    if save.version > 0:
        store.gc(job_id, ident, keep=1)
    return {"partition": save.partition, "stage": save.stage, "bytes": part.size,
            "seconds": time.perf_counter() - started, "fingerprint": save.fingerprint}


def commit_outcome(store: CheckpointStore, job_id: str, save: TaskSave, value: Any,
                   records: int) -> SaveOutcome:
    """:func:`commit_task`, as the :class:`SaveOutcome` a worker reports: a
    failure (a full store, a lost connection) is one line, and the task stays
    unsaved; the job goes on."""
    try:
        return SaveOutcome(save, commit_task(store, job_id, save, value, records))
    except Exception as exc:  # noqa: BLE001 - this task stays unsaved; said so
        return SaveOutcome(save, error=f"{type(exc).__name__}: {exc}")


def committed_tasks(store: CheckpointStore, job_id: str) -> set[str]:
    """The fingerprints that have a task checkpoint folder (committed or not:
    :meth:`CheckpointManager.find_valid` tells)."""
    return {t[len(PREFIX):] for t in store.list_tsets(job_id) if is_task_id(t)}


class CommittedTasks:
    """:func:`committed_tasks` of one job, listed once and then kept by the job's
    JobMaster, which every action asks (``TaskCheckpoints.begin``).

    Why: listing the job's folder at every action was ~4% of the JobMaster's CPU
    in a small action (docs/benchmarks.md, fifth session), and is a LIST request
    on S3. The job adds what it commits (:meth:`add`); :meth:`forget` makes the
    next look list the store again, when a worker was restarted (told to leave,
    it commits the tasks it finished without telling anyone). Either way an
    error only costs time: a fingerprint missing here makes its task run again,
    and one whose folder is gone is found absent by ``find_valid``.
    """

    def __init__(self, store: CheckpointStore, job_id: str) -> None:
        self._store = store
        self._job_id = job_id
        self._known: set[str] | None = None
        self._lock = threading.Lock()

    def fingerprints(self) -> set[str]:
        """The fingerprints with a task checkpoint folder (listed if not known)."""
        with self._lock:
            if self._known is None:
                self._known = committed_tasks(self._store, self._job_id)
            return set(self._known)

    def add(self, fingerprints: Iterable[str]) -> None:
        """Task checkpoints the job committed."""
        with self._lock:
            if self._known is not None:
                self._known.update(fingerprints)

    def forget(self) -> None:
        """Someone may have committed task checkpoints unseen: list again next time."""
        with self._lock:
            self._known = None



def drop_task_checkpoints(store: CheckpointStore, job_id: str, fingerprints: Iterable[str]) -> int:
    """Delete the task checkpoints of ``fingerprints`` that the store has (every
    version); how many were deleted. What a committed ``persist()`` makes
    redundant: its final stage's task checkpoints."""
    present = committed_tasks(store, job_id)
    return sum(store.delete_tset(job_id, task_id(fp)) for fp in set(fingerprints) & present)
