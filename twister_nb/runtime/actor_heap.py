"""An actor's start-up objects, out of the way of Python's cyclic collector.

A JobMaster's or a Worker's process has imported Ray, pyarrow, numpy and
twister_nb before it serves its first call: some 85,000 objects that live as
long as the process. Until they age into the oldest generation, the cyclic
collector scans them with the young ones (and every full collection scans them
after), so one of the actor's first calls pays a generation-1 collection over
them. Measured on a restarted job: the JobMaster's ``restore`` took one
0.9-1.2 ms collection, every time: its ``persist()`` took 3.4 ms, and
2.3 ms once frozen (docs/benchmarks.md, seventh session). A
Worker is frozen for the same reason; W1's small actions showed no change.

:func:`freeze_startup_objects` moves every object alive now into the
collector's permanent generation (``gc.freeze``, 0.03-0.06 ms), which it never
scans again. Reference counting still frees them; what is lost is only the
collection of a cycle among them that becomes garbage later, and objects made
at start-up live as long as the process."""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_objects"]


def freeze_startup_objects() -> int:
    """Keep the objects alive now out of every later collection; how many the
    permanent generation holds. Call it once an actor is set up: a JobMaster when
    it opens its job (a pool's spare, when it is bound), a Worker when it is made."""
    gc.freeze()
    return gc.get_freeze_count()
