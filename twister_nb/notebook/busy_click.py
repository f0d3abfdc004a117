"""A button that works while its cell runs: the dashboard's Cancel.

A widget's messages (a click is a ``comm_msg`` with ``{"method": "custom",
"content": {"event": "click"}}``) reach the kernel on its shell channel, whose
handler runs on the kernel's main thread: while a foreground cell blocks that
thread (an action waited for), they queue until the cell ends, so a plain
``Button.on_click`` fires after the job is done. (A ``%%twister2`` cell that
the kernel awaits, :mod:`~twister_nb.notebook.awaited`, leaves the thread's
loop free, and the click is handled at once; this hook covers the cells that
are not awaited.)

ipykernel 7 receives every shell message first in its own *shell channel
thread*, which asks a comm's ``_reply_subshell_for(data, default)`` which
subshell should handle a ``comm_msg`` (kernelbase ``shell_channel_thread_main``).
That call is made at once, whatever the main thread is doing. :func:`on_busy_click`
wraps it for one button's comm: on a click it calls the callback there, in the
shell channel thread, and routes the message on unchanged, so the main thread
still handles it later (the callback must be idempotent and quick: the
dashboard's Cancel sets ``cancel_requested`` first and only sends the JobMaster
a non-blocking ``cancel``).

On a kernel without that hook (ipykernel < 7, or another kernel) nothing is
wrapped and the button works when the kernel is idle, as before; the stop
button cancels a running action everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["is_click", "on_busy_click"]

_ROUTE = "_reply_subshell_for"  # ipykernel 7's comm hook, called in its shell channel thread


def is_click(data: Any) -> bool:
    """Whether a widget message's ``data`` is a button click.

    >>> is_click({"method": "custom", "content": {"event": "click"}})
    True
    >>> is_click({"method": "update", "state": {}})
    False
    """
    return (isinstance(data, dict) and data.get("method") == "custom"
            and isinstance(data.get("content"), dict) and data["content"].get("event") == "click")


def on_busy_click(button: Any, callback: Callable[[], Any]) -> bool:
    """Call ``callback()`` as soon as ``button`` is clicked, even while the
    kernel's main thread runs a cell. True if the kernel allows it."""
    comm = getattr(button, "comm", None)
    route = getattr(comm, _ROUTE, None)
    if route is None or not callable(route):
        return False

    def route_and_notice(data: Any, default: Any) -> Any:
        if is_click(data):
            try:
                callback()
            except Exception:  # noqa: BLE001 - a failing callback must not lose the message
                pass
        return route(data, default)

    setattr(comm, _ROUTE, route_and_notice)
    return True
