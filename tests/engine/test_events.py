"""The driver gets every event of an action exactly once: what user functions
print comes back as ``[worker-i]`` lines, none lost and none twice, whether the
action ends before the first poll (its events come with the outcome) or runs
long enough to be polled (lines streamed while the tasks run)."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
import ray

from twister_nb.errors import UserFunctionError
from twister_nb.events import ActionEnded, ActionStarted, OutputPrinted, TaskFinished

LINE = re.compile(r"^\[worker-(\d+)\] (\w+) (\d+)$")


def _lines(text: str, tag: str) -> Counter:
    """How many times each ``[worker-i] <tag> <n>`` line was printed, by n."""
    found = Counter()
    for line in text.splitlines():
        match = LINE.match(line)
        if match and match.group(2) == tag:
            found[int(match.group(3))] += 1
    return found


def _watch(env) -> list:
    seen: list = []
    env._executor.listeners.append(seen.append)
    return seen


def test_short_action_prints_every_line_once(fresh_env, capsys):
    seen = _watch(fresh_env)

    def shout(x):
        print(f"short {x}")
        return x

    capsys.readouterr()
    for _ in range(5):  # several actions, each over before the driver's first poll
        assert fresh_env.parallelize_list(list(range(40)), 4).map(shout).collect() == list(range(40))
        # the action's own events came with its outcome: its end is already seen
        ends = [e.action for e in seen if isinstance(e, ActionEnded) and e.state == "done"]
        assert ends[-1] == ray.get(fresh_env._executor.master.info.remote())["actions"]
        found = _lines(capsys.readouterr().out, "short")
        assert found == Counter(range(40)), found
    for _ in range(3):  # silent and short: no call after the outcome, which brought them
        assert fresh_env.parallelize_list(list(range(8)), 4).map(lambda x: -x).collect() == [
            -x for x in range(8)]
        ends = [e.action for e in seen if isinstance(e, ActionEnded) and e.state == "done"]
        assert ends[-1] == ray.get(fresh_env._executor.master.info.remote())["actions"]
    seqs = [e.seq for e in seen]
    assert seqs == sorted(set(seqs)), "an event was delivered twice or out of order"


def test_long_action_streams_every_line_once(fresh_env, capsys):
    seen = _watch(fresh_env)

    def slow(x):
        print(f"slow {x}")
        time.sleep(0.06)  # a task takes ~0.6 s: polled several times, lines streamed
        return x

    capsys.readouterr()
    started = time.perf_counter()
    assert fresh_env.parallelize_list(list(range(40)), 4).map(slow).collect() == list(range(40))
    assert time.perf_counter() - started > 2 * fresh_env._executor._poll
    found = _lines(capsys.readouterr().out, "slow")
    assert found == Counter(range(40)), found
    seqs = [e.seq for e in seen]
    assert seqs == sorted(set(seqs)), "an event was delivered twice or out of order"
    # nothing of the action was left behind for a later poll
    events, _ = ray.get(fresh_env._executor.master.events.remote(fresh_env._executor._cursor))
    assert not [e for e in events if isinstance(
        e, (OutputPrinted, TaskFinished, ActionStarted, ActionEnded))], events


def test_lines_printed_as_a_task_ends_stay_with_their_action(fresh_env, capsys):
    """A worker streams these lines with a call of its own, sent just before its
    task returns (or fails): they are printed by the action that made them, not
    by the next one."""
    def late(x):
        time.sleep(0.3)
        print(f"late {x}")  # streamed (the task has run > 0.25 s), then it returns
        return x

    def fails(x):
        print(f"failing {x}")
        raise ValueError(f"no {x}")

    for _ in range(10):  # a race when it was wrong: about half the runs lost a line
        capsys.readouterr()
        assert fresh_env.parallelize_list(list(range(4)), 4).map(late).collect() == [0, 1, 2, 3]
        found = _lines(capsys.readouterr().out, "late")
        assert found == Counter(range(4)), found
    capsys.readouterr()
    with pytest.raises(UserFunctionError):
        fresh_env.parallelize_list([7], 1).map(fails).collect()
    found = _lines(capsys.readouterr().out, "failing")
    assert found == Counter([7]), found


def test_restore_fast_path_reports_once(fresh_env, capsys):
    data = fresh_env.parallelize_list(list(range(20)), 2).map(lambda x: x + 1)
    data.persist()
    capsys.readouterr()
    again = fresh_env.parallelize_list(list(range(20)), 2).map(lambda x: x + 1).persist()
    assert again.collect() == [x + 1 for x in range(20)]
    out = capsys.readouterr().out
    assert out.count("restored from its checkpoint") == 1, out
