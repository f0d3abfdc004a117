"""The inner loop without Ray: a stage program on one partition, and both
sides of every exchange, against plain Python."""

from __future__ import annotations

import operator

import pytest

from twister_nb.plan.physical import ExchangeSpec
from twister_nb.runtime import exchange
from twister_nb.errors import UserFunctionError
from twister_nb.runtime.task import TaskEnv, run_program
from twister_nb.plan.planner import plan
from twister_nb.tset.functions import stable_hash


def _run(t, index=0):
    import pickle

    p = plan(t.op, "collect")
    program = pickle.loads(p.final.program)
    env = TaskEnv(worker_id=0, index=index, config={}, exchange_inputs=[], materialized=[])
    return run_program(program, env)


def test_program_runs_one_partition(offline_env):
    t = offline_env.parallelize_list(list(range(8)), 2).map(lambda x: x * 3).filter(lambda x: x % 2 == 0)
    out, records_in = _run(t, index=1)
    assert out == [x * 3 for x in range(4, 8) if (x * 3) % 2 == 0]
    assert records_in == 4


def test_user_error_names_tset_and_partition(offline_env):
    t = offline_env.parallelize_list([1, 0], 1).map(lambda x: 1 // x).set_name("divider")
    with pytest.raises(UserFunctionError) as info:
        _run(t)
    assert info.value.tset == "divider" and info.value.partition == 0
    assert "ZeroDivisionError" in str(info.value)


def test_reduce_exchange_both_sides():
    spec = ExchangeSpec("reduce", 3, 1, fn=operator.add)
    sent = [exchange.send(spec, i, part) for i, part in enumerate([[1, 2], [], [3]])]
    assert exchange.receive(spec, [s[0] for s in sent]) == [6]


def test_keyed_reduce_routes_each_key_once():
    spec = ExchangeSpec("keyed_reduce", 2, 3, fn=operator.add)
    parts = [[("a", 1), ("b", 2), ("a", 3)], [("b", 4), ("c", 5)]]
    sent = [exchange.send(spec, i, p) for i, p in enumerate(parts)]
    got = {}
    for d in range(3):
        for k, v in exchange.receive(spec, [s[d] for s in sent]):
            assert k not in got
            got[k] = v
    assert got == {"a": 4, "b": 6, "c": 5}


def test_stable_hash_is_not_salted():
    import subprocess
    import sys

    code = "from twister_nb.tset.functions import stable_hash; print(stable_hash(('w', 1)))"
    a = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    b = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert a == b == f"{stable_hash(('w', 1))}\n"


def test_a_compute_that_returns_its_result_is_not_dropped(offline_env):
    # ``c`` reads as a collector, but the function returns its value (issue 14's trial)
    data = list(range(10))
    t = offline_env.parallelize_list(data, 2).compute(lambda itr, c: sum(itr))
    assert [_run(t, i)[0] for i in range(2)] == [[sum(data[:5])], [sum(data[5:])]]


def test_collecting_idioms_still_collect(offline_env):
    data = list(range(6))
    t = offline_env.parallelize_list(data, 2).compute(lambda itr, c: [c.collect(x * 2) for x in itr])
    assert [_run(t, i)[0] for i in range(2)] == [[0, 2, 4], [6, 8, 10]]
    empty = offline_env.parallelize_list([], 1).compute(lambda itr, c: [c.collect(x) for x in itr])
    assert _run(empty)[0] == []


def test_a_flat_map_that_returns_instead_of_collecting_is_an_error(offline_env):
    t = offline_env.parallelize_list([1, 2], 1).flat_map(lambda x, c: x * 2).set_name("doubler")
    with pytest.raises(UserFunctionError) as info:
        _run(t)
    assert info.value.tset == "doubler"
    assert "returned 2 and collected nothing" in str(info.value)
