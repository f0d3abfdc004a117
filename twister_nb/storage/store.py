"""``CheckpointStore``: object-store-friendly checkpoints over ``pyarrow.fs``.

This module holds everything that is the same on every backend: the layout, writing a
part, committing a manifest, finding the newest valid checkpoint, reading parts back
with their checks, retention and job records. A backend (``local.py``, ``s3.py``)
supplies only what differs: how a file is written atomically, how put-if-absent is done,
and how a whole file is read (memory-mapped locally). See the package docstring for the
public API and :mod:`twister_nb.storage.manifest` for the layout.

Why this module is long: it is one class, the store protocol every backend
shares (write, commit, restore, read with checks, retention, job records); split
across files it would be one protocol in pieces. What can stand apart already does
(codec, manifest, lease, signing, checksum, the backends).
"""

from __future__ import annotations

import json
import os
import secrets
import time
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from twister_nb.storage.checksum import Hasher, default_algorithm, digest
from twister_nb.storage.codec import decode, decode_table, encode
from twister_nb.storage.crashpoint import CrashAfterWrite, from_environ
from twister_nb.storage.errors import (
    CheckpointCorruptError,
    CheckpointCorruptWarning,
    StorageError,
    StoreAccessError,
    StoreUnavailableError,
    StoreWriteError,
    guard_unreachable,
)
from twister_nb.storage.lease import LeaseMixin
from twister_nb.storage.manifest import (
    MANIFEST_NAME,
    Checkpoint,
    PartInfo,
    check_id,
    check_version,
    manifest_from_json,
    manifest_to_json,
    part_name,
)
from twister_nb.storage.signing import check_key

__all__ = ["JOB_LIVE_VIEW", "CheckpointStore"]

JOB_RECORD = "job.json"
#: The job record's key for its live JobMaster's view of itself: written by
#: ``runtime.job_record``, trusted by ``job_rows`` on the JobMaster's host.
JOB_LIVE_VIEW = "live_view"
#: The folder of a TSet that holds one marker file per version found damaged.
DAMAGED_DIR = "_damaged"


class HashingSink:
    """A write-only file object that checksums and counts what passes through it.

    Parameters
    ----------
    write : callable
        Receives every buffer, e.g. a file's ``write``.
    algorithm : str
        Checksum algorithm, see :mod:`twister_nb.storage.checksum`.
    """

    closed = False

    def __init__(self, write: Callable[[Any], Any], algorithm: str) -> None:
        self._write = write
        self._hasher = Hasher(algorithm)
        self.size = 0

    def write(self, data) -> int:
        """Hash and forward ``data``."""
        view = memoryview(data)
        self._hasher.update(view)
        self._write(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        """Bytes written so far."""
        return self.size

    def flush(self) -> None:
        """Nothing to do: the caller flushes the underlying file."""

    def close(self) -> None:
        """Nothing to do: the caller closes the underlying file."""

    def writable(self) -> bool:
        return True

    @property
    def checksum(self) -> str:
        """``"<algorithm>:<hex>"`` of everything written."""
        return self._hasher.value()


def _restore_store(uri: str, signing_key: bytes, s3_options: dict | None, checksum: str,
                   crash: CrashAfterWrite | None = None):
    store = CheckpointStore.from_uri(
        uri, signing_key=signing_key, s3_options=s3_options, checksum=checksum
    )
    store._crash = crash  # the opener's test setting, in processes Ray started without it
    return store


class CheckpointStore(LeaseMixin):
    """Checkpoints of TSet partitions, job records and job leases under one root URI.

    Do not construct it directly: use :meth:`from_uri`, which picks the backend.

    Raises
    ------
    TypeError
        When constructed directly.
    """

    #: How many small reads (manifests, listings) are worth having in flight at
    #: once: 8 for a store a round trip away; a local folder overrides it.
    parallel_reads: int = 8
    #: Whether a write waits on round trips (S3): a worker then commits the task
    #: checkpoints it saves unasked in a thread beside its tasks. A local folder
    #: overrides it: its commit (~2.5 ms of CPU) costs less in the task's own
    #: thread than in a second one that shares the GIL with the next task
    #: (POLICY overhead 0.96-1.04x against 1.07-1.09x; docs/benchmarks.md).
    remote: bool = True
    #: the pyarrow filesystem, set by backends
    _fs: pafs.FileSystem
    #: the root inside ``_fs`` (an absolute path locally, ``bucket/prefix`` on S3)
    _base: str

    def __init__(self, *args, **kwargs) -> None:
        raise TypeError(
            "CheckpointStore cannot be constructed directly; use "
            "CheckpointStore.from_uri(uri, signing_key=...)"
        )

    def _setup(self, uri: str, signing_key: bytes, checksum: str | None) -> None:
        self._uri = uri
        self._key = check_key(signing_key)
        self._checksum = checksum or default_algorithm()
        Hasher(self._checksum)  # fail early on an unknown or unavailable algorithm
        #: test-only: crash after the n-th write (see storage/crashpoint.py); None normally
        self._crash = from_environ()

    # ------------------------------------------------------------------ construction

    @staticmethod
    def from_uri(
        uri: str | os.PathLike,
        *,
        signing_key: bytes,
        s3_options: dict | None = None,
        checksum: str | None = None,
    ) -> CheckpointStore:
        """Open the store at ``uri``.

        Parameters
        ----------
        uri : str or os.PathLike
            ``file:///abs/path``, ``s3://bucket/prefix``, or a bare local path (made
            absolute here, so the store means the same folder in every process).
        signing_key : bytes
            The HMAC key for pickled parts (see :func:`load_or_create_key`); it is
            never written to the store.
        s3_options : dict, optional
            For ``s3://`` only: ``endpoint_url``, ``access_key``, ``secret_key``,
            ``session_token``, ``region``, ``connect_timeout``, ``request_timeout``,
            ``max_attempts``. Missing ones fall back to ``AWS_ENDPOINT_URL_S3`` /
            ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
            ``AWS_SESSION_TOKEN``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
        checksum : str, optional
            Checksum algorithm for new parts; default ``xxh3_128`` if ``xxhash`` is
            installed, else ``sha256``.

        Returns
        -------
        CheckpointStore
            A ``LocalCheckpointStore`` or an ``S3CheckpointStore``. It pickles by URI,
            options and key, so it can be sent to worker processes.

        Raises
        ------
        ValueError
            For an unsupported scheme or a malformed URI.

        Examples
        --------
        >>> store = CheckpointStore.from_uri("/tmp/tnb-doctest", signing_key=b"k" * 32)
        >>> store.uri
        'file:///tmp/tnb-doctest'
        """
        uri = os.fspath(uri)
        if not isinstance(uri, str) or not uri:
            raise ValueError(f"CheckpointStore.from_uri: uri must be a non-empty str, got {uri!r}")
        if "://" not in uri:
            from twister_nb.storage.local import LocalCheckpointStore

            return LocalCheckpointStore(
                os.path.abspath(os.path.expanduser(uri)), signing_key, checksum
            )
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
                raise ValueError(
                    f"CheckpointStore.from_uri: a file URI needs an absolute path, as in "
                    f"'file:///abs/path', got {uri!r}"
                )
            from twister_nb.storage.local import LocalCheckpointStore

            return LocalCheckpointStore(
                os.path.normpath(unquote(parts.path)), signing_key, checksum
            )
        if scheme == "s3":
            if not parts.netloc:
                raise ValueError(
                    f"CheckpointStore.from_uri: an S3 URI needs a bucket, as in "
                    f"'s3://bucket/prefix', got {uri!r}"
                )
            from twister_nb.storage.s3 import S3CheckpointStore

            return S3CheckpointStore(
                parts.netloc, parts.path.strip("/"), signing_key, s3_options, checksum
            )
        raise ValueError(
            f"CheckpointStore.from_uri: unsupported scheme {parts.scheme!r} in {uri!r}; "
            f"use 'file:///abs/path', a local path, or 's3://bucket/prefix'"
        )

    @property
    def uri(self) -> str:
        """The canonical URI of the root."""
        return self._uri

    def _options(self) -> dict | None:
        return None

    def __reduce__(self):
        return (_restore_store,
                (self._uri, self._key, self._options(), self._checksum, self._crash))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._uri!r})"

    # ------------------------------------------------------------------ backend hooks

    def _write_file(self, path: str, produce: Callable[[Any], None]) -> tuple[int, str]:
        """Write a whole file so that no reader ever sees it half-written.

        Returns (size, checksum).
        """
        raise NotImplementedError

    def _put_if_absent(self, path: str, data: bytes) -> bool:
        """Create ``path`` with ``data`` unless it exists; True if this call created it."""
        raise NotImplementedError

    def _write_part_file(self, path: str, produce: Callable[[Any], None]) -> tuple[int, str]:
        """Write a part: as :meth:`_write_file`, but a backend may leave making its
        name durable to the commit, whose manifest goes into the same folder (see
        the local backend). Returns (size, checksum)."""
        return self._write_file(path, produce)

    def _read_buffer(self, path: str) -> pa.Buffer | None:
        """The whole file, or None if it does not exist."""
        raise NotImplementedError

    def _wrote(self, what: str, path: str) -> None:
        """Called by every write primitive once its write is done: the test-only
        crash point (:mod:`twister_nb.storage.crashpoint`); nothing when off."""
        if self._crash is not None:
            self._crash.after(what, path)

    def _prepare_write(self) -> None:
        """Called before writes (S3 creates its bucket here, once)."""

    def _unreachable_message(self, error: BaseException) -> str | None:
        """A clear message if ``error`` means the store cannot be reached, else None."""
        return None

    def _access_message(self, error: BaseException) -> str | None:
        """A clear message if ``error`` means the store refused us, else None."""
        return None

    def _explained(self, error: BaseException) -> StorageError | None:
        """``error`` in words, if it is one the store can name: unreachable
        (:class:`StoreUnavailableError`) or refused (:class:`StoreAccessError`;
        on S3 that asks the store once which refusal it is). Else None."""
        message = self._unreachable_message(error)
        if message is not None:
            return StoreUnavailableError(message)
        message = self._access_message(error)
        return None if message is None else StoreAccessError(message)

    # ------------------------------------------------------------------ fs helpers

    def _path(self, *parts: str) -> str:
        return "/".join((self._base, *parts)) if self._base else "/".join(parts)

    def _job_dir(self, job_id: str) -> str:
        return self._path("jobs", check_id(job_id, "job_id"))

    def _tset_dir(self, job_id: str, tset_id: str) -> str:
        return f"{self._job_dir(job_id)}/tsets/{check_id(tset_id, 'tset_id')}"

    def _version_dir(self, job_id: str, tset_id: str, version: int) -> str:
        return f"{self._tset_dir(job_id, tset_id)}/{check_version(version)}"

    def _list(self, path: str, recursive: bool = False) -> list[pafs.FileInfo]:
        try:
            sel = pafs.FileSelector(path, allow_not_found=True, recursive=recursive)
            return self._fs.get_file_info(sel)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _read_bytes(self, path: str) -> bytes | None:
        buf = self._read_buffer(path)
        return None if buf is None else buf.to_pybytes()

    def _delete_dir(self, path: str) -> bool:
        if self._fs.get_file_info(path).type == pafs.FileType.NotFound:
            return False
        try:
            self._fs.delete_dir(path)
        except FileNotFoundError:
            return False
        self._wrote("delete", path)
        return True

    def _delete_file(self, path: str) -> None:
        try:
            self._fs.delete_file(path)
        except FileNotFoundError:
            return
        self._wrote("delete", path)

    def _scan_tset(self, job_id: str, tset_id: str) -> dict[int, dict[str, pafs.FileInfo]]:
        """One recursive listing: version -> {file name: FileInfo}; "" holds the dir."""
        root = self._tset_dir(job_id, tset_id)
        out: dict[int, dict[str, pafs.FileInfo]] = {}
        for info in self._list(root, recursive=True):
            rel = info.path[len(root) + 1 :].split("/")
            if not rel[0].isdigit() or str(int(rel[0])) != rel[0]:
                continue
            files = out.setdefault(int(rel[0]), {})
            if len(rel) == 1:
                files[""] = info
            elif len(rel) == 2 and info.type == pafs.FileType.File:
                files[rel[1]] = info
        return out

    # ------------------------------------------------------------------ parts

    @guard_unreachable
    def write_part(
        self, job_id: str, tset_id: str, version: int, part_index: int, records: Any,
        arrow: bool = True,
    ) -> PartInfo:
        """Encode and write one partition; nothing is visible to readers until commit.

        Arrow IPC (file format, uncompressed) when the records round-trip exactly
        (and ``arrow``), else an HMAC-signed cloudpickle. Each call writes a new,
        uniquely named file, so a retried or zombie task can never overwrite a part
        that was committed.

        Parameters
        ----------
        job_id, tset_id : str
            Whose partition this is.
        version : int
            The version being written (see :meth:`next_version`).
        part_index : int
            The partition index.
        records : list or numpy.ndarray or Any
            The partition's records.
        arrow : bool
            False: always the signed pickle (see :func:`~twister_nb.storage.codec.encode`).

        Returns
        -------
        PartInfo
            Pass it (with the other parts') to :meth:`commit`.
        """
        vdir = self._version_dir(job_id, tset_id, version)
        token = secrets.token_hex(4)
        part_name(part_index, "", token)  # check the index before the (costly) encoding
        encoded = encode(records, self._key, arrow)  # all conversion happens before any I/O
        path = f"{vdir}/{part_name(part_index, encoded.extension, token)}"
        try:
            self._prepare_write()
            size, checksum = self._write_part_file(path, encoded.write)
        except (StoreUnavailableError, StoreAccessError):
            raise
        except OSError as e:  # full, read-only: say which part, where, and what to do
            explained = self._explained(e)
            if explained is not None:
                raise explained from e
            raise StoreWriteError(path, f"part {part_index} of TSet {tset_id!r} (job "
                                        f"{job_id!r})", self.uri, e) from None
        return PartInfo(part_index, path, size, encoded.rows, checksum, encoded.format)

    @guard_unreachable
    def discard_uncommitted(self, job_id: str, tset_id: str, version: int) -> bool:
        """Delete what a failed attempt wrote of ``version``: its folder, unless a
        manifest committed it (then nothing is touched). True if something was deleted.

        A persist that fails half-way (a full disk, a failed task) calls it, so its
        parts do not wait for the retention's grace period taking space.
        """
        vdir = self._version_dir(job_id, tset_id, check_version(version))
        if self._read_bytes(f"{vdir}/{MANIFEST_NAME}") is not None:
            return False
        return self._delete_dir(vdir)

    @guard_unreachable
    def commit(
        self,
        job_id: str,
        tset_id: str,
        version: int,
        parts: list[PartInfo],
        meta: dict | None = None,
    ) -> bool:
        """Make a version visible by writing its manifest, last and put-if-absent.

        Parameters
        ----------
        job_id, tset_id : str
            Whose checkpoint this is.
        version : int
            The version whose parts were written.
        parts : list of PartInfo
            What :meth:`write_part` returned, one per partition.
        meta : dict, optional
            JSON-serialisable metadata stored in the manifest.

        Returns
        -------
        bool
            True if this call committed the version; False if a manifest already
            existed (the existing manifest is left untouched).

        Raises
        ------
        ValueError
            If a part is not in this version's folder, is missing, or has another size
            than its PartInfo says, or if ``meta`` is not JSON-serialisable.
        """
        vdir = self._version_dir(job_id, tset_id, version)
        parts = list(parts)
        if not parts:
            raise ValueError(f"commit: no parts given for {vdir!r}")
        sizes = {
            i.path.rsplit("/", 1)[-1]: i.size
            for i in self._list(vdir)
            if i.type == pafs.FileType.File
        }
        for p in parts:
            if p.path != f"{vdir}/{p.name}":
                raise ValueError(
                    f"commit: part {p.path!r} is not in the folder of version {version} "
                    f"({vdir!r}); write it with write_part(..., version={version}, ...)"
                )
            if sizes.get(p.name) != p.size:
                raise ValueError(
                    f"commit: part {p.path!r} is missing or has {sizes.get(p.name)} bytes, "
                    f"its PartInfo says {p.size}; write it again before committing"
                )
        data = manifest_to_json(job_id, tset_id, version, parts, dict(meta or {}), self._key)
        self._prepare_write()
        return self._put_if_absent(f"{vdir}/{MANIFEST_NAME}", data)

    def _load_checkpoint(
        self, job_id: str, tset_id: str, version: int, files: dict[str, pafs.FileInfo]
    ) -> Checkpoint | None:
        """The validated checkpoint of one version, or None (warning if it is broken)."""
        vdir = self._version_dir(job_id, tset_id, version)
        mpath = f"{vdir}/{MANIFEST_NAME}"
        data = self._read_bytes(mpath)
        if data is None:
            return None
        try:
            ck = manifest_from_json(data, vdir, mpath, self._key)
            if (ck.job_id, ck.tset_id, ck.version) != (job_id, tset_id, version):
                raise ValueError(
                    f"it describes {ck.job_id}/{ck.tset_id}@{ck.version}, not "
                    f"{job_id}/{tset_id}@{version}"
                )
        except (ValueError, KeyError, TypeError) as e:
            warnings.warn(
                f"skipping checkpoint version {version} of {job_id}/{tset_id}: manifest "
                f"{mpath!r} is not valid: {e}",
                CheckpointCorruptWarning,
                stacklevel=3,
            )
            return None
        for p in ck.parts:
            info = files.get(p.name)
            problem = None
            if info is None:
                problem = "is missing"
            elif info.size != p.size:
                problem = f"has {info.size} bytes, the manifest says {p.size}"
            if problem:
                warnings.warn(
                    f"skipping checkpoint version {version} of {job_id}/{tset_id}: part "
                    f"{p.path!r} {problem}",
                    CheckpointCorruptWarning,
                    stacklevel=3,
                )
                return None
        return ck

    @guard_unreachable
    def latest(self, job_id: str, tset_id: str) -> Checkpoint | None:
        """The newest committed version whose parts are all present with their sizes.

        Versions without a manifest are not checkpoints (their parts are never read).
        A committed version with a missing or truncated part is skipped with a
        :class:`CheckpointCorruptWarning` naming the file. Checksums are verified when
        a part is read (:meth:`read_part`).

        Returns
        -------
        Checkpoint or None
            None if there is no valid checkpoint.
        """
        scan = self._scan_tset(job_id, tset_id)
        for version in sorted(scan, reverse=True):
            if MANIFEST_NAME in scan[version]:
                ck = self._load_checkpoint(job_id, tset_id, version, scan[version])
                if ck is not None:
                    return ck
        return None

    @guard_unreachable
    def checkpoint(self, job_id: str, tset_id: str, version: int) -> Checkpoint | None:
        """One version's checkpoint if it is committed and valid, else None."""
        vdir = self._version_dir(job_id, tset_id, version)
        files = {i.path.rsplit("/", 1)[-1]: i for i in self._list(vdir)}
        if MANIFEST_NAME not in files:
            return None
        return self._load_checkpoint(job_id, tset_id, version, files)

    @guard_unreachable
    def versions(self, job_id: str, tset_id: str, *, committed: bool = True) -> list[int]:
        """Versions of a TSet, ascending.

        Parameters
        ----------
        committed : bool, default True
            Only versions with a manifest (not checked for validity); with False, also
            folders that hold parts but no manifest.
        """
        scan = self._scan_tset(job_id, tset_id)
        return sorted(v for v, files in scan.items() if not committed or MANIFEST_NAME in files)

    @guard_unreachable
    def next_version(self, job_id: str, tset_id: str) -> int:
        """One more than the highest version folder, committed or not (0 if none)."""
        scan = self._scan_tset(job_id, tset_id)
        return max(scan, default=-1) + 1

    @guard_unreachable
    def version_folders(self, job_id: str, tset_id: str) -> dict[int, bool]:
        """Every version folder of a TSet and whether it has a manifest, from one
        listing: ``max(folders) + 1`` is :meth:`next_version`, and :meth:`gc` can
        delete something only if there are more folders than it keeps or one of
        them has no manifest (or a damaged one)."""
        scan = self._scan_tset(job_id, tset_id)
        return {version: MANIFEST_NAME in files for version, files in sorted(scan.items())}

    # ------------------------------------------------------------------ damaged versions

    def _damaged_marker(self, job_id: str, tset_id: str, version: int) -> str:
        return f"{self._tset_dir(job_id, tset_id)}/{DAMAGED_DIR}/{check_version(version)}"

    @guard_unreachable
    def mark_damaged(self, job_id: str, tset_id: str, version: int, reason: str = "") -> bool:
        """Remember, in the store, that a committed version was found damaged.

        A part can pass the size check of :meth:`checkpoint` and still fail its
        checksum when read; the version stays committed, so without a durable
        mark a restarted job would offer it again. The marker
        (``tsets/<tset_id>/_damaged/<version>``) is written put-if-absent, which
        works on S3 as well, and is deleted by :meth:`gc` with its version.

        Returns
        -------
        bool
            True if this call wrote the marker, False if it was there already.
        """
        data = json.dumps({"version": version, "reason": reason, "time": time.time()}).encode()
        self._prepare_write()
        return self._put_if_absent(self._damaged_marker(job_id, tset_id, version), data)

    @guard_unreachable
    def damaged_versions(self, job_id: str, tset_id: str) -> set[int]:
        """The versions of a TSet marked by :meth:`mark_damaged` (one listing)."""
        folder = f"{self._tset_dir(job_id, tset_id)}/{DAMAGED_DIR}"
        names = (i.path.rsplit("/", 1)[-1] for i in self._list(folder)
                 if i.type == pafs.FileType.File)
        return {int(name) for name in names if name.isdigit() and str(int(name)) == name}

    def _checked_buffer(self, checkpoint: Checkpoint, part_index: int, verify: bool):
        part = checkpoint.part(part_index)
        buf = self._read_buffer(part.path)
        if buf is None:
            raise CheckpointCorruptError(part.path, "the part listed in the manifest is missing")
        if buf.size != part.size:
            raise CheckpointCorruptError(
                part.path, f"it has {buf.size} bytes, the manifest says {part.size}"
            )
        if verify:
            actual = digest(buf, part.checksum)
            if actual != part.checksum:
                raise CheckpointCorruptError(
                    part.path,
                    f"checksum {actual} does not match the manifest's {part.checksum}",
                )
        return part, buf

    @guard_unreachable
    def verify(self, checkpoint: Checkpoint) -> None:
        """Check every part's size and checksum against the manifest, reading it
        whole (memory-mapped locally); a pickle's signature is checked on read.

        Raises
        ------
        CheckpointCorruptError
            Naming the first part that is missing, truncated or changed, or a pickle
            that is not signed with this store's key.
        """
        from twister_nb.storage.signing import open_envelope

        for part in checkpoint.parts:
            _, buf = self._checked_buffer(checkpoint, part.part_index, True)
            if part.format == "pickle":
                open_envelope(buf, self._key, part.path)  # the signature, without unpickling

    @guard_unreachable
    def read_part(self, checkpoint: Checkpoint, part_index: int, *, verify: bool = True) -> Any:
        """Read one partition of a checkpoint back.

        The size and checksum are checked against the manifest first, and a pickle's
        HMAC before it is unpickled. Local Arrow parts are memory-mapped. Numpy arrays
        read from Arrow parts are zero-copy views on the file's buffer and therefore
        read-only (as with Ray's object store): ``.copy()`` one before changing it.

        Parameters
        ----------
        checkpoint : Checkpoint
            From :meth:`latest` or :meth:`checkpoint`.
        part_index : int
            The partition index.
        verify : bool, default True
            Check the checksum (the size is always checked).

        Returns
        -------
        list or numpy.ndarray or Any
            The records, with the values and types they were written with.

        Raises
        ------
        CheckpointCorruptError
            If the part is missing, has the wrong size or checksum, cannot be decoded,
            or is a pickle that is unsigned or signed with another key.
        """
        part, buf = self._checked_buffer(checkpoint, part_index, verify)
        return decode(buf, part.format, self._key, part.path)

    @guard_unreachable
    def read_part_table(
        self, checkpoint: Checkpoint, part_index: int, *, verify: bool = True
    ) -> pa.Table:
        """Read an Arrow part as a ``pyarrow.Table`` (zero-copy over a local memory map).

        The table has one column, ``"records"``; ``table.column(0).to_numpy()`` is the
        cheap way to numpy for flat numeric partitions.

        Raises
        ------
        ValueError
            If the part is a pickle.
        CheckpointCorruptError
            As :meth:`read_part`.
        """
        part, buf = self._checked_buffer(checkpoint, part_index, verify)
        if part.format != "arrow":
            raise ValueError(
                f"read_part_table: part {part.path!r} is a {part.format}, not Arrow; use read_part"
            )
        return decode_table(buf, part.path)

    # ------------------------------------------------------------------ retention

    @guard_unreachable
    def list_tsets(self, job_id: str) -> list[str]:
        """IDs of the TSets that have a folder in the job, sorted."""
        root = f"{self._job_dir(job_id)}/tsets"
        return sorted(
            i.path.rsplit("/", 1)[-1] for i in self._list(root) if i.type == pafs.FileType.Directory
        )

    @guard_unreachable
    def delete_tset(self, job_id: str, tset_id: str) -> bool:
        """Delete every version of a TSet; False if there was nothing to delete."""
        return self._delete_dir(self._tset_dir(job_id, tset_id))

    @guard_unreachable
    def gc(self, job_id: str, tset_id: str, keep: int, *, grace_s: float = 3600.0) -> list[int]:
        """Apply retention to one TSet.

        Keeps the newest ``keep`` valid committed versions; deletes older committed
        versions, committed versions that are invalid, and uncommitted folders whose
        newest file is older than ``grace_s`` (younger ones may still be being
        written). In kept versions, files the manifest does not list (parts of losing or
        retried writers) are deleted once older than ``grace_s``.

        Parameters
        ----------
        keep : int
            How many valid committed versions to keep (>= 0).
        grace_s : float, default 3600
            Age in seconds below which uncommitted data is left alone.

        Returns
        -------
        list of int
            The deleted versions, ascending.
        """
        if type(keep) is not int or keep < 0:
            raise ValueError(f"gc: keep must be an int >= 0, got {keep!r}")
        now = time.time()
        scan = self._scan_tset(job_id, tset_id)
        kept = 0
        deleted = []
        for version in sorted(scan, reverse=True):
            files = scan[version]
            vdir = self._version_dir(job_id, tset_id, version)
            mtimes = [i.mtime.timestamp() for i in files.values() if i.mtime is not None]
            age = now - max(mtimes) if mtimes else float("inf")
            if MANIFEST_NAME in files:
                ck = self._load_checkpoint(job_id, tset_id, version, files) if kept < keep else None
                if ck is not None:
                    kept += 1
                    listed = {p.name for p in ck.parts} | {MANIFEST_NAME, ""}
                    for name, info in files.items():
                        old = info.mtime is None or now - info.mtime.timestamp() > grace_s
                        if name not in listed and old:
                            self._delete_file(info.path)
                    continue
            elif age <= grace_s:
                continue
            # The mark first: a later version with this number must not inherit it.
            self._delete_file(self._damaged_marker(job_id, tset_id, version))
            self._delete_dir(vdir)
            deleted.append(version)
        return sorted(deleted)

    # ------------------------------------------------------------------ jobs

    @guard_unreachable
    def write_job(self, job_id: str, record: dict) -> None:
        """Write (or overwrite) ``jobs/<job_id>/job.json`` atomically.

        Raises
        ------
        ValueError
            If ``record`` is not JSON-serialisable.
        """
        path = f"{self._job_dir(job_id)}/{JOB_RECORD}"
        try:
            data = json.dumps(record, indent=1).encode()
        except (TypeError, ValueError) as e:
            raise ValueError(f"write_job: record must be JSON-serialisable: {e}") from None
        self._prepare_write()
        self._write_file(path, lambda sink: sink.write(data))

    @guard_unreachable
    def read_job(self, job_id: str) -> dict | None:
        """The job record, or None if the job has none.

        Raises
        ------
        CheckpointCorruptError
            If the record exists but is not valid JSON.
        """
        path = f"{self._job_dir(job_id)}/{JOB_RECORD}"
        for attempt in range(3):
            data = self._read_bytes(path)
            if data is None:
                return None
            try:
                return json.loads(data)
            except ValueError as e:
                # The record is rewritten whole while its job runs; an S3 server (SeaweedFS
                # here) can answer a read during that PUT with a partial body: read again.
                if attempt == 2:
                    raise CheckpointCorruptError(path, f"job record is not valid JSON: {e}"
                                                 ) from None
                time.sleep(0.05 * (attempt + 1))
        return None  # not reached

    @guard_unreachable
    def list_jobs(self) -> list[str]:
        """IDs of every job with a folder in the store, sorted."""
        return sorted(
            i.path.rsplit("/", 1)[-1]
            for i in self._list(self._path("jobs"))
            if i.type == pafs.FileType.Directory
        )

    @guard_unreachable
    def clear_job(self, job_id: str) -> bool:
        """Delete everything of a job: record, lease, every TSet's checkpoints.

        Returns
        -------
        bool
            False if the job had nothing in the store.
        """
        return self._delete_dir(self._job_dir(job_id))
