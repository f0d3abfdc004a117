"""Timing: variants of one case run alternately (A B C, B C A, ...) after a warm-up.

A *case* is one measurement (e.g. "W1 with persist") run by several *variants*
(twister_nb and its peers). Every variant runs once as a warm-up, then the
rounds go A B C, B C A, C A B, ... so that a load change on this shared machine
hits every system alike and no system always follows the same one. Every
run's result is checked against the reference: a wrong number is recorded as a
failure (and makes the command exit non-zero), never as a time.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TNB = "twister_nb"


class WrongResult(AssertionError):
    """A run returned another value than the reference."""


@dataclass
class Variant:
    """One system running one case.

    ``run()`` returns the result (timed by the harness), or, with
    ``self_timed``, ``(result, seconds)`` for runs that must leave set-up out
    of the time (restart, per-iteration). ``check(result)`` raises
    :class:`WrongResult` if it is wrong. ``after()`` runs untimed after each run.
    """

    system: str
    run: Callable[[], Any]
    check: Callable[[Any], None]
    self_timed: bool = False
    after: Callable[[], None] | None = None
    note: str = ""
    #: The variant's answer to "is this twister_nb?", for the ratios.
    is_tnb: bool = False


@dataclass
class VariantResult:
    system: str
    times: list[float] = field(default_factory=list)
    warmup: float | None = None
    error: str | None = None
    wrong: str | None = None
    note: str = ""
    is_tnb: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.wrong is None and bool(self.times)

    def stats(self) -> dict[str, float] | None:
        if not self.times:
            return None
        return {"median": statistics.median(self.times), "min": min(self.times),
                "max": max(self.times), "n": len(self.times)}

    def to_json(self, records: float | None = None, per: float = 1.0) -> dict[str, Any]:
        st = self.stats()
        out: dict[str, Any] = {"system": self.system, "ok": self.ok,
                               "times_s": [t / per for t in self.times],
                               "warmup_s": None if self.warmup is None else self.warmup / per}
        if st:
            out.update({"median_s": st["median"] / per, "min_s": st["min"] / per,
                        "max_s": st["max"] / per, "reps": st["n"]})
            if records:
                out["records_per_s"] = records / (st["median"] / per)
        for key in ("error", "wrong", "note"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


#: After a run this long, wait a little: a peer that stops actors or frees its
#: object store in the background must not slow the next system down.
_SETTLE_AFTER_S, _SETTLE_S = 2.0, 1.0


def _one(v: Variant) -> float:
    gc.collect()
    if v.self_timed:
        value, seconds = v.run()
    else:
        started = time.perf_counter()
        value = v.run()
        seconds = time.perf_counter() - started
    try:
        v.check(value)
    finally:
        if v.after is not None:
            v.after()
        if seconds > _SETTLE_AFTER_S:
            time.sleep(_SETTLE_S)
    return seconds


def measure(label: str, variants: list[Variant], repeat: int, budget_s: float,
            min_reps: int = 1) -> list[VariantResult]:
    """Warm every variant up, then ``repeat`` alternating rounds.

    A peer whose warm-up says it would need more than ``budget_s`` for its
    repetitions runs fewer of them (at least ``min_reps``), noted; twister_nb
    always runs all of them.
    """
    results = [VariantResult(v.system, note=v.note, is_tnb=v.is_tnb) for v in variants]
    reps = [repeat] * len(variants)
    for i, (v, r) in enumerate(zip(variants, results)):
        try:
            r.warmup = _one(v)
        except WrongResult as exc:
            r.wrong = str(exc)
        except Exception as exc:  # noqa: BLE001 - a peer that breaks is reported, not fatal
            r.error = f"{type(exc).__name__}: {exc}"
            log(traceback.format_exc())
        if r.warmup is not None and r.warmup * repeat > budget_s and not v.is_tnb:
            reps[i] = min(repeat, max(min_reps, int(budget_s // max(r.warmup, 1e-9))))
            if reps[i] < repeat:
                r.note = (r.note + "; " if r.note else "") + (
                    f"{reps[i]} of {repeat} repetitions (slow peer: warm-up {_fmt(r.warmup)})")
        status = "WRONG" if r.wrong else ("ERROR" if r.error else _fmt(r.warmup or 0.0))
        log(f"  {label} / {v.system}: warm-up {status}")
    k = len(variants)
    for round_ in range(repeat):
        # Rotate the order each round (A B C, B C A, C A B, ...) so that no system
        # always runs right after a heavy one and pays for its clean-up.
        for i in [(round_ + j) % k for j in range(k)]:
            v, r = variants[i], results[i]
            if r.error or r.wrong or round_ >= reps[i]:
                continue
            try:
                r.times.append(_one(v))
            except WrongResult as exc:
                r.wrong = str(exc)
            except Exception as exc:  # noqa: BLE001
                r.error = f"{type(exc).__name__}: {exc}"
                log(traceback.format_exc())
    for r in results:
        st = r.stats()
        desc = (f"median {_fmt(st['median'])} (min {_fmt(st['min'])}, max {_fmt(st['max'])}, "
                f"n={st['n']})") if st else (r.wrong or r.error or "no result")
        log(f"  {label} / {r.system}: {desc}")
    return results


def expect_equal(expected: Any) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value != expected:
            raise WrongResult(f"expected {_short(expected)}, got {_short(value)}")
    return check


def expect_close(expected: Any, rtol: float = 1e-9, atol: float = 1e-9) -> Callable[[Any], None]:
    import numpy as np

    def check(value: Any) -> None:
        if value is None or np.shape(value) != np.shape(expected) or not np.allclose(
                value, expected, rtol=rtol, atol=atol):
            raise WrongResult(f"expected {_short(expected)}, got {_short(value)}")
    return check


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 200 else text[:200] + "..."


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return math.nan


def pool_refilled(wait: float = 120.0, need_keeper: bool = True) -> None:
    """Wait (untimed) until the warm pool has its spares again after a job took
    one, so that no spare's start (2-4 s of CPU) runs during a timed run. The
    keeper waits for a quiet machine, which a benchmark between runs is.
    ``need_keeper`` False: no keeper (the pool is off) is nothing to wait for."""
    from twister_nb.runtime import cluster, pool

    cluster.connect()
    deadline = time.monotonic() + wait
    state = None
    while time.monotonic() < deadline:
        state = pool.keeper_state()
        if state is None and not need_keeper:
            return
        if state is not None and len(state["ready"]) >= state["size"]:
            return
        time.sleep(0.2)
    log(f"the warm pool did not refill within {wait:.0f} s: {state}")
