"""Helpers for the storage tests: raw file access behind the store's back, and the
functions that race in child processes (spawned, so they must live in a module).
"""

from __future__ import annotations

import json
import pickle

import pyarrow.fs as pafs

from twister_nb.storage import CheckpointStore, LeaseHeldError
from twister_nb.storage.checksum import digest
from twister_nb.storage.manifest import manifest_signature

KEY = b"0123456789abcdef0123456789abcdef"
OTHER_KEY = b"fedcba9876543210fedcba9876543210"


def raw_read(store: CheckpointStore, path: str) -> bytes:
    with store._fs.open_input_stream(path) as f:
        return f.read()


def raw_write(store: CheckpointStore, path: str, data: bytes) -> None:
    with store._fs.open_output_stream(path) as f:
        f.write(data)


def raw_delete(store: CheckpointStore, path: str) -> None:
    store._fs.delete_file(path)


def raw_exists(store: CheckpointStore, path: str) -> bool:
    return store._fs.get_file_info(path).type != pafs.FileType.NotFound


def raw_files(store: CheckpointStore, path: str) -> list[str]:
    sel = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    return sorted(i.path for i in store._fs.get_file_info(sel) if i.type == pafs.FileType.File)


def replace_part(store: CheckpointStore, checkpoint, part_index: int, data: bytes,
                 resign_with: bytes | None = None) -> None:
    """Swap a part's bytes AND fix the manifest entry to match, as an attacker with
    write access to the store could. The manifest's signature then fails, unless
    ``resign_with`` signs it again: that is how a test reaches the pickle's own HMAC
    check, the second line of defence, past the first."""
    part = checkpoint.part(part_index)
    raw_write(store, part.path, data)
    doc = json.loads(raw_read(store, checkpoint.manifest_path))
    for entry in doc["parts"]:
        if entry["part_index"] == part_index:
            entry["size"] = len(data)
            entry["checksum"] = digest(data, entry["checksum"])
    if resign_with is not None:
        doc["signature"] = manifest_signature(doc, resign_with)
    raw_write(store, checkpoint.manifest_path, json.dumps(doc).encode())


# ---------------------------------------------------------------- child processes


def commit_racer(store_pickle: bytes, writer: int, barrier, results) -> None:
    store = pickle.loads(store_pickle)
    part = store.write_part("race-job", "race-tset", 0, 0, list(range(1000)))
    barrier.wait(timeout=60)
    won = store.commit("race-job", "race-tset", 0, [part], {"writer": writer})
    results.put((writer, won))


def lease_racer(store_pickle: bytes, owner: str, barrier, results) -> None:
    store = pickle.loads(store_pickle)
    barrier.wait(timeout=60)
    try:
        lease = store.acquire_lease("lease-job", owner, ttl_s=60)
        results.put((owner, "won", lease.epoch))
    except LeaseHeldError as e:
        results.put((owner, "held", e.holder))


def read_in_child(store_blob: bytes, ck_blob: bytes):
    import numpy as np

    store, ck = pickle.loads(store_blob), pickle.loads(ck_blob)
    return np.array(store.read_part(ck, 0))
