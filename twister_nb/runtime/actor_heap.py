"""An actor's start-up objects, out of the way of Python's cyclic collector.

A JobMaster's or a Worker's process has imported Ray, pyarrow, numpy and
twister_nb before it serves its first call: some 85,000 objects that live as
long as the process. Until they age into the oldest generation, the cyclic
collector scans them with the young ones, so one of the actor's first calls
pays a generation-1 collection over them. Measured on a restarted job: the
JobMaster's ``restore`` took one 0.9-1.2 ms collection, every time, and its
``persist()`` 3.4 ms where a JobMaster without it takes 2.3 ms
(docs/benchmarks.md, seventh session).

:func:`freeze_startup_objects` moves every object alive now into the
collector's permanent generation (``gc.freeze``, 0.03-0.06 ms), which it never
scans again. Freed by reference counting they still are; only a cycle among
them would stay, and start-up objects are not garbage.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_objects"]


def freeze_startup_objects() -> int:
    """Keep the objects alive now out of every later collection; how many the
    permanent generation holds. Call it once an actor is set up (again after a
    pool's spare is bound to its job: what binding made is start-up too)."""
    gc.freeze()
    return gc.get_freeze_count()
