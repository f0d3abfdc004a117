"""Twister2's ``TSetContext``: what a user function learns about its task."""

from __future__ import annotations

from typing import Any

from twister2.data.DataPartition import DataPartition

__all__ = ["TSetContext"]


class TSetContext:
    """The task's context, with Twister2's names: ``index`` and ``get_index()``
    (the partition), ``worker_id``, ``id``, ``name``, ``parallelism``, ``config``,
    and ``get_input(key)``, a :class:`~twister2.data.DataPartition.DataPartition`
    of the input added with ``add_input(key, tset)``.

    It wraps the :class:`twister_nb.TSetContext` the task runs with.
    """

    def __init__(self, context: Any) -> None:
        self._context = context

    def get_input(self, key: str) -> DataPartition:
        return DataPartition(list(self._context.get_input(key)), self._context.index)

    def get_index(self) -> int:
        return self._context.index

    @property
    def index(self) -> int:
        return self._context.index

    @property
    def worker_id(self) -> int:
        return self._context.worker_id

    @property
    def id(self) -> str:  # noqa: A003 - Twister2's name
        return self._context.id

    @property
    def name(self) -> str:
        return self._context.name

    @property
    def parallelism(self) -> int:
        return self._context.parallelism

    @property
    def config(self) -> dict[str, Any]:
        return self._context.config

    def __repr__(self) -> str:
        return f"TSetContext(name={self.name!r}, index={self.index}, worker_id={self.worker_id})"
