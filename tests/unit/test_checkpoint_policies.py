"""The checkpoint policy layer without Ray: COMPSs's parameters, each policy's
decisions, avoid.checkpoint, custom module:Class policies, and task checkpoints
on a real local store (commit, find again by fingerprint, never half a task)."""

from __future__ import annotations

import textwrap

import pytest

from twister_nb import config as _config
from twister_nb.checkpoint import CheckpointPolicy, TaskInfo
from twister_nb.checkpoint.manager import CheckpointManager
from twister_nb.checkpoint.params import parse_duration, parse_params, params_from_config
from twister_nb.checkpoint.policies import load_policy
from twister_nb.checkpoint.task_manager import TaskCheckpoints, stage_task_saves
from twister_nb.checkpoint.tasks import CommittedTasks, commit_task, task_id
from twister_nb.errors import ConfigError, JobFailedError
from twister_nb.plan.physical import Plan, StagePlan
from twister_nb.storage import CheckpointStore

POLICY, PARAMS = "twister2.checkpointing.policy", "twister2.checkpointing.policy_params"


def policy(name, params=None):
    return load_policy({POLICY: name, PARAMS: params})


def tasks(n, stage=0, label="work", fn="mod.work"):
    return [TaskInfo(label, f"{label}-1", fn, stage, p, n, functions=(fn,)) for p in range(n)]


def run(pol, infos, finish):
    """Instantiate every task, finish those in ``finish`` (in order): what is due."""
    for t in infos:
        pol.instantiated(t)
    for p in finish:
        pol.finished(infos[p])
    return sorted(t.partition for t in pol.due())


# ------------------------------------------------------------------ parameters


def test_compss_string_form_and_yaml_mapping_give_the_same_params():
    text = "finished.tasks:5,avoid.checkpoint:[mod.f, points]"
    assert parse_params(text) == {"finished.tasks": "5", "avoid.checkpoint": ("mod.f", "points")}
    mapping = {"finished.tasks": 5, "avoid.checkpoint": ["mod.f", "points"]}
    assert parse_params(mapping) == parse_params(text)
    # a YAML mapping under the key is flattened by the config into dotted keys
    flat = _config.load({"twister2": {"checkpointing": {"policy_params": mapping}}})
    assert params_from_config(flat) == parse_params(text)
    assert _config.problems(flat) == []


@pytest.mark.parametrize("value, seconds", [("1s", 1), ("2m", 120), ("1h", 3600), ("3", 180),
                                            ("0.5s", 0.5)])
def test_period_units_and_a_bare_number_is_minutes(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("name, params, named", [
    ("finished_task", None, "'finished_task'"),
    ("finished_tasks", "finished.tasks:0", "finished.tasks:0"),
    ("finished_tasks", "finished.tasks:x", "finished.tasks:x"),
    ("finished_tasks", "period.time:1s", "'period.time'"),
    ("periodic_time", None, "period.time"),
    ("periodic_time", "period.time:-1s", "period.time:-1s"),
    ("instantiated_group", "instantiated.group=3", "instantiated.group=3"),
    ("no.such.module:Policy", None, "'no.such.module'"),
    ("twister_nb.checkpoint.policy:TaskInfo", None, "not a subclass"),
])
def test_bad_names_and_params_are_one_line_naming_them(name, params, named):
    with pytest.raises(ConfigError) as info:
        policy(name, params)
    message = str(info.value)
    assert named in message and "\n" not in message, message


# ------------------------------------------------------------------ the shipped policies


def test_none_checkpoints_nothing_but_a_snapshot_takes_every_finished_task():
    pol = policy("none")
    infos = tasks(4)
    assert run(pol, infos, [0, 2, 3]) == []
    assert sorted(t.partition for t in pol.snapshot()) == [0, 2, 3]
    assert pol.snapshot() == [], "each task is handed out once"


def test_finished_tasks_every_n_finished_unsaved_tasks():
    pol = policy("finished_tasks", "finished.tasks:3")
    infos = tasks(8)
    assert run(pol, infos, [0, 1]) == []
    pol.finished(infos[4])
    assert sorted(t.partition for t in pol.due()) == [0, 1, 4]
    for p in (2, 3):
        pol.finished(infos[p])
    assert pol.due() == [] and pol.unsaved() == 2
    assert policy("finished_tasks").every == 3, "the default, as in COMPSs"


def test_instantiated_group_closes_every_n_and_saves_as_tasks_finish():
    pol = policy("instantiated_group", "instantiated.group:3")
    infos = tasks(8)
    # groups {0,1,2} {3,4,5} {6,7: never full, never closed}
    assert run(pol, infos, [0, 1, 3, 4, 6, 7]) == [0, 1, 3, 4]
    pol.finished(infos[5])
    assert [t.partition for t in pol.due()] == [5]


def test_periodic_time_saves_what_finished_once_per_period():
    pol = policy("periodic_time", "period.time:1s")
    start = pol._last
    infos = tasks(4)
    assert run(pol, infos, [0, 1]) == []
    assert pol.due(start + 0.5) == []
    assert sorted(t.partition for t in pol.due(start + 1.0)) == [0, 1]
    pol.finished(infos[2])
    assert pol.due(start + 1.5) == []
    assert [t.partition for t in pol.due(start + 2.1)] == [2]


def test_avoid_checkpoint_by_tset_name_and_by_function():
    by_name = policy("finished_tasks", "finished.tasks:1,avoid.checkpoint:[base]")
    assert run(by_name, tasks(2, label="base"), [0, 1]) == []
    assert run(by_name, tasks(2, stage=1, label="work"), [0, 1]) == [0, 1]
    by_fn = policy("finished_tasks", "finished.tasks:1,avoid.checkpoint:[prog.work]")
    assert run(by_fn, tasks(2, fn="__main__.work"), [0, 1]) == []  # a program's own function
    assert by_fn.snapshot() == [], "snapshot() avoids them too"


def test_a_custom_policy_by_module_and_class(tmp_path, monkeypatch):
    (tmp_path / "my_policies.py").write_text(textwrap.dedent("""
        from twister_nb.checkpoint import CheckpointPolicy

        class Pairs(CheckpointPolicy):
            def assign_task_to_group(self, task):
                group = self.add_task_to_group(task, str(task.partition // 2))
                if group.size == 2:
                    self.close_group(str(task.partition // 2))

        class Broken(CheckpointPolicy):
            def assign_task_to_group(self, task):
                raise KeyError(task.tset)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    pol = policy("my_policies:Pairs")
    assert pol.name == "my_policies:Pairs"
    assert run(pol, tasks(5), [0, 1, 2, 4]) == [0, 1, 2], "{4} never fills, never closes"

    plan = Plan([_stage(0, 3)], "collect", "work-1")
    actions = TaskCheckpoints(None, policy("my_policies:Broken"), plan, 1)
    with pytest.raises(JobFailedError, match=r"policy 'my_policies:Broken' raised in "
                                             r"assign_task_to_group\(\): KeyError"):
        actions.instantiated(plan.stages[0], 0, 0)


def test_the_base_refuses_a_policy_without_assign():
    class Empty(CheckpointPolicy):
        pass

    with pytest.raises(NotImplementedError, match="assign_task_to_group"):
        Empty({}).instantiated(tasks(1)[0])


# ------------------------------------------------------------------ task checkpoints in a store


def _stage(index, parallelism, tset="work-1", output="collect", feeds=""):
    return StagePlan(index=index, label="work", tset_id=tset, parallelism=parallelism,
                     output=output, feeds=feeds)


def _manager(tmp_path):
    store = CheckpointStore.from_uri((tmp_path / "store").as_uri(), signing_key=b"k" * 32)
    return CheckpointManager(store, "job-1", {})


def test_committed_tasks_are_recovered_and_only_they(tmp_path):
    manager = _manager(tmp_path)
    plan = Plan([_stage(0, 4)], "collect", "work-1")
    saves = stage_task_saves(plan.stages[0])
    for p in (0, 2):
        commit_task(manager.store, "job-1", saves[p], [p, p * 10], 2)
    # a task whose part was written but whose manifest never was (a worker killed between)
    manager.store.write_part("job-1", task_id(saves[3].fingerprint), 0, 0, [99])

    action = TaskCheckpoints(manager, policy("none"), plan, 1)
    found = action.begin()
    assert sorted(found) == [(0, 0), (0, 2)]
    assert manager.store.read_part(found[(0, 2)], 0) == [2, 20]
    assert action.stage_counts() == [{"stage": 0, "label": "work", "tasks": 4,
                                      "checkpointed": 0, "recovered": 2}]


def test_another_function_input_or_parallelism_is_another_fingerprint(tmp_path):
    manager = _manager(tmp_path)
    first = _stage(0, 4)
    for save in stage_task_saves(first):
        commit_task(manager.store, "job-1", save, [save.partition], 1)
    for changed in (_stage(0, 4, tset="work-2"), _stage(0, 8), _stage(0, 4, output="exchange",
                                                                          feeds="reduce-1:0")):
        action = TaskCheckpoints(manager, policy("none"), Plan([changed], "collect", "x"), 1)
        assert action.begin() == {}, changed
    same = TaskCheckpoints(manager, policy("none"), Plan([_stage(0, 4)], "collect", "x"), 1)
    assert len(same.begin()) == 4


def test_a_saved_task_is_handed_to_its_worker_once_and_counted(tmp_path):
    manager = _manager(tmp_path)
    plan = Plan([_stage(0, 4)], "collect", "work-1")
    action = TaskCheckpoints(manager, policy("finished_tasks", "finished.tasks:2"), plan, 7)
    action.begin()
    for p in range(4):
        action.instantiated(plan.stages[0], p, worker=p % 2)
    action.finished(0, 1)
    assert action.due() == []
    action.finished(0, 2)
    due = action.due()
    assert [(w, s.partition) for w, s in due] == [(1, 1), (0, 2)]
    for _, save in due:
        action.saved(save)
    assert action.due() == []
    assert action.stage_counts()[0]["checkpointed"] == 2


def test_with_finished_tasks_1_the_worker_commits_each_task_unasked(tmp_path):
    """finished_tasks 1 asks for every task as it finishes: the worker commits it
    as it ends, and the policy's ask is never sent again; any other count, or a
    task avoid.checkpoint names, goes through the ask."""
    manager = _manager(tmp_path)
    plan = Plan([_stage(0, 3)], "collect", "work-1")
    for params, unasked in (("finished.tasks:1", [True, True, True]),
                            ("finished.tasks:2", [False, False, False]),
                            ("finished.tasks:1,avoid.checkpoint:[work]", [False, False, False])):
        action = TaskCheckpoints(manager, policy("finished_tasks", params), plan, 1)
        action.begin()
        for p in range(3):
            action.instantiated(plan.stages[0], p, worker=p % 2)
        assert [action.commits_as_it_ends(0, p) for p in range(3)] == unasked, params
    # the policy asks for each as it finishes, but no ask is sent: the worker's
    # outcomes come later, and one that failed is not asked for again
    action = TaskCheckpoints(manager, policy("finished_tasks", "finished.tasks:1"), plan, 2)
    action.begin()
    for p in range(3):
        action.instantiated(plan.stages[0], p, worker=p % 2)
    for p in range(3):
        action.finished(0, p)
        assert action.due() == [] and action.due(snapshot=True) == []
    for p in (0, 1):
        action.saved(action.saves[(0, p)])
    assert action.stage_counts()[0]["checkpointed"] == 2
    assert not action.commits_as_it_ends(0, 5), "not instantiated"


def test_a_task_is_not_avoided_for_the_cached_tset_it_reads():
    from twister_nb.checkpoint.task_manager import task_info
    from twister_nb.plan.physical import MaterializedInput

    stage = StagePlan(index=0, label="work", tset_id="work-1", parallelism=2, output="collect",
                      materialized_inputs=[MaterializedInput("base-1", 2)],
                      tsets=[("base", "base-1"), ("work", "work-1")])
    info = task_info(stage, 0, 1)
    assert info.tsets == ("work",)
    pol = policy("none", "avoid.checkpoint:[base]")
    assert not pol.avoided(info)


def test_a_group_name_can_be_used_again_by_the_next_action():
    pol = policy("instantiated_group", "instantiated.group:2")
    first = tasks(3)
    run(pol, first, [0, 1, 2])
    pol.end_action()
    second = [TaskInfo("work", "work-1", "f", 0, p, 3, action=2) for p in range(3)]
    # the open group {2} of the first action closes with the second's first task;
    # group "0" was closed and dropped, so the name serves again without an error
    assert run(pol, second, [0, 1, 2]) == [0, 1, 2]


def test_a_custom_policy_may_name_its_groups_the_same_in_every_action():
    class OwnGroup(CheckpointPolicy):
        def assign_task_to_group(self, task):
            self.add_task_to_group(task, f"p{task.partition}")
            self.close_group(f"p{task.partition}")

    pol = OwnGroup({})
    assert run(pol, tasks(2), [0, 1]) == [0, 1]
    pol.end_action()
    again = [TaskInfo("work", "work-1", "f", 0, p, 2, action=2) for p in range(2)]
    assert run(pol, again, [1]) == [1]


def test_a_damaged_task_checkpoint_is_never_recovered_again(tmp_path):
    manager = _manager(tmp_path)
    plan = Plan([_stage(0, 2)], "collect", "work-1")
    saves = stage_task_saves(plan.stages[0])
    for save in saves:
        commit_task(manager.store, "job-1", save, [save.partition], 1)
    action = TaskCheckpoints(manager, policy("finished_tasks", "finished.tasks:1"), plan, 1)
    found = action.begin()
    assert action.damaged(found[(0, 1)].tset_id, "checksum mismatch")
    assert not action.damaged("task.unknown", "not ours")
    assert sorted(action.begin()) == [(0, 0)], "the damaged one runs; the other is recovered"
    assert action.saves[(0, 1)].version == 1, "its next save writes past the damaged version"
    again = TaskCheckpoints(_manager(tmp_path), policy("none"), plan, 2)
    assert sorted(again.begin()) == [(0, 0)], "a restarted job reads the damaged mark"


def test_the_job_lists_its_task_checkpoints_once_and_keeps_them(tmp_path):
    """``CommittedTasks`` (the JobMaster's): the store is listed at the first
    action; what the job commits later is added, not listed; a commit it was not
    told of is found once it forgets (a restarted worker), and until then that
    task would only run again."""
    manager = _manager(tmp_path)
    plan = Plan([_stage(0, 3)], "collect", "work-1")
    saves = stage_task_saves(plan.stages[0])
    commit_task(manager.store, "job-1", saves[0], [0], 1)
    committed = CommittedTasks(manager.store, "job-1")

    def recovered(action: int) -> list:
        tasks = TaskCheckpoints(manager, policy("none"), plan, action, committed=committed)
        return sorted(tasks.begin())

    assert recovered(1) == [(0, 0)]
    commit_task(manager.store, "job-1", saves[1], [1], 1)
    committed.add([saves[1].fingerprint])  # the job's own commit, reported to it
    commit_task(manager.store, "job-1", saves[2], [2], 1)  # unseen (a worker's SIGTERM)
    assert recovered(2) == [(0, 0), (0, 1)]
    committed.forget()
    assert recovered(3) == [(0, 0), (0, 1), (0, 2)]
    # what the store says, listed afresh, is the same
    assert sorted(TaskCheckpoints(manager, policy("none"), plan, 4).begin()) == recovered(4)
