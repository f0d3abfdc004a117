"""The job's record in the store and the lease that makes the JobMaster its owner.

``jobs/<id>/job.json`` says what a job is (name, program, config), how it is
(``running``, ``failed``, ``finished``) and what it persisted; ``twister-nb
jobs``/``status``/``restart`` read it. Nothing restores from it (a checkpoint
is its manifest), so it is written by a background thread, newest record only:
a commit or a status change never waits for the store, and a burst of changes
is one write. The same object holds the job's store lease (one owner per job
across clusters) and renews it from a second thread.

The record also carries the JobMaster's *live view* (``live_view``: its
``info()``, when it was published): the JobMaster publishes it when its state
changes and the renewer refreshes it with every lease renewal, so a listing on
the JobMaster's host can trust it without asking Ray (see
:mod:`twister_nb.job_rows`). It is dropped when the job closes.

Plain Python over a :class:`~twister_nb.storage.CheckpointStore`; no Ray.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from twister_nb.storage import JOB_LIVE_VIEW, CheckpointStore

#: Seconds a job's store lease and a driver's attachment last without renewal.
LEASE_TTL = 15.0


def _quiet(line: str) -> None:
    """The default reporter: says nothing."""


class JobRecord:
    """The job record, written coalesced by a thread, and the job's lease.

    Parameters
    ----------
    store : CheckpointStore or None
        Where the record goes; with None every method is a no-op (a job
        without a store has no record).
    job_id : str
        Whose record it is.
    report : callable, optional
        Called with a line for the watcher when the lease cannot be renewed or
        the record cannot be written (the job goes on).
    lease_ttl : float
        Seconds the lease lasts without renewal; renewed every third of it.
    """

    #: Seconds the writer thread pauses after each write (a job's close cuts it short).
    WRITE_PAUSE = 0.25

    def __init__(self, store: CheckpointStore | None, job_id: str,
                 report: Callable[[str], None] = _quiet, lease_ttl: float = LEASE_TTL) -> None:
        self.store = store
        self.job_id = job_id
        self._report = report
        self._ttl = lease_ttl
        self._closed = threading.Event()
        self._lease: Any = None
        self._record: dict[str, Any] = {}
        #: ``_gen`` counts changes, ``_done`` is the newest change written (or that
        #: failed to write); both under ``_cv``.
        self._cv = threading.Condition()
        self._gen = 0
        self._done = 0
        self._writer: threading.Thread | None = None
        self._write_lock = threading.Lock()
        #: Builds the live view (the JobMaster's ``info()``); None: none is published.
        self._view: Callable[[], dict[str, Any]] | None = None
        #: A publish asked for the view since it was last built (under ``_cv``).
        self._view_due = False

    # ------------------------------------------------------------------ opening and closing

    def open(self, name: str, created: float, config: Mapping[str, Any],
             program: Mapping[str, Any] | None = None, cluster_address: str = "",
             actor: str = "", view: Callable[[], dict[str, Any]] | None = None) -> None:
        """Claim the job in the store (one owner per job across clusters), write
        its record over the previous one (a restart counts), and start the lease
        renewer and the record writer. ``actor`` is the JobMaster's Ray actor
        name: a pool's JobMaster is not named after its job, so the record is
        how a driver finds it (``executor.live_master``). ``view`` builds the
        live view :meth:`publish` stores (the JobMaster's ``info()``); the
        opening write carries it already.

        Raises
        ------
        LeaseHeldError
            If a JobMaster of another cluster holds the job's live lease.
        """
        if self.store is None:
            return
        owner = f"JobMaster of {self.job_id} on Ray cluster {cluster_address or 'unknown'}"
        self._lease = self.store.acquire_lease(self.job_id, owner, self._ttl)
        self._view = view
        previous = self.store.read_job(self.job_id) or {}
        previous.pop(JOB_LIVE_VIEW, None)  # a dead JobMaster's, if it was killed
        self._record = {
            **previous,
            "job_id": self.job_id,
            "name": name,
            "created": previous.get("created", created),
            "attached": time.time(),
            "program": program or previous.get("program"),
            "config": {k: v for k, v in config.items() if "secret" not in k},
            "status": "running",
            "persisted": previous.get("persisted", {}),
            "restarts": previous.get("restarts", -1) + 1,
            "actor": actor,
        }
        if view is not None:
            self._record[JOB_LIVE_VIEW] = self._published()
        self.store.write_job(self.job_id, self._record)
        threading.Thread(target=self._renew_lease, name="lease", daemon=True).start()
        self._writer = threading.Thread(target=self._write_records, name="job-record",
                                        daemon=True)
        self._writer.start()

    def close(self, status: str) -> None:
        """Record the job's end (its live view dropped), write it, stop both
        threads and free the lease."""
        with self._cv:  # under the lock a publish checks, so none comes after
            self._view = None
            self._record.pop(JOB_LIVE_VIEW, None)
        self.update(status=status, ended=time.time())
        self._closed.set()
        self.flush()
        if self._lease is not None and self.store is not None:
            try:
                self.store.release_lease(self._lease)
            except Exception:  # noqa: BLE001 - it expires by itself
                pass

    # ------------------------------------------------------------------ reading and changing

    def get(self, key: str, default: Any = None) -> Any:
        """One value of the record as last changed (written or not)."""
        with self._cv:
            return self._record.get(key, default)

    def update(self, **changes: Any) -> None:
        """Change the job record; the writer thread stores it soon (coalesced:
        a burst of changes is one write of the newest record)."""
        if self.store is None:
            return
        with self._cv:
            self._record.update(changes)
            self._gen += 1
            self._cv.notify_all()

    def publish(self) -> None:
        """Have the live view stored soon; a no-op without one, or once the job
        closed. The writer thread builds it when it writes the record (so the
        view is as of the write, never older than one written before), and an
        action that publishes waits for nothing (W1's action is ~25 ms; with the
        view built on its path one run measured 34 ms against 29 ms without)."""
        with self._cv:
            if self._view is None:  # none, or the job closed
                return
            self._view_due = True
            self._gen += 1
            self._cv.notify_all()

    def _build_view(self) -> None:
        """Put the live view, as it is now, into the record (under ``_cv``)."""
        self._view_due = False
        if self._view is None:
            return
        try:
            self._record[JOB_LIVE_VIEW] = self._published()
        except Exception as exc:  # noqa: BLE001 - the listing asks Ray instead
            self._report(f"cannot publish the job's live view: {type(exc).__name__}: {exc}")

    def _published(self) -> dict[str, Any]:
        assert self._view is not None
        return {**self._view(), "published": time.time()}

    def add_persisted(self, tset_id: str, entry: Mapping[str, Any]) -> None:
        """Record a committed checkpoint (label, version, bytes, ...) of ``tset_id``."""
        with self._cv:
            persisted = dict(self._record.get("persisted", {}))
            persisted[tset_id] = dict(entry)
            self.update(persisted=persisted)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every change made so far is written (or failed to write,
        which is reported). False on timeout."""
        if self.store is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            target = self._gen
        while True:
            thread = self._writer
            if thread is None or not thread.is_alive():
                self._write_newest()  # no writer thread (any more): write it here
            with self._cv:
                if self._done >= target:
                    return True
                left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                if left <= 0:
                    return False
                self._cv.wait(left)

    # ------------------------------------------------------------------ threads

    def _renew_lease(self) -> None:
        assert self.store is not None
        failing = False
        while not self._closed.wait(self._ttl / 3):
            try:
                self._lease = self.store.renew_lease(self._lease)
                failing = False
                self.publish()  # a fresh view goes with a fresh lease
            except Exception as exc:  # noqa: BLE001 - reported once; retried while the job lives
                if not failing:
                    self._report(f"cannot renew the job's store lease: {exc}")
                failing = True
                try:
                    self._lease = self.store.acquire_lease(self.job_id, self._lease.owner,
                                                           self._ttl)
                except Exception:  # noqa: BLE001 - still unreachable or held: try again later
                    pass

    def _write_records(self) -> None:
        """The record writer thread: whenever the record changed, write its newest
        state; it ends once the job is closed and nothing is left to write."""
        while True:
            with self._cv:
                while self._done >= self._gen:
                    if self._closed.is_set():
                        return
                    self._cv.wait(1.0)
            self._write_newest()
            # Changes within this pause are one write: a job running many short
            # actions writes its record a few times a second, not per action.
            self._closed.wait(self.WRITE_PAUSE)

    def _write_newest(self) -> None:
        """Write the newest record (one writer at a time, so never an older one
        over a newer one). A failure is reported; the next change writes the
        whole record again."""
        assert self.store is not None
        with self._write_lock:
            with self._cv:
                gen = self._gen
                if self._done >= gen:
                    return
                if self._view_due:
                    self._build_view()
                record = dict(self._record)  # its values are replaced, never edited in place
            try:
                self.store.write_job(self.job_id, record)
            except Exception as exc:  # noqa: BLE001 - the job goes on; the watcher is told
                self._report(f"could not update the job record: {exc}")
            with self._cv:
                self._done = gen
                self._cv.notify_all()
