"""``instantiated_group``: groups of N tasks in submission order (COMPSs's
``CheckpointPolicyInstantiatedGroup``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twister_nb.checkpoint.params import positive_int
from twister_nb.checkpoint.policy import CheckpointPolicy, TaskInfo


class InstantiatedGroup(CheckpointPolicy):
    """Tasks go N by N (``instantiated.group``, default 3) into groups as they
    are submitted; a full group closes, and its tasks are checkpointed as they
    finish. A last group that never fills is never closed (as in COMPSs).

    >>> policy = InstantiatedGroup({"instantiated.group": "2"})
    >>> tasks = [TaskInfo("m", "m-1", "f", 0, p, 3) for p in range(3)]
    >>> for t in tasks:
    ...     policy.instantiated(t)
    ...     policy.finished(t)
    >>> [t.partition for t in policy.due()]
    [0, 1]
    """

    name = "instantiated_group"

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self.size = positive_int(params, "instantiated.group", 3)
        self._current = 0

    def assign_task_to_group(self, task: TaskInfo) -> None:
        group = self.add_task_to_group(task, str(self._current))
        if group.size == self.size:
            self.close_group(str(self._current))
            self._current += 1
