"""The examples in the pure modules' docstrings run."""

import builtins
import doctest
import importlib

import pytest

MODULES = ["twister_nb.config", "twister_nb.tset.functions", "twister_nb.tset.identity",
           "twister_nb.tset.signature", "twister_nb.tset.batches", "twister_nb.tset.graph",
           "twister_nb.storage", "twister_nb.storage.store", "twister_nb.storage.manifest",
           "twister_nb.storage.signing", "twister_nb.events", "twister_nb.runtime.event_log",
           "twister_nb.runtime.rebalance",
           "twister_nb.plan.physical", "twister_nb.runtime.drivers",
           "twister_nb.runtime.scheduler", "twister2.records", "twister_nb.notebook.awaited"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # doctest's display hook sets builtins._, after which IPython (a later test's
    # shell in the same session) stops setting _: put it back as it was
    had, before = hasattr(builtins, "_"), getattr(builtins, "_", None)
    try:
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    finally:
        if had:
            builtins._ = before
        elif hasattr(builtins, "_"):
            del builtins._
    assert result.failed == 0
