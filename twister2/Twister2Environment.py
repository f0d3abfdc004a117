"""``Twister2Environment``: a Twister2 Python job, as Twister2 runs it, on twister_nb.

Creating it in the script being run (``python3 prog.py`` or ``twister-nb submit
prog.py``) starts the job (one :class:`twister_nb.TSetEnvironment`, which prints
the banner), runs the program once per worker in threads
(:func:`twister2.spmd.run_copies`), waits for them, and ends the script's own
run there (``SystemExit``), as Twister2's client run does after it submitted the
job. Inside each copy it is that worker's view of the job: ``worker_id``, the
sources, and actions that run once for all copies.

Created elsewhere (a notebook, ``python -c``, a module the script imports) there
are no copies: one worker, ``worker_id`` 0, a job of its own.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from twister2 import spmd
from twister2.tset.fn.factory.TSetFunctions import TSetFunctions
from twister2.tset.nodes import GraphVersion, KeyedTSet, TSet
from twister_nb import TSetEnvironment

__all__ = ["Twister2Environment"]


def _workers(resources: Any) -> int:
    """The number of workers ``resources`` asks for (Twister2's compute resources)."""
    if not resources:
        return 1
    if isinstance(resources, Mapping):
        resources = [resources]
    total = 0
    for spec in resources:
        instances = spec.get("instances", 1) if isinstance(spec, Mapping) else None
        if not isinstance(instances, int) or isinstance(instances, bool) or instances < 1:
            raise ValueError(f"Twister2Environment(resources=...): each entry needs a positive "
                             f"int 'instances', got {spec!r}; e.g. "
                             f"resources=[{{'cpu': 1, 'ram': 512, 'instances': 4}}]")
        total += instances
    return total


class Twister2Environment:
    """One worker's view of a Twister2 job.

    Parameters
    ----------
    name : str, optional
        The job's name (the banner and ``twister-nb jobs`` show it).
    resources : list of dict, optional
        ``[{"cpu": 1, "ram": 512, "instances": 4}]``: the sum of ``instances`` is
        the number of workers (copies of the program) and the default parallelism.
    config : dict, optional
        The job's configuration (twister_nb's keys, and any of the program's own).
    mpi_aware : bool
        Accepted for Twister2's programs; the copies need no MPI here.
    """

    def __init__(self, name: str | None = None, resources: list[dict[str, Any]] | None = None,
                 config: Mapping[str, Any] | None = None, mpi_aware: bool = False) -> None:
        self.graph = GraphVersion()
        self._functions = TSetFunctions()
        copy = spmd.current_copy()
        if copy is None:
            workers = _workers(resources)
            program = spmd.main_program(sys._getframe(1).f_globals)
            if program is not None:
                # one twister_nb Worker per Twister2 worker: partition i runs on worker
                # i % workers, as Twister2 places its tasks (the program's config wins)
                config = {"runtime.workers": workers, **(config or {})}
            group = spmd.Group(TSetEnvironment(name=name, resources=resources, config=config),
                               workers if program is not None else 1)
            if program is not None:
                try:
                    spmd.run_copies(program, group)
                finally:
                    group.env.close()
                raise SystemExit(0)  # the workers ran the program: this run is done
            copy = spmd.Copy(group, 0)
        self.copy: spmd.Copy = copy
        #: outside a script's copies this environment is the job's only worker: it owns it
        self._owns_job = copy.group.workers == 1 and spmd.current_copy() is None

    # ------------------------------------------------------------------ info

    @property
    def worker_id(self) -> int:
        """This copy's worker index, 0 to workers - 1."""
        return self.copy.worker_id

    @property
    def config(self) -> dict[str, Any]:
        """The job's configuration, the program's own keys included."""
        return self.copy.group.env.config

    @property
    def functions(self) -> TSetFunctions:
        """Built-in functions: ``env.functions.partition.load_balanced``."""
        return self._functions

    @property
    def job_id(self) -> str:
        return self.copy.group.env.job_id

    def close(self) -> None:
        """End the job if this environment is its only worker (outside a script's
        copies); a copy's close does nothing: the job ends when every copy has."""
        if self._owns_job:
            self.copy.group.env.close()

    # ------------------------------------------------------------------ sources

    def _env(self) -> TSetEnvironment:
        return self.copy.group.env

    def create_source(self, source_function: Any, parallelism: int = 0) -> TSet:
        """A TSet read from ``source_function`` (a ``SourceFunc``), one copy per partition."""
        made = self._env().create_source(source_function, parallelism)
        return TSet(self, lambda: made)

    def create_keyed_source(self, source_function: Any, parallelism: int = 0) -> KeyedTSet:
        """As :meth:`create_source`, where ``next()`` returns ``(key, value)``."""
        made = self._env().create_keyed_source(source_function, parallelism)
        return KeyedTSet(self, lambda: made)

    def parallelize_list(self, lst: list[Any], parallelism: int = 0) -> TSet:
        """A TSet of ``lst`` in contiguous partitions."""
        made = self._env().parallelize_list(lst, parallelism)
        return TSet(self, lambda: made)

    def parallelize_dict(self, kv_map: Mapping[Any, Any], parallelism: int = 0,
                         key_comparator: Any = None) -> KeyedTSet:
        """A keyed TSet of ``kv_map``'s items, ordered by ``key_comparator`` when given."""
        made = self._env().parallelize_dict(kv_map, parallelism, key_comparator)
        return KeyedTSet(self, lambda: made)

    def __repr__(self) -> str:
        return f"Twister2Environment(job_id={self.job_id!r}, worker_id={self.worker_id})"
