"""COMPSs's checkpoint parameters, read from a string or a mapping.

COMPSs takes ``--checkpointer_params=period.time:30s,avoid.checkpoint:[mod.f]``;
twister_nb takes the same string (``--checkpoint-params``, the config key
``twister2.checkpointing.policy_params``) or a YAML mapping under that key
(which the config flattens into ``twister2.checkpointing.policy_params.<name>``
keys). Both become one ``{name: value}`` dict of strings, and lists (only
``avoid.checkpoint`` takes one) become tuples of names.

Plain Python, no Ray.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from twister_nb.errors import ConfigError

__all__ = ["PARAMS_KEY", "POLICY_KEY", "format_params", "params_from_config", "parse_duration",
           "parse_params"]

POLICY_KEY = "twister2.checkpointing.policy"
PARAMS_KEY = "twister2.checkpointing.policy_params"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "": 60.0}  # a bare number is minutes, as in COMPSs


def parse_params(text: Any) -> dict[str, Any]:
    """The parameters of ``name:value,name:[a,b]`` (COMPSs's form), or of a mapping.

    >>> parse_params("finished.tasks:5,avoid.checkpoint:[mod.f, points]")
    {'finished.tasks': '5', 'avoid.checkpoint': ('mod.f', 'points')}
    >>> parse_params({"period.time": 30})
    {'period.time': '30'}
    >>> parse_params("finished.tasks=5")
    Traceback (most recent call last):
    ...
    twister_nb.errors.ConfigError: checkpoint parameter 'finished.tasks=5' must be name:value (e.g. finished.tasks:5,avoid.checkpoint:[mod.f])
    """
    if text is None or text == "":
        return {}
    if isinstance(text, Mapping):
        return {str(k): _value(v) for k, v in text.items()}
    if not isinstance(text, str):
        raise ConfigError(f"checkpoint parameters {text!r} must be a string like "
                          "finished.tasks:5,avoid.checkpoint:[mod.f] or a mapping")
    out: dict[str, Any] = {}
    for item in _split(text):
        name, sep, value = item.partition(":")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            raise ConfigError(f"checkpoint parameter {item.strip()!r} must be name:value "
                              "(e.g. finished.tasks:5,avoid.checkpoint:[mod.f])")
        value = value.strip()
        out[name] = (tuple(v.strip() for v in value[1:-1].split(",") if v.strip())
                     if value.startswith("[") and value.endswith("]") else value)
    return out


def _split(text: str) -> list[str]:
    """``text`` cut at the commas outside brackets."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item for item in items if item.strip()]


def _value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        return parse_params(f"x:{value}")["x"]
    return str(value)


def format_params(params: Mapping[str, Any]) -> str:
    """Parameters back in COMPSs's string form (what :func:`parse_params` reads).

    >>> format_params({"finished.tasks": "5", "avoid.checkpoint": ("mod.f", "points")})
    'finished.tasks:5,avoid.checkpoint:[mod.f,points]'
    >>> parse_params(format_params(parse_params("period.time:1s,avoid.checkpoint:[a]")))
    {'period.time': '1s', 'avoid.checkpoint': ('a',)}
    """
    return ",".join(f"{name}:[{','.join(map(str, value))}]" if isinstance(value, (tuple, list))
                    else f"{name}:{value}" for name, value in params.items())


def params_from_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """The policy parameters of a flat config: the string (or mapping) at
    ``twister2.checkpointing.policy_params``, and the keys a YAML mapping under
    it became, the latter winning."""
    out = parse_params(values.get(PARAMS_KEY))
    prefix = PARAMS_KEY + "."
    out.update({k[len(prefix):]: _value(v) for k, v in values.items()
                if k.startswith(prefix) and v is not None})
    return out


def parse_duration(value: Any, what: str = "period.time") -> float:
    """Seconds in ``30s``, ``5m``, ``1h`` or a bare number (minutes, as in COMPSs).

    >>> parse_duration("1s"), parse_duration("2"), parse_duration("0.5h")
    (1.0, 120.0, 1800.0)
    """
    match = _DURATION.fullmatch(str(value))
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"checkpoint parameter {what}:{value} must be a positive time: "
                          "<n>s, <n>m, <n>h, or a bare number of minutes (e.g. period.time:30s)")
    return float(match.group(1)) * _UNIT[match.group(2)]


def positive_int(params: Mapping[str, Any], name: str, default: int) -> int:
    """The whole number ``params[name]`` (``default`` if absent), at least 1.

    >>> positive_int({"finished.tasks": "5"}, "finished.tasks", 3)
    5
    """
    raw = params.get(name, default)
    try:
        value = int(str(raw))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"checkpoint parameter {name}:{raw} must be a whole number >= 1 "
                          f"(e.g. {name}:{default})")
    return value
