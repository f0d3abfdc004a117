"""The Jupyter server extension: the jobs sidebar's REST API under ``/twister2/api/``.

JupyterLab's jobs sidebar (``extension/`` in the repository, shipped prebuilt in
the wheel) talks to these handlers only; they call :class:`twister_nb.jobs.JobClient`
and nothing below it, so the sidebar sees what ``twister-nb jobs`` and
``%twister2 jobs`` see. The server keeps no state of its own: every answer is
read from the cluster and the store when it is asked for, so a restarted
server (or a reloaded page) loses nothing.

Enabled on install by ``jupyter-config/jupyter_server_config.d/twister_nb.json``
(``jupyter server extension list`` shows ``twister_nb.server``).

The modules:

* :mod:`~twister_nb.server.handlers` -- the REST handlers (authenticated, as all of Jupyter's);
* :mod:`~twister_nb.server.views` -- job rows and details as JSON (plain functions).
"""

from __future__ import annotations

from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Int

__all__ = ["TwisterServerApp"]


class TwisterServerApp(ExtensionApp):
    """The extension's app: its settings and handlers (no page of its own)."""

    name = "twister_nb"
    load_other_extensions = True

    max_poll_seconds = Float(
        30.0, config=True,
        help="The longest a request for a job's events waits for one (long-poll), in seconds.")
    threads = Int(
        4, config=True,
        help="Threads that call the job API (it blocks on the cluster and the store).")

    def initialize_handlers(self) -> None:
        from twister_nb.server.handlers import routes

        self.handlers.extend(routes(self))


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "twister_nb.server", "app": TwisterServerApp}]
