"""Configuration: packaged defaults < user files < environment < call arguments.

Keys are flat dotted strings with Twister2's names where Twister2 has one
(``twister2.checkpointing.enable``). The layers, lowest first:

1. ``conf/*.yaml`` shipped with the project (inside the package, see
   :data:`PACKAGED_CONF`),
2. ``<TWISTER_NB_HOME>/conf/*.yaml`` (the user's),
3. ``TWISTER_NB_<KEY>`` environment variables, where ``__`` stands for a dot
   (``TWISTER_NB_RAY__ADDRESS=host:6379`` sets ``ray.address``),
4. :func:`set` overrides, and finally the ``config=`` dict a caller passes.

The layers are read on every :func:`load` so a test or a notebook that changes
the environment or a file sees it at once. A file is parsed again only when its
modification time or size changed (:func:`_read_file`): the JobMaster looks keys
up on every action, and parsing the YAML each time cost ~0.8 ms there.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from twister_nb.errors import ConfigError

ENV_PREFIX = "TWISTER_NB_"
#: The defaults, shipped as package data (``twister_nb/conf/*.yaml``) so that a
#: regular, non-editable ``pip install`` keeps them. The repository's top-level
#: ``conf/`` is a symlink to this folder: the documented place to read them, one copy.
PACKAGED_CONF = Path(__file__).resolve().parent / "conf"
_overrides: dict[str, Any] = {}
_lock = threading.Lock()
_NO_DEFAULT = object()


def home() -> Path:
    """The twister_nb home: store, Ray session, auth token and signing key.

    ``TWISTER_NB_HOME`` or ``~/.twister_nb``; created on first use.
    """
    path = Path(os.environ.get("TWISTER_NB_HOME", "~/.twister_nb")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys.

    >>> flatten({"ray": {"address": "local"}, "job.name": "x"})
    {'ray.address': 'local', 'job.name': 'x'}
    """
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


#: libyaml's safe loader when PyYAML has it: the same values, 5x faster to read (every
#: command reads the whole configuration, some of them more than once).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str) -> Any:
    """``yaml.safe_load``, with libyaml when it is there."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader


#: Each config file's flat values as last parsed, by path: ((mtime_ns, size), values).
_parsed: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def _read_file(path: Path) -> dict[str, Any]:
    """One file's flat values; parsed again only when it changed since the last read."""
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _lock:
        cached = _parsed.get(path)
    if cached is None or cached[0] != stamp:
        loaded = _parse(path.read_text()) or {}
        if not isinstance(loaded, Mapping):
            raise ValueError(f"config file {str(path)!r} must hold a mapping, not {loaded!r}")
        cached = (stamp, flatten(loaded))
        with _lock:
            _parsed[path] = cached
    return copy.deepcopy(cached[1])  # a caller may change what it got: never the cache


def _read_folder(folder: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if not folder.is_dir():
        return values
    for path in sorted(folder.glob("*.yaml")):
        values.update(_read_file(path))
    return values


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    values = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "TWISTER_NB_HOME":
            continue
        if name.startswith("TWISTER_NB__"):  # internal handshakes, not config
            continue
        key = name[len(ENV_PREFIX):].lower().replace("__", ".")
        values[key] = _parse(raw) if raw else None
    return values


def load(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge every layer and return a fresh flat dict."""
    merged = _read_folder(PACKAGED_CONF)
    merged.update(_read_folder(home() / "conf"))
    merged.update(_from_environ(os.environ))
    with _lock:
        merged.update(_overrides)
    if config:
        merged.update(flatten(config))
    return merged


def get(key: str, default: Any = _NO_DEFAULT, config: Mapping[str, Any] | None = None) -> Any:
    """Look one key up; ``KeyError`` naming the key if it is unset and no default."""
    values = load(config)
    if key in values:
        return values[key]
    if default is _NO_DEFAULT:
        raise KeyError(f"twister_nb config key {key!r} is not set; known keys: {sorted(values)}")
    return default


def override_with(key: str, value: Any, config: Mapping[str, Any] | None = None) -> Any:
    """An explicit argument wins over configuration: ``value`` unless it is None."""
    return get(key, None, config) if value is None else value


class set:  # noqa: A001 - dask's name; reads as config.set(...)
    """Override keys for the process, or for a ``with`` block.

    >>> with set({"job.parallelism": 8}):
    ...     get("job.parallelism")
    8
    """

    def __init__(self, arg: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        with _lock:
            self._previous = dict(_overrides)
            _overrides.update(flatten(arg or {}))
            _overrides.update({k.replace("__", "."): v for k, v in kwargs.items()})

    def __enter__(self) -> "set":
        return self

    def __exit__(self, *exc: object) -> None:
        with _lock:
            _overrides.clear()
            _overrides.update(self._previous)


# --------------------------------------------------------------------------- schema


class Key:
    """What one configuration key accepts: its types, a range or the allowed values.

    Parameters
    ----------
    types : tuple of type
        Accepted Python types (``bool`` is never taken for ``int``); ``type(None)``
        when the key may be unset (null).
    minimum : float, optional
        The smallest accepted number.
    choices : tuple, optional
        The accepted values.
    pattern : str, optional
        A regular expression a string must match in full.
    hint : str
        What to write instead, shown with a refused value.
    """

    def __init__(self, *types: type, minimum: float | None = None,
                 choices: tuple[Any, ...] | None = None, pattern: str | None = None,
                 hint: str = "") -> None:
        self.types = types
        self.minimum = minimum
        self.choices = choices
        self.pattern = pattern
        self.hint = hint

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused, or None.

        >>> Key(int, minimum=1).problem(0)
        'must be at least 1'
        >>> Key(int, minimum=1).problem(True)
        'must be int, not bool'
        >>> Key(int, float).problem(2.5) is None
        True
        """
        import re

        if isinstance(value, bool) and bool not in self.types:
            return f"must be {' or '.join(_type_name(t) for t in self.types)}, not bool"
        if not isinstance(value, self.types):
            return (f"must be {' or '.join(_type_name(t) for t in self.types)}, "
                    f"not {_type_name(type(value))}")
        if value is None:
            return None
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}"
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return f"must look like {self.hint or self.pattern}"
        return None


def _type_name(t: type) -> str:
    return "null" if t is type(None) else t.__name__


_NONE = type(None)
_NUMBER = (int, float)
_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}"

#: Every key ``conf/*.yaml`` defines, and the keys read without a packaged default.
SCHEMA: dict[str, Key] = {
    "job.name": Key(str, pattern=_ID, hint="letters, digits, '.', '_' or '-' (e.g. my-job)"),
    "job.parallelism": Key(int, minimum=1),
    "twister2.job.idle_timeout": Key(*_NUMBER, minimum=0),
    "notebook.graph.engine": Key(str, choices=("auto", "graphviz", "text")),
    "notebook.leave_grace": Key(*_NUMBER, minimum=0),
    "ray.address": Key(str, pattern=r"local|(ray://)?[^\s:]+:\d+",
                       hint="local, or host:port of an existing cluster"),
    "ray.namespace": Key(str, pattern=_ID, hint="letters, digits, '.', '_' or '-'"),
    "ray.auth_token_path": Key(str, _NONE, hint="the path of the cluster's token file"),
    "ray.num_cpus": Key(int, _NONE, minimum=1),
    "ray.object_store_memory": Key(int, _NONE, minimum=78643200),  # Ray's minimum, 75 MiB
    "ray.start_attempts": Key(int, minimum=1),
    "runtime.workers": Key(int, _NONE, minimum=1),
    "runtime.worker_cpus": Key(*_NUMBER, minimum=0),
    "runtime.max_task_retries": Key(int, minimum=0),
    "runtime.poll_interval": Key(*_NUMBER, minimum=0.001),
    "runtime.pool.size": Key(int, minimum=0),
    "runtime.pool.on_existing_cluster": Key(bool),
    "twister2.checkpointing.enable": Key(bool),
    "twister2.checkpointing.store": Key(str, _NONE, pattern=r"(file|s3)://.+|[^:]+",
                                        hint="file:///absolute/path, a local path, or "
                                             "s3://bucket/prefix"),
    "twister2.checkpointing.retention": Key(int, minimum=1),
    "twister2.checkpointing.shared_folder": Key(bool),
    "twister2.checkpointing.verify_on_restore": Key(bool),
    # The policy's name and parameters are checked by twister_nb.checkpoint.policies.load_policy
    # (a custom module:Class must be imported to be checked; this layer imports nothing).
    "twister2.checkpointing.policy": Key(str, _NONE, pattern=r"[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?",
                                         hint="none, periodic_time, finished_tasks, "
                                              "instantiated_group or module:Class"),
    "twister2.checkpointing.policy_params": Key(str, int, float, _NONE),
    "twister2.checkpointing.on_sigterm": Key(bool),
    "twister2.checkpointing.s3.endpoint_url": Key(str, _NONE, pattern=r"https?://[^\s/]+/?",
                                                  hint="http://host:port"),
    "twister2.checkpointing.s3.access_key": Key(str, _NONE),
    "twister2.checkpointing.s3.secret_key": Key(str, _NONE),
    "twister2.checkpointing.s3.session_token": Key(str, _NONE),
    "twister2.checkpointing.s3.region": Key(str, _NONE),
    "twister2.checkpointing.s3.connect_timeout": Key(*_NUMBER, _NONE, minimum=0.1),
    "twister2.checkpointing.s3.request_timeout": Key(*_NUMBER, _NONE, minimum=0.1),
    "twister2.checkpointing.s3.max_attempts": Key(int, _NONE, minimum=1),
    "twister2.checkpointing.s3.create_bucket": Key(bool, _NONE),
}
#: Key prefixes that are ours: an unknown key under one is a mistake (a typo).
OWN_PREFIXES = ("job.", "notebook.", "ray.", "runtime.", "twister2.")
#: Prefixes whose keys are free-form (a YAML mapping of policy parameters, flattened).
FREE_PREFIXES = ("twister2.checkpointing.policy_params.",)


def problems(values: Mapping[str, Any]) -> list[str]:
    """Every wrong value and unknown key of ``values``, one line each, naming the key.

    >>> problems({"job.parallelism": 0, "twister2.checkpointing.retenton": 2})
    ['job.parallelism: 0 must be at least 1', "twister2.checkpointing.retenton: unknown key; did you mean 'twister2.checkpointing.retention'?"]
    """
    import difflib

    out = []
    for key, value in values.items():
        spec = SCHEMA.get(key)
        if spec is None:
            if key.startswith(OWN_PREFIXES) and not key.startswith(FREE_PREFIXES):
                near = difflib.get_close_matches(key, SCHEMA, n=1)
                out.append(f"{key}: unknown key" + (f"; did you mean {near[0]!r}?" if near else
                                                   "; `twister-nb config check` lists the keys"))
            continue
        problem = spec.problem(value)
        if problem is not None:
            out.append(f"{key}: {value!r} {problem}")
    return out


def validate(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Load every layer and check it; the values, or :class:`ConfigError` naming
    every wrong key (and the layers it can come from).

    >>> validate({"job.parallelism": 4})["job.parallelism"]
    4
    """
    values = load(config)
    found = problems(values)
    if found:
        where = (f"conf files in {home() / 'conf'}, {ENV_PREFIX}* environment variables, "
                 "or the config passed to the job")
        raise ConfigError(f"invalid configuration ({where}): " + "; ".join(found))
    return values
