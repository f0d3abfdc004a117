"""The checkpoint decisions of one job: restore, commit, retire, remember damage.

The JobMaster schedules tasks; which version of a persisted TSet a task reads,
which version a ``persist()`` writes, when the retention runs and which
versions must never be offered again are decided here, in plain Python over a
:class:`~twister_nb.storage.CheckpointStore`, so they are tested without Ray.
A version found damaged when read is marked in the store
(``tsets/<tset_id>/_damaged/<version>``): a restarted job does not offer it
again.

Checkpoint policies (COMPSs style: every N tasks, every T seconds) will sit
next to this module, one module each, and call :meth:`CheckpointManager.commit`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twister_nb.checkpoint import enabled, retention, verify_on_restore
from twister_nb.errors import CheckpointLostError, JobFailedError
from twister_nb.storage import Checkpoint, CheckpointCorruptError, CheckpointStore, PartInfo

__all__ = ["CheckpointManager"]


def _quiet(line: str) -> None:
    """The default reporter: says nothing."""


class CheckpointManager:
    """The checkpoints one job uses, writes and retires.

    Parameters
    ----------
    store : CheckpointStore
        Where the job's checkpoints are.
    job_id : str
        Whose checkpoints these are.
    config : mapping
        The job's configuration: ``twister2.checkpointing.enable``,
        ``.retention`` and ``.verify_on_restore`` are read once, here.
    report : callable, optional
        Called with a line for the watcher when a version is skipped as damaged
        or a commit lost a race (the JobMaster prints it as ``[job-master] ...``).

    Notes
    -----
    One manager per job: the job's store lease makes it the only writer of
    the job's versions and damaged marks, so it reads a TSet's marks once and
    then keeps them up to date itself. Thread-safe enough for the JobMaster,
    which serializes actions; lookups only replace whole dict entries.
    """

    def __init__(self, store: CheckpointStore, job_id: str, config: Mapping[str, Any],
                 report: Callable[[str], None] = _quiet) -> None:
        self.store = store
        self.job_id = job_id
        self.enabled = enabled(config)
        self.keep = retention(config)
        self.verify = verify_on_restore(config)
        self._report = report
        #: The checkpoint this job uses for each persisted TSet (restored or committed).
        self._using: dict[str, Checkpoint] = {}
        #: Per TSet: {version folder: committed} before the version being written.
        self._folders: dict[str, dict[int, bool]] = {}
        #: TSets in which a damaged committed version was seen (the retention runs).
        self._seen_damage: set[str] = set()
        #: Per TSet: the versions found damaged (store marks, read once, plus new ones).
        self._damaged: dict[str, set[int]] = {}

    # ------------------------------------------------------------------ reading

    def using(self, tset_id: str) -> Checkpoint | None:
        """The checkpoint this job uses for ``tset_id`` now, without asking the store."""
        return self._using.get(tset_id)

    def in_use(self) -> list[str]:
        """The persisted TSets whose checkpoints this job uses, sorted."""
        return sorted(self._using)

    def restore(self, tset_id: str) -> Checkpoint | None:
        """The checkpoint a ``persist()`` of ``tset_id`` can return at once.

        The one this job already uses, else (when checkpointing is enabled) the
        newest valid committed version in the store, which it then uses.
        """
        cp = self._using.get(tset_id)
        if cp is None and self.enabled:
            cp = self.find_valid(tset_id)
            if cp is not None:
                self._using[tset_id] = cp
        return cp

    def for_read(self, tset_id: str) -> Checkpoint:
        """The checkpoint a task reads for a persisted input.

        One this job forgot (a ``release`` of an older handle can run after a
        new handle's restore: the JobMaster runs calls concurrently) is looked up
        in the store again, whether checkpointing is enabled or not: the TSet was
        persisted by this job.

        Raises
        ------
        CheckpointLostError
            If no valid committed version is in the store: the driver recomputes it.
        """
        cp = self._using.get(tset_id)
        if cp is None:
            cp = self.find_valid(tset_id)
            if cp is not None:
                self._using[tset_id] = cp
        if cp is None:
            raise CheckpointLostError(tset_id, tset_id,
                                      "no valid committed checkpoint of it is in the store")
        return cp

    def find_valid(self, tset_id: str) -> Checkpoint | None:
        """The newest committed version whose parts all check out (their sizes;
        every byte too with ``verify_on_restore``), skipping versions marked
        damaged. A version that does not check out is reported and never read."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            versions = self.store.versions(self.job_id, tset_id)
            damaged = self.damaged(tset_id) if versions else set()
            found = None
            for version in reversed(versions):
                if version in damaged:
                    continue  # found damaged when it was read; reported then
                cp = self.store.checkpoint(self.job_id, tset_id, version)
                if cp is None:
                    continue
                try:
                    if self.verify:
                        self.store.verify(cp)
                except CheckpointCorruptError as exc:
                    warnings.warn(f"checkpoint {tset_id} version {version} is invalid: {exc}")
                    continue
                found = cp
                break
        if caught:
            self._seen_damage.add(tset_id)
        for message in dict.fromkeys(str(w.message) for w in caught):
            self._report(f"{message}; it will be recomputed" if found is None else message)
        return found

    def damaged(self, tset_id: str) -> set[int]:
        """The versions of ``tset_id`` found damaged, by this job or before a restart."""
        known = self._damaged.get(tset_id)
        if known is None:
            known = self._damaged[tset_id] = self.store.damaged_versions(self.job_id, tset_id)
        return set(known)

    # ------------------------------------------------------------------ changing

    def mark_damaged(self, tset_id: str, reason: str = "") -> Checkpoint | None:
        """The checkpoint of ``tset_id`` this job used was found damaged when read.

        Its version is never offered again: marked in the store (a mark that
        cannot be written is kept by this manager, and reported). The next
        commit of the TSet runs the retention. Returns the checkpoint dropped,
        if this job was using one.
        """
        cp = self._using.pop(tset_id, None)
        self._seen_damage.add(tset_id)
        if cp is not None:
            self._damaged[tset_id] = self.damaged(tset_id) | {cp.version}
            try:
                self.store.mark_damaged(self.job_id, tset_id, cp.version, reason)
            except Exception as exc:  # noqa: BLE001 - remembered here; the store is told next time
                self._report(f"could not mark version {cp.version} of {tset_id} damaged in "
                             f"the store: {exc}")
        return cp

    def mark_version_damaged(self, tset_id: str, version: int, reason: str = "") -> None:
        """Version ``version`` of ``tset_id`` (one this job did not restore as a
        ``persist()``: a task checkpoint) was found damaged when read: never offer
        it again."""
        self._seen_damage.add(tset_id)
        self._damaged[tset_id] = self.damaged(tset_id) | {version}
        try:
            self.store.mark_damaged(self.job_id, tset_id, version, reason)
        except Exception as exc:  # noqa: BLE001 - remembered here; the store is told next time
            self._report(f"could not mark version {version} of {tset_id} damaged in "
                         f"the store: {exc}")

    def forget(self, tset_id: str) -> None:
        """Stop using ``tset_id``'s checkpoint (its handles were released);
        the store keeps it."""
        self._using.pop(tset_id, None)

    def next_version(self, tset_id: str) -> int:
        """The version a new ``persist()`` of ``tset_id`` writes. The same listing
        tells :meth:`commit` whether the retention can delete anything."""
        folders = self.store.version_folders(self.job_id, tset_id)
        self._folders[tset_id] = folders
        return max(folders, default=-1) + 1

    def discard(self, tset_id: str, version: int) -> None:
        """Delete what a failed ``persist()`` wrote of ``version`` (never a committed
        version), so a full disk is not left fuller; a failure to delete is reported."""
        self._folders.pop(tset_id, None)
        try:
            self.store.discard_uncommitted(self.job_id, tset_id, version)
        except Exception as exc:  # noqa: BLE001 - gc deletes it later; the watcher is told
            self._report(f"could not delete the parts of failed version {version} of "
                         f"{tset_id}: {exc}")

    def commit(self, tset_id: str, version: int, parts: Sequence[PartInfo],
               meta: Mapping[str, Any]) -> Checkpoint:
        """Commit ``version`` of ``tset_id`` from its written ``parts``, use it,
        and apply the retention.

        A version another writer committed first is used instead (and reported).

        Raises
        ------
        JobFailedError
            If the committed version does not validate right after its commit.
        """
        parts = sorted(parts, key=lambda part: part.part_index)
        if not self.store.commit(self.job_id, tset_id, version, parts, dict(meta)):
            self._report(f"version {version} of {meta.get('label', tset_id)!r} was committed "
                         "by another writer; using it")
        cp = self.store.checkpoint(self.job_id, tset_id, version)
        if cp is None:
            raise JobFailedError(f"checkpoint {tset_id!r} version {version} did not validate "
                                 "right after its commit")
        self._using[tset_id] = cp
        self.collect(tset_id)
        return cp

    def collect(self, tset_id: str) -> list[int]:
        """Apply the retention, unless it cannot delete anything (one listing and
        manifest reads saved per commit). It can when there are more version folders
        than it keeps, a folder without a manifest (a failed or abandoned write,
        deleted once old), or a committed version found damaged. A damaged
        version nobody looked at is left until newer versions push it out; a
        restore would skip it. Returns the versions deleted."""
        before = self._folders.pop(tset_id, None)
        if (before is not None and len(before) + 1 <= self.keep and all(before.values())
                and tset_id not in self._seen_damage):
            return []
        deleted = self.store.gc(self.job_id, tset_id, keep=self.keep)
        self._seen_damage.discard(tset_id)
        if tset_id in self._damaged:
            self._damaged[tset_id] -= set(deleted)
        return deleted
