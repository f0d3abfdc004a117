"""The twister2 layer's parts that need no cluster: the copies' rendezvous,
Twister2's data classes, writable records and the compute rule."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from twister2 import adapt
from twister2.data.DataPartition import DataPartition
from twister2.records import writable
from twister2.spmd import Copy, FailedInAnotherCopy, Group
from twister_nb.tset.signature import Convention, convention


class _Job:
    def cancel(self) -> bool:
        return True


def test_each_action_runs_once_and_every_copy_gets_its_result():
    group = Group(_Job(), workers=4)
    runs = []
    results = {}
    start = threading.Barrier(4)

    def copy_body(k):
        copy = Copy(group, k)
        start.wait()
        results[k] = [copy.once("cache", "t-1", lambda: runs.append(k) or len(runs))
                      for _ in range(2)]  # the same TSet twice: two actions

    threads = [threading.Thread(target=copy_body, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs) == 2
    assert all(results[k] == [1, 2] for k in range(4)), results


def test_a_failed_action_fails_in_every_copy():
    group = Group(_Job(), workers=2)
    first, second = Copy(group, 0), Copy(group, 1)
    with pytest.raises(ZeroDivisionError):
        first.once("run", "t-2", lambda: 1 / 0)
    with pytest.raises(FailedInAnotherCopy) as info:
        second.once("run", "t-2", lambda: "never run")
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_different_graphs_are_different_actions():
    group = Group(_Job(), workers=2)
    assert Copy(group, 0).once("run", "a", lambda: "a") == "a"
    assert Copy(group, 1).once("run", "b", lambda: "b") == "b"


def test_first_of_an_empty_partition_is_none():
    assert DataPartition([], 3).first() is None
    assert DataPartition([], 3).first_or_default(5) == 5
    assert DataPartition([7, 8], 0).first() == 7


def test_read_only_arrays_become_writable_copies():
    stored = np.arange(4.0)
    stored.flags.writeable = False
    got = writable(stored)
    got[0] = 9
    assert stored[0] == 0 and got[0] == 9
    mine = np.arange(3)
    assert writable(mine) is mine


def test_compute_decides_by_parameter_count_as_twister2():
    # a second parameter named like a collector is still the context in Twister2
    assert convention("compute", adapt.per_partition(lambda itr, c: 0)) is \
        Convention.ITER_CTX_RETURN
    assert convention("compute", adapt.per_partition(lambda itr, out, ctx: 0)) is \
        Convention.ITER_COLLECT_CTX
    assert convention("compute", adapt.per_partition(lambda itr: 0)) is Convention.ITER_RETURN
