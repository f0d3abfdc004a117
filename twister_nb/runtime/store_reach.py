"""A checkpoint store every node of the cluster reaches, or a clear refusal.

A ``file://`` store is a folder on the machine that opens it. On a cluster of
one node (the local head) every worker shares it. On several nodes, a worker
on another node would write its checkpoints to its own disk, and a restore
there would find nothing: the job would seem to persist and then lose what it
saved. So a new job on a multi-node cluster with a ``file://`` store is
refused before it starts, naming the fix: an S3-compatible store, or a folder
that every node mounts, declared so with
``twister2.checkpointing.shared_folder: true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twister_nb.errors import ConfigError


def alive_nodes() -> int:
    """How many nodes of the connected Ray cluster are alive."""
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive"))


def require_shared_store(store_uri: str, config: Mapping[str, Any]) -> None:
    """Refuse a ``file://`` store on a multi-node cluster, unless the config
    says the folder is mounted on every node."""
    if not store_uri.startswith("file://"):
        return
    if config.get("twister2.checkpointing.shared_folder", False):
        return
    nodes = alive_nodes()
    if nodes < 2:
        return
    raise ConfigError(
        f"the checkpoint store {store_uri} is a folder of this machine and the Ray cluster "
        f"has {nodes} nodes: workers on the other nodes would keep their checkpoints on "
        "their own disks. Set twister2.checkpointing.store to s3://bucket/prefix (any "
        "S3-compatible store), or to a folder every node mounts and "
        "twister2.checkpointing.shared_folder: true")
