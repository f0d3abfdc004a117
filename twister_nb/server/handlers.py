"""The REST handlers of the jobs sidebar, under ``<base_url>/twister2/api/``.

==========================================  ==========================================
``GET  jobs``                               every job, live and recorded (``{"jobs": [...]}``)
``GET  jobs/<id>``                          one job: row, record, dashboard, cursor, errors
``GET  jobs/<id>/events?cursor=N&timeout=S``  its events from ``cursor`` (waits up to ``S`` s
                                            for one); ``{"events", "cursor", "live"}``
``POST jobs/<id>/cancel|close|clear|restart``  the job API's operation; ``restart`` answers
                                            202 and runs the program in a new process
==========================================  ==========================================

Every handler is Jupyter Server's authenticated :class:`APIHandler` (the
server's token or login cookie, and XSRF for a cookie's POST), marked
``@authorized``. Errors are JSON ``{"message": ...}``: 400 for bad input, 404 for
a job neither the cluster nor the store knows, 409 for an operation the job's
state refuses (clear a running job, close a job a kernel drives), 503 when the
cluster cannot be reached. The job API blocks (Ray and the store), so it runs
in the app's thread pool, never on the server's event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from twister_nb.errors import ClusterError, JobNotFoundError, JobOwnedError, TwisterError
from twister_nb.jobs import JobClient, JobRunningError, NoProgramError
from twister_nb.server.views import KernelInfo, detail_json, fold, progress_json, row_json

if TYPE_CHECKING:
    from twister_nb.server import TwisterServerApp

T = TypeVar("T")

#: The operations ``POST jobs/<id>/<operation>`` runs.
OPERATIONS = ("cancel", "close", "clear", "restart")
#: How often a long-poll for events asks the JobMaster again.
POLL_SECONDS = 0.25


class JobAPI:
    """What the handlers share: the job client and the threads that call it.

    At the first request, the first task of the pool imports the runtime (Ray)
    and connects, once, before any other call can import it too (two threads
    importing Ray can deadlock); a server whose sidebar is never opened never
    imports Ray nor connects."""

    def __init__(self, max_poll_seconds: float, threads: int) -> None:
        self.client = JobClient()
        self.max_poll_seconds = max_poll_seconds
        self._pool = ThreadPoolExecutor(max_workers=max(2, threads),
                                        thread_name_prefix="twister-nb-api")
        self._ready: Future | None = None
        self._lock = threading.Lock()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the pool, awaited."""
        with self._lock:
            if self._ready is None:
                self._ready = self._pool.submit(self.client.warm_up)
        ready = self._ready

        def run() -> T:
            try:
                ready.result()
            except Exception:  # noqa: BLE001 - the call itself says what is wrong
                pass
            return fn(*args)

        return await asyncio.wrap_future(self._pool.submit(run))


def routes(app: TwisterServerApp) -> list[tuple[str, type, dict[str, Any]]]:
    """The URL patterns (below the server's base URL) and their handlers."""
    api = JobAPI(app.max_poll_seconds, app.threads)
    job = r"/twister2/api/jobs/(?P<job_id>[^/]+)"
    return [
        (r"/twister2/api/jobs/?", JobsHandler, {"api": api}),
        (job + r"/?", JobHandler, {"api": api}),
        (job + r"/events/?", EventsHandler, {"api": api}),
        (job + r"/(?P<operation>[a-z]+)/?", OperationHandler, {"api": api}),
    ]


def _http_error(exc: Exception) -> web.HTTPError:
    """The HTTP answer to an error of the job API (its message as the JSON's)."""
    message = str(exc)
    if isinstance(exc, JobNotFoundError):
        return web.HTTPError(404, message)
    if isinstance(exc, (JobRunningError, JobOwnedError)):
        return web.HTTPError(409, message)
    if isinstance(exc, NoProgramError):
        return web.HTTPError(400, message)
    if isinstance(exc, ClusterError):
        return web.HTTPError(503, message)
    if isinstance(exc, ValueError):  # a job ID the store refuses, with why
        return web.HTTPError(400, message)
    return web.HTTPError(500, f"{type(exc).__name__}: {message}")


class _Handler(APIHandler):
    """Authenticated JSON handler over :class:`JobAPI`."""

    auth_resource = "twister2"

    def initialize(self, api: JobAPI) -> None:
        self.api = api

    async def job_call(self, fn: Callable[..., T], *args: Any) -> T:
        """The job API's call, its errors as HTTP errors."""
        try:
            return await self.api.call(fn, *args)
        except (TwisterError, ValueError) as exc:
            raise _http_error(exc) from exc

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value, default=str))

    async def kernels(self) -> dict[int, KernelInfo]:
        """This server's kernels by PID (a job's driver may be one), with their
        notebooks' paths."""
        paths: dict[str, str] = {}
        try:
            for session in await self.session_manager.list_sessions():
                paths[session["kernel"]["id"]] = session.get("path", "")
        except Exception:  # noqa: BLE001 - kernels are named without their notebooks
            pass
        found = {}
        for kernel_id in self.kernel_manager.list_kernel_ids():
            try:
                kernel = self.kernel_manager.get_kernel(kernel_id)
            except KeyError:  # it ended since the listing
                continue
            pid = getattr(getattr(kernel, "provisioner", None), "pid", None)
            if pid:
                found[int(pid)] = KernelInfo(kernel_id, kernel.kernel_name, paths.get(kernel_id, ""))
        return found

    def int_argument(self, name: str, default: int, low: int = 0) -> int:
        raw = self.get_argument(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise web.HTTPError(400, f"{name} must be an integer, got {raw!r}") from None
        if value < low:
            raise web.HTTPError(400, f"{name} must be >= {low}, got {value}")
        return value

    def float_argument(self, name: str, default: float, high: float) -> float:
        raw = self.get_argument(name, str(default))
        try:
            value = float(raw)
        except ValueError:
            raise web.HTTPError(400, f"{name} must be a number of seconds, got {raw!r}") from None
        if not 0 <= value <= high:
            raise web.HTTPError(400, f"{name} must be between 0 and {high:g} s, got {raw}")
        return value


def _progress(client: JobClient, row: dict[str, Any]) -> dict[str, Any] | None:
    """The running action's tasks done of all, folded from its own events."""
    running = row.get("running")
    if not running:
        return None
    try:
        events, _ = client.events(row["job_id"], int(running.get("since") or 0))
    except JobNotFoundError:  # it ended since the listing
        return None
    return progress_json(fold(events).snapshot(), running.get("action"))


class JobsHandler(_Handler):
    """``GET jobs``: every job of the cluster and the store, oldest first."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        client = self.api.client

        def listing() -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
            return [(dict(row), _progress(client, dict(row))) for row in client.jobs()]

        rows = await self.job_call(listing)
        kernels = await self.kernels()
        now = time.time()
        self.reply({"jobs": [row_json(row, kernels, progress, now) for row, progress in rows],
                    "time": now})


class JobHandler(_Handler):
    """``GET jobs/<id>``: one job in full, with its dashboard and the event cursor."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        client = self.api.client

        def detail() -> tuple[dict[str, Any], Any, int, bool]:
            job = dict(client.job(job_id))
            state, cursor = None, 0
            if job["live"]:
                try:
                    events, cursor = client.events(job_id, 0)
                    state = fold(events, job_id, job["name"])
                except JobNotFoundError:  # it ended just now: shown as recorded
                    pass
            try:
                client.program(job_id)
                restartable = True
            except (NoProgramError, JobNotFoundError):
                restartable = False
            return job, state, cursor, restartable

        job, state, cursor, restartable = await self.job_call(detail)
        self.reply(detail_json(job, state, cursor, await self.kernels(), restartable))


class EventsHandler(_Handler):
    """``GET jobs/<id>/events?cursor=N&timeout=S``: the job's events from
    ``cursor`` on, as :meth:`Event.to_dict` gives them; waits up to ``S``
    seconds (0 by default) for at least one. A job that is not live (recorded
    only) answers at once with none and ``"live": false``."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        cursor = self.int_argument("cursor", 0)
        timeout = self.float_argument("timeout", 0.0, self.api.max_poll_seconds)
        client = self.api.client
        deadline = time.monotonic() + timeout
        while True:
            try:
                events, after = await self.job_call(client.events, job_id, cursor)
            except web.HTTPError as exc:
                if exc.status_code != 404:
                    raise
                await self.job_call(client.status, job_id)  # 404 if the store has nothing either
                self.reply({"events": [], "cursor": cursor, "live": False})
                return
            if events or time.monotonic() >= deadline or self.request.connection.stream.closed():
                break
            await asyncio.sleep(POLL_SECONDS)
        self.reply({"events": [e.to_dict() for e in events], "cursor": after, "live": True})


class OperationHandler(_Handler):
    """``POST jobs/<id>/<operation>``: cancel, close, clear or restart the job.

    ``cancel`` and ``close`` answer ``{"done": false}`` for a recorded job no
    JobMaster runs (nothing to cancel or close); ``clear`` deletes the job's
    record and checkpoints (the sidebar asks first; a running job is 409);
    ``restart`` checks the job has a program, answers 202 and re-runs it in a
    new process (``twister-nb restart``), its lines into the server's log."""

    @web.authenticated
    @authorized
    async def post(self, job_id: str, operation: str) -> None:
        if operation not in OPERATIONS:
            raise web.HTTPError(404, f"no operation {operation!r}; one of {', '.join(OPERATIONS)}")
        client = self.api.client
        await self.job_call(client.status, job_id)  # 404 for a job nobody knows
        if operation == "cancel":
            self.reply({"job_id": job_id, "operation": operation,
                        "done": await self.job_call(client.cancel, job_id)})
        elif operation == "close":
            self.reply({"job_id": job_id, "operation": operation,
                        "done": await self.job_call(client.close, job_id)})
        elif operation == "clear":
            await self.job_call(client.clear, job_id)
            self.reply({"job_id": job_id, "operation": operation, "done": True})
        else:
            await self.job_call(client.program, job_id)  # 400 for a job with none
            self._restart_in_background(job_id)
            self.reply({"job_id": job_id, "operation": operation, "done": False,
                        "message": f"restarting {job_id} in a new process"}, status=202)

    def _restart_in_background(self, job_id: str) -> None:
        log = self.log

        def run() -> None:
            try:
                code = self.api.client.restart(
                    job_id, on_line=lambda line: log.info("[%s] %s", job_id, line.rstrip()))
                log.info("twister_nb: restart of %s exited with %s", job_id, code)
            except Exception as exc:  # noqa: BLE001 - a thread's error goes to the log
                log.warning("twister_nb: restart of %s failed: %s", job_id, exc)

        threading.Thread(target=run, name=f"twister-nb-restart-{job_id}", daemon=True).start()
