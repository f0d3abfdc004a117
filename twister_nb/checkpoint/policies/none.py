"""``none`` (the default): nothing is checkpointed but ``persist()`` and ``snapshot()``."""

from __future__ import annotations

from twister_nb.checkpoint.policy import CheckpointPolicy, TaskInfo


class NoCheckpoints(CheckpointPolicy):
    """Groups nothing; finished tasks are still known, so ``snapshot()`` saves them."""

    name = "none"

    def assign_task_to_group(self, task: TaskInfo) -> None:
        return None
