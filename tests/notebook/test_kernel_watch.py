"""Telling a kernel restart from the stop button, and the Cancel button's
click noticed while a cell runs: the parts, with an IPython shell and a
stand-in for ipykernel's comm (the real kernels are in test_kernels.py)."""

from __future__ import annotations

import threading
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell

from twister_nb.notebook.busy_click import is_click, on_busy_click
from twister_nb.notebook.kernel import RESTARTED, SHUT_DOWN, KernelWatch


class _Kernel:
    """What KernelWatch reads of ipykernel: the control message being handled."""

    def __init__(self, restart: bool) -> None:
        self.parent = {"header": {"msg_type": "shutdown_request"},
                       "content": {"restart": restart}}

    def get_parent(self, channel: str | None = None) -> dict:
        return self.parent if channel == "control" else {}


@pytest.fixture
def shell():
    InteractiveShell.clear_instance()
    yield InteractiveShell.instance()
    InteractiveShell.clear_instance()


@pytest.mark.parametrize("restart, reason", [(True, RESTARTED), (False, SHUT_DOWN)])
def test_a_shutdown_request_after_the_interrupt_is_a_leaving_kernel(shell, restart, reason):
    shell.kernel = _Kernel(restart)
    left = []
    watch = KernelWatch(shell, grace=5.0, on_leave=left.append)
    # ipykernel's control thread handles the shutdown_request while the cell
    # still runs: do_shutdown sets exit_now shortly after the interrupt
    threading.Timer(0.2, lambda: setattr(shell, "exit_now", True)).start()
    started = time.monotonic()
    assert watch.check() == reason
    assert time.monotonic() - started < 2.0  # it did not wait out the grace
    assert left == [reason]


def test_an_interrupt_alone_is_the_stop_button(shell):
    watch = KernelWatch(shell, grace=0.3)
    started = time.monotonic()
    assert watch.check() is None
    assert 0.3 <= time.monotonic() - started < 2.0


def test_exit_without_a_kernel_is_a_shutdown(shell):
    watch = KernelWatch(shell, grace=0.0)
    shell.exit_now = True
    assert watch.check() == SHUT_DOWN


class _Comm:
    """ipykernel 7's comm hook, as its shell channel thread calls it."""

    def _reply_subshell_for(self, data, default):
        return default


class _Button:
    def __init__(self, comm) -> None:
        self.comm = comm


def test_a_click_is_noticed_where_the_shell_channel_routes_it():
    clicks = []
    button = _Button(_Comm())
    assert on_busy_click(button, lambda: clicks.append(1))
    route = button.comm._reply_subshell_for
    assert route({"method": "custom", "content": {"event": "click"}}, None) is None
    assert route({"method": "update", "state": {"x": 1}}, "sub") == "sub"
    assert clicks == [1]  # only the click, and the message is routed on unchanged
    assert not is_click({"method": "custom", "content": {"event": "hover"}})


def test_without_the_hook_the_button_works_when_idle_only():
    assert not on_busy_click(_Button(object()), lambda: None)
    assert not on_busy_click(_Button(None), lambda: None)
