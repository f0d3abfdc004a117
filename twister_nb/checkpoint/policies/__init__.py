"""The shipped checkpoint policies (one per module) and how a job picks one.

``twister2.checkpointing.policy`` (``--checkpoint``) names a shipped policy or
a custom one as ``module:Class``, a subclass of
:class:`twister_nb.checkpoint.CheckpointPolicy`; ``policy_params``
(``--checkpoint-params``) are COMPSs's parameters. :func:`load_policy` checks
both before a job starts, so a bad name or parameter is one line naming it.

A custom policy is the one class twister_nb imports by its name: the user
names it, as COMPSs's ``--checkpointer`` names a Java class.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from twister_nb.checkpoint.params import PARAMS_KEY, POLICY_KEY, params_from_config
from twister_nb.checkpoint.policies.finished_tasks import FinishedTasks
from twister_nb.checkpoint.policies.instantiated_group import InstantiatedGroup
from twister_nb.checkpoint.policies.none import NoCheckpoints
from twister_nb.checkpoint.policies.periodic_time import PeriodicTime
from twister_nb.checkpoint.policy import CheckpointPolicy
from twister_nb.errors import ConfigError

__all__ = ["POLICIES", "is_shipped", "load_policy", "policy_class", "policy_config"]

#: The shipped policies by name.
POLICIES: dict[str, type[CheckpointPolicy]] = {
    cls.name: cls for cls in (NoCheckpoints, PeriodicTime, FinishedTasks, InstantiatedGroup)}
#: The parameters each shipped policy reads (besides ``avoid.checkpoint``).
_KNOWN_PARAMS = {"none": set(), "periodic_time": {"period.time"},
                 "finished_tasks": {"finished.tasks"},
                 "instantiated_group": {"instantiated.group"}}
_COMMON = {"avoid.checkpoint"}


def policy_class(name: str) -> type[CheckpointPolicy]:
    """The policy class ``name`` stands for: a shipped one, or ``module:Class``."""
    name = (name or "none").strip()
    if name in POLICIES:
        return POLICIES[name]
    module_name, sep, class_name = name.partition(":")
    if not sep or not module_name or not class_name:
        raise ConfigError(f"{POLICY_KEY}: unknown checkpoint policy {name!r}; use one of "
                          f"{', '.join(POLICIES)} or module:Class (a subclass of "
                          "twister_nb.checkpoint.CheckpointPolicy)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{POLICY_KEY}: checkpoint policy {name!r}: cannot import "
                          f"{module_name!r} ({exc}); put it on PYTHONPATH") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, CheckpointPolicy)):
        raise ConfigError(f"{POLICY_KEY}: checkpoint policy {name!r}: {module_name}.{class_name} "
                          "is not a subclass of twister_nb.checkpoint.CheckpointPolicy")
    return cls


def is_shipped(config: Mapping[str, Any]) -> bool:
    """Whether the config's policy is a shipped one (else a custom ``module:Class``)."""
    return str(config.get(POLICY_KEY) or "none").strip() in POLICIES


def policy_config(config: Mapping[str, Any], policy: str, params: Any = None) -> dict[str, Any]:
    """``config`` with another policy and parameters (a mapping of parameters
    replaces the one the config had)."""
    out = {k: v for k, v in config.items() if not k.startswith(PARAMS_KEY)}
    out[POLICY_KEY] = policy
    out[PARAMS_KEY] = params
    return out


def load_policy(config: Mapping[str, Any]) -> CheckpointPolicy:
    """The policy a job's (flat) config names, with its parameters checked.

    >>> load_policy({"twister2.checkpointing.policy": "finished_tasks",
    ...              "twister2.checkpointing.policy_params": "finished.tasks:5"}).every
    5
    >>> load_policy({"twister2.checkpointing.policy": "finished_task"})
    Traceback (most recent call last):
    ...
    twister_nb.errors.ConfigError: twister2.checkpointing.policy: unknown checkpoint policy 'finished_task'; use one of none, periodic_time, finished_tasks, instantiated_group or module:Class (a subclass of twister_nb.checkpoint.CheckpointPolicy)
    """
    name = str(config.get(POLICY_KEY) or "none").strip()
    cls = policy_class(name)
    params = params_from_config(config)
    known = _KNOWN_PARAMS.get(cls.name if name in POLICIES else "")
    if known is not None:
        unknown = sorted(set(params) - known - _COMMON)
        if unknown:
            allowed = sorted(known | _COMMON)
            raise ConfigError(f"checkpoint policy {name!r} takes no parameter {unknown[0]!r}; "
                              f"it takes {', '.join(allowed)}")
    avoid = params.pop("avoid.checkpoint", ())
    if isinstance(avoid, str):
        avoid = tuple(a.strip() for a in avoid.strip("[]").split(",") if a.strip())
    try:
        policy = cls(params)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a custom policy's constructor: named, in one line
        raise ConfigError(f"checkpoint policy {name!r} could not be made from parameters "
                          f"{params!r}: {type(exc).__name__}: {exc}") from None
    if name not in POLICIES:
        policy.name = name
    policy.avoid(frozenset(avoid))
    return policy
