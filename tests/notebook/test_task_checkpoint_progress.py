"""The dashboard's state counts, per stage, the tasks checkpointed and recovered
(from the JobMaster's TaskCheckpointed and TaskFinished(recovered=True) events)."""

from __future__ import annotations

from twister_nb.events import (ActionStarted, StageSubmitted, StageSummary, TaskCheckpointed,
                               TaskFinished)
from twister_nb.notebook.progress import JobProgress, stage_numbers


def test_stage_counts_checkpointed_and_recovered_tasks():
    progress = JobProgress("job-1", "job")
    progress.feed(ActionStarted(action=1, action_kind="collect", stages=(
        StageSummary(index=0, label="work", tset_id="w-1", parallelism=4, output="collect",
                     tsets=(("work", "w-1"),)),)))
    progress.feed(StageSubmitted(action=1, stage=0, tasks=4))
    for p in range(3):
        progress.feed(TaskFinished(action=1, stage=0, partition=p, recovered=p < 2))
    progress.feed(TaskCheckpointed(action=1, stage=0, partition=2, label="work", bytes=10))
    stage = progress.stages[0]
    assert (stage["done"], stage["recovered"], stage["checkpointed"]) == (3, 2, 1)
    assert stage_numbers(stage).endswith("\u00b7 1 checkpointed \u00b7 2 recovered")
