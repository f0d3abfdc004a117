"""What a ``%%twister2`` cell shows besides its dashboard, and in whose words.

* :func:`tset_names`: the user's variable names of the TSets in the cell's
  namespace, by TSet ID, so the dashboard's stages and checkpoint lines say
  ``doubled`` where the plan says ``map`` (Beam's interactive runner names
  PCollections from the notebook's namespace the same way).
* :func:`quiet_what_the_dashboard_shows`: while a dashboard shows the
  checkpoints written and restored, the executor's printer does not print them
  a second time; :func:`put_back` restores the listeners at the end of the cell.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from twister_nb.events import CheckpointCommitted, Event, TSetRestored
from twister_nb.tset.tset import TLink, TSet

__all__ = ["put_back", "quiet_what_the_dashboard_shows", "tset_names"]


def tset_names(ns: MutableMapping[str, Any]) -> dict[str, str]:
    """TSet ID -> the variable the user bound it to (public names; the first
    name wins), so the dashboard says ``doubled`` where the plan says ``map``."""
    names: dict[str, str] = {}
    for name, value in list(ns.items()):
        if not name.startswith("_") and isinstance(value, (TSet, TLink)):
            names.setdefault(value.id, name)
    return names


def quiet_what_the_dashboard_shows(
        listeners: list[Callable[[Event], None]]) -> list[tuple[int, Callable[[Event], None]]]:
    """While a dashboard shows the checkpoints written and restored, the
    executor's printer does not print them too (one checkpoint line, not two).
    The swapped listeners, by position, for :func:`put_back`."""
    from twister_nb.runtime.executor import print_output

    swapped = []
    for i, listener in enumerate(listeners):
        if listener is print_output:
            listeners[i] = _without_materialized(listener)
            swapped.append((i, listener))
    return swapped


def _without_materialized(listener: Callable[[Event], None]) -> Callable[[Event], None]:
    def quiet(event: Event) -> None:
        if not isinstance(event, (CheckpointCommitted, TSetRestored)):
            listener(event)

    return quiet


def put_back(listeners: list[Callable[[Event], None]],
             swapped: list[tuple[int, Callable[[Event], None]]]) -> None:
    """Put the listeners swapped out (by position) back in their places."""
    for i, listener in swapped:
        if i < len(listeners):
            listeners[i] = listener
