"""User mistakes fail clearly, before anything runs where they can; a failing
user function names its TSet, partition and worker; workers stay few."""

from __future__ import annotations

import threading

import pytest
import ray

from twister_nb import SourceFunc
from twister_nb.errors import UserFunctionError


def test_failing_user_function_is_one_clear_error(fresh_env):
    def explode(x):
        if x == 7:
            raise ValueError(f"bad record {x}")
        return x

    t = fresh_env.parallelize_list(list(range(12)), 4).map(explode).set_name("exploder")
    with pytest.raises(UserFunctionError) as info:
        t.collect()
    err = info.value
    assert err.tset == "exploder"
    assert err.partition == 2
    assert err.worker in (0, 1)
    text = str(err)
    assert "ValueError: bad record 7" in text
    assert "in explode" in text  # the user's own frame
    assert "twister_nb/runtime" not in err.user_traceback  # ours left out
    status = ray.get(fresh_env._executor.master.info.remote())["status"]
    assert status == "failed"
    # after the fix, the same job runs again
    assert fresh_env.parallelize_list([1, 2], 2).map(lambda x: x + 1).collect() == [2, 3]


def test_wrong_arity_fails_at_build_time(env):
    t = env.parallelize_list([1], 1)
    with pytest.raises(TypeError, match=r"map\(\).*takes 3 positional"):
        t.map(lambda a, b, c: a)
    with pytest.raises(TypeError, match="reduce"):
        t.reduce(lambda a: a)
    with pytest.raises(TypeError, match="flat_map"):
        t.flat_map(lambda a: a)


def test_source_func_that_is_not_one(env):
    class NotASource:
        def next(self):
            return 1

    with pytest.raises(TypeError, match="has_next"):
        env.create_source(NotASource())
    with pytest.raises(TypeError, match="instance"):
        env.create_source(SourceFunc)


def test_unpicklable_closure_fails_before_running(env):
    lock = threading.Lock()
    with pytest.raises(TypeError, match="cannot be sent to the workers"):
        env.parallelize_list([1], 1).map(lambda x: (lock, x))


def test_bad_parallelism_and_resources(ray_cluster):
    from twister_nb import TSetEnvironment

    with pytest.raises(ValueError, match="instances"):
        TSetEnvironment(resources=[{"cpu": 1, "instances": 0}])


def test_bad_partition_function_result(env):
    from twister_nb import PartitionFunc

    class Wrong(PartitionFunc):
        def partition(self, source_index, value):
            return 99

    with pytest.raises(UserFunctionError, match="returned 99"):
        env.parallelize_list([1, 2], 2).partition(Wrong()).collect()


def test_high_parallelism_uses_few_workers(fresh_env):
    # parallelism 100 on a 2-CPU cluster: 2 worker processes, not 100
    got = fresh_env.parallelize_list(list(range(1000)), 100).map(lambda x, ctx: ctx.worker_id).collect()
    assert set(got) == {0, 1}
    info = ray.get(fresh_env._executor.master.info.remote())
    assert info["workers"] == 2
