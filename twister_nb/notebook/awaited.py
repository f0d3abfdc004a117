"""A foreground ``%%twister2`` cell that leaves the kernel free for its widgets.

Why: a cell's code normally runs on the kernel's main thread, in the asyncio
loop that also handles every shell message. While a foreground cell waits for
its action, nothing else is answered, so a page reloaded mid-cell shows
``Loading widget...`` until the cell ends: JupyterLab's widget manager asks the
kernel for its models (a ``comm_open`` of ``jupyter.widget.control`` and a
``request_states`` ``comm_msg``) on the shell channel.

ipykernel 7 (checked with 7.4, IPython 8.12, ipywidgets 8.1) runs a cell that
has a top-level ``await`` as a task of that loop, and while such a cell awaits
it dispatches ``comm_open``/``comm_msg``/``comm_close`` at once (kernelbase
``shell_main``: the cell holds the shell's lock, comm messages do not wait for
it). So :func:`install` adds an IPython input transformer that turns the
``%%twister2`` cell's call into an ``await`` of :func:`awaited`; the magic,
asked so (:func:`wanted`), hands back a :class:`CellThread`: its foreground
work (the job, the dashboard, the cell's code, the finish) runs in a thread
with the cell's context (its output goes to the cell), and the loop awaits it.
The cell keeps its semantics: its value is the cell's result, its exceptions
are raised from the cell as before, and an interrupt (the stop button; what
Jupyter sends before a restart too) raises ``KeyboardInterrupt`` in the
thread, which the executor takes as a cancel or a leaving kernel, as it did on
the main thread.

What differs from the main thread: an interrupt reaches the cell's code when it
next runs Python, so a ``time.sleep`` in the cell itself finishes first (an
action is interrupted within a poll). Only ``%%twister2`` cells that run in the
foreground are awaited (a ``--background`` or ``--dry-run`` cell returns at
once anyway), and only in a kernel whose loop runs them (ipykernel with
``%autoawait`` on and asyncio's runner); anywhere else the cell runs as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AwaitTransformer", "CellThread", "awaited", "install", "rewrite", "wanted"]

#: What IPython turns a ``%%twister2`` cell into (inputtransformer2 ``cell_magic``).
MAGIC_CALL = "get_ipython().run_cell_magic('twister2', "
#: What :func:`rewrite` makes of it: the same call, awaited.
AWAITED_CALL = ("await __import__('twister_nb.notebook.awaited', fromlist=['awaited'])"
                ".awaited(lambda: {call})\n")

_WANTED: contextvars.ContextVar[bool] = contextvars.ContextVar("twister2_awaited", default=False)


def wanted() -> bool:
    """Whether the running ``%%twister2`` call is awaited (the magic may hand
    back a :class:`CellThread`)."""
    return _WANTED.get()


def rewrite(lines: list[str]) -> list[str]:
    """A transformed ``%%twister2`` cell, awaited; any other cell as it is.

    >>> line = rewrite(["get_ipython().run_cell_magic('twister2', '', 'x = 1\\\\n')\\n"])[0]
    >>> line.startswith("await "), line.endswith(".awaited(lambda: get_ipython()"
    ...                                           ".run_cell_magic('twister2', '', 'x = 1\\\\n'))\\n")
    (True, True)
    >>> rewrite(["x = 1\\n"])
    ['x = 1\\n']
    """
    if len(lines) != 1 or not lines[0].startswith(MAGIC_CALL):
        return lines
    return [AWAITED_CALL.format(call=lines[0].rstrip("\n"))]


class AwaitTransformer:
    """The input transformer :func:`install` adds: :func:`rewrite`, when the
    shell will await the cell on the loop it runs in."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell

    def __call__(self, lines: list[str]) -> list[str]:
        if not lines or not lines[0].startswith(MAGIC_CALL) or not _loop_runs_cells(self.shell):
            return lines
        return rewrite(lines)


def _loop_runs_cells(shell: Any) -> bool:
    """Whether ``shell`` runs a cell with a top-level ``await`` as a task of the
    loop running in this thread (ipykernel's ``do_execute`` test), so the cell
    may await: ``%autoawait`` on, asyncio's runner, a kernel, its loop running."""
    try:
        from IPython.core.interactiveshell import _asyncio_runner  # what ipykernel compares to
    except ImportError:  # pragma: no cover - an IPython without autoawait
        return False
    if getattr(shell, "kernel", None) is None or not getattr(shell, "autoawait", False):
        return False
    if shell.loop_runner is not _asyncio_runner:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def install(shell: Any) -> None:
    """Await foreground ``%%twister2`` cells in ``shell`` (once)."""
    transformers = shell.input_transformers_post
    if not any(isinstance(t, AwaitTransformer) for t in transformers):
        transformers.append(AwaitTransformer(shell))


@dataclass
class CellThread:
    """A cell's foreground work, to run in a thread while the kernel's loop awaits it."""

    work: Callable[[], Any]
    value: Any = field(default=None, init=False)
    error: BaseException | None = field(default=None, init=False)

    async def result(self) -> Any:
        """Run the work in a thread with this context; its value, or its exception raised."""
        __tracebackhide__ = True
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def run() -> None:
            __tracebackhide__ = True
            try:
                self.value = self.work()
            except BaseException as exc:  # noqa: BLE001 - raised again in the cell
                self.error = exc
            finally:
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        context = contextvars.copy_context()  # the cell's parent message: output goes there
        thread = threading.Thread(target=context.run, args=(run,), name="twister2-cell",
                                  daemon=True)
        with _interrupts_go_to(thread):
            thread.start()
            while not done.done():
                try:
                    await asyncio.shield(done)
                except asyncio.CancelledError:
                    # a cancelled cell (an interrupt, as ipykernel delivers it to an
                    # awaiting cell): interrupt the code, and let it finish its way
                    _interrupt(thread)
                    task = asyncio.current_task()
                    if task is not None:
                        task.uncancel()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.value


async def awaited(call: Callable[[], Any]) -> Any:
    """What a rewritten ``%%twister2`` cell awaits: ``call()`` (the magic), told
    that it is awaited; a :class:`CellThread` it hands back is run and awaited."""
    __tracebackhide__ = True
    token = _WANTED.set(True)
    try:
        value = call()
    finally:
        _WANTED.reset(token)
    if isinstance(value, CellThread):
        return await value.result()
    return value


def _interrupt(thread: threading.Thread) -> None:
    """Raise ``KeyboardInterrupt`` in ``thread`` (when it next runs Python)."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                   ctypes.py_object(KeyboardInterrupt))


class _interrupts_go_to:  # noqa: N801 - used as a context manager, like a function
    """While the cell's thread runs, an interrupt (SIGINT: the stop button, or
    Jupyter before a restart) raises ``KeyboardInterrupt`` there, each time, as
    it would in a cell run on the main thread. Outside the main thread (an
    ipykernel subshell) signals cannot be handled: a cancel of the task does it."""

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.saved: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.saved = signal.signal(signal.SIGINT, lambda *_: _interrupt(self.thread))

    def __exit__(self, *exc: Any) -> None:
        if self.saved is not None:
            signal.signal(signal.SIGINT, self.saved)
