"""twister_nb: Twister2-style TSet dataflow jobs on Ray, Jupyter first.

>>> from twister_nb import TSetEnvironment, SourceFunc  # doctest: +SKIP
"""

from twister_nb.tset import (
    CachedTSet,
    DataObject,
    DataPartition,
    KeyedTSet,
    PartitionFunc,
    PersistedTSet,
    SourceFunc,
    TLink,
    TSet,
    TSetContext,
    TSetEnvironment,
    Twister2Environment,
)
from twister_nb.tset.executor import Executor, set_default_executor


def _ray_executor(env: TSetEnvironment, *, attach_only: bool = False) -> Executor:
    """The default executor of a job: the Ray runtime's. The API layer never
    imports the runtime (the runtime imports it); the package root wires it in
    here, and imports it (and Ray) only when the first job starts."""
    from twister_nb.runtime.executor import RayExecutor

    return RayExecutor(env, attach_only=attach_only)


set_default_executor(_ray_executor)

__version__ = "0.1.0"

__all__ = [
    "TSetEnvironment", "Twister2Environment", "SourceFunc", "PartitionFunc", "TSetContext",
    "DataObject", "DataPartition", "TSet", "KeyedTSet", "TLink", "CachedTSet", "PersistedTSet",
]


def load_ipython_extension(ipython):  # pragma: no cover - wired up by the notebook issue
    from twister_nb.notebook.magics import load_ipython_extension as load

    load(ipython)
