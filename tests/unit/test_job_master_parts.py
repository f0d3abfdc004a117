"""The JobMaster's plain parts, without Ray: the job record writer, the driver
seat, the scheduler's placement and task inputs, and which workers move to a
node that joined."""

from __future__ import annotations

import pickle
import threading
import time

import pytest

from twister_nb.errors import PartitionLostError
from twister_nb.plan.physical import (CacheOutput, DiscardOutput, ExchangeInput, FetchedRead,
                                      LocalRead, MaterializedInput, PersistOutput, ReturnOutput,
                                      SendOutput, StagePlan, StoreRead, TaskCall, task_output)
from twister_nb.runtime.drivers import DriverSeat
from twister_nb.runtime.job_record import JobRecord
from twister_nb.runtime.rebalance import Move, plan_moves
from twister_nb.runtime.scheduler import Placement, task_inputs
from twister_nb.checkpoint.tasks import TaskSave
from twister_nb.storage import CheckpointStore
from twister_nb.storage.manifest import Checkpoint, PartInfo


class SlowStore:
    """Stands in for the store: counts record writes, each taking a while."""

    def __init__(self, delay: float = 0.05, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.writes: list[dict] = []
        self.released = []
        self.lock = threading.Lock()

    def acquire_lease(self, job_id, owner, ttl):
        return f"lease of {owner}"

    def renew_lease(self, lease):
        return lease

    def release_lease(self, lease):
        self.released.append(lease)

    def read_job(self, job_id):
        return {"created": 1.0, "restarts": 0, "persisted": {"old": {}}, "program": {"p": 1}}

    def write_job(self, job_id, record):
        time.sleep(self.delay)
        if self.fail and self.writes:
            raise OSError("the store is down")
        with self.lock:
            self.writes.append(record)


def test_record_open_counts_a_restart_and_keeps_what_it_had():
    store = SlowStore(delay=0)
    record = JobRecord(store, "job-1")
    record.open("name", 5.0, {"a": 1, "s3.secret_key": "x"}, None, "127.0.0.1:1")
    first = store.writes[0]
    assert first["restarts"] == 1 and first["created"] == 1.0 and first["program"] == {"p": 1}
    assert first["config"] == {"a": 1} and first["status"] == "running"
    record.close("finished")
    assert store.writes[-1]["status"] == "finished"
    assert store.released == ["lease of JobMaster of job-1 on Ray cluster 127.0.0.1:1"]


def test_record_writer_coalesces_a_burst_into_few_writes():
    store = SlowStore(delay=0.05)
    record = JobRecord(store, "job-1")
    record.open("name", 0.0, {})
    for i in range(50):
        record.update(step=i)
    record.add_persisted("t-1", {"version": 0})
    assert record.flush(timeout=10) is True
    assert store.writes[-1]["step"] == 49
    assert store.writes[-1]["persisted"] == {"old": {}, "t-1": {"version": 0}}
    assert len(store.writes) <= 4, len(store.writes)  # the opening write and a few coalesced
    record.close("finished")


def test_record_write_failure_is_reported_and_flush_still_returns():
    store = SlowStore(delay=0, fail=True)
    said: list[str] = []
    record = JobRecord(store, "job-1", report=said.append)
    record.open("name", 0.0, {})
    record.update(status="failed")
    assert record.flush(timeout=10) is True
    assert said and "could not update the job record" in said[0]
    record.close("failed")


def test_record_carries_the_live_view_refreshed_with_the_lease_and_dropped_at_close():
    store = SlowStore(delay=0)
    store.read_job = lambda job_id: {"live_view": {"pid": 1, "status": "idle"}}  # a killed one's
    state = {"status": "idle", "workers": 0}
    record = JobRecord(store, "job-1", lease_ttl=0.3)  # renewed every 0.1 s
    record.open("name", 0.0, {}, view=lambda: dict(state))
    opened = store.writes[0]["live_view"]
    assert {k: opened[k] for k in state} == state and opened["published"] > 0
    assert "pid" not in opened  # not the killed JobMaster's view
    state.update(status="running", workers=2)
    record.publish()
    assert record.flush(10) and store.writes[-1]["live_view"]["status"] == "running"
    seen = store.writes[-1]["live_view"]["published"]
    state["workers"] = 3  # a change no event publishes: the next renewal does
    deadline = time.monotonic() + 10
    while store.writes[-1]["live_view"]["workers"] != 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.writes[-1]["live_view"]["workers"] == 3
    assert store.writes[-1]["live_view"]["published"] > seen
    record.close("finished")
    assert "live_view" not in store.writes[-1] and store.writes[-1]["status"] == "finished"
    record.publish()  # after close: nothing
    assert record.flush(10) and "live_view" not in store.writes[-1]


def test_record_without_a_store_is_a_no_op():
    record = JobRecord(None, "job-1")
    record.open("name", 0.0, {})
    record.update(status="failed")
    assert record.get("status") is None and record.flush() is True
    record.close("finished")


def test_record_on_a_real_store(tmp_path):
    store = CheckpointStore.from_uri((tmp_path / "s").as_uri(), signing_key=b"k" * 32)
    record = JobRecord(store, "job-1")
    record.open("name", 0.0, {"x": 1})
    record.add_persisted("t-1", {"version": 3})
    assert record.flush(10)
    assert store.read_job("job-1")["persisted"] == {"t-1": {"version": 3}}
    record.close("finished")
    assert store.read_job("job-1")["status"] == "finished"


def test_driver_seat_one_live_driver_at_a_time():
    now = [100.0]
    seat = DriverSeat(ttl=15.0, clock=lambda: now[0])
    assert seat.take("a", "h", 1) is None
    assert seat.take("b", "h", 2) == {"host": "h", "pid": 1, "since": 100.0}
    assert seat.take("b", "h", 2, force=True) is None and seat.held_by("b")
    assert seat.heartbeat("a") is False
    now[0] += 10
    assert seat.heartbeat("b") is True
    now[0] += 14
    assert seat.take("c", "h", 3) is not None  # b heartbeat 14 s ago: still live
    now[0] += 2
    assert seat.take("c", "h", 3) is None  # silent for 16 s: taken over
    seat.leave("b")  # not the holder: nothing changes
    assert seat.holder()["pid"] == 3
    seat.leave("c")
    assert seat.holder() is None


def _stage(**kw) -> StagePlan:
    base = dict(index=1, label="s", tset_id="s-1", parallelism=4, output="collect")
    return StagePlan(**{**base, **kw})


def test_placement_round_robin_and_owners():
    placement = Placement()
    assert [placement.worker_for(p, 3) for p in range(5)] == [0, 1, 2, 0, 1]
    placement.hold("c-1", parallelism=4, workers=2)
    assert placement.holds("c-1") and placement.owner("c-1", 3) == 1
    assert placement.cached() == {"c-1": 4}
    assert placement.drop("c-1") == [0, 1] and placement.drop("c-1") == []
    with pytest.raises(PartitionLostError, match="no worker holds it"):
        placement.owner("c-1", 0)


def test_placement_says_what_each_worker_holds():
    placement = Placement()
    placement.hold("c-1", parallelism=4, workers=3)
    placement.hold("c-2", parallelism=2, workers=3)
    assert sorted(placement.held_by(0)) == [("c-1", 0), ("c-1", 3), ("c-2", 0)]
    assert placement.held_per_worker() == {0: 3, 1: 2, 2: 1}


def test_a_new_node_takes_the_least_loaded_worker_of_the_most_crowded_node():
    # workers 0, 1, 2 on "a", 3 on "b"; "c" and "d" joined
    moves = plan_moves(["a", "a", "a", "b"], ["a", "b", "c", "d"], {0: 2, 1: 1, 2: 1})
    assert moves == [Move(worker=1, source="a", target="c"),
                     Move(worker=2, source="a", target="d")]
    # never a node left empty: one worker per node already
    assert plan_moves(["a", "b"], ["a", "b", "c"], {}) == []
    # a lost node's workers restarted on "a": a new node takes one of them
    assert plan_moves(["a", "a"], ["a", "c"], {}) == [Move(worker=0, source="a", target="c")]


def test_task_inputs_local_fetched_store_and_exchange():
    placement = Placement()
    placement.hold("cached", parallelism=4, workers=2)
    stage = _stage(exchange_inputs=[ExchangeInput(stage=0, partitioned=True),
                                    ExchangeInput(stage=0, partitioned=False)],
                   materialized_inputs=[MaterializedInput("cached", 4),
                                        MaterializedInput("bcast", 1, storage="memory"),
                                        MaterializedInput("stored", 4, storage="store")])
    placement.hold("bcast", parallelism=1, workers=2)
    outputs = {0: [["r0b0", "r0b1"], ["r1b0", "r1b1"]]}
    counts, reads, buckets, fetches = task_inputs(stage, 1, 1, outputs, placement,
                                                  checkpoint_for=lambda t: f"cp of {t}")
    assert counts == [2, 2]
    assert buckets == ["r0b1", "r1b1", "r0b0", "r1b0"]  # its own bucket, then the shared one
    assert reads == [LocalRead("cached", 1), FetchedRead(), StoreRead("cp of stored", 1)]
    assert fetches == [(0, "bcast", 0)]


def test_task_outputs_by_stage_and_action():
    assert task_output(_stage(output="exchange"), "collect", False) == SendOutput()
    assert task_output(_stage(output="collect"), "collect", True) == ReturnOutput()
    assert task_output(_stage(output="partitions"), "partitions", True) == ReturnOutput()
    assert task_output(_stage(output="run"), "run", True) == DiscardOutput()
    assert task_output(_stage(output="cache"), "cache", True, "c-1") == CacheOutput("c-1")
    assert task_output(_stage(output="persist"), "persist", True, "p-1", 2) == PersistOutput("p-1", 2)


def test_a_task_call_comes_back_whole_from_its_bytes():
    """Every kind of read, output and save a worker can be sent survives
    TaskCall.encode (plain pickle, not Ray's cloudpickle: a field whose class is
    not importable by name would fail here, not in a worker)."""
    checkpoint = Checkpoint("job-1", "p-1", 3, (PartInfo(0, "/s/p0", 10, 2, "ab", "arrow"),),
                            meta={"label": "m"}, created=1.5, manifest_path="/s/m")
    save = TaskSave("f" * 64, 0, "map", stage=1, partition=2)
    calls = [TaskCall(f"1.{i}.77", 2, (4, 1), (LocalRead("c-1", 2), FetchedRead(),
                                              StoreRead(checkpoint, 0)), output)
             for i, output in enumerate([SendOutput(), ReturnOutput(), DiscardOutput(),
                                         CacheOutput("c-2"), PersistOutput("p-2", 1)])]
    calls.append(TaskCall("2.0.77", 0, (), (), SendOutput(), save=save, commit=True,
                          keep_min_seconds=0.1))
    for call in calls:
        data = call.encode()
        assert isinstance(data, bytes)
        assert TaskCall.decode(data) == call
    with pytest.raises(TypeError, match="not a TaskCall"):
        TaskCall.decode(pickle.dumps(("not", "a", "call")))
