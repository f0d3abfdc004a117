"""The errors every layer raises, in one bottom module.

Any layer may import this module (it imports nothing of ours), so an error raised
by the runtime and caught by the API, or raised by the API and shown by the
notebook, is named in one place. Storage keeps its own (``storage/errors.py``):
that layer stands alone, as ``pyarrow.fs`` does.

They cross process boundaries (worker -> JobMaster -> kernel), so each one
pickles by its fields, and its message already says what to do.
"""

from __future__ import annotations

import linecache
import os
import re
import traceback
from typing import Any


def _debug() -> bool:
    """``TWISTER_NB_DEBUG=1``: show whole tracebacks (as ``twister-nb --debug``)."""
    return os.environ.get("TWISTER_NB_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


class TwisterError(Exception):
    """Base of twister_nb's own errors.

    Their messages already say what happened and what to do, so IPython shows
    them without twister_nb's frames: ``_render_traceback_`` (IPython's hook
    for an exception that draws itself) gives ``Name: message``;
    ``TWISTER_NB_DEBUG=1`` gives the whole traceback instead.
    """

    def _render_traceback_(self) -> list[str]:
        if _debug():
            return "".join(traceback.format_exception(self)).rstrip().splitlines()
        return f"{type(self).__name__}: {self}".splitlines()


class UserFunctionError(TwisterError):
    """A user function raised: which TSet, which partition, which worker, and
    the user's own traceback (twister_nb's frames left out)."""

    def __init__(self, *, tset: str, tset_id: str, operation: str, partition: int, worker: int,
                 user_traceback: str, message: str, where: str = "user function") -> None:
        self.tset = tset
        self.tset_id = tset_id
        self.operation = operation
        self.partition = partition
        self.worker = worker
        self.user_traceback = user_traceback
        self.message = message
        self.where = where
        super().__init__(str(self))

    def _fields(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("tset", "tset_id", "operation", "partition",
                                             "worker", "user_traceback", "message", "where")}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self._fields()))

    def __str__(self) -> str:
        return (
            f"{self.where} of TSet {self.tset!r} ({self.operation}) failed on partition "
            f"{self.partition}, worker {self.worker}: {self.message}\n\n{self.user_traceback}"
            "\nFix the function and run the action again (or `twister-nb restart JOB_ID`)."
        )

    def _render_traceback_(self) -> list[str]:
        """Where it failed, then the user's own traceback (which ends with the
        message), once: not the message again, not twister_nb's frames."""
        if _debug():
            return super()._render_traceback_()
        head = (f"{type(self).__name__}: {self.where} of TSet {self.tset!r} ({self.operation}) "
                f"failed on partition {self.partition}, worker {self.worker}")
        body = _with_source(self.user_traceback.rstrip().splitlines()) or [self.message]
        return [head, *body, "Fix the function and run the action again."]


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in ')


def _with_source(lines: list[str]) -> list[str]:
    """A worker's traceback with the source line under each frame the worker could
    not show: a function defined in a notebook cell has its code in the kernel's
    line cache, not in the worker's."""
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        frame = _FRAME.match(line)
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if frame and (not following.startswith("    ") or _FRAME.match(following)):
            code = linecache.getline(frame["file"], int(frame["line"])).strip()
            if code:
                out.append(f"    {code}")
    return out


def _rebuild(cls: type, fields: dict[str, Any]) -> Exception:
    return cls(**fields)


class JobFailedError(TwisterError):
    """The job could not run the action for a reason outside the user's code
    (a worker or node died, the cluster went away)."""


class ActionCancelledError(JobFailedError):
    """The running action was cancelled (the dashboard's Cancel, ``env.cancel()``,
    ``%twister2 cancel``, the stop button): the job is ``cancelled``, not failed."""


class JobNotFoundError(TwisterError):
    """No live job and no stored record has this ID."""


class JobOwnedError(TwisterError):
    """Another live process is attached to this job."""


class ClusterError(TwisterError):
    """The Ray cluster could not be reached or started."""


class DataLostError(TwisterError):
    """A materialized TSet's data cannot be read: made again from the graph that
    made it (see :class:`CheckpointLostError`, :class:`PartitionLostError`).

    Executors raise it from ``execute``; the environment then recomputes the
    TSet (``tset_id``) from its lineage and runs the action again.
    """

    tset_id: str
    label: str


class CheckpointLostError(DataLostError):
    """A persisted TSet's committed checkpoint could not be read back as written
    (a part was damaged or deleted after the restart checked its size).

    Executors raise it from ``execute``; the environment then recomputes the
    TSet from the graph that persisted it and runs the action again, so a
    damaged checkpoint costs a recompute, never a wrong result. Without that
    graph (a handle from :meth:`TSetEnvironment.tsets`) it reaches the user.
    """

    def __init__(self, tset_id: str, label: str, reason: str) -> None:
        self.tset_id = tset_id
        self.label = label
        self.reason = reason
        super().__init__(
            f"the checkpoint of persisted TSet {label!r} ({tset_id}) is damaged: {reason}. "
            "Persist it again (run the cell that built it) to recompute it.")

    def __reduce__(self) -> Any:
        return (type(self), (self.tset_id, self.label, self.reason))


class PartitionLostError(DataLostError):
    """A cached TSet's partition is no longer in memory: the worker that held
    it was lost (Ray restarts a lost worker empty).

    Like :class:`CheckpointLostError`: executors raise it from ``execute``, and
    the environment recomputes the TSet from the graph that cached it and runs
    the action again. Without that graph (a handle from
    :meth:`TSetEnvironment.tsets`, or a TSet released meanwhile) it reaches the user.
    """

    def __init__(self, tset_id: str, label: str, partition: int, reason: str) -> None:
        self.tset_id = tset_id
        self.label = label
        self.partition = partition
        self.reason = reason
        super().__init__(
            f"cached TSet {label!r} ({tset_id}) lost partition {partition}: {reason}. "
            "Cache it again (run the cell that built it) to recompute it.")

    def __reduce__(self) -> Any:
        return (type(self), (self.tset_id, self.label, self.partition, self.reason))


class ConfigError(TwisterError, ValueError):
    """A configuration value is wrong: the message names the key, the value, where
    it may have come from, and what is expected."""


class JobMasterLostError(JobFailedError):
    """The job's JobMaster actor is gone (killed, its node lost, the cluster
    restarted). Its committed checkpoints are in the store: the driver running
    an action rebuilds it from there once and runs the action again; this
    reaches the user when that fails too, or outside an action (attaching to
    the job by ID rebuilds it then)."""

    def __init__(self, job_id: str, cause: str) -> None:
        self.job_id = job_id
        self.cause_text = cause
        super().__init__(
            f"the JobMaster of job {job_id!r} is gone ({cause}); its committed checkpoints "
            f"are in the store: TSetEnvironment(job_id={job_id!r}) (or `%twister2 attach "
            f"{job_id}`, `twister-nb restart {job_id}`) rebuilds it from there")

    def __reduce__(self) -> Any:
        return (type(self), (self.job_id, self.cause_text))
