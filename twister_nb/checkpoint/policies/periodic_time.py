"""``periodic_time``: every ``period.time`` (COMPSs's ``CheckpointPolicyPeriodicTime``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from twister_nb.checkpoint.params import parse_duration
from twister_nb.checkpoint.policy import CheckpointPolicy, TaskInfo
from twister_nb.errors import ConfigError


class PeriodicTime(CheckpointPolicy):
    """Checkpoints every finished, unsaved task once per period.

    ``period.time``: ``<n>s``, ``<n>m``, ``<n>h``, or a bare number of minutes.

    >>> PeriodicTime({"period.time": "1s"}).period
    1.0
    """

    name = "periodic_time"

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        if "period.time" not in params:
            raise ConfigError("checkpoint policy 'periodic_time' needs period.time "
                              "(e.g. --checkpoint-params period.time:30s)")
        self.period = parse_duration(params["period.time"])
        self._last = time.monotonic()

    def assign_task_to_group(self, task: TaskInfo) -> None:
        return None

    def tick(self, now: float) -> None:
        if now - self._last >= self.period:
            self._last = now
            self.checkpoint_finished()
