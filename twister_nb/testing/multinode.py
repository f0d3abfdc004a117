"""A Ray cluster of several nodes on this one machine, for tests of lost nodes.

A second ``ray start --address=...`` node is refused on loopback here, so the
nodes are ``ray.cluster_utils.Cluster`` nodes, kept by a long-lived process of
their own (``python -m twister_nb.testing.multinode``): it prints the cluster's
address and then obeys one command per line on its stdin (``remove N`` kills
worker node N, ``add`` starts one more, ``nodes`` lists them, ``quit``).
Health checks are fast (a dead node is noticed in ~1.5 s, not ~15 s).

:class:`MultiNodeCluster` starts that process and stops it by its PID.
Nothing here imports Ray in the test's own process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

_HEALTH = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
#: How long the nodes may take to register (Ray's default, 30 s, is short on a loaded machine).
_NODES_TIMEOUT = 120.0
#: What starts each answer of the cluster process on its stdout.
_MARK = "@@twister-nb-cluster "


class MultiNodeCluster:
    """A head and ``workers`` worker nodes (``cpus`` each), on 127.0.0.1."""

    def __init__(self, workers: int = 2, cpus: int = 1, timeout: float = 120.0,
                 attempts: int = 4) -> None:
        # On a loaded machine (CI runs three test groups on two cores) a node of
        # Ray's Cluster can time out while it starts: Ray gives each raylet a
        # fixed 30 s ("The current node timed out during startup"). Start again.
        self._stderr = tempfile.TemporaryFile(mode="w+")
        for attempt in range(1, attempts + 1):
            self._proc = self._launch(workers, cpus, self._stderr)
            try:
                self.address = self._answer(timeout)["address"]
                return
            except RuntimeError:  # the cluster process ended while starting
                if attempt == attempts:
                    self.stop()
                    raise
                self._end_process()
            except BaseException:
                self.stop()
                raise

    @staticmethod
    def _launch(workers: int, cpus: int, stderr: Any) -> subprocess.Popen:
        env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
        return subprocess.Popen(
            [sys.executable, "-m", "twister_nb.testing.multinode", str(workers), str(cpus)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
            text=True, env=env, start_new_session=True)

    def _last_error_lines(self, count: int = 12) -> str:
        """The end of what the cluster process printed on stderr, for an error."""
        self._stderr.flush()
        self._stderr.seek(0)
        return "".join(self._stderr.read().splitlines(keepends=True)[-count:])

    def _answer(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline() if self._proc.stdout else ""
            if not line:
                raise RuntimeError(f"the cluster process ended (code {self._proc.poll()}); "
                                   f"its last lines:\n{self._last_error_lines()}")
            if _MARK in line:  # Ray may print on the same stream, even on the same line
                return json.JSONDecoder().raw_decode(line[line.index(_MARK) + len(_MARK):])[0]
        raise TimeoutError("the cluster process did not answer")

    def _ask(self, command: str, timeout: float = 60.0) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return self._answer(timeout)

    def nodes(self) -> list[dict[str, Any]]:
        """Every live node: ``node_id`` and whether it is the head."""
        return self._ask("nodes")["nodes"]

    def remove_worker_node(self, index: int = 0) -> str:
        """Kill worker node ``index`` (its raylet and everything on it); its node ID."""
        return self._ask(f"remove {index}")["removed"]

    def add_worker_node(self) -> str:
        """Start one more worker node; its node ID."""
        return self._ask("add")["added"]

    def stop(self) -> None:
        """End the cluster process and every process of its nodes."""
        self._end_process()
        self._stderr.close()

    def _end_process(self) -> None:
        if self._proc.poll() is None:
            try:
                self._ask("quit", timeout=60)
            except Exception:  # noqa: BLE001 - it is killed below anyway
                pass
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        # The nodes' processes are in the cluster process's group (its own
        # session): end what is left of it, also when it ended first (a start
        # that failed half-way leaves raylets behind).
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self._proc.poll() is None:
            self._proc.wait(timeout=30)

    def __enter__(self) -> "MultiNodeCluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(workers: int, cpus: int) -> None:
    from ray.cluster_utils import Cluster

    node_args = {"num_cpus": cpus, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, shutdown_at_exit=True,
                      head_node_args={**node_args, "include_dashboard": False,
                                      "_system_config": _HEALTH})
    nodes = [cluster.add_node(**node_args) for _ in range(workers)]
    cluster.wait_for_nodes(timeout=_NODES_TIMEOUT)
    import ray

    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)

    def schedulable(node_id: str) -> None:
        """Wait until a task can run on the node: a node counts as infeasible until
        the head's scheduler has its resources, and a job started before then
        finds one node fewer."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(num_cpus=0)(lambda: None)
        ray.get(probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node_id=node_id, soft=False)).remote(), timeout=120)

    for node in [cluster.head_node, *nodes]:
        schedulable(node.node_id)

    def say(answer: dict[str, Any]) -> None:
        sys.stdout.write("\n" + _MARK + json.dumps(answer) + "\n")
        sys.stdout.flush()

    def gone(node_id: str, timeout: float = 60.0) -> None:
        """Wait until the cluster counts the node dead (a job placed meanwhile
        would still be given it)."""
        deadline = time.monotonic() + timeout
        while any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {node_id} still alive")
            time.sleep(0.1)

    say({"address": cluster.address})
    for line in sys.stdin:
        command, *args = line.split()
        if command == "remove":
            node = nodes.pop(int(args[0]))
            cluster.remove_node(node, allow_graceful=False)
            gone(node.node_id)
            say({"removed": node.node_id})
        elif command == "add":
            node = cluster.add_node(**node_args)
            cluster.wait_for_nodes(timeout=_NODES_TIMEOUT)
            schedulable(node.node_id)
            nodes.append(node)
            say({"added": node.node_id})
        elif command == "nodes":
            say({"nodes": [{"node_id": cluster.head_node.node_id, "head": True}]
                 + [{"node_id": n.node_id, "head": False} for n in nodes]})
        elif command == "quit":
            ray.shutdown()
            cluster.shutdown()
            say({"quit": True})
            return


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
