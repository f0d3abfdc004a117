"""The local-filesystem backend of ``CheckpointStore`` (``file:///abs/path``).

What differs from S3: a file becomes visible only once complete by writing it to a
temporary name in the same folder, ``fsync``-ing it, renaming it into place and
``fsync``-ing the folder (a checkpoint's parts leave that last step to their manifest,
see :meth:`LocalCheckpointStore._write_part_file`); put-if-absent is ``link()`` of such a complete temporary file
(atomic, and it fails if the name exists); and reads memory-map the file, so an Arrow
part reopens in milliseconds whatever its size.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from twister_nb.storage.store import CheckpointStore, HashingSink

__all__ = ["LocalCheckpointStore"]

_BUFFER = 1 << 20
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


class LocalCheckpointStore(CheckpointStore):
    """``CheckpointStore`` on a local (or network-mounted POSIX) folder.

    Use :meth:`CheckpointStore.from_uri`; see there for the parameters.
    """

    #: One: a local read is a few microseconds of waiting and Python for the
    #: rest, so threads only contend for the GIL (42 task checkpoints looked up:
    #: 16 ms in one thread, 26-31 ms in eight).
    parallel_reads = 1
    #: See :attr:`CheckpointStore.remote`.
    remote = False

    def __init__(self, root: str, signing_key: bytes, checksum: str | None = None) -> None:
        self._setup("file://" + root, signing_key, checksum)
        self._fs = pafs.LocalFileSystem()
        self._base = root.rstrip("/") or "/"
        if self._base == "/":
            self._base = ""  # paths are joined with "/", giving "/jobs/..."

    def _path(self, *parts: str) -> str:
        return "/".join((self._base, *parts))

    def _temp_name(self, path: str) -> str:
        folder, name = os.path.split(path)
        return os.path.join(folder, f".{name}.tmp-{secrets.token_hex(6)}")

    def _write_temp(self, path: str, produce: Callable[[Any], None]) -> tuple[str, int, str]:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = self._temp_name(path)
        try:
            with open(tmp, "wb", buffering=_BUFFER) as f:
                sink = HashingSink(f.write, self._checksum)
                produce(sink)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        self._wrote("temp", tmp)
        return tmp, sink.size, sink.checksum

    def _write_file(self, path: str, produce: Callable[[Any], None]) -> tuple[int, str]:
        tmp, size, checksum = self._write_temp(path, produce)
        os.replace(tmp, path)
        _fsync_dir(os.path.dirname(path))
        self._wrote("rename", path)
        return size, checksum

    def _write_part_file(self, path: str, produce: Callable[[Any], None]) -> tuple[int, str]:
        # A part's data is fsynced before its rename, as in _write_file, but its
        # folder is not fsynced here: one fsync per checkpoint instead of one per
        # part. Safe because of the layout and the commit order:
        # - every part of a version is written into the version's folder
        #   (<tset>/<version>/part-...), and commit() writes the manifest into that
        #   same folder (<tset>/<version>/_manifest.json), after all parts, and
        #   checks first that each listed part is there with its size;
        # - the manifest's put-if-absent (_put_if_absent / _create_exclusive)
        #   fsyncs that folder after creating the manifest's name. fsync of a
        #   folder makes every change to its entries so far durable, so the
        #   renames of all earlier parts become durable with, and before anyone
        #   can rely on, the manifest;
        # - a part is only ever read through a committed manifest. Until then, a
        #   crash can at worst lose the name of a part of an uncommitted version:
        #   that version has no manifest, is never read, and gc deletes it.
        # If the manifest already exists (another writer won) this call's parts are
        # not listed by it, so their durability does not matter.
        tmp, size, checksum = self._write_temp(path, produce)
        os.replace(tmp, path)
        self._wrote("rename", path)
        return size, checksum

    def _put_if_absent(self, path: str, data: bytes) -> bool:
        if os.path.exists(path):
            return False
        tmp, _, _ = self._write_temp(path, lambda sink: sink.write(data))
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in _NO_LINK:
                raise
            return self._create_exclusive(path, data)  # no hard links on this filesystem
        finally:
            os.unlink(tmp)
        _fsync_dir(os.path.dirname(path))
        self._wrote("link", path)
        return True

    def _create_exclusive(self, path: str, data: bytes) -> bool:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(os.path.dirname(path))
        self._wrote("create", path)
        return True

    def _read_buffer(self, path: str) -> pa.Buffer | None:
        try:
            if os.path.getsize(path) == 0:
                return pa.py_buffer(b"")
            with pa.memory_map(path, "r") as mm:
                return mm.read_buffer()  # zero-copy; the mapping lives as long as the buffer
        except (FileNotFoundError, NotADirectoryError):
            return None
