"""The typed events and the JobMaster's event log: no cluster."""

from __future__ import annotations

import json

import pytest

from twister_nb.events import (ActionEnded, ActionStarted, CheckpointCommitted, DriverAttached,
                               DriverLeft, ErrorRaised, OutputPrinted, StageSubmitted, StageSummary,
                               TaskFinished, TSetReleased, TSetRestored, WorkersStarted, decode)
from twister_nb.runtime.event_log import EventLog

EVERY_KIND = [
    OutputPrinted(lines=("[worker-0] a", "[worker-1] b"), seq=1, time=2.0),
    DriverAttached(host="h", pid=7, seq=2, time=2.5),
    DriverLeft(host="h", pid=7, reason="kernel restarted", action=3),
    ActionEnded(action=3, state="cancelled", seconds=0.2),
    WorkersStarted(count=2),
    ActionStarted(action=1, action_kind="persist", stages=(
        StageSummary(index=0, label="map", tset_id="m-1", parallelism=4, output="persist",
                     tsets=(("source", "s-1"), ("map", "m-1"))),)),
    ActionEnded(action=1, state="failed", seconds=0.5),
    StageSubmitted(action=1, stage=0, tasks=4),
    TaskFinished(action=1, stage=0, partition=3, worker=1, records_in=10, records_out=10,
                 seconds=0.01, write_seconds=0.002),
    TSetRestored(tset_id="m-1", storage="memory"),
    TSetRestored(tset_id="m-1", storage="store", label="map", version=2, parts=4, bytes=100),
    CheckpointCommitted(tset_id="m-1", label="map", version=3, bytes=100, seconds=0.1,
                        where="file:///s"),
    ErrorRaised(action=1, message="boom", tset="map", tset_id="m-1", partition=0, worker=1),
    ErrorRaised(message="ValueError: x", traceback="Traceback ..."),
    TSetReleased(tset_id="m-1"),
]


@pytest.mark.parametrize("event", EVERY_KIND, ids=lambda e: type(e).__name__)
def test_every_kind_round_trips_through_json(event):
    data = json.loads(json.dumps(event.to_dict()))
    assert decode(data) == event


def test_wire_names_are_the_kinds_events_had_as_dicts():
    kinds = {type(e).__name__: e.to_dict()["kind"] for e in EVERY_KIND}
    assert kinds["ActionStarted"] == kinds["ActionEnded"] == "action"
    assert ActionStarted(action=1).to_dict()["state"] == "running"
    assert StageSubmitted().to_dict()["state"] == "submitted"
    assert {"output", "attached", "left", "workers", "stage", "task", "restored", "checkpoint",
            "error", "released"} <= set(kinds.values())
    with pytest.raises(ValueError, match="unknown event kind 'nope'"):
        decode({"kind": "nope"})


def test_events_are_frozen():
    with pytest.raises(AttributeError):
        WorkersStarted(count=1).count = 2  # type: ignore[misc]


def test_log_stamps_seq_and_time_and_reads_from_a_cursor():
    ticks = iter(range(100))
    log = EventLog(clock=lambda: float(next(ticks)))
    first = log.emit(WorkersStarted(count=1))
    log.emit(OutputPrinted(lines=("x",)))
    assert (first.seq, first.time) == (0, 0.0)
    events, cursor = log.since(0)
    assert [e.seq for e in events] == [0, 1] and cursor == 2
    assert log.since(cursor) == ([], 2)
    assert log.since(1)[0][0].lines == ("x",)


def test_log_drops_the_oldest_and_keeps_sequence_numbers():
    log = EventLog(max_events=3)
    for i in range(5):
        log.emit(OutputPrinted(lines=(str(i),)))
    events, cursor = log.since(0)
    assert [e.seq for e in events] == [2, 3, 4] and cursor == 5
    assert [e.seq for e in log.since(4)[0]] == [4]


def test_unseen_starts_at_the_drivers_acked_cursor():
    log = EventLog()
    for i in range(4):
        log.emit(OutputPrinted(lines=(str(i),)))
    log.ack("driver", 3)
    log.ack("driver", 1)  # an older poll answered late: the ack never goes back
    assert [e.seq for e in log.unseen(0, "driver")[0]] == [3]
    assert [e.seq for e in log.unseen(0, "other")[0]] == [0, 1, 2, 3]
    assert [e.seq for e in log.unseen(2)[0]] == [2, 3]
    log.forget("driver")
    assert [e.seq for e in log.unseen(0, "driver")[0]] == [0, 1, 2, 3]
    log.ack("a", 2)
    log.forget()
    assert len(log.unseen(0, "a")[0]) == 4
