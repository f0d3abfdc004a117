"""Errors a job reports to its user.

They cross process boundaries (worker -> JobMaster -> kernel), so each one
pickles by its fields, and its message already says what to do.
"""

from __future__ import annotations

from typing import Any


class TwisterError(Exception):
    """Base of twister_nb's own errors."""


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


def _rebuild(cls: type, fields: dict[str, Any]) -> Exception:
    return cls(**fields)


class JobFailedError(TwisterError):
    """The job could not run the action for a reason outside the user's code
    (a worker or node died, the cluster went away)."""


class JobNotFoundError(TwisterError):
    """No live job and no stored record has this ID."""


class JobOwnedError(TwisterError):
    """Another live process is attached to this job."""


class ClusterError(TwisterError):
    """The Ray cluster could not be reached or started."""
