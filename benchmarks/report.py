"""The results as JSON and as a Markdown page, with the issue's targets checked.

A hand-written analysis between ``<!-- BEGIN ANALYSIS -->`` and
``<!-- END ANALYSIS -->`` in an existing Markdown file is kept when the page is
written again.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

BEGIN, END = "<!-- BEGIN ANALYSIS -->", "<!-- END ANALYSIS -->"


# ----------------------------------------------------------------------------- lookups


def _case(data: dict, workload: str, startswith: str) -> dict | None:
    w = data["workloads"].get(workload) or {}
    for c in w.get("cases", []):
        if c["name"].startswith(startswith):
            return c
    return None


def _median(c: dict | None, system_prefix: str) -> tuple[str, float] | None:
    """(system, median) of the fastest ok variant whose name starts with the prefix."""
    if c is None:
        return None
    found = [(v["system"], v["median_s"] * 1.0) for v in c["variants"]
             if v["system"].startswith(system_prefix) and v.get("ok") and v.get("median_s")]
    return min(found, key=lambda x: x[1]) if found else None


def _tnb(c: dict | None, system: str | None = None) -> float | None:
    """The median of the first twister_nb variant (whose name is ``system``, if given)."""
    if c is None:
        return None
    for v in c["variants"]:
        if (v.get("is_tnb") and v.get("ok") and v.get("median_s")
                and (system is None or v["system"] == system)):
            return v["median_s"]
    return None


def _ratio_target(data: dict, tid: str, text: str, workload: str, case: str, peer: str,
                  limit: float, how: str, tnb_system: str | None = None) -> dict[str, Any]:
    """Target "twister_nb time / peer time <= limit" (``tnb_system``: which twister_nb variant)."""
    c = _case(data, workload, case)
    t, p = _tnb(c, tnb_system), _median(c, peer)
    if t is None or p is None:
        return {"id": tid, "target": text, "measured": "not measured", "met": None}
    ratio = t / p[1]
    return {"id": tid, "target": text, "met": ratio <= limit, "ratio": ratio, "limit": limit,
            "measured": f"{how(ratio)} (twister_nb {_fmt_s(t)} vs {p[0]} {_fmt_s(p[1])})"}


def _time_x(r: float) -> str:
    return f"time ratio {r:.2f}x"


def _seconds_target(data: dict, tid: str, text: str, workload: str, case: str, system: str,
                    limit_s: float, shown_with: tuple[str, ...] = ()) -> dict[str, Any]:
    """Target "the median of ``system`` (a name prefix) < limit_s seconds"; the
    medians of the ``shown_with`` systems (name prefixes: peers) are shown beside it."""
    c = _case(data, workload, case)
    found = _median(c, system)
    if found is None:
        return {"id": tid, "target": text, "measured": "not measured", "met": None}
    peers = [p for p in (_median(c, prefix) for prefix in shown_with) if p is not None]
    beside = "; ".join(f"{name} {_fmt_s(s)}" for name, s in peers)
    return {"id": tid, "target": text, "met": found[1] < limit_s, "ratio": found[1] / limit_s,
            "limit": limit_s,
            "measured": f"{found[0]} {_fmt_s(found[1])}" + (f" ({beside})" if beside else "")}


def _speed_x(r: float) -> str:
    return f"speed {1 / r:.2f}x of the peer"


#: The peers shown beside W0's listing targets (absolute goals).
_LISTING_PEERS = ("hand-written Ray query", "python -c pass")


def targets(data: dict) -> list[dict[str, Any]]:
    out = [
        _ratio_target(data, "W0-submit", "W0 submit of the seed (warm, pool on) <= 0.5x "
                      "a hand-written Ray program", "W0", "warm", "hand-written Ray", 0.5,
                      _time_x, "twister_nb submit (warm, pool)"),
        _ratio_target(data, "W0-submit-no-pool", "W0 submit of the seed (warm, runtime.pool.size "
                      "0) <= 0.5x a hand-written Ray program", "W0", "warm", "hand-written Ray",
                      0.5, _time_x, "twister_nb submit (warm, no pool)"),
        _seconds_target(data, "W0-kernel", "W0 a fresh kernel's first result (warm) < 4 s", "W0",
                        "warm", "twister_nb kernel", 4.0),
        _seconds_target(data, "W0-kernel-cold", "W0 a fresh kernel's first result (cold) < 12 s",
                        "W0", "cold", "twister_nb kernel", 12.0),
        _seconds_target(data, "W0-jobs", "W0 `twister-nb jobs` with a live job (warm) < 1 s",
                        "W0", "listing jobs", "twister_nb jobs", 1.0, _LISTING_PEERS),
        _seconds_target(data, "W0-jobs-magic", "W0 `%twister2 jobs` in a fresh kernel with a live "
                        "job (warm) < 1 s", "W0", "listing jobs",
                        "twister_nb %twister2 jobs (fresh kernel)", 1.0, _LISTING_PEERS),
        _seconds_target(data, "W0-jobs-magic-connected", "W0 `%twister2 jobs` in a fresh kernel "
                        "connected to Ray, with a live job (warm) < 1 s", "W0", "listing jobs",
                        "twister_nb %twister2 jobs (fresh kernel, connected)", 1.0,
                        _LISTING_PEERS),
        _ratio_target(data, "W1-raw", "W1 with persist <= 2x raw warm Ray actors (with persist)",
                      "W1", "seed job, with persist", "raw Ray", 2.0, _time_x),
        _ratio_target(data, "W1-raw-plain", "W1 without persist <= 2x raw warm Ray actors",
                      "W1", "seed job, without persist", "raw Ray", 2.0, _time_x),
        _ratio_target(data, "W1-dask", "W1 >= 2x faster than Dask bag (fastest scheduler)",
                      "W1", "seed job, without persist", "Dask bag", 0.5, _speed_x),
        _ratio_target(data, "W1-raydata", "W1 >= 50x faster than Ray Data",
                      "W1", "seed job, without persist", "Ray Data", 1 / 50, _speed_x),
        _ratio_target(data, "W2-raw", "W2 >= 0.8x raw Ray actors' speed",
                      "W2", "", "raw Ray", 1 / 0.8, _speed_x),
        _ratio_target(data, "W2-serial", "W2 >= 1.5x serial Python",
                      "W2", "", "serial", 1 / 1.5, _speed_x),
        _ratio_target(data, "W2-dask", "W2 >= 10x Dask bag", "W2", "", "Dask bag", 0.1, _speed_x),
        _ratio_target(data, "W2-raydata", "W2 >= 10x Ray Data", "W2", "", "Ray Data", 0.1,
                      _speed_x),
        _ratio_target(data, "W3-raw", "W3 >= 0.8x raw Ray actors on numpy partitions",
                      "W3", "", "raw Ray", 1 / 0.8, _speed_x),
        _ratio_target(data, "W3-dask", "W3 >= Dask array's speed (fastest scheduler)",
                      "W3", "", "Dask array", 1.0, _speed_x),
        _ratio_target(data, "W3-raydata", "W3 >= 20x Ray Data", "W3", "", "Ray Data", 1 / 20,
                      _speed_x),
    ]
    # W4 bandwidth vs the best raw write of the same bytes in the same run
    c = _case(data, "W4", "persist") if data["workloads"].get("W4") else None
    t = _tnb(c)
    raws = [(v["system"], v["bytes_per_s"]) for v in (c or {}).get("variants", [])
            if not v.get("is_tnb") and v.get("ok") and v.get("bytes_per_s")]
    if t is not None and raws:
        best = max(raws, key=lambda x: x[1])
        bw = c["bytes"] / t
        out.append({"id": "W4-bw", "target": "W4 persist >= 80% of the best raw write (local)",
                    "met": bw >= 0.8 * best[1], "ratio": bw / best[1], "limit": 0.8,
                    "measured": f"{bw / 1e9:.2f} GB/s = {100 * bw / best[1]:.0f}% of "
                                f"{best[0]} {best[1] / 1e9:.2f} GB/s"})
    else:
        out.append({"id": "W4-bw", "target": "W4 persist >= 80% of the best raw write (local)",
                    "measured": "not measured", "met": None})
    restarts = [c for c in (data["workloads"].get("W4") or {}).get("cases", [])
                if c["name"].startswith("restart")]
    if restarts:
        parts, met = [], True
        for c in restarts:
            size = c["name"].split("committed ")[-1].replace(" checkpoint", "")
            tnbs = [v for v in c["variants"] if v.get("is_tnb")]
            default = tnbs[0] if tnbs else {}
            if not default.get("median_s"):
                met = None if met is not False else met
            elif default["median_s"] >= 0.020:
                met = False
            extra = "; ".join(
                f"{v['system'].replace('twister_nb ', '')} {_fmt_s(v.get('median_s'))}"
                for v in tnbs[1:])
            parts.append(f"{size}: {_fmt_s(default.get('median_s'))}"
                         + (f" ({extra})" if extra else ""))
        out.append({"id": "W4-restart", "target": "W4 restart persist() < 20 ms at every size "
                                                  "(default config)",
                    "met": met, "measured": ", ".join(parts)})
    out += [
        _ratio_target(data, "W5-dask", "W5 >= 2x Dask bag foldby", "W5", "", "Dask bag foldby",
                      0.5, _speed_x),
        _ratio_target(data, "W5-raydata", "W5 >= 2x Ray Data groupby().count()", "W5", "",
                      "Ray Data", 0.5, _speed_x),
        _ratio_target(data, "W5-pandas", "W5 within 5x of pandas", "W5", "", "pandas", 5.0,
                      _time_x),
        _ratio_target(data, "W6-raw", "W6 per-iteration <= 1.3x raw Ray actors", "W6", "",
                      "raw Ray", 1.3, _time_x),
        _seconds_target(data, "RECOVERY", "RECOVERY a worker's death to the next result < 2 s",
                        "RECOVERY", "", "twister_nb after", 2.0),
        _ratio_target(data, "POLICY-overhead", "POLICY finished_tasks 1 costs < 5% while the "
                      "stage runs", "POLICY", "overhead", "twister_nb no policy", 1.05, _time_x),
        _ratio_target(data, "POLICY-resume", "POLICY resume after a failure at 90% < 15% of a "
                      "full recompute", "POLICY", "resume", "full recompute", 0.15, _time_x),
    ]
    m = data["workloads"].get("MEM") or {}
    tnb_mem = [r for r in m.get("memory", []) if r["system"] == "twister_nb"]
    if tnb_mem:
        g = tnb_mem[0]["max_growth_over_data"]
        out.append({"id": "MEM", "target": "peak worker memory during W2 <= 2x the data held",
                    "met": g <= 2.0, "ratio": g, "limit": 2.0,
                    "measured": f"RSS growth {g:.2f}x the worker's data (see MEM)"})
    else:
        out.append({"id": "MEM", "target": "peak worker memory during W2 <= 2x the data held",
                    "measured": "not measured", "met": None})
    return out


# ----------------------------------------------------------------------------- markdown


def _fmt_s(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _fmt_rate(v: dict, c: dict) -> str:
    if c["metric"] == "bandwidth" and v.get("bytes_per_s"):
        return f"{v['bytes_per_s'] / 1e9:.2f} GB/s"
    if v.get("records_per_s") and c["metric"] in ("throughput",):
        r = v["records_per_s"]
        return f"{r / 1e6:.2f} M rec/s" if r >= 1e5 else f"{r / 1e3:.1f} k rec/s"
    return ""


def _case_table(c: dict) -> list[str]:
    ratio = {r["peer"]: r["time_ratio"] for r in c["ratios"] if r["tnb"] == "twister_nb"}
    paired = {r["peer"]: r.get("paired_ratio") for r in c["ratios"] if r["tnb"] == "twister_nb"}
    per = " per iteration" if c["metric"] == "per-iteration" else ""
    lines = [f"**{c['name']}** (load {c.get('load_1min', float('nan')):.2f} at the end)"
             + (f" — {c['note']}" if c.get("note") else ""), "",
             f"| system | median{per} | min | max | n | rate | twister_nb / system (time) | note |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for v in c["variants"]:
        if v.get("median_s") is not None:
            cells = [_fmt_s(v["median_s"]), _fmt_s(v["min_s"]), _fmt_s(v["max_s"]),
                     str(v["reps"]), _fmt_rate(v, c)]
        else:
            cells = ["—"] * 4 + [""]
        r, pr = ratio.get(v["system"]), paired.get(v["system"])
        rtxt = "" if v.get("is_tnb") or r is None else f"{r:.2f}"
        if rtxt and pr is not None:
            rtxt += f" ({pr:.2f})"
        note = v.get("note", "")
        if v.get("wrong"):
            note = f"**WRONG RESULT**: {v['wrong']}"
        elif v.get("error"):
            note = f"error: {v['error'][:160]}"
        name = f"**{v['system']}**" if v.get("is_tnb") else v["system"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {rtxt} | {note} |")
    lines.append("")
    return lines


def markdown(data: dict, order: list[str]) -> str:
    meta = data["meta"]
    load = meta.get("load", {})
    lines = [
        "# twister_nb benchmarks",
        "",
        (f"Generated by `{meta['command']}` — mode **{meta['mode']}**, {meta['repeat']} "
         f"repetitions after a warm-up, variants alternated in rotating order (A B C, B C A, …). "
         f"Started {meta['started']}, took {meta['duration_s']:.0f} s."),
        "",
        f"Machine: {meta['cpus']} CPUs, {meta['memory_gb']:.0f} GB; Python {meta['python']}; "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + f"; git {meta['git']}.",
        "",
        (f"1-minute load average: {load.get('start', float('nan')):.2f} at the start, "
         f"{load.get('min', float('nan')):.2f}–{load.get('max', float('nan')):.2f} during the run, "
         f"{load.get('end', float('nan')):.2f} at the end "
         "(2 cores; other jobs share the machine)."),
        "",
        ("Times are medians (min, max) of the repetitions; the ratio column is "
         "**twister_nb's median time / the system's median time**: below 1 twister_nb is "
         "faster, above 1 slower (a speed ratio is its inverse); in parentheses the median of "
         "the per-round ratios (the same round of both systems). Every run's result is "
         "checked against the reference value; a wrong one is marked and fails the command."),
        "",
    ]
    if meta.get("notes"):
        lines += ["Notes:", ""] + [f"- {n}" for n in meta["notes"]] + [""]
    tg = data.get("targets", [])
    if tg:
        lines += ["## Targets (issue 5)", "", "| target | measured | met |", "|---|---|---|"]
        for t in tg:
            met = {True: "yes", False: "**no**", None: "—"}[t["met"]]
            lines.append(f"| {t['target']} | {t['measured']} | {met} |")
        lines += ["", "Why each target is met or missed (with the profiles), and the engine "
                  "changes that close the gaps: see the analysis at the end of this page.", ""]
    for wid in order:
        w = data["workloads"].get(wid)
        if w is None:
            continue
        title = w.get("title") or wid
        lines += [f"## {title if title.startswith(wid) else f'{wid}: {title}'}", ""]
        if w.get("error"):
            lines += [f"**failed**: {w['error']}", ""]
        params = w.get("params")
        if params:
            lines += ["Parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()), ""]
        for c in w.get("cases", []):
            lines += _case_table(c)
        if wid == "SCALE":
            lines += _scale_summary(w)
        if w.get("memory"):
            lines += [("| system | worker | baseline RSS | peak RSS | growth | data held | "
                       "growth / data | peak / data |"), "|---|---:|---:|---:|---:|---:|---:|---:|"]
            for run in w["memory"]:
                for r in run["workers"]:
                    lines.append(
                        f"| {run['system']} | {r['worker']} | {r['baseline_rss'] / 1e6:.0f} MB | "
                        f"{r['peak_rss'] / 1e6:.0f} MB | {r['growth'] / 1e6:.0f} MB | "
                        f"{r['data_held_bytes'] / 1e6:.0f} MB | {r['growth_over_data']:.2f} | "
                        f"{r['peak_over_data']:.2f} |")
            lines.append("")
        for n in w.get("notes", []):
            lines.append(f"- {n}")
        if w.get("notes"):
            lines.append("")
    lines += [BEGIN, data.get("analysis", "").strip(), END, ""]
    return "\n".join(lines)


def _scale_summary(w: dict) -> list[str]:
    rows = []
    prev = None
    for c in w["cases"]:
        if not c["name"].startswith("records="):
            continue
        t = _tnb(c)
        if t is None:
            continue
        if prev is not None:
            growth = c["records"] / prev[0]
            rows.append(f"| {prev[0]:,.0f} → {c['records']:,.0f} | {growth:.0f}x | "
                        f"{t / prev[1]:.1f}x |")
        prev = (c["records"], t)
    if not rows:
        return []
    return ["Linearity of twister_nb (time growth vs record growth):", "",
            "| records | records grow | time grows |", "|---|---:|---:|", *rows, ""]


def keep_analysis(path: str) -> str:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    if BEGIN in text and END in text:
        return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    return ""


def write(data: dict, md_path: str, json_path: str, order: list[str]) -> None:
    data["analysis"] = keep_analysis(md_path)
    data["targets"] = targets(data)
    for path in (md_path, json_path):
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(data, f, indent=1, default=str)
        f.write("\n")
    with open(md_path, "w") as f:
        f.write(markdown(data, order))
