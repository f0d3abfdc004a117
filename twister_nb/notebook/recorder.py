"""What a ``%%twister2`` cell sees of its job's actions, and the offline job.

:class:`ActionRecorder` is the action hook a cell adds to its job's
environment (``env.add_action_hook``) for the length of the cell: it notes
the root of every action (the graph view draws them), shows the dashboard at
the first one, and in a dry run lets nothing run. The environment calls it
before each action; nothing of the job is replaced.

:func:`offline_environment` is the job of a dry run when the notebook has no
job yet: a ``TSetEnvironment`` given an :class:`OfflineExecutor`, which never
touches Ray, and no banner.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable
from typing import Any

from twister_nb.tset.environment import TSetEnvironment
from twister_nb.tset.executor import Listener
from twister_nb.tset.ops import LogicalOp

__all__ = ["DATA_ACTIONS", "ActionRecorder", "DryRunStop", "OfflineExecutor",
           "offline_environment"]

#: Actions whose result the cell's code reads: a dry run cannot go past them.
DATA_ACTIONS = ("collect", "partitions")


class DryRunStop(Exception):
    """Raised by a dry run's recorder at the first action that returns data."""


class ActionRecorder:
    """A cell's action hook: records ``(action, root)`` and decides whether it runs.

    Parameters
    ----------
    dry_run : bool
        Run nothing: actions that return nothing are skipped, the first one
        that returns data raises :class:`DryRunStop`.
    on_first_action : callable
        Called before the cell's first action runs (it shows the dashboard).
    on_action : callable, optional
        Called before every action that runs, after it is recorded (the live
        graph adds its root).
    """

    def __init__(self, dry_run: bool, on_first_action: Callable[[], None],
                 on_action: Callable[[], None] | None = None) -> None:
        self.dry_run = dry_run
        self.on_first_action = on_first_action
        self.on_action = on_action
        self.actions: list[tuple[str, LogicalOp]] = []
        #: Set for a background cell: actions of other threads (cells run while
        #: it works) are not its own, and run unrecorded.
        self.thread: int | None = None

    def __call__(self, action: str, root: LogicalOp) -> bool:
        __tracebackhide__ = True
        if self.thread is not None and threading.get_ident() != self.thread:
            return True
        self.actions.append((action, root))
        if self.dry_run:
            if action in DATA_ACTIONS:
                raise DryRunStop(action)
            return False
        if len(self.actions) == 1:
            self.on_first_action()
        if self.on_action is not None:
            self.on_action()
        return True


class OfflineExecutor:
    """The executor of a job that must not run: a dry run's when the notebook
    has no job yet. It never touches Ray."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []

    def banner_fields(self) -> dict[str, str]:
        return {"Cluster Type": "none (dry run)", "Runtime": f"Python {platform.python_version()}"}

    def execute(self, root: LogicalOp, action: str, *, materialize_id: str | None = None) -> Any:
        raise RuntimeError(
            f"{root.label!r} belongs to the offline job of a %%twister2 --dry-run cell, which "
            "cannot run actions; run the cell again without --dry-run")

    def release(self, tset_id: str) -> None:
        pass

    def close(self) -> None:
        pass

    def cancel(self) -> bool:
        return False  # it never runs an action

    def info(self) -> dict[str, Any]:
        return {"status": "offline", "workers": 0, "cached": {}, "persisted": []}

    def commit_variables(self, snapshot: dict[str, Any]) -> int:
        raise RuntimeError("the offline job of a %%twister2 --dry-run cell commits nothing; "
                           "run the cell again without --dry-run")

    def committed_variables(self) -> dict[str, Any] | None:
        return None  # nothing was ever committed: every variable starts at its default

    def snapshot(self) -> dict[str, Any]:
        return {"tsets": [], "partitions": 0, "bytes": 0}  # nothing ever ran

    def set_checkpoint_policy(self, policy: str, params: Any = None) -> dict[str, Any]:
        return {"policy": policy, "params": params}  # nothing runs, nothing is checkpointed

    def events(self, cursor: int = 0) -> tuple[list[Any], int]:
        return [], 0

    def detach(self, reason: str) -> None:
        pass


def offline_environment(name: str | None = None, parallelism: int | None = None) -> TSetEnvironment:
    """A job that builds graphs but never runs (no cluster, no banner)."""
    resources = [{"instances": parallelism}] if parallelism else None
    return TSetEnvironment(name=name, resources=resources, executor=OfflineExecutor(),
                           banner=False)
