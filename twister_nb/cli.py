"""``twister-nb``: submit programs as jobs and manage the local cluster.

A thin front end over the Python API, as the notebook magics are: every
command's docstring is its help text, user errors go to stderr with exit
code 1, and heavy imports (Ray) happen inside the commands.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import click


class UsageFailure(click.ClickException):
    """A user error: one line on stderr, exit code 1."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Twister2-style TSet dataflow jobs on Ray."""


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("program", type=click.Path(dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--job-id", default=None, help="Run as this job ID (default: a new one).")
@click.option("--name", default=None, help="The job's name (default: config job.name).")
def submit(program: str, args: tuple[str, ...], job_id: str | None, name: str | None) -> None:
    """Run PROGRAM.py as a job: print the job banner first, then run it.

    The program creates its ``TSetEnvironment()`` as usual; it gets this job's
    ID and name. Extra ARGS are passed to the program as ``sys.argv[1:]``.
    """
    path = Path(program)
    if not path.is_file():
        raise UsageFailure(f"submit: no such program {program!r}")
    _run_as_job(path, list(args), job_id=job_id, name=name)


def _run_as_job(path: Path, args: list[str], *, job_id: str | None, name: str | None) -> None:
    from twister_nb import config
    from twister_nb.runtime import cluster
    from twister_nb.errors import ClusterError
    from twister_nb.tset import environment as envmod

    name = name or str(config.get("job.name", "python-job"))
    job_id = job_id or envmod.new_job_id(name)
    try:
        info = cluster.connect()
    except ClusterError as exc:
        raise UsageFailure(str(exc)) from None
    print(envmod.format_banner(name, job_id, cluster.banner_fields(info)), flush=True)
    os.environ[envmod.JOB_ID_VAR] = job_id
    os.environ[envmod.JOB_NAME_VAR] = name
    os.environ[envmod.BANNER_DONE_VAR] = "1"
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    runpy.run_path(str(path), run_name="__main__")


@main.group("cluster")
def cluster_group() -> None:
    """The local Ray head twister_nb owns (config ray.address: local)."""


@cluster_group.command("start")
@click.option("--num-cpus", type=int, default=None, help="CPUs to offer (default: all).")
def cluster_start(num_cpus: int | None) -> None:
    """Start the local head under the twister_nb home, or report the running one."""
    from twister_nb.runtime import cluster

    was = cluster.local_status()
    state = cluster.start_local(num_cpus=num_cpus)
    verb = "already running" if was else "started"
    click.echo(f"local Ray head {verb} at {state['address']} (pid {state['pid']})")


@cluster_group.command("stop")
def cluster_stop() -> None:
    """Stop the local head by its PID (only the one twister_nb started)."""
    from twister_nb.runtime import cluster

    if cluster.stop_local():
        click.echo("local Ray head stopped")
    else:
        click.echo("no local Ray head was running")


@cluster_group.command("status")
def cluster_status() -> None:
    """Say whether the local head runs, and where."""
    from twister_nb import config
    from twister_nb.runtime import cluster

    address = config.get("ray.address", "local")
    state = cluster.local_status()
    if address != "local":
        click.echo(f"ray.address is {address!r} (an existing cluster); the local head is "
                   + ("running" if state else "not running"))
    elif state:
        click.echo(f"local Ray head running at {state['address']} (pid {state['pid']}), "
                   f"home {config.home()}")
    else:
        click.echo(f"local Ray head not running (home {config.home()}); "
                   "`twister-nb cluster start` starts it, and so does the first job")


def _store():
    from twister_nb.checkpoint import open_store

    return open_store()


def _live_info(job_id: str) -> dict | None:
    """The live JobMaster's view of a job, if the cluster runs it (never starts one)."""
    from twister_nb.runtime.jobs import live_jobs

    return live_jobs().get(job_id)


@main.command()
def jobs() -> None:
    """List the jobs of this cluster and store, with their status (live ones marked)."""
    import datetime

    from twister_nb.checkpoint import store_uri
    from twister_nb.runtime.jobs import all_jobs

    jobs = all_jobs()
    if not jobs:
        click.echo(f"no jobs on this cluster or in {store_uri()}")
        return
    header = ("JOB ID", "NAME", "STATUS", "CREATED", "PERSISTED")
    rows = [(j["job_id"], j["name"] or "?", j["status"] + (" (live)" if j["live"] else ""),
             datetime.datetime.fromtimestamp(j["created"] or 0).strftime("%Y-%m-%d %H:%M"),
             str(j["persisted"])) for j in jobs]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


@main.command()
@click.argument("job_id")
def status(job_id: str) -> None:
    """Show one job: its record in the store and, if it runs, its live state."""
    import json

    live = _live_info(job_id)
    if live is not None:  # a live job writes its record in the background: make it current
        import ray

        from twister_nb import config as _config
        from twister_nb.runtime.executor import live_master

        master = live_master(job_id, _config.load())
        if master is not None:
            try:
                ray.get(master.flush_record.remote(5.0), timeout=10)
            except Exception:  # noqa: BLE001 - the record is shown as it is
                pass
    record = _store().read_job(job_id)
    if record is None and live is None:
        raise UsageFailure(f"status: no job {job_id!r}; `twister-nb jobs` lists them")
    click.echo(json.dumps({"record": record, "live": live}, indent=2, default=str))


@main.command()
@click.argument("job_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clear(job_id: str, yes: bool) -> None:
    """Delete a job's data (checkpoints, record) from the store."""
    store = _store()
    if store.read_job(job_id) is None and not store.list_tsets(job_id):
        raise UsageFailure(f"clear: no job {job_id!r} in {store.uri}")
    if _live_info(job_id) is not None:
        raise UsageFailure(f"clear: job {job_id!r} is running; close it first")
    if not yes:
        click.confirm(f"delete every checkpoint of job {job_id!r}?", abort=True)
    store.clear_job(job_id)
    click.echo(f"cleared job {job_id}")


@main.command()
@click.argument("job_id")
def restart(job_id: str) -> None:
    """Re-run a job's recorded program with the same ID: every committed
    persist() is restored instead of recomputed."""
    record = _store().read_job(job_id)
    if record is None:
        raise UsageFailure(f"restart: no job {job_id!r} in the store; `twister-nb jobs` lists them")
    program = record.get("program")
    if not program or not Path(program.get("path", "")).is_file():
        raise UsageFailure(
            f"restart: job {job_id!r} has no program to re-run (it was started from a "
            "notebook or its file moved); re-run its cells with the job ID instead"
        )
    os.chdir(program.get("cwd") or ".")
    _run_as_job(Path(program["path"]), list(program.get("args", [])), job_id=job_id,
                name=record.get("name"))


if __name__ == "__main__":
    main()
