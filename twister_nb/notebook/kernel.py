"""Telling a kernel restart or shutdown from the stop button.

Jupyter interrupts a kernel before it restarts or shuts it down:
jupyter_client's ``KernelManager.shutdown_kernel`` (which ``restart_kernel``,
JupyterLab's *Kernel > Restart* through the server, and the server's kernel
``DELETE`` all call) first interrupts it (SIGINT, or an ``interrupt_request``
that makes ipykernel signal itself), then sends ``shutdown_request`` with
``restart`` true or false on the control channel, and 2.5 s later (half the
server's ``shutdown_wait_time``) SIGTERM. An interrupt alone therefore does
not say whether a person pressed stop (cancel the action) or the kernel is
leaving (the job must go on without it).

ipykernel handles the control channel in its own thread, while the cell still
runs: its ``do_shutdown`` sets the shell's ``exit_now`` trait, and the control
message it is handling (``kernel.get_parent("control")``) says whether it is a
restart. :class:`KernelWatch` observes that trait. When an action is
interrupted, the executor asks :meth:`KernelWatch.check`, which waits up to
``notebook.leave_grace`` seconds for it: a leaving kernel detaches (the job
goes on, its record says why), the stop button still cancels. Jobs the kernel
opened are detached with the reason too when it leaves while idle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["KernelWatch"]

RESTARTED = "kernel restarted"
SHUT_DOWN = "kernel shut down"


class KernelWatch:
    """Whether (and why) the kernel of ``shell`` is going away.

    Parameters
    ----------
    shell : InteractiveShell
        The kernel's shell (its ``exit_now`` trait is observed).
    grace : float
        Seconds :meth:`check` waits for a shutdown request after an interrupt.
    on_leave : callable, optional
        Called with the reason, in the kernel's control thread, when it leaves.
    """

    def __init__(self, shell: Any, grace: float = 1.0,
                 on_leave: Callable[[str], None] | None = None) -> None:
        self._shell = shell
        self.grace = grace
        self._on_leave = on_leave
        self._left = threading.Event()
        #: ``kernel restarted`` or ``kernel shut down`` once the kernel is leaving.
        self.reason: str | None = None
        shell.observe(self._exit_now, names="exit_now")

    def __repr__(self) -> str:
        return f"KernelWatch(reason={self.reason!r})"

    def _restart_requested(self) -> bool:
        """Whether the control message being handled is a restart's shutdown_request."""
        kernel = getattr(self._shell, "kernel", None)
        get_parent = getattr(kernel, "get_parent", None)
        if get_parent is None:
            return False
        try:
            parent = get_parent("control") or {}
        except TypeError:  # an ipykernel without channels
            parent = get_parent() or {}
        if parent.get("header", {}).get("msg_type") != "shutdown_request":
            return False
        return bool(parent.get("content", {}).get("restart"))

    def _exit_now(self, change: dict[str, Any]) -> None:
        if not change["new"] or self._left.is_set():
            return
        self.reason = RESTARTED if self._restart_requested() else SHUT_DOWN
        self._left.set()
        if self._on_leave is not None:
            self._on_leave(self.reason)

    def leave(self, reason: str) -> None:
        """Note that the kernel is leaving (what the observer does; tests call it)."""
        if not self._left.is_set():
            self.reason = reason
            self._left.set()
            if self._on_leave is not None:
                self._on_leave(reason)

    def check(self) -> str | None:
        """Why the kernel is leaving, waiting up to ``grace`` seconds for its
        shutdown request to follow an interrupt; None for the stop button."""
        self._left.wait(self.grace)
        return self.reason
