"""The job's event log: the one place events are stamped and kept.

Watchers (a driver, a dashboard, ``twister-nb status``) each read the log from
their own cursor, so the JobMaster never pushes to anyone and a watcher that
comes late or polls slowly loses nothing but what fell off the bounded log.
A driver also says, with each poll, which events it has seen (its acked
cursor): the answer to its ``execute`` then brings only the newer ones, so a
short action costs no extra call to drain its events.

Plain Python, thread-safe (the JobMaster actor runs calls concurrently), no Ray.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from twister_nb.events import Event

#: Events kept; older ones are dropped (a watcher that far behind misses them).
MAX_EVENTS = 20000


class EventLog:
    """A bounded, append-only list of events with global sequence numbers.

    Parameters
    ----------
    max_events : int
        How many of the newest events are kept.
    clock : callable
        Gives each event its ``time`` (``time.time``; tests pass a fake).

    Examples
    --------
    >>> from twister_nb.events import OutputPrinted
    >>> log = EventLog(max_events=2, clock=lambda: 1.0)
    >>> for i in range(3):
    ...     _ = log.emit(OutputPrinted(lines=(str(i),)))
    >>> events, cursor = log.since(0)
    >>> [e.seq for e in events], cursor
    ([1, 2], 3)
    """

    def __init__(self, max_events: int = MAX_EVENTS,
                 clock: Callable[[], float] = time.time) -> None:
        self._max = max_events
        self._clock = clock
        self._events: list[Event] = []
        self._first_seq = 0
        self._lock = threading.Lock()
        #: Per driver token: the cursor it last asked events from (all before it seen).
        self._acked: dict[str, int] = {}

    def emit(self, event: Event) -> Event:
        """Append ``event``, stamped with the next ``seq`` and the time; returns it."""
        with self._lock:
            stamped = dataclasses.replace(event, seq=self._first_seq + len(self._events),
                                          time=self._clock())
            self._events.append(stamped)
            if len(self._events) > self._max:
                drop = len(self._events) - self._max
                del self._events[:drop]
                self._first_seq += drop
            return stamped

    def since(self, cursor: int) -> tuple[list[Event], int]:
        """Events from ``cursor`` on (those still kept), and the cursor to ask with next."""
        with self._lock:
            start = max(0, cursor - self._first_seq)
            return self._events[start:], self._first_seq + len(self._events)

    def end(self) -> int:
        """The cursor of the next event: a watcher that asks from it sees what comes next."""
        with self._lock:
            return self._first_seq + len(self._events)

    def ack(self, token: str, cursor: int) -> None:
        """Driver ``token`` asked from ``cursor``: it has seen every event before it."""
        with self._lock:
            self._acked[token] = max(cursor, self._acked.get(token, 0))

    def unseen(self, cursor: int, token: str | None = None) -> tuple[list[Event], int]:
        """What a driver that asked from ``cursor`` (and polled since) has not seen
        yet: events from the newer of ``cursor`` and its acked cursor. It may get
        the events of its last poll again; it drops them by their ``seq``."""
        if token is not None:
            with self._lock:
                cursor = max(cursor, self._acked.get(token, 0))
        return self.since(cursor)

    def forget(self, token: str | None = None) -> None:
        """Drop the acked cursor of ``token`` (of every driver when None)."""
        with self._lock:
            if token is None:
                self._acked.clear()
            else:
                self._acked.pop(token, None)
