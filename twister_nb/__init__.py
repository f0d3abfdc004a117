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
from twister_nb.tset.environment import register_executor

# The API layer never imports Ray; the runtime is wired in here, imported on
# the first job.
register_executor("twister_nb.runtime.executor:RayExecutor")

__version__ = "0.1.0"

__all__ = [
    "TSetEnvironment", "Twister2Environment", "SourceFunc", "PartitionFunc", "TSetContext",
    "DataObject", "DataPartition", "TSet", "KeyedTSet", "TLink", "CachedTSet", "PersistedTSet",
]


def load_ipython_extension(ipython):  # pragma: no cover - wired up by the notebook issue
    from twister_nb.notebook.magics import load_ipython_extension as load

    load(ipython)
