"""Benchmarks of twister_nb against its peers (issue 5).

Run ``python -m twister_nb.bench [--quick] [--workloads W1,W2,...] [--repeat N]
[--out docs/benchmarks.md]``; see ``docs/benchmarks.md`` for the workloads, the
peers (serial Python/numpy, raw Ray actors, Ray Data, Dask, the raw disk) and
the latest results. The peers are optional extras::

    pip install "dask[distributed]" pandas "ray[data]"
"""
