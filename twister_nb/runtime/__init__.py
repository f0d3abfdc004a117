"""Ray: one JobMaster actor per job, Worker actors holding partitions.

Importing this package needs no cluster; :mod:`cluster` connects on demand.
It loads jsonschema without its IRI format checker first, before any module
of it imports Ray: see :mod:`twister_nb.runtime.head_python.sitecustomize`
(0.85 s of ``import ray``, for every ``twister-nb`` command and a kernel's
first cell).
"""

from twister_nb.runtime.head_python.sitecustomize import load_jsonschema_without_iri_checker

load_jsonschema_without_iri_checker()
