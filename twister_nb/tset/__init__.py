"""The Twister2 TSet Python API: lazy logical graphs, no Ray imports."""

from twister_nb.tset.environment import TSetEnvironment, Twister2Environment
from twister_nb.tset.functions import (
    Collector,
    DataObject,
    DataPartition,
    PartitionFunc,
    SourceFunc,
    TSetContext,
)
from twister_nb.tset.tset import CachedTSet, KeyedTSet, PersistedTSet, TLink, TSet

__all__ = [
    "TSetEnvironment", "Twister2Environment", "SourceFunc", "PartitionFunc", "TSetContext",
    "Collector", "DataObject", "DataPartition", "TSet", "KeyedTSet", "TLink", "CachedTSet",
    "PersistedTSet",
]
