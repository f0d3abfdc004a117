"""TSet IDs are stable across processes and change with the code."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from twister_nb.tset.identity import value_digest

PROGRAM = textwrap.dedent("""
    from twister_nb.tset import environment
    from twister_nb import SourceFunc

    class Stub:
        def __init__(self, env, attach_only=False): pass
        def banner_fields(self): return {}
        def close(self): pass

    env = environment.TSetEnvironment(name="x", resources=[{"instances": 4}], executor=Stub)

    class IntSource(SourceFunc):
        def __init__(self):
            super().__init__()
            self.i = 0
        def has_next(self):
            return self.i < LIMIT
        def next(self):
            self.i += 1
            return self.i

    FACTOR = 5
    def mul(itr, collector, ctx):
        for i in itr:
            collector.collect(i * FACTOR)

    t = env.create_source(IntSource(), 4).compute(mul).map(lambda x: x + 2).set_name("n")
    print(t.id)
""")


def _id(limit=10, factor="5"):
    code = PROGRAM.replace("LIMIT", str(limit)).replace("FACTOR = 5", f"FACTOR = {factor}")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]


def test_same_program_same_id_in_another_process():
    assert _id() == _id()


def test_changed_constant_or_global_changes_the_id():
    base = _id()
    assert _id(limit=11) != base
    assert _id(factor="6") != base


def test_digest_sees_closures_and_defaults():
    def make(k):
        return lambda x: x * k

    assert value_digest(make(2)) == value_digest(make(2))
    assert value_digest(make(2)) != value_digest(make(3))

    def f(x, y=1):
        return x + y

    def g(x, y=2):
        return x + y

    assert value_digest(f) != value_digest(g)


def test_ids_depend_on_parallelism_and_name(offline_env):
    a = offline_env.parallelize_list([1, 2, 3], 2).map(lambda x: x)
    b = offline_env.parallelize_list([1, 2, 3], 3).map(lambda x: x)
    assert a.id != b.id
    c = offline_env.parallelize_list([1, 2, 3], 2).map(lambda x: x)
    assert a.id == c.id
    assert c.set_name("named").id != a.id
