"""When and where to checkpoint: the layer that decides and keeps checkpoints.

The storage layer knows *how* a checkpoint is written; this layer knows which
store a job uses (config ``twister2.checkpointing.store``, default
``file://<home>/store``), with which signing key (kept in the twister_nb home,
never in the store), whether committed checkpoints are reused
(``twister2.checkpointing.enable``), how many versions are kept, and -- in
:mod:`twister_nb.checkpoint.manager` -- which version a job restores, commits
and retires, and which versions it found damaged. Checkpoint policies (when to
checkpoint without a ``persist()``) will be one module each here.

Plain Python: no Ray, tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twister_nb import config as _config
from twister_nb.storage import CheckpointStore, load_or_create_key
from twister_nb.storage.s3 import S3_OPTION_KEYS

ENABLE_KEY = "twister2.checkpointing.enable"
STORE_KEY = "twister2.checkpointing.store"
RETENTION_KEY = "twister2.checkpointing.retention"
VERIFY_KEY = "twister2.checkpointing.verify_on_restore"
SIGTERM_KEY = "twister2.checkpointing.on_sigterm"


def store_uri(config: Mapping[str, Any] | None = None) -> str:
    """The store's URI: config, or the ``store`` folder of the twister_nb home."""
    uri = _config.get(STORE_KEY, None, config)
    return str(uri) if uri else (_config.home() / "store").as_uri()


def open_store(config: Mapping[str, Any] | None = None) -> CheckpointStore:
    """Open the job store named by ``config`` (S3 options from
    ``twister2.checkpointing.s3.*`` or the usual AWS variables)."""
    values = _config.load(config)
    s3 = {k: values[f"twister2.checkpointing.s3.{k}"] for k in S3_OPTION_KEYS
          if values.get(f"twister2.checkpointing.s3.{k}") is not None}
    key = load_or_create_key(_config.home() / "signing.key")
    return CheckpointStore.from_uri(store_uri(values), signing_key=key, s3_options=s3 or None)


def enabled(config: Mapping[str, Any] | None = None) -> bool:
    """Whether committed persists are reused on restart (Twister2's switch)."""
    return bool(_config.get(ENABLE_KEY, True, config))


def retention(config: Mapping[str, Any] | None = None) -> int:
    """Committed versions kept per TSet (at least 1; unset or 0 means the default, 2)."""
    return max(1, int(_config.get(RETENTION_KEY, 2, config) or 2))


def on_sigterm(config: Mapping[str, Any] | None = None) -> bool:
    """Whether a worker told to leave (SIGTERM) saves the tasks it finished even
    when no policy is on (the outputs of those that ran 0.1 s or more are then
    kept in the worker until the action ends; with a policy every task's are
    kept anyway). On by default."""
    return bool(_config.get(SIGTERM_KEY, True, config))


def verify_on_restore(config: Mapping[str, Any] | None = None) -> bool:
    """Whether a restore reads and checks every part before ``persist()`` returns
    (else sizes are checked, and checksums as each part is read)."""
    return bool(_config.get(VERIFY_KEY, False, config))


# The policy base (``module:Class`` policies subclass it), at the layer's door.
from twister_nb.checkpoint.policy import CheckpointGroup, CheckpointPolicy, TaskInfo  # noqa: E402

__all__ = ["CheckpointGroup", "CheckpointPolicy", "TaskInfo", "enabled", "on_sigterm",
           "open_store", "retention", "store_uri", "verify_on_restore"]
