"""Keyed sources and links: keyed_reduce, keyed_gather, keyed_partition, join."""

from __future__ import annotations

import operator
from collections import defaultdict

import pytest

from twister_nb import PartitionFunc, SourceFunc


class KeyedPairs(SourceFunc):
    def __init__(self, n, keys):
        super().__init__()
        self.n, self.keys, self.i = n, keys, 0

    def has_next(self):
        return self.i < self.n

    def next(self):
        self.i += 1
        return (f"k{self.i % self.keys}", self.i)


def _cmp(a, b):
    return (a > b) - (a < b)


def test_keyed_source_keyed_gather_with_comparator(env):
    got = env.create_keyed_source(KeyedPairs(20, 3), 2).keyed_gather(key_comparator=_cmp).collect()
    expected = defaultdict(list)
    for _ in range(2):  # two instances, each its own copy
        for i in range(1, 21):
            expected[f"k{i % 3}"].append(i)
    keys = [k for k, _ in got]
    assert sorted(keys) == sorted(expected)
    assert {k: sorted(v) for k, v in got} == {k: sorted(v) for k, v in expected.items()}
    # keys are ordered within each partition by the comparator
    per_partition = env.create_keyed_source(KeyedPairs(20, 3), 2).keyed_gather(key_comparator=_cmp).compute(
        lambda itr: [k for k, _ in itr]).collect()
    for keys_in_part in per_partition:
        assert keys_in_part == sorted(keys_in_part)


def test_keyed_reduce_against_dict(env):
    pairs = [(i % 17, i) for i in range(1000)]
    got = env.parallelize_list(pairs, 4).map_to_tuple(lambda kv: kv).keyed_reduce(operator.add).collect()
    expected = defaultdict(int)
    for k, v in pairs:
        expected[k] += v
    assert dict(got) == dict(expected)
    assert len(got) == len(expected)  # every key exactly once


class KeyModPartitioner(PartitionFunc):
    def prepare(self, sources, destinations):
        self.n = len(destinations)

    def partition(self, source_index, key):
        return key % self.n


def test_keyed_partition(env):
    pairs = [(i % 10, i) for i in range(100)]
    got = (env.parallelize_dict(dict(enumerate(range(100))), 4)  # keyed source
           .keyed_partition(KeyModPartitioner())
           .compute(lambda itr, ctx: (ctx.index, sorted(k for k, _ in itr))).collect())
    expected = [(d, sorted(k for k in range(100) if k % 4 == d)) for d in range(4)]
    assert got == expected
    assert pairs  # the reference data is built the same way


def test_keyed_gather_default_groups_every_key_once(env):
    pairs = [(w, 1) for w in "a b c a b a".split()]
    got = env.parallelize_list(pairs, 3).map_to_tuple(lambda kv: kv).keyed_gather().collect()
    assert sorted((k, sum(v)) for k, v in got) == [("a", 3), ("b", 2), ("c", 1)]


@pytest.mark.parametrize("how", ["inner", "left", "right", "full_outer"])
def test_join_against_reference(env, how):
    left = [(k, f"L{k}") for k in [1, 2, 2, 3, 5]]
    right = [(k, f"R{k}") for k in [2, 3, 3, 4]]
    lt = env.parallelize_list(left, 2).map_to_tuple(lambda kv: kv)
    rt = env.parallelize_list(right, 3).map_to_tuple(lambda kv: kv)
    got = lt.join(rt, join_type=how, key_comparator=_cmp).collect()

    expected = []
    lkeys = {k for k, _ in left}
    rkeys = {k for k, _ in right}
    for k in sorted(lkeys | rkeys):
        ls = [v for kk, v in left if kk == k]
        rs = [v for kk, v in right if kk == k]
        if ls and rs:
            expected += [(k, (lv, rv)) for lv in ls for rv in rs]
        elif ls and how in ("left", "full_outer"):
            expected += [(k, (lv, None)) for lv in ls]
        elif rs and how in ("right", "full_outer"):
            expected += [(k, (None, rv)) for rv in rs]
    assert sorted(got, key=repr) == sorted(expected, key=repr)


def test_join_rejects_unknown_type(env):
    t = env.parallelize_list([(1, 1)], 1).map_to_tuple(lambda kv: kv)
    with pytest.raises(ValueError, match="join_type 'outer'"):
        t.join(t, join_type="outer")


def test_keyed_transforms_see_pairs(env):
    got = (env.parallelize_dict({"a": 1, "b": 2}, 2).keyed_reduce(operator.add)
           .map(lambda kv: f"{kv[0]}={kv[1]}").collect())
    assert sorted(got) == ["a=1", "b=2"]
