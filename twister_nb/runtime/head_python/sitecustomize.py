"""The Python start-up hook of every process of the local head twister_nb starts.

:func:`twister_nb.runtime.cluster.start_local` puts this folder first on the
head's ``PYTHONPATH``, so Python imports this module when each of the head's
processes starts (``ray start``, the raylet's agents, every worker: JobMasters
and Workers), before Ray. It loads ``jsonschema`` without its IRI format
checker (:func:`load_jsonschema_without_iri_checker`, which the driver side
calls too, from :mod:`twister_nb.runtime`), then runs the ``sitecustomize``
this one hides, if the environment has one.

Why: Ray imports jsonschema, whose format module imports ``rfc3987_syntax``
when it is installed (JupyterLab's ``jupyter-events`` brings it), and that
module compiles ~40 Lark grammars at import: 0.85 s of the 1.3 s that
``import ray`` takes on these machines, paid by each process, so by every
actor a job starts and by each of the head's agents while the raylet waits
for them. The cost: jsonschema's ``FormatChecker`` does not check the ``iri``
and ``iri-reference`` formats in these processes (nothing of Ray's or ours
uses them). A process that imported jsonschema earlier keeps its checker.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def load_jsonschema_without_iri_checker() -> None:
    """Import jsonschema with ``rfc3987_syntax`` hidden; nothing if either is loaded."""
    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        return
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # its import raises ImportError
    try:
        import jsonschema  # noqa: F401
    except ImportError:  # not installed: nothing to speed up
        pass
    finally:
        del sys.modules["rfc3987_syntax"]


def _run_hidden_sitecustomize() -> None:
    """Run the environment's own ``sitecustomize``, which this folder hides."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[__name__] = module  # as Python would have it
    spec.loader.exec_module(module)


if __name__ == "sitecustomize":  # only as the start-up hook, not when imported by name
    load_jsonschema_without_iri_checker()
    _run_hidden_sitecustomize()
