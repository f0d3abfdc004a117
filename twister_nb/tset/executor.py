"""What runs a job's actions: the :class:`Executor` interface, and its default.

The API layer builds graphs and never imports Ray or the runtime: a
:class:`~twister_nb.tset.environment.TSetEnvironment` hands its actions to an
executor. A caller passes one in (``TSetEnvironment(executor=...)``);
otherwise the environment makes the default one, the Ray runtime's, whose
factory the package root sets once with :func:`set_default_executor` (a
callable, not a name to import: the runtime imports this layer, so this layer
does not import the runtime).

The two callables front ends hand an environment are typed here too: a
:data:`Listener` watches the job's events, an :data:`ActionHook` sees each
action before it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the package root imports this module: it stays light (no ops)
    from twister_nb.tset import ops
    from twister_nb.tset.environment import TSetEnvironment

__all__ = ["ActionHook", "Executor", "ExecutorFactory", "LeaveCheck", "Listener", "WaitHook",
           "make_executor", "set_default_executor"]

#: A watcher of a job's events. Events are the JobMaster's, handed over as
#: they are: this layer does not read them.
Listener = Callable[[Any], None]

#: Called with ``(action, root)`` before each action of the job runs (see
#: :meth:`~twister_nb.tset.environment.TSetEnvironment.add_action_hook`): True lets it run, False skips it
#: (the action then returns None), an exception stops it.
ActionHook = Callable[[str, "ops.LogicalOp"], bool]

#: Asked when an action is interrupted (``KeyboardInterrupt``): why this process
#: is going away (``"kernel restarted"``), or None. A leaving process detaches
#: and the action goes on; any other interrupt cancels the action.
LeaveCheck = Callable[[], "str | None"]

#: Called with the running action (number, kind, label, ``since``: the event
#: cursor of its start) before ``env.wait()`` follows it.
WaitHook = Callable[[dict[str, Any]], None]


class Executor(Protocol):
    """What runs a job's actions (the Ray runtime implements it)."""

    #: Called with every event of the job, in order; the environment's
    #: :meth:`~twister_nb.tset.environment.TSetEnvironment.subscribe` adds to it.
    listeners: list[Listener]

    def banner_fields(self) -> dict[str, str]:
        """``Cluster Type``/``Runtime`` lines of the job banner."""

    def execute(self, root: ops.LogicalOp, action: str, *, materialize_id: str | None = None) -> Any:
        """Run the graph up to ``root``; ``action`` is ``run``, ``collect``,
        ``partitions``, ``cache`` or ``persist``."""

    def release(self, tset_id: str) -> None:
        """Free the cached data of ``tset_id``."""

    def close(self) -> None:
        """End the job and free its workers."""

    def cancel(self) -> bool:
        """Ask the job to stop its running action; False if this executor runs none."""

    def info(self) -> dict[str, Any]:
        """The job's live state: name, status, workers, cached and persisted TSets."""

    def catalog(self) -> dict[str, dict[str, Any]]:
        """The job's cached and persisted TSets: id -> label, storage, parallelism, keyed."""

    def running(self) -> dict[str, Any] | None:
        """The action running now, if any."""

    def wait_running(self, timeout: float | None = None) -> Any:
        """The running action's value, once it ends (or the outcome of the latest
        action, if another driver started it and it ended since)."""

    def events(self, cursor: int = 0) -> tuple[list[Any], int]:
        """The job's events from ``cursor`` on, and the cursor to ask with next."""

    def detach(self, reason: str) -> None:
        """Leave the job running without this process; ``reason`` is recorded."""

    def commit_variables(self, snapshot: dict[str, Any]) -> int:
        """Commit the job's loop variables (TSets as references); the snapshot's number."""

    def committed_variables(self) -> dict[str, Any] | None:
        """The job's newest committed loop variables, or None."""

    def snapshot(self) -> dict[str, Any]:
        """Checkpoint every finished task not saved yet; what was saved."""

    def set_checkpoint_policy(self, policy: str, params: Any = None) -> dict[str, Any]:
        """The job's checkpoint policy from now on; its description."""


#: Makes the executor of ``env``: ``factory(env, attach_only=...)``; with
#: ``attach_only`` the job must exist already (live or recorded).
ExecutorFactory = Callable[..., Executor]

_default_factory: ExecutorFactory | None = None


def set_default_executor(factory: ExecutorFactory) -> None:
    """Set what makes a job's executor when ``TSetEnvironment(executor=None)``.

    The package root calls it once with the Ray runtime's factory, so this
    layer needs no import of the runtime (which imports this layer). Code that
    wants another executor passes it to the environment instead of calling this.
    """
    global _default_factory
    _default_factory = factory


def make_executor(env: TSetEnvironment, given: Executor | ExecutorFactory | None,
                   attach_only: bool) -> Executor:
    """``given`` itself if it is an executor (it has ``execute`` and is not a
    class), else the result of calling it, or of the default factory, as a factory."""
    if given is not None and not isinstance(given, type) and hasattr(given, "execute"):
        return given  # type: ignore[return-value]
    factory = given if given is not None else _default_factory
    if factory is None:
        raise RuntimeError("no executor: pass TSetEnvironment(executor=...), or import "
                           "twister_nb, which sets the Ray runtime as the default")
    return factory(env, attach_only=attach_only)
