"""``python -m benchmarks``: run the workloads on twister_nb and its peers.

The run owns everything it starts: a private twister_nb home (a temporary
folder), the local Ray head twister_nb starts there (loopback, token auth),
Dask's LocalCluster and SeaweedFS, all stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import peers as pe
from benchmarks.harness import loadavg, log

PEER_NAMES = ("serial", "ray", "ray-data", "dask", "dask-distributed", "pandas", "disk", "s3")
SMOKE_PEERS = ("serial", "ray", "dask", "pandas", "disk")
#: --quick leaves out the two slowest peers (Ray Data needs 5-20 s per execution here,
#: SeaweedFS a server start); name them in --peers to include them.
QUICK_PEERS = ("serial", "ray", "dask", "dask-distributed", "pandas", "disk")
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from benchmarks.workloads import ORDER

    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark twister_nb against serial Python, raw Ray actors, Ray Data, "
                    "Dask and the raw disk (issue 5). Peers: " + pe.EXTRAS)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="3 repetitions, smaller sizes, no Ray Data/SeaweedFS unless --peers "
                           "names them (a few minutes)")
    mode.add_argument("--smoke", action="store_true",
                      help="tiny sizes, 1 repetition, fast peers only (for the test suite)")
    ap.add_argument("--workloads", default=",".join(ORDER),
                    help=f"comma-separated subset of {','.join(ORDER)} (default: all)")
    ap.add_argument("--peers", default=None,
                    help=f"comma-separated subset of {','.join(PEER_NAMES)} (default: all "
                         f"installed; --quick: {','.join(QUICK_PEERS)}; "
                         f"--smoke: {','.join(SMOKE_PEERS)})")
    ap.add_argument("--repeat", type=int, default=None,
                    help="repetitions after the warm-up (default 5; --quick 3; --smoke 1)")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"),
                    help="Markdown output (default docs/benchmarks.md)")
    ap.add_argument("--json", default=None,
                    help="JSON output (default: the --out path with .json)")
    args = ap.parse_args(argv)
    args.mode = "smoke" if args.smoke else ("quick" if args.quick else "full")
    if args.repeat is None:
        args.repeat = {"smoke": 1, "quick": 3, "full": 5}[args.mode]
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    wanted = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in ORDER]
    if unknown:
        ap.error(f"unknown workloads {unknown}; choose from {ORDER}")
    args.workload_list = wanted
    if args.peers is None:
        args.peer_set = {"smoke": set(SMOKE_PEERS), "quick": set(QUICK_PEERS)}.get(args.mode)
    else:
        args.peer_set = {p.strip() for p in args.peers.split(",") if p.strip()}
        bad = args.peer_set - set(PEER_NAMES)
        if bad:
            ap.error(f"unknown peers {sorted(bad)}; choose from {PEER_NAMES}")
    if args.json is None:
        args.json = str(Path(args.out).with_suffix(".json"))
    return args


def _versions() -> dict[str, str]:
    out = {}
    for name in ("ray", "numpy", "pyarrow", "dask", "distributed", "pandas"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except ImportError:
            pass
    return out


def _git() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                             check=False, capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, text=True, capture_output=True, timeout=10,
                               check=False).stdout.strip()
        return (rev or "unknown") + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _memory_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError):
        return float("nan")


def _private_home() -> str:
    """A fresh twister_nb home; the run's own config, whatever the caller's environment says."""
    for name in list(os.environ):
        if name.startswith("TWISTER_NB_"):
            del os.environ[name]  # e.g. a test session's home or a remote ray.address
    home = tempfile.mkdtemp(prefix="tnb-bench-")
    os.environ["TWISTER_NB_HOME"] = home
    return home


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks import workloads as wl

    started_wall = datetime.datetime.now().astimezone()
    started = time.monotonic()
    home = _private_home()
    loads = [loadavg()]
    data: dict[str, Any] = {"meta": {}, "workloads": {}}
    bench = None
    peers = None
    state = None
    from twister_nb.runtime import cluster

    try:
        log(f"twister_nb bench ({args.mode}, {args.repeat} repetitions): home {home}")
        state = cluster.start_local(config={"ray.address": "local"})
        cluster.connect({"ray.address": "local"})  # before anything imports Ray
        from benchmarks.rawray import RawRay

        peers = pe.Peers(args.peer_set, home)  # finding ray.data imports Ray: after connect()

        if peers.has_raydata:
            pe.raydata_quiet()
        workers = cluster.cluster_cpus()
        sizes = wl.Sizes.for_mode(args.mode)
        bench = wl.Bench(mode=args.mode, sizes=sizes, repeat=args.repeat, home=home, peers=peers,
                         workers=workers)
        bench.env = bench.new_env("bench")
        bench.pool = RawRay(workers)
        for wid in [w for w in wl.RUN_ORDER if w in args.workload_list]:
            loads.append(loadavg())
            log(f"{wid} (load {loads[-1]:.2f})")
            t0 = time.monotonic()
            try:
                result = wl.WORKLOADS[wid](bench)
            except Exception as exc:  # noqa: BLE001 - recorded; the other workloads go on
                import traceback

                log(traceback.format_exc())
                result = {"title": wid, "error": f"{type(exc).__name__}: {exc}", "cases": []}
            result["seconds"] = time.monotonic() - t0
            data["workloads"][wid] = result
        loads.append(loadavg())
    finally:
        if bench is not None:
            with contextlib.suppress(Exception):
                if bench.pool is not None:
                    bench.pool.close()
            with contextlib.suppress(Exception):
                if bench.env is not None:
                    bench.env.close()
            bench.close()
        if peers is not None:
            peers.close()
        with contextlib.suppress(Exception):
            import ray

            if ray.is_initialized():
                ray.shutdown()
        cluster.stop_local()
        if state is not None:
            shutil.rmtree(state.get("temp_dir", ""), ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    data["meta"] = {
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "mode": args.mode, "repeat": args.repeat, "workloads": args.workload_list,
        "started": started_wall.isoformat(timespec="seconds"),
        "duration_s": time.monotonic() - started,
        "cpus": os.cpu_count(), "memory_gb": _memory_gb(),
        "python": platform.python_version(), "versions": _versions(), "git": _git(),
        "load": {"start": loads[0], "end": loads[-1], "min": min(loads), "max": max(loads),
                 "samples": loads},
        "notes": peers.notes if peers is not None else [],
        "sizes": dict(vars(wl.Sizes.for_mode(args.mode))),
    }
    return data


def failures(data: dict[str, Any]) -> list[str]:
    """twister_nb runs that failed or returned a wrong value, and failed workloads."""
    out = []
    for wid, w in data["workloads"].items():
        if w.get("error"):
            out.append(f"{wid}: {w['error']}")
        for c in w.get("cases", []):
            for v in c["variants"]:
                if v.get("wrong"):
                    out.append(f"{wid} {c['name']} {v['system']}: wrong result: {v['wrong']}")
                elif v.get("is_tnb") and v.get("error"):
                    out.append(f"{wid} {c['name']} {v['system']}: {v['error']}")
    return out


def main(argv: list[str] | None = None) -> int:
    from benchmarks import report
    from benchmarks.workloads import ORDER

    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    data = run(args)
    report.write(data, args.out, args.json, ORDER)
    log(f"wrote {args.out} and {args.json} ({data['meta']['duration_s']:.0f} s)")
    for t in data.get("targets", []):
        mark = {True: "met   ", False: "MISSED", None: "n/a   "}[t["met"]]
        log(f"  {mark} {t['target']}: {t['measured']}")
    bad = failures(data)
    for line in bad:
        log(f"FAILED {line}")
    return 1 if bad else 0
