"""Stable TSet identity: a fingerprint that survives a kernel restart.

A TSet's ID hashes its operation, its user function (bytecode, constants,
closure values, referenced globals, default arguments; for a ``SourceFunc``
its class's methods and its instance state), its parents' IDs, its
parallelism and its name. Re-running the same cells in a new kernel gives the
same IDs, so committed checkpoints are found again; changing a function or a
constant it uses gives a new ID, so stale results are never reused silently.

Deliberately left out: file names and line numbers (a notebook cell's file name
changes with every kernel), and object addresses. This lives with the API, not
in the planner, because ``tset.id`` is part of the API.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import os
import sys
import sysconfig
import types
import weakref
from pathlib import Path
from typing import Any

import cloudpickle

from twister_nb.tset.ops import LogicalOp, Materialized

_ids: "weakref.WeakKeyDictionary[LogicalOp, str]" = weakref.WeakKeyDictionary()
_MAX_DEPTH = 6
_LIBRARY_ROOTS = tuple(
    {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


#: twister_nb's folder and, beside it in the same distribution, the twister2 layer's:
#: frames from either are ours, not the user's (checked by path: no import reaches up).
_OWN_FOLDERS = tuple(str(folder) + os.sep for folder in (
    Path(__file__).resolve().parents[1], Path(__file__).resolve().parents[2] / "twister2"))


def is_own_path(path: str) -> bool:
    """Whether a file is twister_nb's or its twister2 layer's."""
    return (os.path.abspath(path).startswith(_OWN_FOLDERS)
            or "/twister_nb/" in path.replace("\\", "/"))


def is_library_path(path: str) -> bool:
    """Whether a file belongs to the standard library, an installed package or twister_nb."""
    return path.startswith(_LIBRARY_ROOTS) or is_own_path(path)


@functools.lru_cache(maxsize=4096)
def is_library(module_name: str) -> bool:
    """Code from an installed package or the standard library is named, not hashed:
    it is not the user's, and hashing it would be slow."""
    if module_name in ("__main__", "__mp_main__"):
        return False
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if module is None or path is None:
        return module_name == "builtins" or module_name.split(".")[0] in sys.stdlib_module_names
    return path.startswith(_LIBRARY_ROOTS) and "site-packages/twister_nb" not in path


def tset_id(op: LogicalOp) -> str:
    """The fingerprint of ``op`` (memoised; nodes are immutable)."""
    cached = _ids.get(op)
    if cached is not None:
        return cached
    if isinstance(op, Materialized):
        ident = op.tset_id
    else:
        h = hashlib.blake2b(digest_size=10)
        h.update(type(op).__name__.encode())
        for f in dataclasses.fields(op):
            if f.name in ("inputs", "side_inputs"):
                continue
            h.update(f.name.encode())
            _feed(h, getattr(op, f.name), 0, set())
        for parent in op.inputs:
            h.update(b"in:" + tset_id(parent).encode())
        for key, side in op.side_inputs:
            h.update(b"side:" + key.encode() + b"=" + tset_id(side).encode())
        ident = f"{op.kind}-{h.hexdigest()}"
    _ids[op] = ident
    return ident


def value_digest(value: Any) -> str:
    """The fingerprint of a plain value or a function, as used in TSet IDs.

    >>> value_digest(lambda x: x * 5) == value_digest(lambda x: x * 5)
    True
    >>> value_digest(lambda x: x * 5) == value_digest(lambda x: x * 6)
    False
    """
    h = hashlib.blake2b(digest_size=10)
    _feed(h, value, 0, set())
    return h.hexdigest()


def _feed(h: "hashlib._Hash", value: Any, depth: int, seen: set[int]) -> None:
    """Feed a canonical description of ``value`` into ``h``."""
    if depth > _MAX_DEPTH:
        h.update(b"<deep>")
        return
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        h.update(f"{type(value).__name__}:{value!r}".encode())
        return
    if isinstance(value, enum.Enum):
        h.update(f"enum:{type(value).__qualname__}.{value.name}".encode())
        return
    if id(value) in seen:
        h.update(b"<cycle>")
        return
    seen = seen | {id(value)}
    if isinstance(value, (tuple, list, frozenset, set)):
        h.update(f"{type(value).__name__}[{len(value)}]".encode())
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        for item in items:
            _feed(h, item, depth + 1, seen)
        return
    if isinstance(value, dict):
        h.update(f"dict[{len(value)}]".encode())
        for k in sorted(value, key=repr):
            _feed(h, k, depth + 1, seen)
            _feed(h, value[k], depth + 1, seen)
        return
    if isinstance(value, types.ModuleType):
        h.update(f"module:{value.__name__}".encode())
        return
    if isinstance(value, types.CodeType):
        _feed_code(h, value, depth, seen)
        return
    if isinstance(value, (types.FunctionType, type)) and is_library(value.__module__):
        h.update(f"library:{value.__module__}.{value.__qualname__}".encode())
        return
    if isinstance(value, types.FunctionType):
        _feed_function(h, value, depth, seen)
        return
    if isinstance(value, types.MethodType):
        h.update(b"method:")
        _feed(h, value.__func__, depth + 1, seen)
        _feed(h, value.__self__, depth + 1, seen)
        return
    if isinstance(value, (types.BuiltinFunctionType, types.BuiltinMethodType)):
        owner = getattr(value, "__self__", None)
        owner_name = owner.__name__ if isinstance(owner, types.ModuleType) else type(owner).__name__
        h.update(f"builtin:{owner_name}.{value.__qualname__}".encode())
        return
    if isinstance(value, functools.partial):
        h.update(b"partial:")
        for part in (value.func, value.args, value.keywords):
            _feed(h, part, depth + 1, seen)
        return
    if isinstance(value, type):
        _feed_class(h, value, depth, seen)
        return
    np = sys.modules.get("numpy")  # not loaded: no value is an array (``--help`` needs no numpy)
    if np is not None and type(value) is np.ndarray and value.dtype.kind in "biufcmM":
        h.update(f"ndarray:{value.dtype.str}:{value.shape}:".encode())
        h.update(np.ascontiguousarray(value).data)  # the bytes, without a pickled copy
        return
    if type(value).__module__ == "numpy" or hasattr(value, "__array_interface__"):
        h.update(b"array:")
        h.update(cloudpickle.dumps(value))
        return
    # An object: its class (code) and its state.
    _feed_class(h, type(value), depth, seen)
    state = getattr(value, "__dict__", None)
    if state is not None:
        _feed(h, state, depth + 1, seen)
    else:
        try:
            h.update(cloudpickle.dumps(value))
        except Exception:  # noqa: BLE001 - unpicklable objects are reported elsewhere
            h.update(f"opaque:{type(value).__qualname__}".encode())


def _feed_code(h: "hashlib._Hash", code: types.CodeType, depth: int, seen: set[int]) -> None:
    h.update(b"code:" + code.co_code)
    h.update(repr(code.co_names).encode())
    h.update(repr(code.co_varnames).encode())
    for const in code.co_consts:
        _feed(h, const, depth + 1, seen)


def _feed_function(h: "hashlib._Hash", fn: types.FunctionType, depth: int, seen: set[int]) -> None:
    h.update(f"function:{fn.__qualname__}".encode())
    _feed_code(h, fn.__code__, depth, seen)
    _feed(h, fn.__defaults__, depth + 1, seen)
    _feed(h, fn.__kwdefaults__, depth + 1, seen)
    for cell in fn.__closure__ or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # empty cell
            contents = "<empty>"
        _feed(h, contents, depth + 1, seen)
    # Globals the code refers to, including through nested code objects.
    for name in sorted(_global_names(fn.__code__)):
        if name in fn.__globals__:
            h.update(f"global:{name}".encode())
            _feed(h, fn.__globals__[name], depth + 1, seen)


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _feed_class(h: "hashlib._Hash", cls: type, depth: int, seen: set[int]) -> None:
    h.update(f"class:{cls.__module__}.{cls.__qualname__}".encode())
    if is_library(cls.__module__):
        return
    for klass in cls.__mro__:
        if is_library(klass.__module__) or klass.__module__.startswith("twister_nb."):
            continue  # library and our own base classes: not the user's code
        for attr, member in sorted(vars(klass).items()):
            if attr.startswith("__") and attr not in ("__init__", "__call__"):
                continue
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, (types.FunctionType, int, float, str, bytes, tuple)):
                h.update(f"member:{attr}".encode())
                _feed(h, member, depth + 1, seen)
