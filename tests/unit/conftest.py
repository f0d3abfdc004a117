"""Unit tests of the pure layers (tset, plan, exchange, config): no cluster.

As in Ray's unit conftest, starting Ray here is a bug: ``ray.init`` raises.
"""

import pytest


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch):
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("unit tests must not start Ray")

    monkeypatch.setattr(ray, "init", refuse)


class RecordingExecutor:
    """Stands in for the runtime: records what would run (a unit-test speed-up;
    the engine tests prove the real thing)."""

    def __init__(self, env, attach_only=False):
        self.runs = []

    def banner_fields(self):
        return {"Cluster Type": "none (unit test)", "Runtime": "-"}

    def execute(self, root, action, *, materialize_id=None):
        self.runs.append((root, action, materialize_id))
        return [] if action in ("collect", "partitions") else None

    def release(self, tset_id):
        pass

    def close(self):
        pass


@pytest.fixture
def offline_env():
    from twister_nb.tset import environment

    env = environment.TSetEnvironment(name="unit", resources=[{"instances": 4}],
                                      executor=RecordingExecutor)
    yield env
    env.close()
