"""Job leases: at most one live owner (a JobMaster) per job, using only put-if-absent.

Object stores offer no compare-and-swap that works everywhere, but they do offer
put-if-absent (``If-None-Match: *`` on S3, ``link()`` locally). So a lease is a series of
immutable-name files, one per *epoch*::

    jobs/<job_id>/leases/lease-0000000001.json
    jobs/<job_id>/leases/lease-0000000002.json   <- the current lease (highest epoch)

Epoch N+1 may be claimed only when epoch N is expired or released, and claiming it is a
put-if-absent, so of two owners racing for it exactly one wins. The holder renews by
rewriting its own epoch's file (nobody else ever writes it) and checks afterwards that
no epoch N+1 appeared; a renewal that comes after the expiry fails, so renew well before
it (every ``ttl_s / 3``, say). The epoch is a fencing token: it only grows.

Expiry compares wall clocks of different processes: keep TTLs much longer than the
clock skew between machines.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass, replace

import pyarrow.fs as pafs

from twister_nb.storage.errors import LeaseHeldError, LeaseLostError, guard_unreachable
from twister_nb.storage.manifest import check_id

__all__ = ["Lease", "LeaseMixin"]

_PREFIX, _SUFFIX = "lease-", ".json"


@dataclass(frozen=True)
class Lease:
    """A claim on a job, as returned by ``acquire_lease`` and ``renew_lease``.

    Attributes
    ----------
    job_id : str
        The job.
    owner : str
        Who holds it (e.g. ``"jobmaster@host:pid"``).
    epoch : int
        Grows by one each time the lease changes hands (a fencing token).
    token : str
        Random per acquisition; tells two acquisitions by the same owner apart.
    acquired_at, expires_at : float
        Seconds since the epoch.
    ttl_s : float
        The time to live it was acquired or last renewed with.
    released : bool
        True once released.
    host : str
        Host name of the acquirer, for diagnostics.
    pid : int
        Process ID of the acquirer, for diagnostics.
    """

    job_id: str
    owner: str
    epoch: int
    token: str
    acquired_at: float
    expires_at: float
    ttl_s: float
    released: bool = False
    host: str = ""
    pid: int = 0

    def live(self, now: float | None = None) -> bool:
        """True if not released and not yet expired at ``now`` (default: the time now)."""
        return not self.released and self.expires_at > (time.time() if now is None else now)

    def to_json(self) -> bytes:
        """The lease file's content."""
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Lease:
        """Parse a lease file."""
        return cls(**json.loads(data))


class LeaseMixin:
    """Lease methods of ``CheckpointStore`` (kept here to keep ``store.py`` readable)."""

    def _lease_path(self, job_id: str, epoch: int) -> str:
        return f"{self._job_dir(job_id)}/leases/{_PREFIX}{epoch:010d}{_SUFFIX}"

    def _exists(self, path: str) -> bool:
        return self._fs.get_file_info(path).type != pafs.FileType.NotFound

    def _current_lease(self, job_id: str) -> Lease | None:
        for _ in range(5):
            epochs = []
            for info in self._list(f"{self._job_dir(job_id)}/leases"):
                name = info.path.rsplit("/", 1)[-1]
                digits = name[len(_PREFIX) : -len(_SUFFIX)]
                if name.startswith(_PREFIX) and name.endswith(_SUFFIX) and digits.isdigit():
                    epochs.append(int(digits))
            if not epochs:
                return None
            data = self._read_bytes(self._lease_path(job_id, max(epochs)))
            if data is not None:
                return Lease.from_json(data)
        return None  # the leases vanish as we look: the job is being cleared

    @guard_unreachable
    def read_lease(self, job_id: str) -> Lease | None:
        """The job's current lease (live, expired or released), or None if never leased."""
        check_id(job_id, "job_id")
        return self._current_lease(job_id)

    @guard_unreachable
    def acquire_lease(self, job_id: str, owner: str, ttl_s: float) -> Lease:
        """Claim the job's lease for ``ttl_s`` seconds.

        Parameters
        ----------
        job_id : str
            The job.
        owner : str
            Who claims it; shown to anyone who is refused. The same owner may claim
            again while its lease is live: that takes over with a new epoch (for a
            restarted JobMaster), and the older claim can no longer renew.
        ttl_s : float
            Seconds until the lease expires unless renewed.

        Returns
        -------
        Lease
            With an epoch one higher than the previous lease's.

        Raises
        ------
        LeaseHeldError
            If another owner holds a live lease; it names the holder.
        """
        check_id(job_id, "job_id")
        if not isinstance(owner, str) or not owner:
            raise ValueError(f"acquire_lease: owner must be a non-empty str, got {owner!r}")
        if not isinstance(ttl_s, (int, float)) or not ttl_s > 0:
            raise ValueError(f"acquire_lease: ttl_s must be a number > 0, got {ttl_s!r}")
        self._prepare_write()
        current = None
        for _ in range(8):
            current = self._current_lease(job_id)
            now = time.time()
            if current is not None and current.live(now) and current.owner != owner:
                break
            epoch = (current.epoch if current is not None else 0) + 1
            lease = Lease(
                job_id=job_id,
                owner=owner,
                epoch=epoch,
                token=secrets.token_hex(8),
                acquired_at=now,
                expires_at=now + float(ttl_s),
                ttl_s=float(ttl_s),
                host=socket.gethostname(),
                pid=os.getpid(),
            )
            if self._put_if_absent(self._lease_path(job_id, epoch), lease.to_json()):
                return lease
            # somebody claimed this epoch first: look again (it is probably live now)
        assert current is not None, "lost every claim yet no lease was seen"
        raise LeaseHeldError(job_id, current.owner, current.epoch, current.expires_at)

    @guard_unreachable
    def renew_lease(self, lease: Lease, ttl_s: float | None = None) -> Lease:
        """Extend a live lease by ``ttl_s`` (default: its own TTL) from now.

        Returns
        -------
        Lease
            The renewed lease (same epoch and token, later ``expires_at``).

        Raises
        ------
        LeaseLostError
            If the lease was released, has expired, or was taken over.
        """
        ttl = float(lease.ttl_s if ttl_s is None else ttl_s)
        if not ttl > 0:
            raise ValueError(f"renew_lease: ttl_s must be > 0, got {ttl_s!r}")
        job, epoch = lease.job_id, lease.epoch
        now = time.time()
        what = f"lease on job {job!r} (epoch {epoch}, owner {lease.owner!r})"
        if lease.released:
            raise LeaseLostError(f"the {what} was released; acquire it again")
        if now >= lease.expires_at:
            raise LeaseLostError(
                f"the {what} expired {now - lease.expires_at:.3f} s ago; renew sooner "
                f"(every ttl_s / 3) or acquire it again"
            )
        path = self._lease_path(job, epoch)
        data = self._read_bytes(path)
        stored = None if data is None else Lease.from_json(data)
        if stored is None or stored.token != lease.token or stored.released:
            raise LeaseLostError(f"the {what} is no longer in the store")
        if self._exists(self._lease_path(job, epoch + 1)):
            raise LeaseLostError(f"the {what} was taken over by a newer epoch")
        renewed = replace(lease, expires_at=now + ttl, ttl_s=ttl)
        self._write_file(path, lambda sink: sink.write(renewed.to_json()))
        if self._exists(self._lease_path(job, epoch + 1)):
            raise LeaseLostError(f"the {what} was taken over by a newer epoch")
        return renewed

    @guard_unreachable
    def release_lease(self, lease: Lease) -> bool:
        """Give the lease up so that the next owner need not wait for the expiry.

        Returns
        -------
        bool
            False if it was already released, expired and taken over, or is unknown.
        """
        job, epoch = lease.job_id, lease.epoch
        path = self._lease_path(job, epoch)
        data = self._read_bytes(path)
        stored = None if data is None else Lease.from_json(data)
        if stored is None or stored.token != lease.token or stored.released:
            return False
        if self._exists(self._lease_path(job, epoch + 1)):
            return False
        now = time.time()
        done = replace(stored, released=True, expires_at=min(stored.expires_at, now))
        self._write_file(path, lambda sink: sink.write(done.to_json()))
        return True
