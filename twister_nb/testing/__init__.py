"""What twister_nb's tests and benchmarks share, importable from an installed package.

Like ``ray.cluster_utils`` or ``distributed.utils_test``: helpers a test suite (ours,
or a user's) needs to exercise twister_nb for real, shipped with the package so the
suite and ``benchmarks/`` stop reaching into each other's folders through ``sys.path``.

- :mod:`twister_nb.testing.seaweed`: a real SeaweedFS S3 server on 127.0.0.1
  (:class:`SeaweedServer`), stopped by its PID.
- :mod:`twister_nb.testing.jupyter`: a real JupyterLab server on 127.0.0.1
  (:class:`JupyterServer`), twister_nb's extensions enabled, stopped by its PID.
- :mod:`twister_nb.testing.programs`: a slow program for ``twister-nb submit``
  (:func:`slow_program`), to watch, follow and cancel.
- :mod:`twister_nb.testing.processes`: :func:`kill_and_wait`, a real SIGKILL (a lost worker),
  :func:`worker_pids`, a job's worker processes (pooled or not), and :func:`run_fresh`, code
  (``twister-nb`` itself: :data:`CLI`) in a new process that says whether it imported Ray.
- :mod:`twister_nb.testing.seed`: the seed tutorial's source and user functions
  (:class:`IntSource`, :func:`mul_by_five`, :func:`add_two`, :func:`add`).

Nothing here imports Ray when imported, and nothing in the product imports this package.
"""

from __future__ import annotations

from twister_nb.testing.processes import CLI, FreshRun, kill_and_wait, run_fresh, worker_pids
from twister_nb.testing.seaweed import SeaweedServer, closed_port, free_ports, weed_binary
from twister_nb.testing.seed import IntSource, add, add_two, mul_by_five

__all__ = [
    "CLI",
    "FreshRun",
    "IntSource",
    "SeaweedServer",
    "add",
    "add_two",
    "closed_port",
    "free_ports",
    "kill_and_wait",
    "mul_by_five",
    "run_fresh",
    "weed_binary",
    "worker_pids",
]
