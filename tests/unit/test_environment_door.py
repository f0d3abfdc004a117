"""The environment takes its executor and is the front ends' door to it."""

from __future__ import annotations

import pytest

from twister_nb.tset.environment import TSetEnvironment


class ListeningExecutor:
    """An executor with listeners, which emits one event per action."""

    def __init__(self):
        self.listeners = []
        self.runs = []
        self.cancelled = 0

    def banner_fields(self):
        return {"Cluster Type": "none (unit test)"}

    def execute(self, root, action, *, materialize_id=None):
        self.runs.append(action)
        for listener in self.listeners:
            listener({"kind": "action", "action": action})
        return [] if action in ("collect", "partitions") else None

    def release(self, tset_id):
        pass

    def close(self):
        pass

    def cancel(self):
        self.cancelled += 1
        return True

    def info(self):
        return {"status": "idle"}


def test_an_executor_instance_or_a_factory(capsys):
    executor = ListeningExecutor()
    env = TSetEnvironment(name="door", executor=executor, banner=False)
    assert env.info() == {"status": "idle"} and env.cancel() and executor.cancelled == 1
    assert capsys.readouterr().out == ""  # banner=False
    made = []

    def factory(env, *, attach_only):
        made.append((env.name, attach_only))
        return ListeningExecutor()

    TSetEnvironment(name="made", executor=factory)
    assert made == [("made", False)]
    assert "Job Name" in capsys.readouterr().out  # the banner by default


def test_listeners_and_hooks_see_each_action():
    executor = ListeningExecutor()
    env = TSetEnvironment(name="door", executor=executor, banner=False)
    events, hooked = [], []
    env.subscribe(events.append)
    env.add_action_hook(lambda action, root: hooked.append(action) or True)
    env.parallelize_list([1, 2], 2).collect()
    assert hooked == ["collect"] and events == [{"kind": "action", "action": "collect"}]
    env.unsubscribe(events.append)
    env.unsubscribe(events.append)  # twice is fine
    env.parallelize_list([1, 2], 2).collect()
    assert len(events) == 1 and len(hooked) == 2


def test_a_hook_skips_or_stops_an_action():
    executor = ListeningExecutor()
    env = TSetEnvironment(name="door", executor=executor, banner=False)

    def stop(action, root):
        raise KeyError(action)

    env.add_action_hook(lambda action, root: False)
    assert env.parallelize_list([1], 1).collect() is None and executor.runs == []
    env.add_action_hook(stop)
    with pytest.raises(KeyError):
        env.parallelize_list([1], 1).collect()
    env.remove_action_hook(stop)
    assert executor.runs == []
