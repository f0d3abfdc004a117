"""The benchmark harness in its tiny mode: every workload runs on twister_nb and
its fast peers, and every twister_nb result is the exact reference value.

The harness runs as a subprocess, as a user runs it (``python -m benchmarks``
from the repository's root): it owns a private twister_nb home and its own
loopback Ray head, and stops it by PID at the end. It lives with the benchmark;
``testpaths`` in ``pyproject.toml`` makes it part of the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWISTER_NB_")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=540, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    return out, json.loads(out.with_suffix(".json").read_text()), proc


def test_every_workload_has_results(smoke):
    from benchmarks.workloads import ORDER

    _, data, _ = smoke
    assert sorted(data["workloads"]) == sorted(ORDER)
    for wid, w in data["workloads"].items():
        assert not w.get("error"), (wid, w.get("error"))
        if wid == "MEM":
            systems = {r["system"] for r in w["memory"]}
            assert "twister_nb" in systems
            for run in w["memory"]:
                assert run["workers"] and all(r["peak_rss"] > 0 for r in run["workers"])
            continue
        assert w["cases"], wid
        for case in w["cases"]:
            tnb = [v for v in case["variants"] if v["is_tnb"]]
            assert tnb, (wid, case["name"])  # W4's restart has two: verify on and off
            for v in tnb:
                assert v["ok"] and v["median_s"] > 0, (wid, case["name"], v)
            peers = [v for v in case["variants"] if not v["is_tnb"]]
            assert peers, (wid, case["name"])
            for v in case["variants"]:
                assert not v.get("wrong"), (wid, case["name"], v["system"], v["wrong"])
            assert {r["peer"] for r in case["ratios"]} == {v["system"] for v in peers
                                                          if v.get("median_s")}


def test_values_are_exact(smoke):
    from benchmarks import userfns as uf

    _, data, _ = smoke
    w1 = data["workloads"]["W1"]["cases"]
    assert [c["expected"] for c in w1] == [999_980_000, 999_980_000]
    n = data["meta"]["sizes"]["w2_n"]
    assert data["workloads"]["W2"]["cases"][0]["expected"] == uf.chain_sum(n, 4)
    n3 = data["meta"]["sizes"]["w3_n"]
    assert data["workloads"]["W3"]["cases"][0]["expected"] == uf.chain_sum(n3, 4)
    # every variant that ran was checked against these values (a wrong one is "wrong")
    for w in data["workloads"].values():
        for case in w.get("cases", []):
            for v in case["variants"]:
                assert v["ok"] or v.get("error"), v


def test_markdown_has_tables_and_targets(smoke):
    out, data, _ = smoke
    text = out.read_text()
    assert "## Targets (issue 5)" in text
    for wid in data["workloads"]:
        assert f"## {wid}" in text
    assert "twister_nb / system (time)" in text
    assert {t["id"] for t in data["targets"]} >= {"W1-raw", "W2-raw", "W4-bw", "MEM"}
