"""A foreground cell's work in a thread the loop awaits (notebook/awaited.py),
without a kernel: its value, its exception, an interrupt raised in its thread,
the loop free meanwhile; and the cell left as it is where nothing awaits it.
(With a real kernel: tests/notebook/test_kernels.py and the browser tests.)"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from twister_nb.notebook import awaited


def _run(work):
    return asyncio.run(awaited.awaited(lambda: awaited.CellThread(work)))


def test_the_value_and_the_thread_are_the_works():
    seen = {}

    def work():
        seen["thread"] = threading.current_thread()
        return sum(range(10))

    assert _run(work) == sum(range(10))
    assert seen["thread"] is not threading.main_thread()


def test_the_magic_is_told_it_is_awaited_and_nothing_else_is():
    assert not awaited.wanted()
    assert asyncio.run(awaited.awaited(awaited.wanted)) is True
    assert not awaited.wanted()


def test_the_works_exception_is_raised_in_the_cell():
    def work():
        raise ValueError("bad value 3")

    with pytest.raises(ValueError, match="bad value 3"):
        _run(work)


def test_the_loop_answers_others_while_the_work_runs():
    async def main():
        release = threading.Event()
        ticks = []

        async def other():  # what a comm message is to the kernel's loop
            ticks.append(time.monotonic())
            release.set()

        cell = asyncio.ensure_future(awaited.awaited(
            lambda: awaited.CellThread(lambda: release.wait(30) and "done")))
        await asyncio.sleep(0.05)
        await other()
        return await cell, ticks

    value, ticks = asyncio.run(main())
    assert value == "done" and len(ticks) == 1


def _until_interrupted(seen: list[str]):
    """Work that runs until it is interrupted, noting the thread it was interrupted in."""

    def work():
        try:
            while True:
                time.sleep(0.01)
        except KeyboardInterrupt:
            seen.append(threading.current_thread().name)
            raise

    return work


def test_an_interrupt_raises_keyboard_interrupt_in_the_works_thread():
    interrupted: list[str] = []
    work = _until_interrupted(interrupted)

    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    saved = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        _run(work)
    assert interrupted == ["twister2-cell"]
    assert signal.getsignal(signal.SIGINT) is saved  # put back


def test_a_cancelled_cell_interrupts_the_work_and_waits_for_it():
    interrupted: list[str] = []

    async def main():
        cell = asyncio.ensure_future(awaited.awaited(
            lambda: awaited.CellThread(_until_interrupted(interrupted))))
        await asyncio.sleep(0.2)
        cell.cancel()
        await cell

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    assert interrupted == ["twister2-cell"]


def test_a_shell_that_does_not_await_runs_the_cell_as_before(ip):
    awaited.install(ip)
    awaited.install(ip)
    assert sum(isinstance(t, awaited.AwaitTransformer)
               for t in ip.input_transformers_post) == 1
    code = ip.transform_cell("%%twister2 --name x\ny = 1\n")
    assert code.startswith("get_ipython().run_cell_magic('twister2', '--name x'"), code
