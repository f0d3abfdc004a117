"""``%%twister2`` and ``%twister2`` in an IPython shell whose ``run_cell`` re-raises.

Parsing, user errors and dry runs need no cluster; the runs use the session's
real local Ray head.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from notebook_helpers import SEED_CELL, SUM_LINE

from twister_nb import config
from twister_nb.notebook.cell import OfflineExecutor

WIDGET = "application/vnd.jupyter.widget-view+json"


def _kinds(ip) -> list[str]:
    """What was displayed, in order: widget, svg, text, html."""
    out = []
    for shown in ip.displayed:
        data = shown["data"]
        kind = ("widget" if WIDGET in data else "svg" if "image/svg+xml" in data
                else "html" if "text/html" in data else "text")
        out.append(kind + (" (update)" if shown["update"] else ""))
    return out


def _node_fills(svg: str) -> list[str]:
    """The fill colours of the graph's nodes (not of its legend), in order."""
    nodes = re.findall(r'<g id="node\d+" class="node">(.*?)</g>', svg, re.S)
    return [m.group(1) for n in nodes if (m := re.search(r'fill="([^"]+)"', n))]


# --------------------------------------------------------------------------- no cluster


def test_extension_registers_configurable_magics(ip, magics):
    assert "twister2" in ip.magics_manager.magics["cell"]
    assert "twister2" in ip.magics_manager.magics["line"]
    assert magics in ip.configurables
    ip.run_line_magic("config", "TwisterMagics.graph = False")
    assert magics.graph is False
    ip.run_line_magic("config", "TwisterMagics.rankdir = 'lr'")
    assert magics.rankdir == "LR"
    with pytest.raises(Exception, match="output_lines must be >= 1"):
        magics.output_lines = 0


@pytest.mark.parametrize("line, message, error_type", [
    ("", "give a command: %twister2 jobs", "usage"),
    ("explode", "invalid choice: 'explode'", "usage"),
    ("cluster", "the following arguments are required: action", "usage"),
    ("cluster reboot", "invalid choice: 'reboot'", "usage"),
    ("graph --rankdir UP", "invalid choice: 'UP'", "usage"),
    ("graph", "no %%twister2 cell has built TSets yet", "state"),
    ("graph nothing_here", "no variable 'nothing_here'", "not_found"),
    ("attach", "the following arguments are required: JOB_ID", "usage"),
    ("restart job-1", "no job 'job-1' in the store", "not_found"),
    ("clear job-1", "the store has nothing of job 'job-1'", "not_found"),
    ("cancel", "the notebook has no job yet", "state"),
    ("config =3", "is not KEY=VALUE", "usage"),
])
def test_line_magic_usage_errors(ip, line, message, error_type):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("twister2", line)
    assert message in str(info.value)
    assert "\n" not in str(info.value)  # one line: what is wrong and the fix
    assert getattr(info.value, "error_type", "usage") == error_type


@pytest.mark.parametrize("line, cell, message", [
    ("--bogus", "x = 1", "unrecognized arguments: --bogus; see %%twister2? for the options"),
    ("--parallelism 0", "x = 1", "--parallelism must be a positive int, got 0"),
    ("-p many", "x = 1", "invalid int value: 'many'"),
    ("-o 1st", "x = 1", "'1st' is not a variable name"),
    ("-o class", "x = 1", "'class' is not a variable name"),
    ("", "   \n", "the cell is empty"),
])
def test_cell_magic_usage_errors(ip, magics, line, cell, message):
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("twister2", line, cell)
    assert message in str(info.value)
    assert magics.session.env is None  # nothing started


def test_graph_of_a_variable_that_is_no_tset(ip):
    ip.user_ns["number"] = 3
    with pytest.raises(UsageError, match="'number' is a int, not a TSet"):
        ip.run_line_magic("twister2", "graph number")


def test_dry_run_without_a_job_starts_nothing(ip, magics, capsys):
    ip.run_cell_magic("twister2", "--dry-run -o run", SEED_CELL)
    run = ip.user_ns["run"]
    assert magics.session.env is None  # no job was created ...
    assert isinstance(ip.user_ns["env"]._executor, OfflineExecutor)  # ... nor a cluster touched
    assert run.status == "dry-run"
    assert [a for a, _ in run.actions] == ["persist", "run"]  # recorded, not run
    assert sorted(run.tsets) == ["persisted", "source_x", "two_computes"]
    out = capsys.readouterr().out
    assert SUM_LINE not in out and "Job ID" not in out  # no banner: not a job
    assert _kinds(ip) in (["svg"], ["html"])  # the graph, no dashboard
    # the graph has the whole pipeline, through the skipped actions
    text = str(ip.run_line_magic("twister2", "graph --engine text"))
    assert "for_each" in text and "IntSource" in text and "persist ← two_computes" in text
    # TSets of the offline job cannot run later
    with pytest.raises(RuntimeError, match="without --dry-run"):
        ip.run_cell("persisted.collect()")


def test_dry_run_stops_at_the_first_data_action(ip, capsys):
    cell = ("nums = env.parallelize_list(list(range(10)), 2)\n"
            "doubled = nums.map(lambda x: x * 2)\n"
            "values = doubled.collect()\n"
            "after = doubled.map(lambda x: x)\n")
    ip.run_cell_magic("twister2", "--dry-run --no-graph -o run", cell)
    run = ip.user_ns["run"]
    assert "stopped at the first 'collect' action" in capsys.readouterr().out
    assert "values" not in ip.user_ns and "after" not in ip.user_ns
    assert sorted(run.tsets) == ["doubled", "nums"]
    assert ip.displayed == []  # --no-graph


def test_cell_value_is_returned(ip):
    ip.run_cell("%%twister2 --dry-run --no-graph\nanswer = 6\nanswer * 7")
    assert ip.user_ns["_"] == 42


def test_config_command(ip, magics):
    with config.set():  # undo what the command sets
        view = ip.run_line_magic("twister2", "config job.parallelism=8 runtime.workers=2")
        assert view == {"job.parallelism": 8, "runtime.workers": 2}
        assert config.get("job.parallelism") == 8
        everything = ip.run_line_magic("twister2", "config")
        assert everything["TwisterMagics.graph"] is True
        assert everything["ray.namespace"] == "twister_nb"
    assert config.get("job.parallelism") == 4
    assert "job.parallelism: 4" in repr(ip.run_line_magic("twister2", "config job"))


def test_cluster_commands_leave_a_remote_cluster_alone(ip, capsys):
    with config.set({"ray.address": "10.1.2.3:6379"}):
        with pytest.raises(UsageError, match="only the local head"):
            ip.run_line_magic("twister2", "cluster stop")
        ip.run_line_magic("twister2", "cluster status")
    assert "remote cluster at '10.1.2.3:6379'" in capsys.readouterr().out


# --------------------------------------------------------------------------- on the cluster


def test_seed_cell_runs_on_the_notebook_job(ip, magics, ray_cluster, capsys, monkeypatch):
    # The start-up steps asserted below are those of a job that starts its own JobMaster
    # and workers: the warm pool (on by default) is off for this job.
    monkeypatch.setenv("TWISTER_NB_RUNTIME__POOL__SIZE", "0")
    ip.run_cell_magic("twister2", "--name nb-magics -o run", SEED_CELL)
    out = capsys.readouterr().out
    assert "Job Name        :       nb-magics" in out  # the banner first
    assert f"[worker-0] {SUM_LINE}" in out
    run = ip.user_ns["run"]
    env = magics.session.env
    assert ip.user_ns["env"] is env and run.job_id == env.job_id
    assert run.status == "done" and [a for a, _ in run.actions] == ["persist", "run"]
    # the dashboard, shown while the new job starts and updated at the end; the graph,
    # drawn at the first action and recoloured in place as the stages run
    kinds = _kinds(ip)
    assert kinds[:2] == ["widget", "svg"], kinds
    # at the end the widget's output becomes its static final state (no widget, no kernel
    # needed to show it again)
    assert kinds.count("html (update)") == 1 and kinds[-1] == "svg (update)", kinds
    assert set(kinds[2:]) == {"svg (update)", "html (update)"}, kinds
    dash = run.dashboard
    assert dash.job_id == env.job_id and dash.status == "done"
    assert dash.output == [f"[worker-0] {SUM_LINE}"]
    assert [(s["done"], s["tasks"]) for s in dash.stages] == [(4, 4), (4, 4), (1, 1)]
    assert [s["records_in"] for s in dash.stages][:2] == [40000, 40000]
    steps = [s["step"] for s in dash.startup]
    assert "starting the JobMaster" in steps and "starting 2 workers" in steps, steps
    assert all(s["state"] == "done" and s["seconds"] > 0 for s in dash.startup), dash.startup
    (final,) = [d["data"]["text/html"] for d in ip.displayed
                if d["update"] and "image/svg+xml" not in d["data"]]
    assert "done" in final and "4/4 tasks" in final and "starting the JobMaster: " in final
    svgs = [d["data"]["image/svg+xml"] for d in ip.displayed if "image/svg+xml" in d["data"]]
    first, last = svgs[0], svgs[-1]
    assert "two_computes = compute" in last and "persisted" in last
    assert "#a1d99b" in _node_fills(last) and set(_node_fills(last)) <= {"#a1d99b", "white"}
    assert "#a1d99b" not in _node_fills(first)  # nothing was done when it was first drawn
    assert ip.displayed[-1]["data"]["image/png"]  # the last drawing has its PNG twin

    # the next cell reuses the job; --parallelism sets the default of its sources
    ip.run_cell_magic("twister2", "-p 3 --no-dashboard --no-graph -o run2",
                      "parts = env.parallelize_list(list(range(9))).get_data().partition_count")
    assert magics.session.env is env and ip.user_ns["run2"].job_id == env.job_id
    assert ip.user_ns["run2"].progress.workers == 2  # announced by the job in the first cell
    assert ip.user_ns["parts"] == 3
    assert env.default_parallelism == 4  # only for that cell

    # the job is live: listed, attachable, cancellable
    jobs = ip.run_line_magic("twister2", "jobs")
    assert f"* {env.job_id}" in repr(jobs)
    ip.run_line_magic("twister2", f"attach {env.job_id}")
    assert magics.session.env is env
    assert f"attached to job {env.job_id!r}" in capsys.readouterr().out
    ip.run_line_magic("twister2", "cancel")
    assert "asked job" in capsys.readouterr().out


def test_failing_cell_raises_with_the_dashboard_and_graph(ip, ray_cluster, capsys):
    cell = ("def boom(x):\n"
            "    raise ValueError(f'bad value {x!r}')\n"
            "broken = env.parallelize_list([1, 2, 3], 2).map(boom)\n"
            "broken.collect()\n")
    with pytest.raises(Exception, match="bad value") as info:
        ip.run_cell_magic("twister2", "--name nb-magics-fail -o run", cell)
    assert type(info.value).__name__ == "UserFunctionError"
    run = ip.user_ns["run"]
    assert run.status == "failed" and run.error is info.value
    assert run.dashboard.status == "failed"
    assert "bad value" in run.dashboard.errors[0]["message"]
    assert _kinds(ip)[-1] == "svg (update)"
    assert "#fc9272" in _node_fills(ip.displayed[-1]["data"]["image/svg+xml"])  # failed


def test_name_and_job_id_switch_jobs(ip, magics, ray_cluster):
    ip.run_cell_magic("twister2", "--name first --no-graph", "a = 1")
    first = magics.session.env
    ip.run_cell_magic("twister2", "--no-graph", "b = 1")
    assert magics.session.env is first
    ip.run_cell_magic("twister2", "--name second --no-graph", "c = 1")
    second = magics.session.env
    assert second is not first and second.name == "second"
    try:
        ip.run_cell_magic("twister2", f"--job-id {first.job_id} --no-graph", "d = 1")
        assert magics.session.env.job_id == first.job_id
    finally:
        second.close()
        first.close()


def test_attach_to_a_job_that_does_not_exist(ip, ray_cluster):
    with pytest.raises(UsageError, match="no job 'no-such-job-123'") as info:
        ip.run_line_magic("twister2", "attach no-such-job-123")
    assert info.value.error_type == "not_found"


def test_a_cell_that_names_its_job_creates_it_then_attaches(ip, magics, ray_cluster, capsys):
    """``%%twister2 --job-id ID`` starts the job ID when none has it (as
    ``twister-nb submit --job-id`` does), and is that job when it exists."""
    from twister_nb.jobs import JobClient

    job_id = "named-by-the-notebook-1"
    assert JobClient().record(job_id) is None
    ip.run_cell_magic("twister2", f"--job-id {job_id} --no-graph --no-dashboard",
                      "total = env.parallelize_list([1, 2, 3], 2).map(lambda x: x * 2).collect()")
    env = magics.session.env
    try:
        assert env.job_id == job_id and sorted(ip.user_ns["total"]) == [2, 4, 6]
        assert re.search(rf"^Job ID\s+:\s+{job_id}$", capsys.readouterr().out, re.MULTILINE)
        assert JobClient().record(job_id)["job_id"] == job_id
        # the same ID again: the same job, no second banner
        ip.run_cell_magic("twister2", f"--job-id {job_id} --no-graph --no-dashboard", "y = 1")
        assert magics.session.env is env and "Job ID" not in capsys.readouterr().out
        with pytest.raises(UsageError, match="--job-id: 'no/such' is not a job ID"):
            ip.run_cell_magic("twister2", "--job-id no/such", "x = 1")
    finally:
        env.close()
        JobClient().clear(job_id)


def test_attach_after_the_job_ended_restores_persisted_tsets(ip, magics, ray_cluster, capsys):
    """The tutorial's last section: the job's JobMaster is gone (its kernel and
    workers with it); attaching by job ID rebuilds the job from its record, and
    re-running the cells finds the committed persist() instead of recomputing."""
    ip.run_cell_magic("twister2", "--name nb-restart --no-graph --no-dashboard", SEED_CELL)
    job_id = magics.session.env.job_id
    ip.run_line_magic("twister2", "close")
    capsys.readouterr()

    ip.run_line_magic("twister2", f"attach {job_id}")
    assert f"attached to job {job_id!r} (nb-restart)" in capsys.readouterr().out
    ip.run_cell_magic("twister2", "--no-graph -o run", SEED_CELL)
    out = capsys.readouterr().out
    assert f"[worker-0] {SUM_LINE}" in out
    # said once, by the dashboard (not printed as well), in the user's words
    assert "restored from its checkpoint" not in out
    run = ip.user_ns["run"]
    assert "restored two_computes version" in run.dashboard.to_html()
    assert run.job_id == job_id
    assert [r["storage"] for r in run.dashboard.restored] == ["store"]
    assert run.dashboard.tset_status[ip.user_ns["two_computes"].id] == "restored"
    # only the reduce ran: the persisted TSet was not recomputed
    assert [s["tsets"] for s in run.dashboard.stages] == [["materialized"],
                                                          ["reduce", "for_each"]]

    # a recorded job that is not the notebook's can be cleared from the store
    ip.run_line_magic("twister2", "close")
    assert job_id in repr(ip.run_line_magic("twister2", "jobs"))
    ip.run_line_magic("twister2", f"clear {job_id}")
    assert "cleared" in capsys.readouterr().out
    assert job_id not in repr(ip.run_line_magic("twister2", "jobs"))


def test_clear_refuses_the_notebooks_job(ip, magics, ray_cluster):
    ip.run_cell_magic("twister2", "--name nb-clear --no-graph", "x = 1")
    with pytest.raises(UsageError, match="is the notebook's job; %twister2 close it first"):
        ip.run_line_magic("twister2", f"clear {magics.session.env.job_id}")


@pytest.mark.slow
def test_restart_a_submitted_program(ip, magics, ray_cluster, capsys):
    """``%twister2 restart`` re-runs the seed program (submitted with the CLI)
    under its job ID: its persist() is restored, not recomputed."""
    seed = Path(__file__).resolve().parents[2] / "examples" / "tset_checkpointing.py"
    first = subprocess.run([sys.executable, "-m", "twister_nb.cli", "submit", str(seed)],
                           check=False, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stdout + first.stderr
    job_id = re.search(r"Job ID\s+:\s+(\S+)", first.stdout).group(1)

    ip.run_line_magic("twister2", f"restart {job_id}")
    out = capsys.readouterr().out
    assert job_id in out and "restored from its checkpoint" in out
    assert f"[worker-0] {SUM_LINE}" in out


def test_restart_needs_a_submitted_program(ip):
    from twister_nb.checkpoint import open_store

    # what a notebook's job records: no program (its cells are the program)
    open_store().write_job("nb-job-1", {"job_id": "nb-job-1", "name": "nb", "status": "idle"})
    with pytest.raises(UsageError, match="not submitted as a program.*attach nb-job-1"):
        ip.run_line_magic("twister2", "restart nb-job-1")


# --------------------------------------------------------------------------- --background


def test_background_cell_returns_at_once_and_finishes(ip, magics, ray_cluster, capsys):
    import time

    cell = ("import time\n"
            "def slow(x):\n"
            "    time.sleep(0.5)\n"
            "    return x * 2\n"
            "result = env.parallelize_list(list(range(8)), 4).map(slow).collect()\n"
            "sum(result)\n")
    ip.run_cell_magic("twister2", "--name nb-background --no-graph", "job = env.job_id")
    started = time.perf_counter()
    run = ip.run_cell_magic("twister2", "--background -o bg", cell)
    returned = time.perf_counter() - started
    assert ip.user_ns["bg"] is run and not run.done
    assert returned < 1.0, returned  # the kernel is free while the job runs
    # the kernel can do other work meanwhile
    ip.run_cell("other = 40 + 2")
    assert ip.user_ns["other"] == 42
    assert run.wait(timeout=120) == sum(x * 2 for x in range(8))
    assert run.done and run.status == "done"
    assert run.dashboard.status == "done" and run.dashboard.job_id == run.job_id
    assert "[worker-" not in capsys.readouterr().out  # nothing printed from the thread
    assert ip.user_ns["result"] == [x * 2 for x in range(8)]


def test_background_cell_cancel_button(ip, magics, ray_cluster):
    import time

    cell = ("import time\n"
            "def slow(x):\n"
            "    time.sleep(3)\n"
            "    return x\n"
            "env.parallelize_list(list(range(40)), 4).map(slow).collect()\n")
    run = ip.run_cell_magic("twister2", "--name nb-background-cancel --background", cell)
    deadline = time.monotonic() + 60
    while run.dashboard.status != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.dashboard.status == "running"
    run.dashboard._cancel.click()  # what a person's click does, with the kernel free
    started = time.perf_counter()
    with pytest.raises(Exception, match="cancelled"):
        run.wait(timeout=120)
    assert time.perf_counter() - started < 30  # not the 40 × 3 s of the whole action
    assert run.status == "cancelled" and run.dashboard.status == "cancelled"


def test_attach_to_a_job_whose_action_failed_says_so_first(ip, magics, ray_cluster, capsys):
    def boom(x):
        raise ValueError(f"bad value {x!r}")

    ip.user_ns["boom"] = boom
    with pytest.raises(Exception, match="bad value"):
        ip.run_cell_magic("twister2", "--name failing --no-graph --no-dashboard",
                          "env.parallelize_list([1, 2], 2).map(boom).collect()")
    job_id = magics.session.env.job_id
    capsys.readouterr()
    try:
        ip.run_line_magic("twister2", f"attach {job_id}")
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(f"job {job_id!r}: its last action (#1 collect of 'map') "
                                   "failed: "), lines
        assert "bad value" in lines[0] and lines[1].startswith("attached to job"), lines
    finally:
        magics.session.close()


def test_the_graph_counts_each_stages_checkpointed_and_recovered_tasks(ip, ray_cluster,
                                                                        tmp_path):
    """A stage fails on partition 3 with finished_tasks 1 on: its node says 3 of 4
    tasks were checkpointed; the cell run again recovers them, and says so."""
    flag = tmp_path / "fail"
    flag.write_text("")
    cell = ("import os\n"
            "def square_or_fail(itr, collector, ctx):\n"
            f"    if ctx.index >= 3 and os.path.exists({str(flag)!r}):\n"
            "        raise RuntimeError('planned failure on partition 3')\n"
            "    for i in itr:\n"
            "        collector.collect(i * i)\n"
            "squares = env.parallelize_list(list(range(40)), 4).compute(square_or_fail)\n"
            "result = squares.collect()\n")
    with pytest.raises(Exception, match="planned failure on partition 3"):
        ip.run_cell_magic("twister2", "--name nb-graph-notes --checkpoint finished_tasks "
                                      "--checkpoint-params finished.tasks:1", cell)
    last = [d["data"] for d in ip.displayed if "image/svg+xml" in d["data"]][-1]
    assert "3/4 checkpointed" in last["image/svg+xml"]
    assert "3/4 checkpointed" in last["text/plain"]  # the text tree says it too
    flag.unlink()
    ip.run_cell_magic("twister2", "--name nb-graph-notes", cell)
    assert ip.user_ns["result"] == [i * i for i in range(40)]
    last = [d["data"] for d in ip.displayed if "image/svg+xml" in d["data"]][-1]
    assert "3/4 recovered" in last["image/svg+xml"], last["text/plain"]
