"""Programs for ``twister-nb submit`` in tests: one slow action to watch and cancel.

A job a test submits from a shell must run long enough to be seen running, its
progress moving, and cancelled; each of its tasks sleeps, then doubles its record.
The program prints ``TOTAL <sum>``, the plain-Python value a test compares
with :func:`slow_total`.
"""

from __future__ import annotations

__all__ = ["slow_program", "slow_total"]


def slow_program(name: str, tasks: int, seconds: float, persist: bool = False) -> str:
    """The source of a program whose one action has ``tasks`` tasks of ``seconds``
    each (one record per task), persisted first as ``doubled`` if ``persist``.

    >>> "time.sleep(2.5)" in slow_program("x", 8, 2.5)
    True
    """
    made = f"env.parallelize_list(list(range({tasks})), {tasks}).map(slow)"
    if persist:
        made += '.set_name("doubled").persist()'
    return (
        "import time\n"
        "from twister_nb import TSetEnvironment\n\n\n"
        "def slow(x):\n"
        f"    time.sleep({seconds!r})\n"
        "    return x * 2\n\n\n"
        f"env = TSetEnvironment(name={name!r}, resources=[{{'instances': {tasks}}}])\n"
        f"data = {made}\n"
        'print("TOTAL", sum(data.collect()), flush=True)\n'
        "env.close()\n"
    )


def slow_total(tasks: int) -> int:
    """What :func:`slow_program`'s job prints after ``TOTAL``, in plain Python."""
    return sum(x * 2 for x in range(tasks))
