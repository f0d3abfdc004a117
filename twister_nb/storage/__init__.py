"""Object-store-friendly checkpoints of TSet partitions (the storage layer).

The lowest layer of twister_nb: it imports nothing else of the project and nothing of
Ray. The checkpoint layer decides *when* to checkpoint; this layer decides *how*: the
layout, the file format, the commit protocol and retention, over ``pyarrow.fs`` on a
local folder (``file:///abs/path`` or a bare path) or S3 (``s3://bucket/prefix``).

Layout under the root::

    jobs/<job_id>/job.json                                    job record
    jobs/<job_id>/leases/lease-<epoch>.json                   job lease, one file per epoch
    jobs/<job_id>/tsets/<tset_id>/<version>/part-<p>-<r>.arrow | .pkl
    jobs/<job_id>/tsets/<tset_id>/<version>/_manifest.json    written last, put-if-absent
    jobs/<job_id>/tsets/<tset_id>/_damaged/<version>          a version found damaged when read

(``<r>`` is a few random hex digits per write, so that a retried or zombie task can
never overwrite a part that a manifest already lists.)

Guarantees
----------
* A checkpoint exists only when its manifest exists. Parts are written first (temp +
  fsync + rename + fsync of the folder locally; one upload on S3), the manifest last
  with put-if-absent (``link()`` locally, ``If-None-Match: *`` on S3): of two
  committers of the same version exactly one wins, the other gets ``False``.
* A reader checks the manifest against the parts: a missing or truncated part makes the
  version invalid (skipped with a :class:`CheckpointCorruptWarning`); sizes and
  checksums are verified again when a part is read.
* Partitions that Arrow can hold *exactly* (same values and Python types back) are
  Arrow IPC files, memory-mapped when read locally; anything else is cloudpickled and
  HMAC-SHA256-signed with a key kept outside the store. Unsigned or wrongly signed
  pickles are refused with :class:`CheckpointCorruptError`.
* Missing things are values (``None``), not exceptions.

API
---
``CheckpointStore.from_uri(uri, *, signing_key, s3_options=None, checksum=None)``
    Open a store; it pickles (by URI, options and key) so it can travel to workers.
``store.write_part(job_id, tset_id, version, part_index, records) -> PartInfo``
``store.commit(job_id, tset_id, version, parts, meta=None) -> bool``
``store.latest(job_id, tset_id) -> Checkpoint | None``
``store.checkpoint(job_id, tset_id, version) -> Checkpoint | None``
``store.read_part(checkpoint, part_index, *, verify=True) -> list | ndarray | Any``
``store.read_part_table(checkpoint, part_index, *, verify=True) -> pyarrow.Table``
``store.versions(job_id, tset_id, *, committed=True) -> list[int]``
``store.next_version(job_id, tset_id) -> int``
``store.list_tsets(job_id) -> list[str]``
``store.delete_tset(job_id, tset_id) -> bool``
``store.gc(job_id, tset_id, keep, *, grace_s=3600.0) -> list[int]``
``store.write_job(job_id, record)``, ``store.read_job(job_id) -> dict | None``,
``store.list_jobs() -> list[str]``, ``store.clear_job(job_id) -> bool``
``store.acquire_lease(job_id, owner, ttl_s) -> Lease`` (raises :class:`LeaseHeldError`),
``store.renew_lease(lease, ttl_s=None) -> Lease`` (raises :class:`LeaseLostError`),
``store.release_lease(lease) -> bool``, ``store.read_lease(job_id) -> Lease | None``
``load_or_create_key(path) -> bytes``
    The 32-byte signing key, created with mode 0600 if missing.

Examples
--------
>>> import tempfile
>>> from twister_nb.storage import CheckpointStore
>>> store = CheckpointStore.from_uri(tempfile.mkdtemp(), signing_key=b"k" * 32)
>>> part = store.write_part("job1", "tsetA", 0, 0, [("a", 1), ("b", 2)])
>>> store.commit("job1", "tsetA", 0, [part], {"parallelism": 1})
True
>>> ck = store.latest("job1", "tsetA")
>>> store.read_part(ck, 0)
[('a', 1), ('b', 2)]
"""

from __future__ import annotations

from twister_nb.storage.errors import (
    CheckpointCorruptError,
    CheckpointCorruptWarning,
    LeaseError,
    LeaseHeldError,
    LeaseLostError,
    StorageError,
    StoreAccessError,
    StoreNotice,
    StoreUnavailableError,
    StoreWriteError,
)
from twister_nb.storage.lease import Lease
from twister_nb.storage.manifest import Checkpoint, PartInfo
from twister_nb.storage.signing import load_or_create_key
from twister_nb.storage.store import JOB_LIVE_VIEW, CheckpointStore

__all__ = [
    "JOB_LIVE_VIEW",
    "Checkpoint",
    "CheckpointCorruptError",
    "CheckpointCorruptWarning",
    "CheckpointStore",
    "Lease",
    "LeaseError",
    "LeaseHeldError",
    "LeaseLostError",
    "LocalCheckpointStore",
    "PartInfo",
    "S3CheckpointStore",
    "StorageError",
    "StoreAccessError",
    "StoreNotice",
    "StoreUnavailableError",
    "StoreWriteError",
    "load_or_create_key",
]


def __getattr__(name: str):
    """Import the backends on first use, explaining a missing optional dependency."""
    if name == "LocalCheckpointStore":
        from twister_nb.storage.local import LocalCheckpointStore

        return LocalCheckpointStore
    if name == "S3CheckpointStore":
        try:
            from twister_nb.storage.s3 import S3CheckpointStore
        except ImportError as e:  # pragma: no cover - depends on the pyarrow build
            raise ImportError(
                f"the S3 backend needs a pyarrow built with S3 support ({e}); "
                f"pip install --upgrade pyarrow botocore"
            ) from e
        return S3CheckpointStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
