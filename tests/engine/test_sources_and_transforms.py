"""Sources and per-partition transforms on a real Ray cluster, each checked
against the same computation in plain Python."""

from __future__ import annotations

import pytest

from twister_nb import SourceFunc, TSetContext
from twister_nb.testing import IntSource as RangeSource  # the seed's source: 0 .. n-1


class IndexedSource(SourceFunc):
    """Yields (partition index, i): shows each instance runs its own copy."""

    def __init__(self, n):
        super().__init__()
        self.n = n
        self.i = 0
        self.index = None

    def prepare(self, ctx):
        self.index = ctx.index

    def has_next(self):
        return self.i < self.n

    def next(self):
        self.i += 1
        return (self.index, self.i - 1)


def test_every_instance_runs_its_own_copy(env):
    # As in Twister2: parallelism 4 over 0..9 yields 40 records.
    assert sorted(env.create_source(RangeSource(10), 4).collect()) == sorted(list(range(10)) * 4)


def test_source_prepare_sees_its_partition(env):
    got = env.create_source(IndexedSource(3), 4).collect()
    assert got == [(p, i) for p in range(4) for i in range(3)]


def test_default_parallelism_comes_from_resources(env):
    t = env.create_source(RangeSource(2))
    assert t.parallelism == 4
    assert len(t.collect()) == 8


def test_parallelize_list_keeps_order_and_splits(env):
    data = list(range(23))
    t = env.parallelize_list(data, 4)
    parts = t.get_data()
    assert parts.partition_count == 4
    assert [len(p) for p in parts.get_partitions()] == [6, 6, 6, 5]
    assert t.collect() == data


def test_parallelize_dict_with_comparator(env):
    d = {"b": 2, "a": 1, "d": 4, "c": 3}
    t = env.parallelize_dict(d, 2, key_comparator=lambda x, y: (x > y) - (x < y))
    assert t.collect() == sorted(d.items())


def test_map_filter_flat_map_chain(env):
    data = list(range(100))
    got = (env.parallelize_list(data, 4)
           .map(lambda x: x * 3)
           .filter(lambda x: x % 2 == 0)
           .flat_map(lambda x, c: [c.collect(x), c.collect(-x)])
           .collect())
    expected = []
    for x in data:
        y = x * 3
        if y % 2 == 0:
            expected += [y, -y]
    assert got == expected


def test_map_with_context(env):
    got = env.parallelize_list(list(range(8)), 4).map(lambda x, ctx: (ctx.index, ctx.parallelism, x)).collect()
    assert got == [(i // 2, 4, i) for i in range(8)]


def test_compute_collector_and_return_forms(env):
    data = list(range(40))
    t = env.parallelize_list(data, 4)

    def collect_squares(itr, collector, ctx: TSetContext):
        for x in itr:
            collector.collect(x * x)

    def partition_sum(itr):
        return sum(itr)

    def partition_sum_ctx(itr, ctx):
        return (ctx.index, sum(itr))

    def two_arg_collector(itr, collector):
        for x in itr:
            collector.collect(x + 1)

    assert t.compute(collect_squares).collect() == [x * x for x in data]
    assert t.compute(partition_sum).collect() == [sum(data[i * 10:(i + 1) * 10]) for i in range(4)]
    assert t.compute(partition_sum_ctx).collect() == [(i, sum(data[i * 10:(i + 1) * 10])) for i in range(4)]
    assert t.compute(two_arg_collector).collect() == [x + 1 for x in data]


def test_seed_tutorial_pipeline(env, capsys):
    source_x = env.create_source(RangeSource(10000), 4)

    def mul_by_five(itr, collector, ctx):
        for i in itr:
            collector.collect(i * 5)

    def add_two(itr, collector, ctx):
        for i in itr:
            collector.collect(i + 2)

    two_computes = source_x.compute(mul_by_five).compute(add_two)
    persisted = two_computes.persist()
    persisted.reduce(lambda a, b: a + b).for_each(lambda i: print("SUM = %d" % i))
    expected = sum((i * 5) + 2 for i in range(10000)) * 4
    assert expected == 999980000
    out = capsys.readouterr().out
    assert f"SUM = {expected}" in out
    assert "[worker-" in out


def test_uncached_tset_is_recomputed_from_a_fresh_source(env):
    t = env.create_source(RangeSource(5), 2).map(lambda x: x + 1)
    first = t.collect()
    second = t.collect()
    assert first == second == [1, 2, 3, 4, 5] * 2


def test_union(env):
    a = env.parallelize_list([1, 2, 3, 4], 2)
    b = env.parallelize_list([10, 20, 30, 40, 50, 60], 3)
    got = a.union(b).collect()
    assert sorted(got) == sorted([1, 2, 3, 4, 10, 20, 30, 40, 50, 60])
    assert a.union(b).parallelism == 3


def test_for_each_and_sink_really_run(env, capsys):
    env.parallelize_list(list(range(6)), 3).for_each(lambda x: print(f"fe {x}"))

    class Sink:
        def prepare(self, ctx):
            self.index = ctx.index
            self.n = 0

        def add(self, value):
            self.n += value
            return True

        def close(self):
            print(f"sink {self.index} total {self.n}")

    env.parallelize_list(list(range(6)), 3).sink(Sink())
    env.parallelize_list(list(range(4)), 2).sink(lambda v: print(f"fn-sink {v}"))
    out = capsys.readouterr().out
    for x in range(6):
        assert f"fe {x}" in out
    assert "sink 0 total 1" in out and "sink 1 total 5" in out and "sink 2 total 9" in out
    for x in range(4):
        assert f"fn-sink {x}" in out


def test_worker_print_is_prefixed(env, capsys):
    env.parallelize_list([1], 1).for_each(lambda x: print("hello from a worker"))
    out = capsys.readouterr().out
    assert "[worker-0] hello from a worker" in out


def test_set_name_and_properties(env):
    t = env.create_source(RangeSource(3), 2).set_name("numbers")
    assert t.name == "numbers"
    assert t.parallelism == 2
    assert t.id.startswith("source-")
    m = t.map(lambda x: x)
    assert m.parallelism == 2


@pytest.mark.parametrize("n", [0, 1, 7])
def test_empty_and_tiny_partitions(env, n):
    assert env.parallelize_list(list(range(n)), 4).map(lambda x: x * 2).collect() == [x * 2 for x in range(n)]
