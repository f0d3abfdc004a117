"""A job's loop variables in the store: one snapshot per ``commit()``.

Twister2's checkpointing environment keeps a loop's state in named variables
(``init_variable``, ``update_variable``, ``commit``; see
:mod:`twister_nb.tset.variables`). Here a commit is a checkpoint like any
persisted TSet's, under the reserved ID :data:`VARIABLES`: the snapshot (a dict
of every variable, TSets as references to their committed checkpoints) is one
signed part, and the manifest written last and put-if-absent makes it visible,
so a resumed job reads a whole snapshot or the one before it, never half.
Only the newest two are kept.

Plain Python: no Ray.
"""

from __future__ import annotations

import warnings
from typing import Any

from twister_nb.storage import CheckpointCorruptError, CheckpointCorruptWarning, CheckpointStore

#: The reserved TSet ID of the snapshots (a TSet's ID is a hex fingerprint).
VARIABLES = "loop-variables"
_KEEP = 2


def commit_variables(store: CheckpointStore, job_id: str, values: dict[str, Any]) -> int:
    """Write ``values`` as the job's newest snapshot; its version number."""
    version = store.next_version(job_id, VARIABLES)
    part = store.write_part(job_id, VARIABLES, version, 0, [values])
    store.commit(job_id, VARIABLES, version, [part],
                 {"label": "loop variables", "names": sorted(values)})
    store.gc(job_id, VARIABLES, keep=_KEEP)
    return version


def committed_variables(store: CheckpointStore, job_id: str) -> dict[str, Any] | None:
    """The job's newest readable snapshot, or None if it never committed one.

    A snapshot whose part fails its checksum or signature is skipped (with the
    storage layer's warning) for the one before it: a loop resumes a little
    earlier rather than not at all.
    """
    for version in sorted(store.versions(job_id, VARIABLES), reverse=True):
        checkpoint = store.checkpoint(job_id, VARIABLES, version)
        if checkpoint is None:
            continue
        try:
            rows = store.read_part(checkpoint, 0)
        except CheckpointCorruptError as damaged:
            warnings.warn(f"loop variables snapshot {version} of job {job_id!r} is not used: "
                          f"{damaged}", CheckpointCorruptWarning, stacklevel=2)
            continue
        return dict(list(rows)[0])
    return None
