"""An actor's start-up objects leave the collector's generations; later ones do not."""

from __future__ import annotations

import gc

from twister_nb.runtime.actor_heap import freeze_startup_objects


class _Node:
    """A cycle-capable object the collector tracks."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _tracked(obj: object) -> bool:
    """Whether a collection of any generation would scan ``obj``."""
    return any(o is obj for o in gc.get_objects())


def test_objects_alive_at_the_freeze_are_no_longer_scanned_and_later_ones_are() -> None:
    before = _Node()
    assert _tracked(before)
    try:
        frozen = freeze_startup_objects()
        assert frozen == gc.get_freeze_count() > 0
        assert not _tracked(before)  # no generation holds it: no collection scans it
        after = _Node()
        assert _tracked(after)
        # A cycle made after the freeze is still collected (the collector works on).
        after.other, garbage = _Node(), _Node()
        garbage.other = garbage
        del garbage
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()  # this test process keeps its usual collector
    assert _tracked(before)
