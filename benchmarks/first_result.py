"""W0, time to first result: the seed job as whole processes, as a user starts it.

Every other workload times work inside a warm job. W0 times what comes before
it, which is what a user meets first: the process start, the imports, the
connection to Ray, the JobMaster and the workers, then the seed job (a source of
0..9,999 in 4 partitions, x*5, +2, persist(), a sum).

Warm (the benchmark's local head is up):

- ``twister-nb submit`` of the seed tutorial (``examples/tset_checkpointing.py``);
- a fresh kernel's first ``%%twister2`` cell of the same program, through
  jupyter_client (timed from the execute request to the reply; the kernel's
  own start is left out and reported in the note);
- peers: a hand-written Ray program on the same cluster (connect, 2 actors,
  run; no checkpoint), a Dask ``LocalCluster`` started for the job, and plain
  Python, each a process of its own (``benchmarks/programs``).

Cold (no head yet, in a home of its own, stopped after every run): the same
``submit`` and kernel cell, and the Ray program starting its own local Ray.

Every run's output must hold the seed's ``SUM`` line, or the run is wrong.

Listing jobs (warm, while a job of the benchmark's process is live, with
workers and a cached TSet): ``twister-nb jobs``, ``twister-nb status JOB_ID``
and a fresh kernel's ``%twister2 jobs`` cell, each checked to show that job
live; peers: a Ray program listing the cluster's named actors, and ``python -c
pass``, the floor of any command run as a process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import userfns as uf
from benchmarks.harness import TNB, Variant, WrongResult, log, pool_refilled

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "examples" / "tset_checkpointing.py"
PROGRAMS = Path(__file__).resolve().parent / "programs"
SUM_LINE = "SUM = %d" % uf.chain_sum(10_000, 4)
#: The seed's own environment line; in a ``%%twister2`` cell the magic binds ``env``.
_ENV_LINE = re.compile(r"^env = Twister2Environment\(.*\)\n", re.M)


def _cli() -> str:
    """The ``twister-nb`` script installed beside this Python (no shell shim)."""
    beside = Path(sys.executable).with_name("twister-nb")
    return str(beside) if beside.exists() else shutil.which("twister-nb") or "twister-nb"


def check_sum(output: str) -> None:
    if SUM_LINE not in output:
        raise WrongResult(f"no {SUM_LINE!r} in the output: {output[-300:]!r}")


#: The environment of a run with the warm pool off (``runtime.pool.size``; 1 by
#: default for the local head): what a job costs that starts its own actors.
NO_POOL_ENV = {"TWISTER_NB_RUNTIME__POOL__SIZE": "0"}


def _run(argv: list[str], home: str, timeout: float = 300,
         extra_env: dict[str, str] | None = None) -> str:
    env = dict(os.environ, TWISTER_NB_HOME=home, **(extra_env or {}))
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=str(REPO))
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} exited {done.returncode}: "
                           f"{(done.stderr or done.stdout)[-400:]}")
    return done.stdout


def seed_cell(name: str) -> str:
    """The seed tutorial as a ``%%twister2`` cell (its own ``env = ...`` line removed)."""
    text, found = _ENV_LINE.subn("", SEED.read_text())
    if found != 1:
        raise RuntimeError(f"{SEED} no longer has one 'env = Twister2Environment(...)' line")
    return f"%%twister2 --name {name}\n{text}"


class FreshKernel:
    """One fresh IPython kernel per run: start, ``%load_ext twister_nb`` and the
    ``setup`` cells (untimed), the first cell (timed; the seed by default), close."""

    def __init__(self, home: str, cell: str | None = None, setup: tuple[str, ...] = ()) -> None:
        self.home = home
        self.cell = seed_cell("w0") if cell is None else cell
        self.setup = setup
        self.started_s: list[float] = []
        self.loaded_s: list[float] = []
        self._km: Any = None

    def first_cell(self) -> tuple[str, float]:
        from jupyter_client.manager import start_new_kernel

        t0 = time.perf_counter()
        self._km, kc = start_new_kernel(kernel_name="python3", cwd=str(REPO),
                                        env=dict(os.environ, TWISTER_NB_HOME=self.home, **POOL_ENV))
        self.started_s.append(time.perf_counter() - t0)
        self._kc = kc
        t0 = time.perf_counter()
        self._execute("%load_ext twister_nb")
        self.loaded_s.append(time.perf_counter() - t0)
        for code in self.setup:
            self._execute(code)
        started = time.perf_counter()
        output = self._execute(self.cell)
        return output, time.perf_counter() - started

    def _execute(self, code: str, timeout: float = 300) -> str:
        out: list[str] = []
        reply = self._kc.execute_interactive(
            code, timeout=timeout, store_history=False,
            output_hook=lambda msg: out.append(_text_of(msg)))
        content = reply["content"]
        if content["status"] != "ok":
            raise RuntimeError(f"the cell failed: {content.get('ename')}: {content.get('evalue')} "
                               f"{''.join(out)[-400:]}")
        return "".join(out)

    def close(self) -> None:
        """End the kernel's job, then the kernel (untimed)."""
        if self._km is None:
            return
        with contextlib.suppress(Exception):
            self._execute("%twister2 close", timeout=60)
        with contextlib.suppress(Exception):
            self._kc.stop_channels()
        with contextlib.suppress(Exception):
            self._km.shutdown_kernel(now=True)
        self._km = None


def _text_of(msg: dict[str, Any]) -> str:
    content = msg.get("content", {})
    if msg.get("msg_type") == "stream":
        return content.get("text", "")
    return str(content.get("data", {}).get("text/plain", "")) + "\n"


def _subprocess_variant(system: str, argv: list[str], home: str, after: Any = None,
                        is_tnb: bool = False, note: str = "",
                        extra_env: dict[str, str] | None = None,
                        check: Callable[[str], None] = check_sum) -> Variant:
    return Variant(system, lambda: _run(argv, home, extra_env=extra_env), check, after=after,
                   is_tnb=is_tnb, note=note)


POOL_ENV_CONFIG = {"runtime.pool.size": 1}
#: The environment of a run with the warm pool on.
POOL_ENV = {"TWISTER_NB_RUNTIME__POOL__SIZE": "1"}


def _kernel_variant(system: str, home: str, after_each: Any = None, cell: str | None = None,
                    check: Callable[[str], None] = check_sum,
                    setup: tuple[str, ...] = ()) -> tuple[Variant, FreshKernel]:
    kernel = FreshKernel(home, cell, setup)

    def after() -> None:
        kernel.close()
        if after_each is not None:
            after_each()

    return (Variant(system, kernel.first_cell, check, self_timed=True, after=after,
                    is_tnb=True), kernel)


def _kernel_note(kernel: FreshKernel, loaded: bool = False) -> str:
    """The kernel's start (and, with ``loaded``, ``%load_ext twister_nb``): medians, untimed."""
    if not kernel.started_s:
        return ""
    note = f"kernel start (not in the time): median {statistics.median(kernel.started_s):.2f} s"
    if loaded and kernel.loaded_s:
        note += f"; %load_ext twister_nb (not in the time): median " \
                f"{statistics.median(kernel.loaded_s):.2f} s"
    return note


def w0(b: Any) -> dict[str, Any]:
    from twister_nb.runtime import cluster

    address = (cluster.local_status() or {}).get("address")
    warm_home = os.environ["TWISTER_NB_HOME"]
    cli = _cli()
    warm: list[Variant] = [
        _subprocess_variant(f"{TNB} submit (warm, no pool)", [cli, "submit", str(SEED)],
                            warm_home, is_tnb=True, extra_env=NO_POOL_ENV,
                            note="runtime.pool.size 0: the job starts its JobMaster and "
                                 "workers"),
        _subprocess_variant(f"{TNB} submit (warm, pool)", [cli, "submit", str(SEED)], warm_home,
                            is_tnb=True, after=pool_refilled, extra_env=POOL_ENV,
                            note="runtime.pool.size 1; untimed after each run: "
                                 "the pool's refill"),
    ]
    kernel_variant, warm_kernel = _kernel_variant(f"{TNB} kernel's first cell (warm)", warm_home,
                                                  after_each=pool_refilled)
    warm.append(kernel_variant)
    if b.peers.want("ray") and address:
        warm.append(_subprocess_variant("hand-written Ray program (warm cluster)",
                                        [sys.executable, str(PROGRAMS / "seed_ray.py"), address],
                                        warm_home))
    if b.peers.has_dask and b.peers.want("dask-distributed"):
        warm.append(_subprocess_variant("Dask LocalCluster start + job",
                                        [sys.executable, str(PROGRAMS / "seed_dask.py")],
                                        warm_home))
    if b.peers.want("serial"):
        warm.append(_subprocess_variant("serial Python",
                                        [sys.executable, str(PROGRAMS / "seed_serial.py")],
                                        warm_home))
    log("W0 warm: every run is a new process (and job)")
    warm_results = b.measure("W0 warm", warm)
    cases = [_case("warm cluster: to the SUM line", warm_results, _kernel_note(warm_kernel)),
             _jobs_case(b, cli, address, warm_home)]

    if b.mode != "smoke":
        cold_home = b.folder("w0-cold-home")

        def stop_cold_head() -> None:
            with contextlib.suppress(Exception):
                _run([cli, "cluster", "stop"], cold_home, timeout=120)

        cold: list[Variant] = [
            _subprocess_variant(f"{TNB} submit (cold)", [cli, "submit", str(SEED)], cold_home,
                                after=stop_cold_head, is_tnb=True,
                                note="starts the local head; stopped after each run"),
        ]
        kernel_variant, cold_kernel = _kernel_variant(f"{TNB} kernel's first cell (cold)",
                                                      cold_home, after_each=stop_cold_head)
        cold.append(kernel_variant)
        if b.peers.want("ray"):
            cold.append(_subprocess_variant("hand-written Ray program (own local Ray)",
                                            [sys.executable, str(PROGRAMS / "seed_ray.py"),
                                             "local"], cold_home))
        log("W0 cold: the head is started by the run and stopped after it")
        cold_results = b.measure("W0 cold", cold, repeat=min(b.repeat, 3))
        cases.append(_case("cold (no head): to the SUM line", cold_results,
                           _kernel_note(cold_kernel)))
    return {"title": "W0 time to first result: the seed job as whole processes",
            "params": {"program": str(SEED.relative_to(REPO)), "partitions": 4,
                       "records": 10_000 * 4},
            "cases": cases}


def _case(name: str, results: list[Any], note: str, metric: str = "seconds to the result",
          expected: str = SUM_LINE) -> dict[str, Any]:
    from benchmarks.workloads import case

    return case(name, results, metric=metric, expected=expected, note=note)


# ----------------------------------------------------------------------------- listing jobs

JOBS_CASE = "listing jobs with a live job (warm cluster)"


def check_listed_live(job_id: str, live_word: str) -> Callable[[str], None]:
    """The listing has a row of ``job_id`` that marks it live (``live_word``:
    ``(live)`` in the CLI's table, ``yes`` in the magic's)."""

    def check(output: str) -> None:
        rows = [line.split() for line in output.splitlines() if job_id in line.split()]
        if not rows or live_word not in rows[0]:
            raise WrongResult(f"no live row of {job_id!r} ({live_word!r}) in: {output[-400:]!r}")
    return check


def check_status_live(job_id: str) -> Callable[[str], None]:
    """``twister-nb status JOB_ID`` says the job's record and its live view."""

    def check(output: str) -> None:
        try:
            status = json.loads(output)
        except ValueError:
            raise WrongResult(f"status is not JSON: {output[-300:]!r}") from None
        record = status.get("record") or {}
        if record.get("job_id") != job_id or not status.get("live"):
            raise WrongResult(f"status of {job_id!r} is not its live job: {output[-400:]!r}")
    return check


def check_jobmaster_listed(output: str) -> None:
    """The Ray listing names a twister_nb JobMaster (the live job's, or the pool's spare)."""
    from twister_nb.runtime.job_master import ACTOR_PREFIX
    from twister_nb.runtime.pool import SPARE_PREFIX

    names = [line.split()[-1] for line in output.splitlines() if line.strip()]
    if not any(n.startswith((ACTOR_PREFIX, SPARE_PREFIX)) and ".worker-" not in n for n in names):
        raise WrongResult(f"no twister_nb JobMaster among the named actors: {output[-400:]!r}")


def check_silent(output: str) -> None:
    if output:
        raise WrongResult(f"`python -c pass` printed {output[-200:]!r}")


#: An untimed cell: wait (at most a minute) until ``%load_ext twister_nb``'s
#: background connection to Ray is made. It must not import Ray itself: an
#: ``import ray`` while that thread imports it can fail with Python's
#: ``_DeadlockError`` (seen here: ``_ModuleLock('ray._common.utils')``).
_AWAIT_CONNECTION = """import sys as _sys, time as _t
_end = _t.monotonic() + 60
while _t.monotonic() < _end and not getattr(_sys.modules.get("ray"), "is_initialized",
                                             lambda: False)():
    _t.sleep(0.05)
"""


def _jobs_case(b: Any, cli: str, address: str | None, home: str) -> dict[str, Any]:
    """``twister-nb jobs``, ``twister-nb status JOB_ID`` and ``%twister2 jobs``
    while a job is live: a job of this process with workers and a cached TSet,
    its JobMaster taken from the pool; peers: a Ray program listing the
    cluster's named actors, and the interpreter's own start as the floor."""
    env = b.new_env("bench-w0-live", POOL_ENV_CONFIG, keep=False)
    try:
        cached = env.parallelize_list(list(range(1_000)), 4).cache()
        pool_refilled()  # untimed: the spare the job took is replaced before the runs
        job_id = env.job_id
        variants = [
            _subprocess_variant(f"{TNB} jobs", [cli, "jobs"], home, is_tnb=True,
                                check=check_listed_live(job_id, "(live)")),
            _subprocess_variant(f"{TNB} status JOB_ID", [cli, "status", job_id], home,
                                is_tnb=True, check=check_status_live(job_id)),
        ]
        kernel_variant, kernel = _kernel_variant(
            f"{TNB} %twister2 jobs (fresh kernel)", home, cell="%twister2 jobs",
            check=check_listed_live(job_id, "yes"))
        kernel_variant.note = ("the cell run at once after `%load_ext twister_nb`, whose "
                               "connection to Ray is still under way in the background")
        connected_variant, _ = _kernel_variant(
            f"{TNB} %twister2 jobs (fresh kernel, connected)", home, cell="%twister2 jobs",
            check=check_listed_live(job_id, "yes"), setup=(_AWAIT_CONNECTION,))
        connected_variant.note = ("the cell run once the kernel's background connection to "
                                  "Ray is made (untimed wait), as a cell typed later")
        variants += [kernel_variant, connected_variant]
        if b.peers.want("ray") and address:
            variants.append(_subprocess_variant(
                "hand-written Ray query (ray.util.list_named_actors)",
                [sys.executable, str(PROGRAMS / "list_ray.py"), address], home,
                check=check_jobmaster_listed))
        variants.append(_subprocess_variant("python -c pass (the floor)",
                                            [sys.executable, "-c", "pass"], home,
                                            check=check_silent))
        log(f"W0 jobs: every run is a new process; job {job_id} is live")
        results = b.measure("W0 jobs", variants)
        del cached
    finally:
        env.close()
    return _case(JOBS_CASE, results, _kernel_note(kernel, loaded=True),
                 metric="seconds to the listing", expected=job_id)
