"""An existing cluster by address (``ray.address: host:port``) that uses Ray's
token authentication: the token comes from config (``ray.auth_token_path``),
and a refused connection says why in one line (issue 13, point 3).

The cluster is a real one of its own (``twister_nb.testing.multinode``, a head
only), started with this session's token, which the jobs here are not given
through Ray's own variables."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from twister_nb.testing.multinode import MultiNodeCluster

CLI = [sys.executable, "-m", "twister_nb.cli"]
PROGRAM = '''\
from twister_nb import TSetEnvironment

env = TSetEnvironment(name="remote", resources=[{"instances": 2}])
print("RESULT", env.parallelize_list(list(range(100)), 2).map(lambda x: x * 2).collect())
env.close()
'''

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture(scope="module")
def token_cluster(ray_cluster):
    cluster = MultiNodeCluster(workers=0, cpus=2)
    try:
        yield cluster
    finally:
        cluster.stop()


def _environ(cluster: MultiNodeCluster, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(TWISTER_NB_RAY__ADDRESS=cluster.address, **extra)
    return env


def test_a_refused_token_is_one_line_that_names_the_key(token_cluster, tmp_path):
    program = tmp_path / "remote.py"
    program.write_text(PROGRAM)
    done = subprocess.run([*CLI, "submit", str(program)], capture_output=True, text=True,
                          timeout=180, env=_environ(token_cluster))
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if "refused this process" in line]
    assert len(ours) == 1, done.stderr
    assert "token authentication" in ours[0] and "ray.auth_token_path" in ours[0], ours[0]
    assert "cluster start" not in done.stderr  # wrong advice for a cluster we do not own
    assert "Traceback" not in done.stderr


def test_the_token_from_config_connects(token_cluster, tmp_path):
    program = tmp_path / "remote.py"
    program.write_text(PROGRAM)
    token = os.environ["RAY_AUTH_TOKEN_PATH"]  # the token the cluster was started with
    done = subprocess.run([*CLI, "submit", str(program)], capture_output=True, text=True,
                          timeout=180,
                          env=_environ(token_cluster, TWISTER_NB_RAY__AUTH_TOKEN_PATH=token))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"RESULT {[x * 2 for x in range(100)]}" in done.stdout
    assert "remote" in done.stdout  # the banner's cluster type
