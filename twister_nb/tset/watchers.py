"""Watchers of a whole process: every job it drives, and the steps before any.

A job's own watchers subscribe to its environment (``env.subscribe``). Some
front ends cannot: ``twister-nb submit`` runs a program that makes its
environment itself, and a notebook cell wants to show the start-up of a job
that does not exist yet. Slow start-up steps (``starting the local Ray head``,
``connecting to Ray``, ``starting the JobMaster``) happen before a job has an
event log, in the driver. So this module keeps a process-wide list of
listeners: the runtime's executor hands them every event of every job it
drives, as it hands its own listeners, and the driver announces its start-up
steps here (:func:`startup_step`).

A listener that starts watching mid-step is told the steps still running
first, so a cell that opens a job while ``%load_ext``'s thread starts the
head still shows that step and its end.

Plain Python, no Ray: the API layer, because the runtime and the front ends
both import it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from twister_nb.events import StartupStep

__all__ = ["announce", "startup_step", "unwatch_process", "watch_process", "watched"]

Listener = Callable[[Any], None]

_lock = threading.Lock()
_listeners: list[Listener] = []
#: Steps announced as running and not ended yet, by name.
_running: dict[str, StartupStep] = {}


def watch_process(listener: Listener) -> None:
    """Call ``listener(event)`` with the start-up steps and every job event of
    this process from now on (the steps still running first)."""
    with _lock:
        _listeners.append(listener)
        running = list(_running.values())
    for event in running:
        listener(event)


def unwatch_process(listener: Listener) -> None:
    """Stop calling ``listener``; no error if it was not watching."""
    with _lock:
        with contextlib.suppress(ValueError):
            _listeners.remove(listener)


def announce(event: Any) -> None:
    """Hand ``event`` to the process's watchers (a listener that raises is
    skipped: a view must not break a job)."""
    with _lock:
        if isinstance(event, StartupStep):
            if event.state == "running":
                _running[event.step] = event
            else:
                _running.pop(event.step, None)
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # noqa: BLE001 - a broken view leaves the job alone
            pass


def watched() -> bool:
    """Whether anyone watches (the executor skips the hand-over otherwise)."""
    return bool(_listeners)


@contextlib.contextmanager
def startup_step(step: str) -> Iterator[None]:
    """Announce ``step`` as running, then as done (or failed) with its seconds."""
    began = time.monotonic()
    announce(StartupStep(step=step, time=time.time()))
    try:
        yield
    except BaseException:
        announce(StartupStep(step=step, state="failed", seconds=time.monotonic() - began,
                             time=time.time()))
        raise
    announce(StartupStep(step=step, state="done", seconds=time.monotonic() - began,
                         time=time.time()))
