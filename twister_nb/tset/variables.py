"""Loop state that survives an eviction: Twister2's ``init_variable``,
``update_variable`` and ``commit``.

A long loop keeps what it has so far in named variables (the HTCondor way:
save the loop's counter and its data every few minutes, read them back when
the job starts again), and the job saves them for it:

- ``env.init_variable(name, default)`` is the value the job committed last
  when the job is resumed (its ID given again: ``twister-nb restart``,
  ``TSetEnvironment(job_id=...)``, ``%%twister2 --job-id``), else ``default``;
- ``env.update_variable(name, value)`` stages a new value;
- ``env.commit()`` makes every variable durable at once.

A TSet value is persisted first (a persisted one is a pointer already) and
kept as a :class:`TSetReference` to its committed checkpoint; the snapshot is
written after it, as one checkpoint of its own (one manifest, written last:
:mod:`twister_nb.checkpoint.variables`), so a resumed loop never sees a
snapshot without the data it names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twister_nb.tset import ops
from twister_nb.tset.tset import PersistedTSet, TSet


@dataclass(frozen=True)
class TSetReference:
    """A persisted TSet, as a committed snapshot names it."""

    tset_id: str
    label: str
    parallelism: int
    keyed: bool

    def node(self) -> ops.Materialized:
        return ops.Materialized(parallelism=self.parallelism, name=self.label, keyed=self.keyed,
                                tset_id=self.tset_id, storage="store")


class LoopVariables:
    """One job's variables: what it committed, and what it stages now.

    Parameters
    ----------
    load : callable
        The job's newest committed snapshot, or None (read once, at the first
        ``init``).
    save : callable
        Commits a snapshot; returns its number.
    handle : callable
        A handle to a persisted TSet from its :class:`TSetReference`.
    """

    def __init__(self, load: Callable[[], dict[str, Any] | None],
                 save: Callable[[dict[str, Any]], int],
                 handle: Callable[[TSetReference], TSet]) -> None:
        self._load, self._save, self._handle = load, save, handle
        self._committed: dict[str, Any] | None = None
        self._loaded = False
        self._values: dict[str, Any] = {}

    def init(self, name: str, default: Any) -> Any:
        """The committed value of ``name`` if the job has one, else ``default``."""
        if not self._loaded:
            self._committed = self._load() or {}
            self._loaded = True
        value = self._committed.get(name, default) if self._committed else default
        if isinstance(value, TSetReference):
            value = self._handle(value)
        self._values[name] = value
        return value

    def update(self, name: str, value: Any) -> None:
        """Stage ``value`` for ``name``; ``commit()`` makes it durable."""
        if name not in self._values:
            raise KeyError(f"update_variable({name!r}): no such variable; "
                           f"call init_variable({name!r}, default) first")
        self._values[name] = value

    def commit(self) -> int:
        """Make every variable durable at once (their TSets persisted first)."""
        snapshot = {name: _stored(name, value) for name, value in self._values.items()}
        return self._save(snapshot)


def _stored(name: str, value: Any) -> Any:
    """What a snapshot keeps of ``value``: a TSet as a reference to its checkpoint."""
    if not isinstance(value, TSet):
        if _holds_tset(value):
            raise TypeError(f"loop variable {name!r} holds a TSet inside a container; make "
                            "each TSet a variable of its own (init_variable/update_variable)")
        return value
    persisted = value if isinstance(value, PersistedTSet) else value.persist()
    node = persisted.op
    assert isinstance(node, ops.Materialized)
    return TSetReference(tset_id=node.tset_id, label=node.name or node.tset_id,
                         parallelism=node.parallelism, keyed=node.keyed)


def _holds_tset(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_tset(v) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(isinstance(v, TSet) or _holds_tset(v) for v in value)
    return False
