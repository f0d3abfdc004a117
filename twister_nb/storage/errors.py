"""Exceptions and warnings of the storage layer.

They live in one small module so that callers (the checkpoint layer, the runtime, the
CLI) can catch them without importing a backend, and so that a test can name them.

Missing things are *values* in this layer (``None``), never exceptions; these classes
are for things that are present but wrong (:class:`CheckpointCorruptError`), for a
lease somebody else holds (:class:`LeaseHeldError`) and for a store that cannot be
reached at all (:class:`StoreUnavailableError`).
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import TypeVar

_F = TypeVar("_F", bound=Callable)

__all__ = [
    "CheckpointCorruptError",
    "CheckpointCorruptWarning",
    "LeaseError",
    "LeaseHeldError",
    "LeaseLostError",
    "StorageError",
    "StoreAccessError",
    "StoreNotice",
    "StoreUnavailableError",
    "StoreWriteError",
    "guard_unreachable",
]


class StorageError(Exception):
    """Base class of every error raised on purpose by :mod:`twister_nb.storage`."""


class CheckpointCorruptError(StorageError):
    """A part or manifest exists but does not match what was committed.

    Raised for a wrong size or checksum, an unreadable Arrow file, and a pickle that is
    unsigned, signed with another key or tampered with. The message names the file and
    what was wrong.

    Parameters
    ----------
    path : str
        The file that failed the check.
    reason : str
        What was wrong, in words.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"checkpoint file {path!r} is corrupt: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


class CheckpointCorruptWarning(UserWarning):
    """A committed checkpoint was skipped because its parts do not match its manifest."""


class StoreNotice(UserWarning):
    """Something the store did on our behalf that the user should hear of (a bucket
    created because ``create_bucket`` said so)."""


class StoreUnavailableError(StorageError, OSError):
    """The object store could not be reached (connection refused, DNS, timeout)."""


class StoreAccessError(StorageError, PermissionError):
    """The object store answered, but refused us: wrong credentials, no permission on
    the bucket, or no such bucket. The message says which, and the setting to fix."""


class StoreWriteError(StorageError, OSError):
    """A part could not be written: the store is full, read-only or refuses us.

    The operating system's own message names neither the file nor what to do; this
    one names both: the part, the TSet and job it belongs to, the path, and the store.
    What the failed write left behind is removed before it is raised.

    Parameters
    ----------
    path : str
        The part that could not be written.
    what : str
        Whose part it is, e.g. ``"part 3 of TSet 'map-1a2b' (job 'j')"``.
    store : str
        The store's URI.
    cause : OSError
        The error the operating system gave.
    """

    def __init__(self, path: str, what: str, store: str, cause: OSError) -> None:
        self.path = path
        self.what = what
        self.store = store
        self.cause_errno = cause.errno
        self.cause_text = cause.strerror or str(cause)
        full = cause.errno in (errno.ENOSPC, errno.EDQUOT)
        hint = ("the store is full: free space there, or set twister2.checkpointing.store "
                "to a larger one" if full else
                "check that the store can be written to (permissions, read-only mount)")
        super().__init__(cause.errno, f"cannot write {what} to {path!r}: {self.cause_text}; "
                                      f"{hint} (store {store})")

    def __str__(self) -> str:
        return self.args[1]

    def __reduce__(self):
        return (_rebuild_write_error, (self.path, self.what, self.store, self.cause_errno,
                                       self.cause_text))


def _rebuild_write_error(path: str, what: str, store: str, code: int | None,
                         text: str) -> StoreWriteError:
    return StoreWriteError(path, what, store, OSError(code, text))


class LeaseError(StorageError):
    """Base class of the lease errors."""


class LeaseHeldError(LeaseError):
    """Another owner holds a live lease on the job.

    Parameters
    ----------
    job_id : str
        The job whose lease was asked for.
    holder : str
        The owner of the live lease.
    epoch : int
        The epoch of the live lease.
    expires_at : float
        When it expires unless renewed (seconds since the epoch).
    """

    def __init__(self, job_id: str, holder: str, epoch: int, expires_at: float) -> None:
        self.job_id = job_id
        self.holder = holder
        self.epoch = epoch
        self.expires_at = expires_at
        super().__init__(
            f"the lease on job {job_id!r} is held by {holder!r} (epoch {epoch}) until "
            f"{expires_at:.3f} (unix time); wait for it to expire or ask the holder to "
            f"release it"
        )

    def __reduce__(self):
        return (type(self), (self.job_id, self.holder, self.epoch, self.expires_at))


class LeaseLostError(LeaseError):
    """A lease could not be renewed or released because it expired or was taken over."""


def guard_unreachable(method: _F) -> _F:
    """Decorate a store method so that "cannot connect" and "refused" errors become
    one clear error each.

    The store's ``_unreachable_message(error)`` decides first: it returns a message
    naming the endpoint when the error means the store cannot be reached. Then
    ``_access_message(error)``: a message when the store refused us (credentials,
    permissions, a missing bucket). Otherwise the error passes unchanged.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (StoreUnavailableError, StoreAccessError):
            raise
        except Exception as e:
            explained = self._explained(e)
            if explained is None:
                raise
            raise explained from e

    return wrapper  # type: ignore[return-value]
