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
the environment sees it at once; the files are small.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

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


def _read_folder(folder: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if not folder.is_dir():
        return values
    for path in sorted(folder.glob("*.yaml")):
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, Mapping):
            raise ValueError(f"config file {str(path)!r} must hold a mapping, not {loaded!r}")
        values.update(flatten(loaded))
    return values


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    values = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "TWISTER_NB_HOME":
            continue
        if name.startswith("TWISTER_NB__"):  # internal handshakes, not config
            continue
        key = name[len(ENV_PREFIX):].lower().replace("__", ".")
        values[key] = yaml.safe_load(raw) if raw else None
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
