"""``finished_tasks``: every N finished tasks (COMPSs's ``CheckpointPolicyFinishedTasks``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twister_nb.checkpoint.params import positive_int
from twister_nb.checkpoint.policy import CheckpointPolicy, TaskInfo


class FinishedTasks(CheckpointPolicy):
    """Once ``finished.tasks`` (default 3) tasks finished and are not
    checkpointed, checkpoints them all.

    >>> policy = FinishedTasks({"finished.tasks": "2"})
    >>> for p in range(3):
    ...     policy.finished(TaskInfo("m", "m-1", "f", 0, p, 3))
    >>> [t.partition for t in policy.due()], policy.unsaved()
    ([0, 1], 1)
    """

    name = "finished_tasks"

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self.every = positive_int(params, "finished.tasks", 3)

    @property
    def saves_each_task_as_it_finishes(self) -> bool:
        return self.every == 1

    def assign_task_to_group(self, task: TaskInfo) -> None:
        return None

    def task_finished(self, task: TaskInfo) -> None:
        if self.unsaved() >= self.every:
            self.checkpoint_finished()
