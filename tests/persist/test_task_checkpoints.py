"""Task checkpoints the COMPSs way, for real: a job run under ``twister-nb submit``
fails (or is killed) mid-stage, then is restarted by its job ID, on the local
store and on SeaweedFS.

The program (``programs/task_checkpoints.py``) is the same both times, so its
TSet IDs and task fingerprints are too; a flag file makes ``work`` raise (or
block) on partitions >= 5 the first time only. Every task writes a line to a
count file: the side channel that says which tasks ran again. The assertion is
always the same: the result equals a plain-Python reference, and the tasks
that ran again are exactly those whose outputs the first run did not commit
(read from the store), with the number each policy promises.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twister_nb.checkpoint.task_manager import SIGTERM_KEEP_MIN_SECONDS
from twister_nb.checkpoint.tasks import is_task_id
from twister_nb.events import TaskFinished
from twister_nb.job_rows import pid_alive
from twister_nb.runtime.jobs import find_master

PROGRAMS = Path(__file__).parent / "programs"
PROGRAM = PROGRAMS / "task_checkpoints.py"
CLI = [sys.executable, "-m", "twister_nb.cli"]
PAR, N, FAIL_FROM = 8, 50, 5


def reference(mode: str) -> list[int]:
    """The program's result in plain Python."""
    values = [i * i + p for p in range(PAR) for i in range(N)]
    if mode == "cached":  # work runs on base = 3 * i
        values = [(3 * i) * (3 * i) + p for p in range(PAR) for i in range(N)]
    return [sum(values)] if mode == "reduce" else values


def _environ(job_store, tmp_path: Path, mode: str, **extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(PROGRAMS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **job_store.environ, "COUNT_FILE": str(tmp_path / "calls.txt"),
            "FAIL_FLAG": str(tmp_path / "fail"), "BLOCK_FLAG": str(tmp_path / "block"),
            "MODE": mode, "PAR": str(PAR), "FAIL_FROM": str(FAIL_FROM), "PYTHONPATH": path,
            **extra}


def _policy_args(policy: str | None, params: str | None) -> list[str]:
    args = [] if policy is None else ["--checkpoint", policy]
    return args + ([] if params is None else ["--checkpoint-params", params])


def _ran(tmp_path: Path) -> list[tuple[str, int]]:
    count_file = tmp_path / "calls.txt"
    if not count_file.exists():
        return []
    return [(line.split()[0], int(line.split()[1])) for line in count_file.read_text().splitlines()]


def _pids(tmp_path: Path) -> set[int]:
    return {int(line.split()[2]) for line in (tmp_path / "calls.txt").read_text().splitlines()}


def _committed(job_store, job_id: str) -> set[tuple[str, int]]:
    """(TSet label, partition) of every committed task checkpoint of the job."""
    store = job_store.open()
    out = set()
    for ident in store.list_tsets(job_id):
        if is_task_id(ident):
            cp = store.latest(job_id, ident)
            if cp is not None:
                out.add((cp.meta["label"], cp.meta["partition"]))
    return out


def _job_id(out: str) -> str:
    return re.search(r"Job ID\s*:\s*(\S+)", out).group(1)


def _result(out: str) -> list[int]:
    return json.loads(re.search(r"^RESULT = (.*)$", out, re.M).group(1))


def _restart(job_store, tmp_path: Path, job_id: str, mode: str, **extra: str) -> str:
    """``twister-nb restart JOB_ID`` with the first run's settings (they are part of
    the functions' fingerprints), without its flags: the first run's policy goes on.
    Its output and then its error stream."""
    done = subprocess.run([*CLI, "restart", job_id], capture_output=True, text=True,
                          timeout=240, env=_environ(job_store, tmp_path, mode, **extra))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _check_resume(job_store, tmp_path: Path, job_id: str, mode: str,
                  committed: set[tuple[str, int]], before: list[tuple[str, int]],
                  extra: dict[str, str]) -> str:
    """Restart by job ID: exact result; only the tasks not committed ran again."""
    out = _restart(job_store, tmp_path, job_id, mode, **extra)
    assert _result(out) == reference(mode)
    again = sorted(_ran(tmp_path)[len(before):])
    labels = {"work": "work", "prepare": "base"}
    functions = ["prepare", "work"] if mode == "cached" else ["work"]
    expected = sorted((fn, p) for fn in functions for p in range(PAR)
                      if (labels[fn], p) not in committed)
    assert again == expected, (again, committed)
    if committed:
        assert "tasks recovered from their checkpoints (not run)" in out, out
    return out


# (policy, params, mode, extra environment, what the first run must have committed)
CASES = {
    "finished_tasks": ("finished_tasks", "finished.tasks:3", "one", {},
                       lambda c: len(c) == 3 and all(label == "work" and p < FAIL_FROM
                                                     for label, p in c)),
    "periodic_time": ("periodic_time", "period.time:1s", "one", {"TASK_SECONDS": "0.5"},
                      lambda c: 1 <= len(c) <= FAIL_FROM and all(p < FAIL_FROM for _, p in c)),
    "instantiated_group": ("instantiated_group", "instantiated.group:3", "one", {},
                           lambda c: c == {("work", p) for p in range(FAIL_FROM)}),
    "snapshot": (None, None, "cached", {"SNAPSHOT": "1"},
                 lambda c: c == {("base", p) for p in range(PAR)}),
    "custom": ("policies_custom:EvenPartitions", None, "one", {},
               lambda c: c == {("work", p) for p in (0, 2, 4)}),
    "avoid_tset": ("finished_tasks", "finished.tasks:1,avoid.checkpoint:[base]", "cached", {},
                   lambda c: c == {("work", p) for p in range(FAIL_FROM)}),
    "avoid_function": ("finished_tasks", "finished.tasks:1,avoid.checkpoint:[task_checkpoints.work]",
                       "cached", {}, lambda c: c == {("base", p) for p in range(PAR)}),
    "exchange": ("finished_tasks", "finished.tasks:1", "reduce", {},
                 lambda c: c == {("work", p) for p in range(FAIL_FROM)}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_failed_job_resumes_from_its_task_checkpoints(ray_cluster, job_store, tmp_path, case):
    policy, params, mode, extra, expect = CASES[case]
    (tmp_path / "fail").write_text("")
    first = subprocess.run([*CLI, "submit", *_policy_args(policy, params), str(PROGRAM)],
                           capture_output=True, text=True, timeout=240,
                           env=_environ(job_store, tmp_path, mode, **extra))
    assert first.returncode == 1 and "planned failure on partition" in first.stderr, (
        first.stdout + first.stderr)
    job_id = _job_id(first.stdout)
    committed = _committed(job_store, job_id)
    assert expect(committed), committed
    if mode == "cached" and policy is None:
        snap = json.loads(re.search(r"^SNAPSHOT = (.*)$", first.stdout, re.M).group(1))
        assert snap["tsets"] == ["base"] and snap["partitions"] == PAR and snap["bytes"] > 0
    before = _ran(tmp_path)
    (tmp_path / "fail").unlink()
    _check_resume(job_store, tmp_path, job_id, mode, committed, before, extra)


@pytest.mark.slow
def test_a_tampered_task_checkpoint_is_refused_and_its_task_runs_again(ray_cluster, local_store,
                                                                        tmp_path):
    """A task checkpoint is a signed pickle: one whose bytes were changed (same
    size, so only the signature tells) is never unpickled; its task runs again
    and the result is exact."""
    (tmp_path / "fail").write_text("")
    first = subprocess.run([*CLI, "submit", *_policy_args("finished_tasks", "finished.tasks:1"),
                            str(PROGRAM)], capture_output=True, text=True, timeout=240,
                           env=_environ(local_store, tmp_path, "one"))
    assert first.returncode == 1, first.stdout + first.stderr
    job_id = _job_id(first.stdout)
    store = local_store.open()
    parts = {}
    for ident in store.list_tsets(job_id):
        cp = store.latest(job_id, ident) if is_task_id(ident) else None
        if cp is not None:
            parts[cp.meta["partition"]] = cp.parts[0]
    assert sorted(parts) == list(range(FAIL_FROM)) and all(
        part.format == "pickle" for part in parts.values())
    path = Path(parts[2].path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # inside the pickled records, after the signature
    path.write_bytes(bytes(data))
    before = _ran(tmp_path)
    (tmp_path / "fail").unlink()
    out = _restart(local_store, tmp_path, job_id, "one")
    assert _result(out) == reference("one")
    again = sorted(_ran(tmp_path)[len(before):])
    assert again == sorted(("work", p) for p in range(PAR) if p == 2 or p >= FAIL_FROM), (again, out)


@pytest.mark.slow
def test_status_says_per_stage_how_many_tasks_were_checkpointed_and_recovered(
        ray_cluster, job_store, tmp_path):
    """On both stores: to S3 a worker commits beside its next task, so the counts
    also need the outcomes drained at the action's end."""
    (tmp_path / "fail").write_text("")
    first = subprocess.run([*CLI, "submit", "--checkpoint", "finished_tasks",
                            "--checkpoint-params", "finished.tasks:1", str(PROGRAM)],
                           capture_output=True, text=True, timeout=240,
                           env=_environ(job_store, tmp_path, "one"))
    job_id = _job_id(first.stdout)
    assert "[job-master] stage 0 'work': 5 of 8 tasks checkpointed" in first.stdout, first.stdout
    (tmp_path / "fail").unlink()
    out = _restart(job_store, tmp_path, job_id, "one")
    assert "stage 0 'work': 5 of 8 tasks recovered from their checkpoints (not run)" in out
    # the restart goes on with the first run's policy: the 3 tasks it ran are checkpointed
    assert ("[twister-nb] checkpoint policy of the first run: finished_tasks "
            "finished.tasks:1") in out, out
    status = subprocess.run([*CLI, "status", job_id], capture_output=True, text=True,
                            timeout=60, env=_environ(job_store, tmp_path, "one"))
    record = json.loads(status.stdout)["record"]
    assert record["task_checkpoints"] == [{"stage": 0, "label": "work", "tasks": PAR,
                                           "checkpointed": PAR - 5, "recovered": 5}]
    assert _committed(job_store, job_id) == {("work", p) for p in range(PAR)}


@pytest.mark.slow
def test_a_committed_persist_deletes_the_task_checkpoints_it_holds(ray_cluster, job_store,
                                                                    tmp_path):
    """A persist() whose stage failed resumes from its task checkpoints; once the
    persist commits, they are deleted (the checkpoint holds the same partitions),
    and a later restart restores the persist: nothing runs."""
    (tmp_path / "fail").write_text("")
    first = subprocess.run([*CLI, "submit", "--checkpoint", "finished_tasks",
                            "--checkpoint-params", "finished.tasks:1", str(PROGRAM)],
                           capture_output=True, text=True, timeout=240,
                           env=_environ(job_store, tmp_path, "persist"))
    assert first.returncode == 1, first.stdout + first.stderr
    job_id = _job_id(first.stdout)
    committed = _committed(job_store, job_id)
    assert committed == {("work", p) for p in range(FAIL_FROM)}
    (tmp_path / "fail").unlink()
    before = _ran(tmp_path)
    out = _check_resume(job_store, tmp_path, job_id, "persist", committed, before, {})
    assert f"{PAR} task checkpoints of 'work' deleted" in out, out
    assert _committed(job_store, job_id) == set()
    store = job_store.open()
    persisted = [t for t in store.list_tsets(job_id) if not is_task_id(t)]
    assert len(persisted) == 1 and store.latest(job_id, persisted[0]) is not None
    ran = len(_ran(tmp_path))
    out = _restart(job_store, tmp_path, job_id, "persist")
    assert _result(out) == reference("persist") and len(_ran(tmp_path)) == ran


@pytest.mark.slow
def test_a_custom_policy_that_raises_is_named(ray_cluster, local_store, tmp_path):
    done = subprocess.run([*CLI, "submit", "--checkpoint", "policies_custom:Broken",
                           str(PROGRAM)], capture_output=True, text=True, timeout=240,
                          env=_environ(local_store, tmp_path, "one"))
    assert done.returncode == 1
    assert ("checkpoint policy 'policies_custom:Broken' raised in assign_task_to_group(): "
            "KeyError") in done.stderr, done.stderr


def test_a_bad_policy_is_refused_before_the_job_starts(local_store, tmp_path):
    done = subprocess.run([*CLI, "submit", "--checkpoint", "finished_tasks",
                           "--checkpoint-params", "finished.task:3", str(PROGRAM)],
                          capture_output=True, text=True, timeout=60,
                          env=_environ(local_store, tmp_path, "one"))
    assert done.returncode == 1 and "Job ID" not in done.stdout
    assert done.stderr.strip().splitlines() == [
        "Error: submit --checkpoint: checkpoint policy 'finished_tasks' takes no parameter "
        "'finished.task'; it takes avoid.checkpoint, finished.tasks"]


KILL_CASES = {
    "finished_tasks": ("finished_tasks", "finished.tasks:3", "one", {}, 3),
    "snapshot": (None, None, "cached", {"SNAPSHOT": "1"}, PAR),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(KILL_CASES))
def test_a_killed_job_resumes_from_its_task_checkpoints(ray_cluster, job_store, tmp_path, case):
    """SIGKILL the driver, the JobMaster and the workers while tasks block, then
    restart by job ID: only what was not committed runs again."""
    import ray

    policy, params, mode, extra, wanted = KILL_CASES[case]
    (tmp_path / "block").write_text("")
    proc = subprocess.Popen([*CLI, "submit", *_policy_args(policy, params), str(PROGRAM)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_environ(job_store, tmp_path, mode, **extra))
    try:
        banner = ""  # start-up step lines come first, then the banner
        while "Job ID" not in banner:
            line = proc.stdout.readline()
            assert line, banner
            banner += line
        job_id = _job_id(banner)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # blocked on both workers, and committed
            blocked = {p for fn, p in _ran(tmp_path) if fn == "work" and p >= FAIL_FROM}
            if len(blocked) >= 2 and len(_committed(job_store, job_id)) >= wanted:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"never blocked/committed: {_ran(tmp_path)}")
        master = find_master(job_id, job_store.config)
        master_pid = ray.get(master.info.remote(), timeout=30)["pid"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    pids = [master_pid, *_pids(tmp_path)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (find_master(job_id, job_store.config) is not None
                                           or any(pid_alive(pid) for pid in pids)):
        time.sleep(0.1)
    # Read only now: a worker whose JobMaster died first may be told to leave
    # (SIGTERM) and save what it finished (twister2.checkpointing.on_sigterm)
    # before its own SIGKILL lands; what counts is what the first run committed.
    committed = _committed(job_store, job_id)
    before = _ran(tmp_path)
    (tmp_path / "block").unlink()
    _check_resume(job_store, tmp_path, job_id, mode, committed, before, extra)


FLAG_FILE: list[str] = [""]


def _square_or_fail(itr, collector, ctx):
    if ctx.index >= 3 and os.path.exists(FLAG_FILE[0]):
        raise RuntimeError(f"planned failure on partition {ctx.index}")
    with open(FLAG_FILE[0] + ".ran", "a") as f:
        f.write(f"{ctx.index}\n")
    for i in itr:
        collector.collect(i * i)


@pytest.mark.slow
def test_environment_config_sets_the_policy_and_the_same_job_resumes(ray_cluster, local_store,
                                                                     tmp_path):
    """TSetEnvironment(config=...) with a YAML-style mapping of parameters; the
    action run again in the same job recovers the saved tasks."""
    from twister_nb import TSetEnvironment
    from twister_nb.errors import UserFunctionError

    FLAG_FILE[0] = str(tmp_path / "fail")
    open(FLAG_FILE[0], "w").close()
    config = {**local_store.config, "twister2.checkpointing.policy": "finished_tasks",
              "twister2.checkpointing.policy_params": {"finished.tasks": 1}}
    env = TSetEnvironment(name="policy-config", config=config)
    try:
        squares = env.parallelize_list(list(range(40)), 4).compute(_square_or_fail)
        with pytest.raises(UserFunctionError, match="planned failure on partition 3"):
            squares.collect()
        assert env.info()["last_action"]["tasks"][0]["checkpointed"] == 3
        os.remove(FLAG_FILE[0])
        assert squares.collect() == [i * i for i in range(40)]
        assert env.info()["last_action"]["tasks"][0]["recovered"] == 3
    finally:
        env.close()
    ran = sorted(int(x) for x in open(FLAG_FILE[0] + ".ran").read().split())
    assert ran == [0, 1, 2, 3], "partitions 0-2 ran once, then were recovered"


def test_a_bad_policy_in_the_environment_config_is_refused_before_the_job_starts(local_store):
    from twister_nb import TSetEnvironment
    from twister_nb.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown checkpoint policy 'every_task'"):
        TSetEnvironment(name="bad-policy", config={**local_store.config,
                                                   "twister2.checkpointing.policy": "every_task"})


def _logged_square(itr, collector, ctx):
    with open(FLAG_FILE[0] + ".ran", "a") as f:
        f.write(f"{ctx.index} {os.getpid()}\n")
    time.sleep(0.4)
    for i in itr:
        collector.collect(i * i)


def _logged_square_4_slow(itr, collector, ctx):
    """As ``_logged_square``, but only partition 4's task is long (2 s); the others
    end at once, shorter than ``SIGTERM_KEEP_MIN_SECONDS``."""
    with open(FLAG_FILE[0] + ".ran", "a") as f:
        f.write(f"{ctx.index} {os.getpid()}\n")
    if ctx.index == 4:
        time.sleep(2.0)
    for i in itr:
        collector.collect(i * i)


@pytest.mark.slow
def test_a_worker_told_to_leave_keeps_no_short_task(ray_cluster, local_store, tmp_path):
    """With no policy on, a worker keeps a task's outputs for a SIGTERM only if the
    task ran at least ``SIGTERM_KEEP_MIN_SECONDS`` (running a short one again costs
    less than its commit): told to leave during its long task, it saves none of the
    short ones it finished; the action ends exact, and a re-run runs them again."""
    from twister_nb import TSetEnvironment

    FLAG_FILE[0] = str(tmp_path / "sigterm-short")
    ran = Path(FLAG_FILE[0] + ".ran")
    env = TSetEnvironment(name="sigterm-short", config={**local_store.config, "runtime.workers": 2})
    try:
        squares = env.parallelize_list(list(range(80)), 8).compute(_logged_square_4_slow)
        done: dict[str, object] = {}
        import threading

        seen: list = []
        with env.subscribed(seen.append):
            thread = threading.Thread(target=lambda: done.update(value=squares.collect()))
            thread.start()
            _sigterm_when_4_runs(ran)
            thread.join(120)
        assert done["value"] == [i * i for i in range(80)]
        took = {e.partition: e.seconds for e in seen if isinstance(e, TaskFinished)}
        # worker 0 had finished 0 and 2; it keeps a task's outputs only if it was long
        # (a loaded machine may make one so: what the worker measured decides)
        long_ones = {("compute", p) for p in (0, 2) if took[p] >= SIGTERM_KEEP_MIN_SECONDS}
        assert _committed(local_store, env.job_id) == long_ones
        before = ran.read_text().split("\n")[:-1]
        assert squares.collect() == [i * i for i in range(80)]
        again = sorted(int(line.split()[0]) for line in ran.read_text().split("\n")[:-1][len(before):])
        assert again == sorted(set(range(8)) - {p for _, p in long_ones})
    finally:
        env.close()


def _sigterm_when_4_runs(ran: Path) -> None:
    """SIGTERM the worker running partition 4 once it has started it (worker 0,
    after 0 and 2: partition p runs on worker p % 2)."""
    deadline = time.monotonic() + 60
    started: dict[int, int] = {}
    while time.monotonic() < deadline:  # worker 0 runs 0, 2 (short), then 4 (long)
        lines = ran.read_text().split("\n")[:-1] if ran.exists() else []
        started = {int(line.split()[0]): int(line.split()[1]) for line in lines}
        if 4 in started:
            break
        time.sleep(0.05)
    assert {0, 2, 4} <= set(started), started
    os.kill(started[4], signal.SIGTERM)


@pytest.mark.slow
def test_a_worker_told_to_leave_checkpoints_what_it_finished(ray_cluster, local_store, tmp_path):
    """SIGTERM a worker mid-stage (issue 13's eviction notice): it commits the tasks it
    finished, then leaves; Ray restarts it and the action ends exact. Run again in
    the same job, those tasks are recovered, not run. No policy, no setting: it is
    the default (``twister2.checkpointing.on_sigterm: true``)."""
    from twister_nb import TSetEnvironment

    FLAG_FILE[0] = str(tmp_path / "sigterm")
    ran = Path(FLAG_FILE[0] + ".ran")
    config = {**local_store.config, "runtime.workers": 2}
    env = TSetEnvironment(name="sigterm", config=config)
    try:
        squares = env.parallelize_list(list(range(80)), 8).compute(_logged_square)
        done: dict[str, object] = {}
        import threading

        thread = threading.Thread(target=lambda: done.update(value=squares.collect()))
        thread.start()
        _sigterm_when_4_runs(ran)  # worker 0 runs 0, 2, 4, 6: killed in its third
        thread.join(120)
        assert done["value"] == [i * i for i in range(80)]
        committed = _committed(local_store, env.job_id)
        assert {("compute", 0), ("compute", 2)} <= committed, committed
        assert all(p % 2 == 0 for _, p in committed), "only the leaving worker saved"
        before = ran.read_text().split("\n")[:-1]
        assert squares.collect() == [i * i for i in range(80)]
        again = sorted(int(line.split()[0]) for line in ran.read_text().split("\n")[:-1][len(before):])
        assert again == sorted(set(range(8)) - {p for _, p in committed})
    finally:
        env.close()
