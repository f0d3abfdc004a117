"""Real ipykernel kernels: the stop button cancels a running action; a kernel
killed mid-job is replaced by one that attaches by job ID and gets the exact
result of the action the dead kernel started."""

from __future__ import annotations

import os
import time

import pytest

jupyter_client = pytest.importorskip("jupyter_client")

pytestmark = pytest.mark.slow

SLOW_POINTS = """\
%%twister2 --name {name} --no-graph --no-dashboard
import time
points = env.parallelize_list(list(range(1000)), 4).map(lambda x: x * 2).set_name("points").cache()
def slow(x):
    if x % 250 == 0:
        time.sleep({sleep})
    return x + 1
print("JOB", env.job_id)
"""


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
        out = []
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
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
        reply = self.kc.get_shell_msg(timeout=60)
        return reply["content"], "".join(out)

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
    reply, out = kernel.run(SLOW_POINTS.format(name="k-interrupt", sleep=20))
    assert reply["status"] == "ok", out
    msg_id = kernel.kc.execute("%%twister2 --no-graph --no-dashboard\n"
                               "total = sum(points.map(slow).collect())\n")
    time.sleep(4)  # the action is running now
    started = time.monotonic()
    kernel.km.interrupt_kernel()
    reply, out = kernel.collect(msg_id, timeout=120)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", out
    assert time.monotonic() - started < 30, "the interrupt waited for the whole action"
    # the job is usable again: nothing left running, the next action is exact
    reply, out = kernel.run("%%twister2 --no-graph --no-dashboard\n"
                            "print('RUNNING', env.running())\n"
                            "print('SUM', sum(points.map(lambda x: x + 1).collect()))\n")
    assert reply["status"] == "ok", out
    assert "RUNNING None" in out
    assert f"SUM {sum(x * 2 + 1 for x in range(1000))}" in out


def test_killed_kernel_new_kernel_attaches_and_gets_the_result(ray_cluster):
    first = Kernel()
    try:
        first.run("%load_ext twister_nb")
        reply, out = first.run(SLOW_POINTS.format(name="k-kill", sleep=3))
        assert reply["status"] == "ok", out
        job_id = out.split("JOB ", 1)[1].split()[0]
        first.kc.execute("%%twister2 --no-graph --no-dashboard\n"
                         "total = sum(points.map(slow).collect())\n")
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
                                "points = env.tsets()['points']\n"
                                "print('POINTS', sum(points.collect()))\n")
        assert reply["status"] == "ok", out
        assert f"TOTAL {sum(x * 2 + 1 for x in range(1000))}" in out
        assert f"POINTS {sum(x * 2 for x in range(1000))}" in out
        print(f"attach took {attach_seconds:.2f} s (including the magic's round trip)")
        assert attach_seconds < 20
        second.run("%twister2 close")
    finally:
        second.stop()
