"""A real Jupyter server (JupyterLab's) on 127.0.0.1, for tests that need one.

:class:`JupyterServer` starts ``python -m jupyterlab`` as a subprocess on a free
port with a random token, every file of Jupyter's own (config, data, runtime,
settings, workspaces) in a folder of the test, Jupyter's news, update check and
extension manager off, and stops it by its PID (its kernels shut down through
the server first). The browser tests open it in Chromium; the server
extension's tests call its REST API (:meth:`JupyterServer.api`).

twister_nb's own extensions are enabled as an install enables them: the
repository's ``jupyter-config/`` copied into the server's config folder (the
server extension) and the built lab extension linked into its data folder's
``labextensions/`` (``jupyter labextension develop`` does the same).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twister_nb.testing.seaweed import free_ports

__all__ = ["ApiError", "JupyterServer", "LAB_SETTINGS", "PAGE_CONFIG"]

#: JupyterLab's own settings: never ask for, fetch or show Jupyter news or updates.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}
#: ... and the announcements plugin off altogether.
PAGE_CONFIG = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}

# Loopback only: never through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ApiError(Exception):
    """An HTTP error of the server's API: its status and JSON body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class JupyterServer:
    """A JupyterLab server of a test: ``start()``, ``api()``, ``stop()``.

    Parameters
    ----------
    root : Path
        The folder it serves (notebooks).
    workdir : Path
        Where Jupyter's config, data, runtime, settings and workspaces go.
    log : Path
        Its stdout and stderr.
    jupyter_config : Path, optional
        A ``jupyter-config/`` folder to copy into its config folder (the
        repository's enables the twister_nb server extension).
    labextensions : dict, optional
        Lab extension name -> built extension folder, linked into its data folder.
    """

    root: Path
    workdir: Path
    log: Path
    jupyter_config: Path | None = None
    labextensions: dict[str, Path] = field(default_factory=dict)
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        """The server's environment: this one's (TWISTER_NB_HOME included), but
        not the Ray variables a connected test process has (as from a real
        server), and Jupyter's own folders in ``workdir``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(JUPYTER_CONFIG_DIR=str(self.workdir / "jupyter-config"),
                   JUPYTER_DATA_DIR=str(self.workdir / "jupyter-data"),
                   JUPYTER_RUNTIME_DIR=str(self.workdir / "jupyter-runtime"),
                   PYTHONUNBUFFERED="1")
        return env

    def _prepare(self) -> None:
        settings, config = self.workdir / "lab-settings", self.workdir / "jupyter-config"
        for name, value in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        if self.jupyter_config is not None:
            shutil.copytree(self.jupyter_config, config, dirs_exist_ok=True)
        (config / "labconfig").mkdir(parents=True, exist_ok=True)
        (config / "labconfig" / "page_config.json").write_text(json.dumps(PAGE_CONFIG))
        for name, built in self.labextensions.items():
            link = self.workdir / "jupyter-data" / "labextensions" / name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(Path(built).resolve(), target_is_directory=True)

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ip=127.0.0.1", f"--port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            f"--LabApp.user_settings_dir={self.workdir / 'lab-settings'}",
            f"--LabApp.workspaces_dir={self.workdir / 'lab-workspaces'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class="
            "jupyterlab.handlers.announcements.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        return cmd

    def start(self, timeout: float = 120.0) -> JupyterServer:
        """Start it (a new port if it never ran) and wait until its API answers."""
        if not self.port:
            self.port = free_ports(1)[0]
        self._prepare()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command(), cwd=self.root, env=self.environ(),
                                         stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                self.api("/api/status")
                return self
            except (urllib.error.URLError, OSError, ValueError, ApiError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not answer in {timeout:g} s:\n"
                                       f"{self.log_tail()}") from None
                time.sleep(0.5)

    def request(self, path: str, method: str = "GET", body: Any = None, token: bool = True,
                timeout: float = 60.0) -> tuple[int, Any]:
        """``(status, JSON body)`` of one request; an HTTP error is an answer too."""
        headers = {"Authorization": f"token {self.token}"} if token else {}
        data = None
        if body is not None or method == "POST":
            data = json.dumps(body or {}).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers=headers)
        try:
            with _opener.open(req, timeout=timeout) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def api(self, path: str, method: str = "GET", body: Any = None,
            timeout: float = 60.0) -> Any:
        """The JSON answer of a request with the token; :class:`ApiError` if not 2xx."""
        status, answer = self.request(path, method, body, timeout=timeout)
        if not 200 <= status < 300:
            raise ApiError(status, answer)
        return answer

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    def stop(self, grace: float = 10.0) -> None:
        """Shut its kernels down through the server, then SIGTERM it by its PID
        (SIGKILL after ``grace`` seconds)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            for kernel in self.api("/api/kernels", timeout=10) or []:
                self.api(f"/api/kernels/{kernel['id']}", method="DELETE", timeout=30)
        except (urllib.error.URLError, OSError, ValueError, ApiError):
            pass
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)
