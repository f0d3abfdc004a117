"""The checkpoint layer's decisions, on every store backend, without Ray:
restore the newest valid version, commit, retention, and damaged versions
remembered in the store across a restart (a new manager)."""

from __future__ import annotations

import pytest
from storage_helpers import raw_read, raw_write

from twister_nb.checkpoint import retention
from twister_nb.checkpoint.manager import CheckpointManager
from twister_nb.errors import CheckpointLostError

JOB, TSET = "job", "tset"
CONFIG = {"twister2.checkpointing.enable": True, "twister2.checkpointing.retention": 2,
          "twister2.checkpointing.verify_on_restore": False}


def _manager(store, lines=None, **config) -> CheckpointManager:
    report = (lines.append if lines is not None else (lambda line: None))
    return CheckpointManager(store, JOB, {**CONFIG, **config}, report=report)


def _persist(manager: CheckpointManager, records=(1, 2, 3), parts: int = 2):
    """What a persist() does: a version, its parts written, committed."""
    version = manager.next_version(TSET)
    written = [manager.store.write_part(JOB, TSET, version, p, list(records)) for p in range(parts)]
    return manager.commit(TSET, version, written, {"label": "data", "keyed": False})


def _flip_a_byte(store, checkpoint, part_index: int = 0) -> None:
    """Damage a part so that its size still checks out and its checksum does not."""
    path = checkpoint.part(part_index).path
    data = bytearray(raw_read(store, path))
    data[len(data) // 2] ^= 0x10
    raw_write(store, path, bytes(data))


def test_restore_finds_the_newest_committed_version(store):
    writer = _manager(store)
    assert writer.restore(TSET) is None
    assert [_persist(writer).version for _ in range(2)] == [0, 1]
    reader = _manager(store)  # another JobMaster of the job: nothing in memory
    assert reader.restore(TSET).version == 1
    assert reader.in_use() == [TSET]
    assert _manager(store, **{"twister2.checkpointing.enable": False}).restore(TSET) is None


def test_retention_keeps_the_newest_versions(store):
    manager = _manager(store)
    for _ in range(4):
        _persist(manager)
    assert store.versions(JOB, TSET) == [2, 3]
    assert manager.restore(TSET).version == 3


def test_retention_is_skipped_when_it_cannot_delete_anything(store, monkeypatch):
    manager = _manager(store, **{"twister2.checkpointing.retention": 3})
    calls = []
    original = store.gc
    monkeypatch.setattr(store, "gc", lambda *a, **k: calls.append(a) or original(*a, **k))
    _persist(manager)
    _persist(manager)
    assert calls == []  # two versions, three kept: no listing spent
    _persist(manager)
    _persist(manager)
    assert len(calls) == 1 and store.versions(JOB, TSET) == [1, 2, 3]


def test_a_damaged_version_is_not_offered_again_after_a_restart(store):
    lines: list[str] = []
    first = _manager(store, lines)
    good = _persist(first, records=(1,))
    bad = _persist(first, records=(2,))
    _flip_a_byte(store, bad)
    assert first.restore(TSET).version == bad.version  # sizes check out: offered ...
    dropped = first.mark_damaged(TSET, "part 0 failed its checksum")  # ... until read
    assert dropped.version == bad.version
    assert first.restore(TSET).version == good.version
    assert store.damaged_versions(JOB, TSET) == {bad.version}

    restarted = _manager(store)  # a new JobMaster: only the store remembers
    assert restarted.restore(TSET).version == good.version
    assert restarted.damaged(TSET) == {bad.version}
    assert restarted.for_read(TSET).version == good.version


def test_a_damaged_mark_goes_with_its_version(store):
    manager = _manager(store, **{"twister2.checkpointing.retention": 1})
    bad = _persist(manager)
    raw_write(store, bad.part(0).path, b"short")  # a size the manifest does not list
    manager.mark_damaged(TSET, "truncated")
    assert store.damaged_versions(JOB, TSET) == {0}
    assert _persist(manager).version == 1  # the commit's retention deletes version 0 ...
    assert store.versions(JOB, TSET) == [1]
    assert store.damaged_versions(JOB, TSET) == set()  # ... and its mark
    assert _manager(store).restore(TSET).version == 1


def test_verify_on_restore_skips_and_reports_a_damaged_version(store):
    writer = _manager(store)
    good = _persist(writer)
    _flip_a_byte(store, _persist(writer))
    lines: list[str] = []
    assert _manager(store, lines).restore(TSET).version == 1  # sizes only: not seen
    assert _manager(store, lines, **{"twister2.checkpointing.verify_on_restore": True}
                    ).restore(TSET).version == good.version
    assert len(lines) == 1 and "version 1 is invalid" in lines[0], lines


def test_nothing_to_read_is_a_lost_checkpoint(store):
    manager = _manager(store)
    with pytest.raises(CheckpointLostError, match="no valid committed checkpoint"):
        manager.for_read(TSET)
    _persist(manager)
    manager.forget(TSET)
    assert manager.using(TSET) is None
    assert manager.for_read(TSET).version == 0  # forgotten, found again in the store


def test_mark_damaged_is_put_if_absent(store):
    assert store.mark_damaged(JOB, TSET, 4, "checksum") is True
    assert store.mark_damaged(JOB, TSET, 4, "again") is False
    assert store.damaged_versions(JOB, TSET) == {4}
    assert store.versions(JOB, TSET, committed=False) == []  # a mark is not a version


def test_retention_setting():
    assert retention({"twister2.checkpointing.retention": 3}) == 3
    assert retention({"twister2.checkpointing.retention": 0}) == 2
