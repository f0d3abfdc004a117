"""Ray: one JobMaster actor per job, Worker actors holding partitions.

Importing this package needs no cluster; :mod:`cluster` connects on demand.

It does one thing on import, before any module of it imports Ray: it loads
``jsonschema`` without its IRI format checker. Ray imports jsonschema, whose
format module imports ``rfc3987_syntax`` when it is installed (JupyterLab's
``jupyter-events`` brings it), and that module compiles ~40 Lark grammars at
import: 0.85 s of the 1.3 s that ``import ray`` takes here, paid by every
``twister-nb`` command and by a kernel's first cell. The cost: in this process,
jsonschema's ``FormatChecker`` does not check the ``iri`` and ``iri-reference``
formats (nothing of Ray's or ours uses them). A process that imported
jsonschema before us keeps its checker. Ray's worker processes are not changed.
"""

import sys


def _load_jsonschema_without_iri_checker() -> None:
    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        return
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import jsonschema  # noqa: F401
    except ImportError:  # not installed: Ray brings it, nothing to speed up
        pass
    finally:
        del sys.modules["rfc3987_syntax"]


_load_jsonschema_without_iri_checker()
