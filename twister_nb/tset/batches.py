"""What counts as a batch: the contract of ``map_batches`` and ``parallelize_array``.

A record that is an array (a numpy array of at least one dimension, or an Arrow
``Array``, ``ChunkedArray``, ``RecordBatch`` or ``Table``) is handed to a batch
function as (zero-copy slices of) itself. The rule belongs to the API: the
runtime slices by it (:mod:`twister_nb.runtime.batches`) and the graph view
labels ``parallelize_array`` sources by it, and neither may import the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["ARROW_BATCH_TYPES", "is_batch"]

ARROW_BATCH_TYPES = (pa.Array, pa.ChunkedArray, pa.RecordBatch, pa.Table)


def is_batch(value: Any) -> bool:
    """Whether ``value`` is passed to ``map_batches`` as (slices of) itself.

    >>> import numpy as np
    >>> is_batch(np.arange(3)), is_batch(np.float64(1.0)), is_batch([1, 2])
    (True, False, False)
    """
    if isinstance(value, np.ndarray):
        return value.ndim >= 1
    return isinstance(value, ARROW_BATCH_TYPES)
