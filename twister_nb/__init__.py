"""twister_nb: Twister2-style TSet dataflow jobs on Ray, Jupyter first.

>>> from twister_nb import TSetEnvironment, SourceFunc  # doctest: +SKIP

The API's names are loaded at their first use (from :mod:`twister_nb.tset`,
which loads them the same way): importing the package, as every ``twister-nb``
command does, costs only the executor hook below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twister_nb.tset.executor import Executor, set_default_executor

if TYPE_CHECKING:
    from twister_nb.tset import (CachedTSet, DataObject, DataPartition, KeyedTSet,
                                 PartitionFunc, PersistedTSet, SourceFunc, TLink, TSet,
                                 TSetContext, TSetEnvironment, Twister2Environment)


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


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from twister_nb import tset

    value = getattr(tset, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython):  # pragma: no cover - wired up by the notebook issue
    from twister_nb.notebook.magics import load_ipython_extension as load

    load(ipython)
