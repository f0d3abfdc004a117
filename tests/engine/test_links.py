"""Links that move data between partitions, against plain-Python references."""

from __future__ import annotations

import functools
import operator
from collections import defaultdict

from twister_nb import PartitionFunc


def _parts(data, n):
    size, extra = divmod(len(data), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(data[start:end])
        start = end
    return out


def test_reduce_gives_one_value_in_one_partition(env):
    data = list(range(1000))
    link = env.parallelize_list(data, 4).reduce(operator.add)
    assert link.parallelism == 1
    assert link.collect() == [sum(data)]
    assert link.map(lambda s: s * 2).collect() == [sum(data) * 2]


def test_reduce_of_nothing_is_nothing(env):
    assert env.parallelize_list([], 4).reduce(operator.add).collect() == []


def test_all_reduce_in_every_partition(env):
    data = list(range(100))
    got = env.parallelize_list(data, 4).all_reduce(operator.add).map(lambda s, ctx: (ctx.index, s)).collect()
    assert got == [(i, sum(data)) for i in range(4)]


def test_reduce_order_is_partition_order(env):
    # A non-commutative reduction shows values are folded in partition order.
    data = [str(i) for i in range(20)]
    assert env.parallelize_list(data, 4).reduce(lambda a, b: a + b).collect() == ["".join(data)]


def test_gather_and_all_gather(env):
    data = list(range(30))
    g = env.parallelize_list(data, 3).gather()
    assert g.parallelism == 1
    assert g.compute(lambda itr: list(itr)).collect() == [data]
    ag = env.parallelize_list(data, 3).all_gather().compute(lambda itr, ctx: (ctx.index, list(itr)))
    assert ag.collect() == [(i, data) for i in range(3)]


class ModPartitioner(PartitionFunc):
    def prepare(self, sources, destinations):
        self.n = len(destinations)
        self.sources = sorted(sources)

    def partition(self, source_index, value):
        return value % self.n


def test_partition_with_user_function(env):
    data = list(range(50))
    got = env.parallelize_list(data, 4).partition(ModPartitioner()).compute(
        lambda itr, ctx: (ctx.index, sorted(itr))).collect()
    expected = [(d, sorted(x for x in data if x % 4 == d)) for d in range(4)]
    assert got == expected


def test_partition_changes_parallelism_when_asked(env):
    data = list(range(50))
    link = env.parallelize_list(data, 4).partition(ModPartitioner(), parallelism=3)
    assert link.parallelism == 3
    got = link.compute(lambda itr, ctx: (ctx.index, sorted(itr))).collect()
    assert got == [(d, sorted(x for x in data if x % 3 == d)) for d in range(3)]


def test_load_balanced_partitioner(env):
    data = list(range(40))
    pf = env.functions.partition.load_balanced()
    got = env.parallelize_list(data, 4).partition(pf).compute(lambda itr: sorted(itr)).collect()
    assert sorted(v for part in got for v in part) == data
    assert [len(p) for p in got] == [10, 10, 10, 10]


def test_replicate_broadcasts(env):
    data = [1, 2, 3]
    link = env.parallelize_list(data, 1).replicate(4)
    assert link.parallelism == 4
    got = link.compute(lambda itr, ctx: (ctx.index, list(itr))).collect()
    assert got == [(i, data) for i in range(4)]


def test_direct_link_actions(env):
    data = list(range(10))
    t = env.parallelize_list(data, 2)
    assert t.direct().collect() == data
    assert t.direct().map(lambda x: x + 1).collect() == [x + 1 for x in data]


def test_two_stage_pipeline_with_shared_upstream(env):
    data = list(range(200))
    base = env.parallelize_list(data, 4).map(lambda x: x * 2)
    total = base.reduce(operator.add)
    # the same upstream read by two exchanges in one action (a union after reduce/all_gather)
    both = total.map(lambda s: ("sum", s)).union(base.gather().map(lambda v: ("v", v)))
    got = both.collect()
    assert ("sum", sum(x * 2 for x in data)) in got
    assert sorted(v for k, v in got if k == "v") == [x * 2 for x in data]


def test_reference_word_count_shape(env):
    words = ("the quick brown fox jumps over the lazy dog the end " * 30).split()
    got = dict(env.parallelize_list(words, 4).map_to_tuple(lambda w: (w, 1)).keyed_reduce(operator.add).collect())
    expected = defaultdict(int)
    for w in words:
        expected[w] += 1
    assert got == dict(expected)
    assert functools.reduce(operator.add, got.values()) == len(words)
