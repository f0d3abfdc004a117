"""SPMD as Twister2 runs Python: the program once per worker, its actions once per job.

Twister2 runs a Python job's script in every worker: the module-level code runs
once per worker (``env.worker_id`` tells which), and every worker builds the same
TSet graph and executes its own share of each action. twister_nb has one driver
per job and runs an action's partitions on its workers, so this module gives a
program the same shape on top of one twister_nb job:

- :func:`run_copies` runs the program's file ``workers`` times, each copy in a
  thread of this process with its own module globals (``__name__ == "__main__"``)
  and its worker index (:func:`current_copy`). The copies share one
  :class:`~twister_nb.TSetEnvironment`: one job, one banner, one Ray connection.
- :class:`Group` makes each action run once: the copies build the same graph, so
  the same action has the same key (its kind, the TSet's fingerprint, how many
  times this copy ran it before); the first copy to reach a key runs it, the
  others wait for it and get the same result (or the same error). No copy waits
  for another copy that has not come yet, so copies whose code differs (an action
  only worker 0 runs) never dead-lock: a different graph is a different action.

Output from user functions (``for_each``, ``sink``) comes back once, from the
action's run, as the partitions print on their workers; output of the program's
own code comes from every copy, as from every Twister2 worker.
"""

from __future__ import annotations

import builtins
import sys
import threading
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Group", "Copy", "FailedInAnotherCopy", "current_copy", "main_program", "run_copies"]


class FailedInAnotherCopy(Exception):
    """Raised in the copies that waited for an action another copy ran and saw
    fail; the launcher reports that copy's error (this one's cause) instead."""


@dataclass
class _Outcome:
    """One action as the copies share it: run by the first, awaited by the rest."""

    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None
    takers: int = 0


class Group:
    """The copies of one program: the job they share and the actions they ran.

    Parameters
    ----------
    env : twister_nb.TSetEnvironment
        The job.
    workers : int
        How many copies take each action's result (a result is dropped once all
        have taken it, so a cached TSet's handle does not outlive the copies).
    """

    def __init__(self, env: Any, workers: int) -> None:
        self.env = env
        self.workers = workers
        self._lock = threading.Lock()
        self._running = threading.Lock()  # one action at a time on the shared job
        self._outcomes: dict[Hashable, _Outcome] = {}

    def once(self, key: Hashable, run: Callable[[], Any]) -> Any:
        """``run()`` if no copy ran the action ``key`` yet, else its result (or
        its error, raised again)."""
        with self._lock:
            outcome = self._outcomes.get(key)
            first = outcome is None
            if outcome is None:
                outcome = self._outcomes[key] = _Outcome()
            outcome.takers += 1
            if outcome.takers >= self.workers:
                del self._outcomes[key]  # every copy has it now
        if first:
            try:
                with self._running:
                    outcome.value = run()
            except BaseException as exc:  # every copy sees the same failure
                outcome.error = exc
            finally:
                outcome.done.set()
            if outcome.error is not None:
                raise outcome.error
            return outcome.value
        outcome.done.wait()
        if outcome.error is not None:
            raise FailedInAnotherCopy(key) from outcome.error
        return outcome.value


@dataclass
class Copy:
    """One copy of the program: its worker index, its group, and its action count."""

    group: Group
    worker_id: int
    seen: Counter[Hashable] = field(default_factory=Counter)

    def once(self, kind: str, ident: str, run: Callable[[], Any]) -> Any:
        """Run (or join) this copy's next action ``kind`` on the TSet ``ident``."""
        self.seen[(kind, ident)] += 1
        return self.group.once((kind, ident, self.seen[(kind, ident)]), run)


_local = threading.local()


def current_copy() -> Copy | None:
    """The copy the calling thread runs, if it is one."""
    return getattr(_local, "copy", None)


def main_program(caller_globals: dict[str, Any]) -> Path | None:
    """The program's file when ``caller_globals`` are those of the script being
    run as ``__main__`` (``python3 prog.py``, ``twister-nb submit prog.py``),
    else None (a notebook, ``python -c``, a module the script imports)."""
    main = sys.modules.get("__main__")
    if main is None or vars(main) is not caller_globals or "ipykernel" in sys.modules:
        return None
    path = caller_globals.get("__file__")
    if not isinstance(path, str) or not path.endswith(".py") or not Path(path).is_file():
        return None
    return Path(path)


class _WholeLines:
    """``sys.stdout`` while the copies run: each thread's text is written a whole
    line at a time, so two copies printing at once never share a line."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._pending = threading.local()

    def write(self, text: str) -> int:
        *lines, rest = (getattr(self._pending, "text", "") + text).split("\n")
        self._pending.text = rest
        if lines:
            with self._lock:
                self._out.write("\n".join(lines) + "\n")
        return len(text)

    def flush(self) -> None:
        rest, self._pending.text = getattr(self._pending, "text", ""), ""
        with self._lock:
            if rest:
                self._out.write(rest)
            self._out.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


def _run_copy(code: Any, path: Path, copy: Copy, errors: dict[int, BaseException]) -> None:
    _local.copy = copy
    module = {"__name__": "__main__", "__file__": str(path), "__builtins__": builtins,
              "__doc__": None, "__package__": None, "__spec__": None, "__loader__": None,
              "__cached__": None}
    try:
        exec(code, module)  # noqa: S102 - the user's own program, as `python3 prog.py` runs it
    except SystemExit as exc:
        if exc.code not in (None, 0):
            errors[copy.worker_id] = exc
    except BaseException as exc:  # noqa: BLE001 - reported by the launcher
        errors[copy.worker_id] = exc
    finally:
        _local.copy = None
        sys.stdout.flush()


def run_copies(path: Path, group: Group) -> None:
    """Run ``path`` once per worker of ``group``, each copy in its own thread,
    and wait for all of them. The first failing copy's error (lowest worker
    index) is raised; an interrupt cancels the job's running action."""
    code = compile(path.read_bytes(), str(path), "exec")
    errors: dict[int, BaseException] = {}
    threads = [threading.Thread(target=_run_copy, args=(code, path, Copy(group, k), errors),
                                name=f"twister2-worker-{k}", daemon=True)
               for k in range(group.workers)]
    out = sys.stdout
    sys.stdout = _WholeLines(out)  # type: ignore[assignment]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        group.env.cancel()
        raise
    finally:
        sys.stdout.flush()
        sys.stdout = out
    if errors:
        first = errors[min(errors)]
        own = [errors[k] for k in sorted(errors) if not isinstance(errors[k], FailedInAnotherCopy)]
        raise own[0] if own else first
