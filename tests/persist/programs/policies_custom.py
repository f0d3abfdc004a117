"""Custom checkpoint policies for the tests (``--checkpoint policies_custom:EvenPartitions``)."""

from twister_nb.checkpoint import CheckpointPolicy


class EvenPartitions(CheckpointPolicy):
    """Checkpoints the tasks of even partitions, each in a group of its own."""

    def assign_task_to_group(self, task):
        if task.partition % 2 == 0:
            name = f"{task.stage}-{task.partition}"
            self.add_task_to_group(task, name)
            self.close_group(name)


class Broken(CheckpointPolicy):
    """A policy with a bug: it raises when a task is instantiated."""

    def assign_task_to_group(self, task):
        raise KeyError(f"no group for {task.tset}")
