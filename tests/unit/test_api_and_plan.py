"""The API builds the right logical graph; the planner fuses and cuts stages."""

from __future__ import annotations

import operator

import pytest

from twister_nb.plan.planner import plan
from twister_nb.tset import ops
from twister_nb.tset.signature import Convention, convention


def test_building_is_lazy(offline_env):
    t = offline_env.parallelize_list(list(range(10)), 2).map(lambda x: x).filter(bool)
    assert offline_env._executor.runs == []
    t.collect()
    assert [a for _, a, _ in offline_env._executor.runs] == ["collect"]


def test_direct_chain_fuses_into_one_stage(offline_env):
    t = offline_env.parallelize_list(list(range(10)), 2).map(lambda x: x).flat_map(
        lambda x, c: c.collect(x)).compute(lambda itr: sum(itr))
    p = plan(t.op, "collect")
    assert len(p.stages) == 1
    assert p.final.parallelism == 2


def test_exchanges_cut_stages(offline_env):
    t = offline_env.parallelize_list(list(range(10)), 2).map(lambda x: x)
    r = t.reduce(operator.add).map(lambda s: s)
    p = plan(r.op, "collect")
    assert [s.output for s in p.stages] == ["exchange", "collect"]
    assert p.final.parallelism == 1
    j = t.map_to_tuple(lambda x: (x, x)).join(t.map_to_tuple(lambda x: (x, 1)))
    p = plan(j.map(lambda kv: kv).op, "collect")
    assert len(p.stages) == 3  # two producers, one join


def test_shared_exchange_is_planned_once(offline_env):
    base = offline_env.parallelize_list(list(range(10)), 2)
    g = base.gather()
    both = g.map(lambda x: x).union(g.map(lambda x: -x))
    p = plan(both.op, "collect")
    assert len(p.stages) == 2


def test_conventions_by_arity():
    assert convention("map", lambda v, ctx: v) is Convention.VALUE_CTX
    assert convention("compute", lambda itr: 1) is Convention.ITER_RETURN
    assert convention("compute", lambda itr, ctx: 1) is Convention.ITER_CTX_RETURN
    assert convention("compute", lambda itr, collector: 1) is Convention.ITER_COLLECT
    assert convention("map", print) is Convention.VALUE  # no signature: the simplest
    with pytest.raises(TypeError, match="a map function must be"):
        convention("map", lambda a, b, c: a)
    with pytest.raises(TypeError, match="needs a function"):
        convention("map", 3)


def test_parallelism_rules(offline_env):
    t = offline_env.parallelize_list(list(range(10)))
    assert t.parallelism == 4  # from resources
    assert t.reduce(operator.add).parallelism == 1
    assert t.gather().parallelism == 1
    assert t.all_reduce(operator.add).parallelism == 4
    assert t.replicate(3).parallelism == 3
    with pytest.raises(ValueError, match="replications"):
        t.replicate(0)
    with pytest.raises(ValueError, match="parallelism"):
        offline_env.parallelize_list([1], -1)


def test_logical_nodes_are_frozen(offline_env):
    t = offline_env.parallelize_list([1]).map(lambda x: x)
    with pytest.raises(Exception):
        t.op.parallelism = 9
    assert isinstance(t.op, ops.Map)
    assert [type(n).__name__ for n in t.op.post_order()] == ["Parallelize", "Direct", "Map"]


def test_loop_variables_offline_start_at_their_defaults_and_need_init(offline_env):
    from twister_nb.tset.variables import LoopVariables, TSetReference

    saved = []
    variables = LoopVariables(load=lambda: {"i": 4, "t": TSetReference("abc", "pts", 2, False)},
                              save=lambda snap: saved.append(snap) or len(saved),
                              handle=lambda ref: ("handle", ref.tset_id))
    assert variables.init("i", 0) == 4                      # the committed value wins
    assert variables.init("new", 7) == 7                    # a variable it never committed
    assert variables.init("t", None) == ("handle", "abc")  # a TSet comes back as a handle
    with pytest.raises(KeyError, match="init_variable"):
        variables.update("typo", 1)
    variables.update("i", 5)
    assert variables.commit() == 1
    assert saved[0]["i"] == 5 and saved[0]["new"] == 7
