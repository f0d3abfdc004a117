"""Which driver process owns a job now: one at a time, taken over when it dies.

A job outlives its driver (a kernel, a script), so a new driver attaches to the
running JobMaster. Two live drivers would interleave actions and steal each
other's events, so the seat is held by one driver token while that driver
heartbeats; a driver silent for longer than the TTL (or one the caller knows is
dead: ``force``) loses it.

Plain Python, no Ray.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Driver:
    """The driver process that holds the seat."""

    token: str
    host: str
    pid: int
    since: float
    seen: float

    def public(self) -> dict[str, Any]:
        """What another process may learn about it."""
        return {"host": self.host, "pid": self.pid, "since": self.since}


class DriverSeat:
    """The job's one driver.

    Parameters
    ----------
    ttl : float
        Seconds a driver keeps the seat without a heartbeat.
    clock : callable
        ``time.time``; tests pass a fake.

    Examples
    --------
    >>> seat = DriverSeat(ttl=15.0, clock=lambda: 100.0)
    >>> seat.take("a", "host", 1) is None
    True
    >>> seat.take("b", "host", 2)
    {'host': 'host', 'pid': 1, 'since': 100.0}
    >>> seat.held_by("a")
    True
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl
        self._clock = clock
        self._driver: Driver | None = None
        #: The last sign of any driver (seated, heartbeat, left); the seat's creation.
        self._last_seen = clock()
        self._leaving = threading.Lock()

    def unattended_for(self) -> float:
        """Seconds since the job last had a live driver (0 while one heartbeats).

        >>> now = [100.0]
        >>> seat = DriverSeat(ttl=15.0, clock=lambda: now[0])
        >>> now[0] = 130.0; seat.unattended_for()
        30.0
        >>> _ = seat.take("a", "host", 1); now[0] = 140.0; seat.unattended_for()
        0.0
        >>> now[0] = 200.0; seat.unattended_for()  # no heartbeat since 130
        70.0
        """
        now = self._clock()
        if self._driver is not None:
            self._last_seen = max(self._last_seen, self._driver.seen)
            if now - self._driver.seen < self._ttl:
                return 0.0
        return now - self._last_seen

    def take(self, token: str, host: str, pid: int, force: bool = False) -> dict[str, Any] | None:
        """Seat the driver ``token``. Returns None when it got the seat, else the
        holder (a live driver that heartbeats, unless ``force``)."""
        current = self._driver
        now = self._clock()
        if (current is not None and current.token != token and not force
                and now - current.seen < self._ttl):
            return current.public()
        self._driver = Driver(token=token, host=host, pid=pid, since=now, seen=now)
        return None

    def heartbeat(self, token: str) -> bool:
        """Driver ``token`` is alive; False if it no longer holds the seat."""
        if self._driver is None or self._driver.token != token:
            return False
        self._driver.seen = self._clock()
        return True

    def leave(self, token: str) -> dict[str, Any] | None:
        """Driver ``token`` leaves (if it holds the seat): its host, pid and
        since, or None if it did not hold it (it left already). One check and
        change under a lock: the JobMaster answers many calls at once, and a
        leaving kernel may say so from two threads."""
        with self._leaving:
            if not self.held_by(token):
                return None
            assert self._driver is not None
            left, self._driver = self._driver.public(), None
            self._last_seen = self._clock()
            return left

    def held_by(self, token: str) -> bool:
        return self._driver is not None and self._driver.token == token

    def holder(self) -> dict[str, Any] | None:
        """The seated driver's host, pid and since, or None."""
        return None if self._driver is None else self._driver.public()
