"""Benchmarks of twister_nb against its peers (issue 5).

Run ``python -m benchmarks [--quick] [--workloads W1,W2,...] [--repeat N]
[--out docs/benchmarks.md]`` from the repository's root; see ``docs/benchmarks.md`` for the workloads, the
peers (serial Python/numpy, raw Ray actors, Ray Data, Dask, the raw disk) and
the latest results. The peers are optional extras::

    pip install "dask[distributed]" pandas "ray[data]"

This folder is not part of the installed package (``pyproject.toml`` ships
``twister_nb*`` only): the benchmark is a tool of the project, not of its users.
It uses twister_nb's public API, plus :mod:`twister_nb.testing` for what it
shares with the test suite (the seed source, the SeaweedFS server).
"""
