"""A full disk, caused for real: a store on a small tmpfs.

The operating system says ``[Errno 28] No space left on device`` and nothing else; the
store must say which part of which TSet, where, and what to do, and leave nothing of the
failed write behind (a temp file, or the parts of the failed version).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from storage_helpers import KEY, raw_files

from twister_nb.storage import CheckpointStore, StoreWriteError


def test_full_disk_names_the_part_and_leaves_nothing(tiny_disk: Path):
    store = CheckpointStore.from_uri(tiny_disk.as_uri(), signing_key=KEY)
    part = np.arange(150_000, dtype=np.int64)  # 1.2 MB a part: the second does not fit
    first = store.write_part("job", "big", 0, 0, part)
    with pytest.raises(StoreWriteError) as info:
        store.write_part("job", "big", 0, 1, part)
    message = str(info.value)
    assert "part 1 of TSet 'big' (job 'job')" in message
    assert str(tiny_disk) in message and "No space left on device" in message
    assert "the store is full" in message and "twister2.checkpointing.store" in message
    assert info.value.errno == 28
    # nothing of the failed write is left: no temp file, only the first part
    assert raw_files(store, str(tiny_disk)) == [first.path]
    # the failed attempt's version is discarded whole; a committed one never is
    assert store.discard_uncommitted("job", "big", 0)
    assert raw_files(store, str(tiny_disk)) == []
    small = store.write_part("job", "big", 1, 0, [1, 2, 3])
    assert store.commit("job", "big", 1, [small])
    assert not store.discard_uncommitted("job", "big", 1)
    assert store.read_part(store.latest("job", "big"), 0) == [1, 2, 3]


def test_write_error_travels_between_processes():
    """It crosses from a worker to the JobMaster to the driver: it must pickle."""
    import pickle

    error = StoreWriteError("/s/p", "part 0 of TSet 't' (job 'j')", "file:///s",
                            OSError(28, "No space left on device"))
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.errno == 28
