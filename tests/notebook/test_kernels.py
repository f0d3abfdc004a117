"""Real ipykernel kernels: the stop button cancels a running action; a kernel
restarted or shut down as Jupyter does it (``KernelManager.restart_kernel`` /
``shutdown_kernel``: an interrupt, then a shutdown request) leaves its job
running, and the kernel that replaces it attaches by job ID (or re-runs a cell
that names its job) and gets the exact result of the action the old kernel
started, even when it ended while no kernel was attached; a kernel killed
mid-job is replaced the same way."""

from __future__ import annotations

import os
import time

import pytest

jupyter_client = pytest.importorskip("jupyter_client")

pytestmark = pytest.mark.slow

#: A job (``{job}``: ``--name N`` or ``--job-id ID``) with ``base`` kept (``{keep}``:
#: cache or persist) and ``slow``, which sleeps once per partition.
SLOW_JOB = """\
%%twister2 {job} --no-graph --no-dashboard
import time
base = env.parallelize_list(list(range(1000)), 4).map(lambda x: x * 3).set_name("base").{keep}()
def slow(x):
    if x % 250 == 0:
        time.sleep({sleep})
    return x + 1
print("JOB", env.job_id)
"""
SLOW_TOTAL = "%%twister2 --no-graph --no-dashboard\ntotal = sum(base.map(slow).collect())\n"
EXPECTED = sum(x * 3 + 1 for x in range(1000))


class Kernel:
    """A kernel as a notebook server starts it (no RAY_* variables)."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        self.km = jupyter_client.KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 180) -> tuple[dict, str]:
        """Execute and wait; the reply content and what the cell printed."""
        msg_id = self.kc.execute(code)
        return self.collect(msg_id, timeout)

    def collect(self, msg_id: str, timeout: float = 180) -> tuple[dict, str]:
        """The reply to ``msg_id`` and its output. Only messages whose parent is
        ``msg_id`` count: a busy machine can deliver an earlier cell's late
        output or reply (or a restarted kernel's) in between."""
        out, displays = [], []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                out.append("\n".join(msg["content"]["traceback"]))
            elif kind in ("display_data", "update_display_data", "execute_result"):
                displays.append(msg["content"]["data"])
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
        while True:
            reply = self.kc.get_shell_msg(timeout=max(1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        self.displays = displays
        return reply["content"], "".join(out)

    def restart(self) -> None:
        """Restart as Jupyter does (interrupt, shutdown request with restart=True)."""
        self.km.restart_kernel(now=False)
        self.kc.wait_for_ready(timeout=120)

    def stop(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(ray_cluster):
    k = Kernel()
    try:
        yield k
    finally:
        k.stop()


def test_stop_button_cancels_the_running_action(kernel):
    reply, out = kernel.run("%load_ext twister_nb")
    assert reply["status"] == "ok", out
    reply, out = kernel.run(SLOW_JOB.format(job="--name k-interrupt", keep="cache", sleep=20))
    assert reply["status"] == "ok", out
    msg_id = kernel.kc.execute(SLOW_TOTAL)
    time.sleep(4)  # the action is running now
    started = time.monotonic()
    kernel.km.interrupt_kernel()
    reply, out = kernel.collect(msg_id, timeout=120)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", out
    assert time.monotonic() - started < 30, "the interrupt waited for the whole action"
    # the job is usable again: nothing left running, the next action is exact
    reply, out = kernel.run("%%twister2 --no-graph --no-dashboard\n"
                            "print('LAST', env.info()['last_action']['state'])\n"
                            "print('RUNNING', env.running())\n"
                            "print('SUM', sum(base.map(lambda x: x + 1).collect()))\n")
    assert reply["status"] == "ok", out
    assert "RUNNING None" in out
    assert "LAST cancelled" in out  # cancelled, not failed
    assert f"SUM {EXPECTED}" in out


def test_killed_kernel_new_kernel_attaches_and_gets_the_result(ray_cluster):
    first = Kernel()
    try:
        first.run("%load_ext twister_nb")
        reply, out = first.run(SLOW_JOB.format(job="--name k-kill", keep="cache", sleep=3))
        assert reply["status"] == "ok", out
        job_id = out.split("JOB ", 1)[1].split()[0]
        first.kc.execute(SLOW_TOTAL)
        time.sleep(2)  # mid-action
    finally:
        first.stop()  # SIGKILL: the kernel dies, the job does not

    second = Kernel()
    try:
        second.run("%load_ext twister_nb")
        started = time.monotonic()
        reply, out = second.run(f"%twister2 attach {job_id}")
        attach_seconds = time.monotonic() - started
        assert reply["status"] == "ok", out
        reply, out = second.run("result = env.wait(timeout=120)\n"
                                "print('TOTAL', sum(result))\n"
                                "base = env.tsets()['base']\n"
                                "print('BASE', sum(base.collect()))\n")
        assert reply["status"] == "ok", out
        assert f"TOTAL {EXPECTED}" in out
        assert f"BASE {sum(x * 3 for x in range(1000))}" in out
        print(f"attach took {attach_seconds:.2f} s (including the magic's round trip)")
        assert attach_seconds < 20
        second.run("%twister2 close")
    finally:
        second.stop()




def named_job(job_id: str, sleep: float) -> str:
    return SLOW_JOB.format(job=f"--job-id {job_id}", keep="persist", sleep=sleep)


def _record(job_id: str) -> dict:
    from twister_nb.jobs import JobClient

    return JobClient().status(job_id)["record"]


@pytest.mark.parametrize("how", ["restart", "shutdown"])
def test_kernel_restart_or_shutdown_leaves_the_job_running(ray_cluster, how):
    """Jupyter's restart and shutdown interrupt the kernel first: the action goes
    on, the record says why the kernel left, and the next kernel gets the value."""
    job_id = f"k-{how}-{os.getpid()}"
    first = Kernel()
    second = None
    try:
        first.run("%load_ext twister_nb")
        reply, out = first.run(named_job(job_id, sleep=25))  # outlives restart and attach
        assert reply["status"] == "ok", out
        assert f"JOB {job_id}" in out
        first.kc.execute(SLOW_TOTAL)
        time.sleep(3)  # the action is running now
        left = time.monotonic()
        if how == "restart":
            first.restart()
            second = first
        else:
            first.km.shutdown_kernel(now=False)
            first.kc.stop_channels()
            second = Kernel()
        print(f"{how} took {time.monotonic() - left:.1f} s")
        record = _record(job_id)
        reason = "kernel restarted" if how == "restart" else "kernel shut down"
        assert record["driver_left"]["reason"] == reason, record
        assert record["driver_left"]["action"] == 2, record  # the slow collect, still running
        assert record["status"] == "running", record

        second.run("%load_ext twister_nb")  # connects to the cluster in the background
        reply, out = second.run("from twister_nb.jobs import JobClient\n"
                                "print('CONNECTED', JobClient().connect())")
        assert "CONNECTED True" in out, out  # warm: what a person waits for at most once
        started = time.monotonic()
        reply, out = second.run(f"%twister2 attach {job_id}")
        attach_seconds = time.monotonic() - started
        assert reply["status"] == "ok", out
        assert "action #2 (collect" in out and "is running" in out, out
        assert not any("failed" in line for line in out.splitlines()), out
        # the live dashboard, drawn from the action's start: a widget, and its
        # static copy saying running, with the stages of the collect
        views = [d for d in second.displays if "application/vnd.jupyter.widget-view+json" in d]
        assert len(views) == 1, second.displays
        static = views[0]["text/html"]
        assert "running" in static and "#2 collect" in static, static
        reply, out = second.run("print('TOTAL', sum(env.wait(timeout=120)))")
        assert reply["status"] == "ok", out
        assert f"TOTAL {EXPECTED}" in out, out
        print(f"attach cell to live dashboard: {attach_seconds:.2f} s")
        print(f"attach to live dashboard: {attach_seconds:.2f} s")  # reported, not asserted
        second.run("%twister2 close")
    finally:
        for k in {id(k): k for k in (first, second) if k is not None}.values():
            k.stop()


def test_action_that_ended_without_a_kernel_keeps_its_value(ray_cluster):
    """Restart mid-action; the action ends before anyone attaches; re-running
    the cell that names the job attaches to it (its persist restored) and
    env.wait() returns the value the old kernel was waiting for."""
    job_id = f"k-ended-{os.getpid()}"
    kernel = Kernel()
    try:
        kernel.run("%load_ext twister_nb")
        reply, out = kernel.run(named_job(job_id, sleep=3))
        assert reply["status"] == "ok", out
        kernel.kc.execute(SLOW_TOTAL)
        time.sleep(2)
        kernel.restart()
        deadline = time.monotonic() + 60
        while _record(job_id).get("driver_left") is None or _live_running(job_id):
            assert time.monotonic() < deadline, "the action never ended"
            time.sleep(0.5)

        kernel.run("%load_ext twister_nb")
        reply, out = kernel.run(named_job(job_id, sleep=3))
        assert reply["status"] == "ok", out
        assert f"JOB {job_id}" in out  # the same job
        assert "'base' restored from its checkpoint" in out, out  # committed work restored
        reply, out = kernel.run("print('TOTAL', sum(env.wait(timeout=60)))")
        assert reply["status"] == "ok", out
        assert f"TOTAL {EXPECTED}" in out, out
        kernel.run("%twister2 close")
    finally:
        kernel.stop()


def _live_running(job_id: str) -> bool:
    from twister_nb.jobs import JobClient

    info = JobClient().info(job_id)
    return info is not None and (info.get("last_action") or {}).get("state") == "running"


def test_cancel_button_works_while_the_cell_runs(kernel):
    """The dashboard's Cancel, clicked (as JupyterLab sends it: a comm_msg on the
    shell channel) while its foreground cell waits for the action, cancels it."""
    reply, out = kernel.run("%load_ext twister_nb")
    assert reply["status"] == "ok", out
    reply, out = kernel.run(SLOW_JOB.format(job="--name k-cancel", keep="cache", sleep=20))
    assert reply["status"] == "ok", out
    msg_id = kernel.kc.execute("%%twister2 --no-graph\n"
                               "total = sum(base.map(slow).collect())\n")
    button, running = None, False
    deadline = time.monotonic() + 120
    while not (button and running):
        msg = kernel.kc.get_iopub_msg(timeout=max(1, deadline - time.monotonic()))
        content = msg["content"]
        if msg["msg_type"] == "comm_open":
            state = content["data"].get("state", {})
            if state.get("_model_name") == "ButtonModel" and state.get("description") == "Cancel":
                button = content["comm_id"]
        elif msg["msg_type"] == "comm_msg":
            state = content["data"].get("state", {})
            running = running or state.get("status") == "running"
    time.sleep(1)
    clicked = time.monotonic()
    kernel.kc.shell_channel.send(kernel.kc.session.msg("comm_msg", {
        "comm_id": button, "data": {"method": "custom", "content": {"event": "click"}}}))
    reply, out = kernel.collect(msg_id, timeout=120)
    seconds = time.monotonic() - clicked
    assert reply["status"] == "error", out
    assert reply["ename"] == "ActionCancelledError", (reply["ename"], out)
    assert seconds < 15, f"the cell ended {seconds:.1f} s after Cancel: the click waited"
    # the dashboard's last state says cancelled, not failed
    final = [d for d in kernel.displays if "text/html" in d and "twister-nb-dashboard" in d["text/html"]]
    assert final and ">cancelled<" in final[-1]["text/html"], final[-1:]
    reply, out = kernel.run("%%twister2 --no-graph --no-dashboard\n"
                            "print('LAST', env.info()['last_action']['state'])\n")
    assert "LAST cancelled" in out, out
    print(f"Cancel to the cell's end: {seconds:.2f} s")


def test_a_cell_importing_ray_right_after_load_ext_waits_for_the_connection(ray_cluster):
    """``%load_ext twister_nb`` connects to the running cluster in a thread,
    which imports Ray; a cell that imports Ray itself right after must wait for
    that import, not fail with Python's ``_DeadlockError`` (it did in 2 of 4
    fresh kernels before the wait)."""
    for _ in range(3):
        kernel = Kernel()
        try:
            load = kernel.kc.execute("%load_ext twister_nb")
            cell = kernel.kc.execute("import ray\nimport ray.util.state\nprint('IMPORTED', ray.__name__)")
            reply, out = kernel.collect(load)
            assert reply["status"] == "ok", out
            reply, out = kernel.collect(cell)
            assert reply["status"] == "ok" and "IMPORTED ray" in out, out
        finally:
            kernel.stop()
