"""Records a Twister2 user function may write to.

Twister2 hands every user function its own copy of each record (they cross
from Java), so ``x[1, 1] = 200`` works in a ``map``. twister_nb passes records
without copying, and an array that came through an exchange or from the store
is a read-only view of its buffer. The Twister2 layer copies exactly those (a
read-only numpy array) before the user's function sees them; everything else is
passed as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

__all__ = ["writable", "writable_records"]


def writable(value: Any) -> Any:
    """``value``, or a writable copy of it when it is a read-only numpy array.

    >>> a = np.zeros(2); a.flags.writeable = False
    >>> writable(a).flags.writeable, writable(3)
    (True, 3)
    """
    if type(value) is np.ndarray and not value.flags.writeable:
        return value.copy()
    return value


def writable_records(values: Iterable[Any]) -> Iterator[Any]:
    """Iterate ``values`` through :func:`writable`."""
    for value in values:
        yield writable(value)
