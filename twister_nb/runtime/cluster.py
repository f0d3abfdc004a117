"""The Ray cluster a job runs on: connect, or own a loopback head for "local".

``ray.address: local`` (the default) reuses or starts a Ray head that belongs
to twister_nb: a separate process group started with ``ray start --head
--block`` under the twister_nb home, bound to 127.0.0.1 with token auth, so
jobs outlive the kernel that started them. Its PID, address and ports are in
``<home>/ray/cluster.json``; it is stopped by that PID, never by ``ray stop``
(other Ray processes on the machine may belong to someone else).

Why this module is long: it is the whole life of the one cluster a process
uses, start to stop (the local head's start with its retries, priorities and
one-line failures; its state file; the connection, with its lock, loopback
and token settings and its one-line refusals), and those steps share the
head's state and its failure wording; split, each part would reach into the others.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from twister_nb import config as _config
from twister_nb.errors import ClusterError
from twister_nb.runtime.ray_errors import ray_error_line
from twister_nb.tset.watchers import startup_step

NAMESPACE_DEFAULT = "twister_nb"
_LOOPBACK = "127.0.0.1"


def _ray_dir() -> Path:
    path = _config.home() / "ray"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _state_file() -> Path:
    return _ray_dir() / "cluster.json"


def token_path() -> Path:
    """The auth token shared by the local head and its drivers (mode 0600)."""
    path = _ray_dir() / "auth_token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path


def _temp_dir() -> Path:
    """Ray's session folder. Short, because Ray's socket paths must fit in 107
    bytes, and one per home so two homes never share a session."""
    digest = hashlib.blake2b(str(_config.home()).encode(), digest_size=5).hexdigest()
    return Path("/tmp") / f"tnb-{digest}"


def loopback_environ() -> dict[str, str]:
    """Variables every process of a local cluster needs (head, drivers, workers)."""
    return {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_path()),
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((_LOOPBACK, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine lives (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return True


def _answers(address: str, timeout: float = 1.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with open(_ray_dir() / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def local_status() -> dict[str, Any] | None:
    """The running local head's record, or None if there is none."""
    path = _state_file()
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not pid_alive(state["pid"]) or not _answers(state["address"]):
        return None
    return state


#: Ray's own start-up waits that an environment variable can raise. On Ray 2.60 the
#: raylet's wait for the dashboard agent's port file is fixed (15 s) and ``ray start``
#: waits a fixed 30 s for the raylet: on a busy machine the agent's imports can take
#: longer, which is why a failed start is retried once with new ports.
_START_TIMEOUTS = {"RAY_agent_register_timeout_ms": "120000",
                   "RAY_gcs_rpc_server_connect_timeout_s": "60"}
#: The head's SIGTERM (``cluster stop``) first "drains" the node until it is idle, for up
#: to 30 s by default (Ray Serve's replicas move meanwhile); detached actors (live jobs,
#: the warm pool) never leave it idle, so every stop waited the whole 30 s. Nothing of
#: ours moves elsewhere: the head stops at once.
_STOP_AT_ONCE = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}


class _HeadFailed(Exception):
    """One ``ray start`` that did not come up: why, and whether trying again can help."""

    def __init__(self, reason: str, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


def start_local(num_cpus: int | None = None, object_store_memory: int | None = None,
                timeout: float = 90.0, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Start the local head unless one is running; return its record.

    A start that fails for a reason trying again can cure (a busy machine: Ray's
    own start-up waits run out) is tried again once (``ray.start_attempts``), with
    new ports and a new session. The record says how long the start took
    (``start_seconds``) and in how many attempts. If it never comes up, the
    :class:`ClusterError` says why in its first line, then the end of the head's log.
    """
    with _locked():
        state = local_status()
        if state is not None:
            return state
        num_cpus = _config.override_with("ray.num_cpus", num_cpus, config)
        object_store_memory = _config.override_with("ray.object_store_memory", object_store_memory, config)
        attempts = max(1, int(_config.get("ray.start_attempts", 2, config)))
        log_path = _ray_dir() / "head.log"
        with startup_step("starting the local Ray head"):
            return _start_attempts(num_cpus, object_store_memory, timeout, log_path, attempts)


def _start_attempts(num_cpus: int | None, object_store_memory: int | None, timeout: float,
                    log_path: Path, attempts: int) -> dict[str, Any]:
    """Start the head, trying again as :func:`start_local` says; its record."""
    began = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            state = _start_head(num_cpus, object_store_memory, timeout, log_path)
        except _HeadFailed as failed:
            if attempt < attempts and failed.retry:
                continue
            took = time.monotonic() - began
            load = os.getloadavg()[0]
            raise ClusterError(
                f"the local Ray head did not start ({attempt} attempt"
                f"{'s' if attempt > 1 else ''}, {took:.0f} s, load average {load:.1f}): "
                f"{failed.reason.rstrip('.')}. "
                + ("The machine may be too busy: try again when it is quieter. "
                   if failed.retry else "")
                + f"Its log is {log_path}; its last lines:\n{_tail(log_path)}") from None
        state.update(start_seconds=round(time.monotonic() - began, 2), attempts=attempt)
        _state_file().write_text(json.dumps(state))
        return state
    raise AssertionError("unreachable")


def _start_head(num_cpus: int | None, object_store_memory: int | None, timeout: float,
                log_path: Path) -> dict[str, Any]:
    """One ``ray start --head --block`` with fresh ports; its record once it answers."""
    (gcs, client, agent, agent_grpc, metrics, runtime_env, node_mgr, obj_mgr,
     dashboard) = _free_ports(9)
    temp_dir = _temp_dir()
    ray_cli = Path(sys.executable).with_name("ray")
    cmd = [
        str(ray_cli) if ray_cli.exists() else "ray", "start", "--head", "--block",
        f"--node-ip-address={_LOOPBACK}", f"--port={gcs}",
        # --no-monitor: a single loopback node has nothing to autoscale, and one
        # Python process less competes with the raylet's agents while they start.
        f"--ray-client-server-port={client}", "--no-monitor", "--include-dashboard=false",
        f"--dashboard-host={_LOOPBACK}", f"--dashboard-port={dashboard}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={runtime_env}", f"--node-manager-port={node_mgr}",
        f"--object-manager-port={obj_mgr}", f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    if num_cpus is not None:
        cmd.append(f"--num-cpus={int(num_cpus)}")
    if object_store_memory is not None:
        cmd.append(f"--object-store-memory={int(object_store_memory)}")
    env = {**_START_TIMEOUTS, **os.environ, **loopback_environ(), **_STOP_AT_ONCE}
    # The head's Python processes start with our start-up hook (head_python/sitecustomize.py):
    # 0.85 s less per process, so per actor a job starts and per agent the raylet waits for.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).with_name("head_python"))]
        + [p for p in [os.environ.get("PYTHONPATH", "")] if p])
    launched = time.time()
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        offset = log.tell()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    _start_with_priority(proc.pid)  # before it imports Ray and starts its children
    address = f"{_LOOPBACK}:{gcs}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _terminate(proc.pid, grace=0)  # whatever it started and left behind
            raise _head_failure(log_path, offset, temp_dir, launched, proc.returncode)
        if _answers(address) and "Ray runtime started" in _read_from(log_path, offset):
            _priority_back(proc.pid)
            return {"pid": proc.pid, "address": address, "temp_dir": str(temp_dir),
                    "client_port": client, "log": str(log_path), "started": time.time()}
        time.sleep(0.2)
    _terminate(proc.pid)
    raise _HeadFailed(f"it did not answer within {timeout:.0f} s", retry=True)


#: Niceness of the head's processes while they start, where the OS allows it (root):
#: the raylet gives its agents a fixed 15 s to come up, and their imports are what a
#: busy machine slows down. Set back to ours once the head answers, so the workers it
#: starts later (the user's code) run at the caller's priority.
_STARTING_NICENESS = -5


def _start_with_priority(pid: int) -> None:
    with contextlib.suppress(OSError):  # not root: it starts at our own priority
        os.setpriority(os.PRIO_PROCESS, pid, _STARTING_NICENESS)


def _priority_back(pgid: int) -> None:
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PGRP, pgid, os.getpriority(os.PRIO_PROCESS, 0))


def _read_from(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _tail(path: Path, lines: int = 8) -> str:
    text = path.read_text(errors="replace").rstrip().splitlines()
    return "\n".join("    " + line for line in text[-lines:])


def _head_failure(log_path: Path, offset: int, temp_dir: Path, launched: float,
                  code: int | None) -> _HeadFailed:
    """Why a ``ray start`` exited, in words: its own last error line, and the
    raylet's fatal line when there is one (Ray hides that one in ``raylet.out``)."""
    ours = [line.strip() for line in _read_from(log_path, offset).splitlines()
            if line.strip()]
    last = next((line for line in reversed(ours) if "Error" in line or "Exception" in line),
                ours[-1] if ours else f"exit code {code}")
    raylet = ""
    for out in temp_dir.glob("session_*/logs/raylet.out"):
        if out.stat().st_mtime < launched:
            continue  # an earlier session's
        fatal = [line for line in out.read_text(errors="replace").splitlines()
                 if "Check failed" in line or "Timed out waiting" in line]
        if fatal:
            raylet = fatal[-1].split("Check failed:")[-1].strip()
    reason = f"ray start exited with code {code}: {last}"
    if raylet:
        reason += f" (raylet: {raylet})"
    # A bad setting fails again; a start that ran out of time may not.
    return _HeadFailed(reason, retry=not last.startswith("ValueError"))


#: Seconds ``cluster stop`` waits for the head's processes after its SIGKILL (Ray's
#: actors, the pool keeper among them, end when their raylet is gone, ~1-2 s here).
_GONE_TIMEOUT = 20.0


def session_pids(sid: int) -> list[int]:
    """The live processes (zombies excluded) of the session ``sid``, this one excepted.

    The local head leads a session of its own (``start_new_session``) and every
    process it starts stays in it: Ray's GCS and raylet in the head's process
    group, and each actor (JobMasters, workers, the pool keeper) in a group of
    its own, which is why a signal to the head's group alone leaves them behind.
    Linux only (``/proc``); elsewhere the list is empty.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            # after the command name: state, ppid, pgrp, session, ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode() or "?"
    except OSError:
        return "gone"


def _wait_gone(pid: int, deadline: float) -> list[int]:
    """Wait until the head ``pid`` and every process of its session are gone,
    or until ``deadline`` (monotonic); those still alive then."""
    while True:
        left = [p for p in session_pids(pid) if p != pid]
        if pid_alive(pid):
            left.insert(0, pid)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def _terminate(pid: int, grace: float = 15.0) -> list[int]:
    """Stop the head ``pid`` and every process of its session; those still
    alive after it all (none, normally).

    SIGTERM the head first (``ray start --block`` stops its children), then
    SIGKILL its process group and whatever of its session is left (Ray's actors,
    in groups of their own), and wait until they are gone: a stop that returned
    while one still ran would let the next start find it.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    _wait_gone(pid, time.monotonic() + grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for straggler in session_pids(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(straggler, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0 if pid_alive(pid) else os.WNOHANG)
    return _wait_gone(pid, time.monotonic() + _GONE_TIMEOUT)


def stop_local() -> bool:
    """Stop the local head by its PID, and wait until it and every process it
    started (Ray's actors, the pool keeper) are gone; True if one was running.

    Raises
    ------
    ClusterError
        If some of them are still alive after the SIGKILL and
        ``_GONE_TIMEOUT`` seconds more (their PIDs are in the message).
    """
    with _locked():
        path = _state_file()
        if not path.exists():
            return False
        state = json.loads(path.read_text())
        head = int(state["pid"])
        was_alive = pid_alive(head) or bool(session_pids(head))
        left = _terminate(head) if was_alive else []
        path.unlink(missing_ok=True)
        if left:
            named = ", ".join(f"{p} ({_process_name(p)})" for p in left[:6])
            raise ClusterError(
                f"the local Ray head (pid {head}) was stopped, but {len(left)} of its "
                f"processes still ran {_GONE_TIMEOUT:.0f} s after a SIGKILL: {named}")
        return was_alive


def resolve_address(config: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """``(address, cluster type)`` for config ``ray.address``; starts the local head."""
    address = str(_config.get("ray.address", "local", config))
    if address == "local":
        return start_local(config=config)["address"], "local"
    return address, "remote"


def _refresh_imported_ray() -> None:
    """Make a Ray the program imported before us see the loopback settings, as
    Ray does itself when it turns token auth on: re-read its cached config."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        from ray._raylet import Config

        Config.initialize("")
    except (ImportError, AttributeError):  # another Ray version: the caller's error says why
        pass


def connect(config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Connect this process to the job cluster once; return banner facts."""
    address, kind = resolve_address(config)
    # A kernel connects in a thread while its first cell may ask too: one at a
    # time, importing Ray included (two threads importing Ray deadlock).
    with _CONNECTING:
        if kind == "local":
            # Ray reads these when it is imported; if the program imported Ray
            # first, also flip the constant that makes it rewrite 127.0.0.1 into
            # the machine's address (and then wait forever for a GCS there).
            os.environ.update(loopback_environ())
            if "ray" in sys.modules:
                _refresh_imported_ray()
        else:
            token = _config.get("ray.auth_token_path", None, config)
            if token:  # read by Ray when it connects
                os.environ.update(RAY_AUTH_MODE="token",
                                  RAY_AUTH_TOKEN_PATH=str(Path(token).expanduser()))
        import ray

        RAY_IMPORTED.set()
        if not ray.is_initialized():
            with startup_step("connecting to Ray"):
                _init(ray, address, kind, config)
            # Registered after Ray's own exit hook, so it runs first (and after the
            # jobs' TSetEnvironment.close, registered later still): see disconnect.
            atexit.register(disconnect)
            from twister_nb.runtime import ray_log

            ray_log.install()  # the raylet's messages go to the job logs, not to stdout
    return {"address": address, "type": kind}


#: Held while this process connects to Ray (and imports it).
_CONNECTING = threading.Lock()
#: Set once :func:`connect` has imported Ray in this process: what a kernel's
#: cells wait for while its background connection imports Ray (see
#: :class:`twister_nb.jobs.WarmUp`).
RAY_IMPORTED = threading.Event()


def _init(ray: Any, address: str, kind: str, config: Mapping[str, Any] | None) -> None:
    """``ray.init`` of this process, on loopback for the local head."""
    kwargs: dict[str, Any] = {}
    if kind == "local":
        kwargs["_node_ip_address"] = _LOOPBACK
    try:
        ray.init(address=address, namespace=_config.get("ray.namespace", NAMESPACE_DEFAULT, config),
                 log_to_driver=False, logging_level="ERROR", **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure here is "cannot reach"
        raise ClusterError(_cannot_connect(address, kind, exc)) from None


def disconnect() -> None:
    """End this process's Ray driver, if it has one: before the local head stops
    (``JobClient.cluster_stop``), and at exit.

    At exit it runs after every job's ``TSetEnvironment.close`` and before Ray's
    own exit hook (:func:`connect` registers it), which would first sleep half a
    second (``ray.shutdown(_exiting_interpreter=True)``) for late error messages
    and worker logs. This process asked Ray for neither (``log_to_driver=False``,
    ``logging_level="ERROR"``): a job's output and errors reach its drivers
    through the job's event log, read before an action returns. The sleep was a
    quarter of ``twister-nb submit``'s time on a warm cluster. Ray's hook then
    finds nothing to do."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _cannot_connect(address: str, kind: str, exc: BaseException) -> str:
    """Why this process could not connect, in one line, with what to do."""
    causes = []
    while exc is not None and len(causes) < 10:
        causes.append(exc)
        exc = exc.__cause__ or exc.__context__
    text = " ".join(str(c) for c in causes)
    if kind == "remote" and ("auth" in text.lower() or "token" in text.lower()):
        configured = os.environ.get("RAY_AUTH_TOKEN_PATH")
        return (f"the Ray cluster at {address!r} refused this process: it uses token "
                "authentication and " + (f"the token in {configured!r} is not its token"
                                         if configured else "no token was given") +
                "; set config ray.auth_token_path to the cluster's token file")
    first = ray_error_line(causes[0])
    if kind == "remote":
        return (f"cannot connect to the Ray cluster at {address!r} ({first}); check config "
                "ray.address (host:port of the cluster's head), and that it is running")
    return (f"cannot connect to the local Ray head at {address!r} ({first}); "
            "`twister-nb cluster stop` then `twister-nb cluster start` starts a new one")


def ray_logs_dir(info: Mapping[str, str]) -> str | None:
    """The folder of Ray's own logs (raylet, workers) for a local head; None for
    a remote cluster (its logs are on its machines)."""
    if info.get("type") != "local":
        return None
    return str(_temp_dir() / "session_latest" / "logs")


def banner_fields(info: Mapping[str, str], job_id: str | None = None) -> dict[str, str]:
    """The ``Cluster Type`` and ``Runtime`` lines of a job banner, and with a job
    ID its ``Job Log`` (where Ray's own messages to the driver go)."""
    import platform

    import ray

    from twister_nb.runtime.ray_log import job_log_path

    fields = {
        "Cluster Type": f"ray ({info['type']}, {info['address']})",
        "Runtime": f"Python {platform.python_version()}, Ray {ray.__version__}",
    }
    if job_id is not None:
        fields["Job Log"] = str(job_log_path(job_id))
    return fields


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))
