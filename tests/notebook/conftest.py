"""Fixtures of the notebook tests.

``job_events`` records the events of real jobs on the session's Ray cluster
(the executor's listeners get every JobMaster event), so the dashboard tests
replay what a job really emits. ``ip`` is jupysql's ``TestingShell``: an
IPython shell whose ``run_cell`` re-raises, with twister_nb loaded and every
display recorded.
"""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from notebook_helpers import run_seed
from twister_nb.events import Event


class TestingShell(InteractiveShell):
    """An IPython shell whose ``run_cell`` raises the cell's error."""

    def run_cell(self, *args: Any, **kwargs: Any) -> Any:
        result = super().run_cell(*args, **kwargs)
        result.raise_error()
        return result


@pytest.fixture
def ip():
    InteractiveShell.clear_instance()
    shell = TestingShell.instance()
    shell.displayed = []

    def publish(data, metadata=None, source=None, *, transient=None, update=False, **kw):
        shell.displayed.append({"data": data, "transient": transient, "update": update})

    shell.display_pub.publish = publish
    shell.run_line_magic("load_ext", "twister_nb")
    try:
        yield shell
    finally:
        magics = shell.magics_manager.registry["TwisterMagics"]
        magics.session.close_all()
        TestingShell.clear_instance()


@pytest.fixture
def magics(ip):
    return ip.magics_manager.registry["TwisterMagics"]


@pytest.fixture(scope="session")
def job_events(ray_cluster) -> dict[str, list[Event]]:
    """Events of real actions, by scenario: ``seed`` (the tutorial: persist,
    then reduce + for_each), ``error`` (a map that raises), ``restored`` (the
    second cache() of a cached TSet)."""
    from twister_nb import TSetEnvironment

    env = TSetEnvironment(name="nb-events", resources=[{"instances": 4}])
    recorded: list[Event] = []
    env.subscribe(recorded.append)

    def take() -> list[Event]:
        out = list(recorded)
        recorded.clear()
        return out

    def boom(x):
        raise ValueError(f"bad value {x!r}")

    events = {}
    try:
        run_seed(env)
        events["seed"] = take()
        with pytest.raises(Exception, match="bad value"):
            env.parallelize_list([1, 2, 3], 2).map(boom).collect()
        events["error"] = take()
        plus_one = env.parallelize_list(list(range(8)), 2).map(lambda x: x + 1)
        first = plus_one.cache()
        take()
        again = plus_one.cache()  # held by the workers already: found, not recomputed
        events["restored"] = take()
        del first, again
    finally:
        env.close()
    return events
