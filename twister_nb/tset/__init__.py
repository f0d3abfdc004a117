"""The Twister2 TSet Python API: lazy logical graphs, no Ray imports.

The names below are loaded at their first use (PEP 562), not when the package
is imported: ``twister-nb --help``, ``jobs`` and ``status`` import the package
(its executor hook, see :mod:`twister_nb.tset.executor`) and none of the API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module of this package that defines it.
_EXPORTS = {
    "TSetEnvironment": "environment", "Twister2Environment": "environment",
    "Collector": "functions", "DataObject": "functions", "DataPartition": "functions",
    "PartitionFunc": "functions", "SourceFunc": "functions", "TSetContext": "functions",
    "CachedTSet": "tset", "KeyedTSet": "tset", "PersistedTSet": "tset", "TLink": "tset",
    "TSet": "tset",
}

__all__ = [
    "TSetEnvironment", "Twister2Environment", "SourceFunc", "PartitionFunc", "TSetContext",
    "Collector", "DataObject", "DataPartition", "TSet", "KeyedTSet", "TLink", "CachedTSet",
    "PersistedTSet",
]

if TYPE_CHECKING:
    from twister_nb.tset.environment import TSetEnvironment, Twister2Environment
    from twister_nb.tset.functions import (Collector, DataObject, DataPartition, PartitionFunc,
                                           SourceFunc, TSetContext)
    from twister_nb.tset.tset import CachedTSet, KeyedTSet, PersistedTSet, TLink, TSet


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
