"""The batch path's slicing and the inner-loop speed-ups, without Ray: each is
checked against plain Python / numpy doing the same thing."""

from __future__ import annotations

import operator
import pickle

import cloudpickle
import numpy as np
import pyarrow as pa
import pytest

from twister_nb.plan.physical import ExchangeSpec
from twister_nb.plan.planner import plan
from twister_nb.runtime import batches, exchange
from twister_nb.errors import UserFunctionError
from twister_nb.runtime.task import Streamed, TaskEnv, fresh_instance, run_program, send
from twister_nb.testing import IntSource as Counter  # the seed's source: 0 .. n-1


def _program(t, action="collect"):
    p = plan(t._result_op(), action)  # a link's result is what it delivers
    return p, [pickle.loads(s.program) for s in p.stages]


def _env(index=0):
    return TaskEnv(worker_id=0, index=index, config={}, exchange_inputs=[], materialized=[])


# ------------------------------------------------------------------ fresh_instance


def test_fresh_instance_keeps_state_and_class():
    src = pickle.loads(cloudpickle.dumps(Counter(5)))
    src.i = 2
    new = fresh_instance(src)
    assert new is not src and type(new) is Counter and vars(new) == {"n": 5, "i": 2}
    out = []
    while new.has_next():
        out.append(new.next())
    assert out == [2, 3, 4]


class _Slotted:
    __slots__ = ("x",)

    def __init__(self) -> None:
        self.x = 1


class _Guarded:
    def __init__(self) -> None:
        self.x = 1

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)


@pytest.mark.parametrize("obj", [_Slotted(), _Guarded(), 3, "s", [1], len])
def test_fresh_instance_leaves_special_objects_alone(obj):
    assert fresh_instance(obj) is obj


# ------------------------------------------------------------------ streaming into a combining exchange


def test_map_to_tuple_streams_into_keyed_reduce(offline_env):
    words = [f"w{i % 7}" for i in range(100)]
    t = offline_env.parallelize_list(words, 2).map_to_tuple(lambda w: (w, 1)).keyed_reduce(operator.add)
    p, programs = _program(t)
    producer = programs[0]
    out, records_in = run_program(producer, _env(1))
    assert isinstance(out, Streamed) and len(out) == 50 and records_in == 50
    buckets = send(producer, _env(1), out)
    got = {k: v for b in buckets for k, v in b}
    expected: dict[str, int] = {}
    for w in words[50:]:
        expected[w] = expected.get(w, 0) + 1
    assert got == expected


def test_streamed_non_pair_is_named(offline_env):
    t = offline_env.parallelize_list([1, 2, 3], 1).map_to_tuple(lambda x: x).keyed_reduce(operator.add)
    _, programs = _program(t)
    out, _ = run_program(programs[0], _env())
    with pytest.raises(UserFunctionError) as info:
        send(programs[0], _env(), out)
    assert "(key, value)" in str(info.value) and "got 1" in str(info.value)
    assert "map_to_tuple into keyed_reduce link" in str(info.value)


def test_streamed_user_error_is_not_mistaken_for_a_pair_error(offline_env):
    t = offline_env.parallelize_list([1, 0], 1).map_to_tuple(lambda x: (x, 1 // x))
    _, programs = _program(t.keyed_reduce(operator.add))
    out, _ = run_program(programs[0], _env())
    with pytest.raises(UserFunctionError) as info:
        send(programs[0], _env(), out)
    assert "ZeroDivisionError" in str(info.value) and "(key, value)" not in str(info.value)


def test_reduce_of_a_map_streams_and_matches_python(offline_env):
    t = offline_env.parallelize_list(list(range(1000)), 4).map(lambda x: x * x).reduce(operator.add)
    _, programs = _program(t)
    total = 0
    for i in range(4):
        out, _ = run_program(programs[0], _env(i))
        assert isinstance(out, Streamed)
        total += send(programs[0], _env(i), out)[0][0]
    assert total == sum(x * x for x in range(1000))


def test_keyed_reduce_reports_a_reduce_error_as_it_is():
    spec = ExchangeSpec("keyed_reduce", 1, 1, fn=lambda a, b: a + None)
    with pytest.raises(TypeError, match="unsupported operand"):
        exchange.send(spec, 0, [("a", 1), ("a", 2)])


# ------------------------------------------------------------------ batches


def test_array_records_are_sliced_read_only_views():
    a = np.arange(10, dtype=np.int64)
    got = list(batches.iter_batches([a], batch_size=4))
    assert [b.tolist() for b in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(b.base is a or b.base is a.base for b in got)  # views, no copies
    with pytest.raises(ValueError):
        got[0][0] = 5
    assert a.flags.writeable  # the cached array itself is untouched


def test_default_batch_is_a_byte_budget():
    a = np.zeros((300_000, 2), dtype=np.float64)  # 16 B a row
    sizes = [len(b) for b in batches.iter_batches([a])]
    assert sum(sizes) == 300_000
    assert max(sizes) == batches.DEFAULT_BATCH_BYTES // 16


def test_plain_records_are_packed_and_mixed_runs_keep_order():
    records = [1, 2, 3, np.array([10, 11]), 4, 5]
    got = list(batches.iter_batches(records, batch_size=2))
    assert [b.tolist() for b in got] == [[1, 2], [3], [10, 11], [4, 5]]
    assert all(isinstance(b, np.ndarray) for b in got)


def test_arrow_batches_are_sliced():
    table = pa.table({"x": list(range(7)), "y": [str(i) for i in range(7)]})
    got = list(batches.iter_batches([table], batch_size=3))
    assert [b.num_rows for b in got] == [3, 3, 1]
    assert pa.concat_tables(got).equals(table)


def test_rows_undo_batches():
    table = pa.table({"x": [1, 2]})
    records = [np.array([1, 2]), np.array([[1, 2], [3, 4]]), table, "plain"]
    got = batches.rows(records)
    assert got[:2] == [1, 2] and type(got[0]) is int
    assert [r.tolist() for r in got[2:4]] == [[1, 2], [3, 4]]
    assert got[4:] == [{"x": 1}, {"x": 2}, "plain"]


def test_map_batches_program_matches_numpy(offline_env):
    a = np.arange(100_001, dtype=np.int64)
    t = offline_env.parallelize_array(a, 3).map_batches(lambda b: int((b * 5 + 2).sum()),
                                                        batch_size=1000)
    _, programs = _program(t)
    total = 0
    for i in range(3):
        out, _ = run_program(programs[0], _env(i))
        total += sum(out)
    assert total == int((a * 5 + 2).sum())


def test_map_batches_checks_its_arguments(offline_env):
    t = offline_env.parallelize_list([1, 2], 1)
    with pytest.raises(ValueError, match="batch_size"):
        t.map_batches(lambda b: b, batch_size=0)
    with pytest.raises(TypeError, match="map_batches"):
        t.map_batches(lambda a, b, c: a)
    with pytest.raises(TypeError, match="parallelize_array"):
        offline_env.parallelize_array([1, 2, 3], 2)
