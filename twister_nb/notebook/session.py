"""The notebook's job: created on first use, reused, switched, attached.

A notebook has one current job, a ``TSetEnvironment``. The first
``%%twister2`` cell creates it, and later cells reuse it. ``--name`` with
another name starts a new job. ``--job-id`` and ``%twister2 attach`` switch to
an existing job: a live one, or one recorded in the store, which the runtime
rebuilds. A cell's ``--job-id`` creates the job when none has that ID, so a
notebook that names its job is the same job after a kernel restart. Jobs this
kernel opened stay open when the notebook switches away from them, so
switching back reuses them (a job has one driver at a time).

With a :class:`~twister_nb.notebook.kernel.KernelWatch`, every job opened here
tells a kernel restart from the stop button (``env.set_leave_check``), and is
detached, not ended, when the kernel leaves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twister_nb.notebook.errors import UsageError
from twister_nb.tset.environment import TSetEnvironment

if TYPE_CHECKING:
    from twister_nb.notebook.cell import CellRun
    from twister_nb.notebook.kernel import KernelWatch

__all__ = ["NotebookSession", "open_job"]


def open_job(job_id: str | None = None, name: str | None = None,
             create: bool = False) -> TSetEnvironment:
    """A new job, or (with ``job_id``) the live or recorded job with that ID
    (``create``: a new job with that ID if there is none).
    The runtime's refusals become one-line :class:`UsageError`s."""
    from twister_nb.errors import JobNotFoundError, JobOwnedError
    from twister_nb.jobs import JobClient

    if job_id is not None:
        name = JobClient().name(job_id) or name
    try:
        return TSetEnvironment(name=name, job_id=job_id, create=create)
    except JobNotFoundError as exc:
        raise UsageError(f"{exc}; %twister2 jobs lists them too", "not_found") from None
    except JobOwnedError as exc:
        raise UsageError(str(exc), "state") from None


class NotebookSession:
    """The notebook's current job, the jobs this kernel opened, the last cell run."""

    def __init__(self, watch: KernelWatch | None = None) -> None:
        self.env: TSetEnvironment | None = None
        self.last: CellRun | None = None
        self._opened: dict[str, TSetEnvironment] = {}
        #: Tells a kernel restart from the stop button (None outside a kernel).
        self.watch = watch
        #: Called with each job opened (the notebook adds its wait hook).
        self.on_open: Callable[[TSetEnvironment], Any] | None = None

    def __repr__(self) -> str:
        return f"NotebookSession(job={getattr(self.env, 'job_id', None)!r})"

    def current(self, *, job_id: str | None = None, name: str | None = None) -> TSetEnvironment | None:
        """The notebook's job if it is open and is the one asked for."""
        env = self.env
        if env is None or env.closed or job_id not in (None, env.job_id):
            return None
        if job_id is None and name not in (None, env.name):
            return None
        return env

    def job(self, *, job_id: str | None = None, name: str | None = None,
            create: bool = False) -> TSetEnvironment:
        """The notebook's job; another ``job_id`` or ``name`` than its own
        switches to that job (a new one for a name, and for an unknown
        ``job_id`` with ``create``), which becomes the notebook's."""
        env = self.current(job_id=job_id, name=name)
        if env is None and job_id is not None:
            env = self._opened.get(job_id)
            if env is not None and env.closed:
                env = None
        if env is None:
            env = open_job(job_id, name, create)
            self._opened[env.job_id] = env
            if self.watch is not None:
                env.set_leave_check(self.watch.check)
            if self.on_open is not None:
                self.on_open(env)
        self.env = env
        return env

    def close(self) -> str | None:
        """End the notebook's job; its ID, or None if it had none."""
        env, self.env = self.env, None
        if env is None:
            return None
        self._opened.pop(env.job_id, None)
        env.close()
        return env.job_id

    def close_all(self) -> None:
        """End every job this kernel opened."""
        for env in list(self._opened.values()):
            env.close()
        self._opened.clear()
        self.env = None

    def detach_all(self, reason: str) -> None:
        """The kernel is leaving: every job it opened goes on without it, its
        record saying ``reason``."""
        for env in list(self._opened.values()):
            if not env.closed:
                env.detach(reason)
        dashboards = sys.modules.get("twister_nb.notebook.dashboard")
        if dashboards is not None:  # loaded: some dashboard was shown
            dashboards.kernel_leaving()

    def forget(self) -> None:
        """Drop every job without closing it (its cluster is gone)."""
        self._opened.clear()
        self.env = None
