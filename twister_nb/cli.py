"""``twister-nb``: submit programs as jobs and manage the local cluster.

A thin front end over :class:`twister_nb.jobs.JobClient`, as the notebook
magics are: commands parse their arguments and format what the client
returns. Every command's docstring is its help text, user errors go to stderr
with exit code 1, and heavy imports (the job API, then Ray) happen inside the
commands, so ``twister-nb --help`` imports no Ray.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from twister_nb.jobs import JobClient, ProgramRun


class UsageFailure(click.ClickException):
    """A user error: one line on stderr, exit code 1."""


def _client() -> JobClient:
    from twister_nb.jobs import JobClient

    return JobClient()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, envvar="TWISTER_NB_DEBUG",
              help="Show whole tracebacks (also TWISTER_NB_DEBUG=1).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Twister2-style TSet dataflow jobs on Ray."""
    ctx.obj = {"debug": debug}


def _run_program(program: ProgramRun) -> None:
    """Run a submitted program. Its failure is told as Python tells a script's:
    one line saying what happened, then only the program's own frames (and, for
    a user function, its own traceback, which the error carries); with --debug,
    everything."""
    try:
        program.run()
    except Exception as exc:
        if click.get_current_context().obj.get("debug"):
            raise
        click.echo(_program_failure(exc, program.path), err=True)
        sys.exit(1)


def _set_policy(command: str, policy: str | None, params: str | None) -> None:
    """``--checkpoint``/``--checkpoint-params``: checked now (one line naming a bad
    name or parameter, before the job starts), then handed to the program's
    environment as its config (``TWISTER_NB_TWISTER2__CHECKPOINTING__POLICY``...)."""
    import json

    from twister_nb import config as _config
    from twister_nb.checkpoint.params import PARAMS_KEY, POLICY_KEY
    from twister_nb.checkpoint.policies import load_policy
    from twister_nb.errors import ConfigError

    given = {k: v for k, v in ((POLICY_KEY, policy), (PARAMS_KEY, params)) if v is not None}
    if not given:
        return
    try:
        load_policy(_config.load(given))
    except ConfigError as exc:
        raise UsageFailure(f"{command} --checkpoint: {exc}") from None
    for key, value in given.items():  # JSON strings: the config reads them back as strings
        os.environ[_config.ENV_PREFIX + key.upper().replace(".", "__")] = json.dumps(value)


def _first_run_policy(job_id: str) -> tuple[str | None, str | None]:
    """The checkpoint policy and parameters a job's record says it ran with
    (``submit --checkpoint`` or the config): a restart without ``--checkpoint``
    goes on saving as the first run did. ``(None, None)`` for none or no record."""
    from twister_nb.checkpoint.params import POLICY_KEY, format_params, params_from_config
    from twister_nb.errors import ConfigError

    config = (_client().record(job_id) or {}).get("config") or {}
    policy = str(config.get(POLICY_KEY) or "none")
    if policy == "none":
        return None, None
    try:
        params = format_params(params_from_config(config))
    except ConfigError:
        params = ""  # the first run refused it too; the check below names it
    click.echo(f"[twister-nb] checkpoint policy of the first run: {policy} {params}".rstrip(),
               err=True)
    return policy, params or None


def _program_failure(exc: BaseException, path: Path) -> str:
    from twister_nb.tset.identity import is_library_path

    first, *rest = str(exc).splitlines() or [""]
    lines = [f"error: {path.name} failed: {type(exc).__name__}: {first}"]
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not is_library_path(f.filename) and not f.filename.startswith("<frozen")]
    if frames:
        lines.append("Traceback (most recent call last; the program's own frames):")
        lines.extend(line.rstrip("\n") for line in traceback.format_list(frames))
    lines.extend(rest)
    lines.append("(twister-nb --debug shows the whole traceback)")
    return "\n".join(lines)


def _syntax_error(command: str, exc: SyntaxError) -> UsageFailure:
    detail = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    return UsageFailure(f"{command}: {exc.filename} does not compile; no job was started\n"
                        f"{detail}")


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("program", type=click.Path(dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--job-id", default=None, help="Run as this job ID (default: a new one).")
@click.option("--name", default=None,
              help="The job's name, unless the program gives one (default: config job.name).")
@click.option("--checkpoint", "policy", default=None, metavar="POLICY",
              help="Checkpoint finished tasks: none, periodic_time, finished_tasks, "
                   "instantiated_group or module:Class (config twister2.checkpointing.policy).")
@click.option("--checkpoint-params", "policy_params", default=None, metavar="PARAMS",
              help="The policy's parameters, COMPSs's form: period.time:30s, finished.tasks:5, "
                   "instantiated.group:3, avoid.checkpoint:[mod.f,tset-name].")
def submit(program: str, args: tuple[str, ...], job_id: str | None, name: str | None,
           policy: str | None, policy_params: str | None) -> None:
    """Run PROGRAM.py as a job.

    The program creates its ``TSetEnvironment()`` as usual, which prints the
    job banner; it gets this job's ID, and --name as its name unless it gives
    one. Extra ARGS are passed to the program as ``sys.argv[1:]``. A re-run of
    the same job ID (``twister-nb restart``) recovers every checkpointed task.
    """
    from twister_nb.errors import ClusterError
    from twister_nb.tset import watchers

    path = Path(program)
    if not path.is_file():
        raise UsageFailure(f"submit: no such program {program!r}")
    _set_policy("submit", policy, policy_params)
    from twister_nb.cli_progress import ProgressLines

    lines = ProgressLines(sys.stderr)
    watchers.watch_process(lines)
    try:
        try:
            program = _client().launch(path, list(args), job_id=job_id, name=name)
        except ClusterError as exc:
            raise UsageFailure(str(exc)) from None
        except SyntaxError as exc:
            raise _syntax_error("submit", exc) from None
        _run_program(program)
    finally:
        watchers.unwatch_process(lines)
        lines.close()


@main.group("cluster")
def cluster_group() -> None:
    """The local Ray head twister_nb owns (config ray.address: local)."""


@cluster_group.command("start")
@click.option("--num-cpus", type=int, default=None, help="CPUs to offer (default: all).")
def cluster_start(num_cpus: int | None) -> None:
    """Start the local head under the twister_nb home, or report the running one."""
    from twister_nb.errors import ClusterError

    try:
        head = _client().cluster_start(num_cpus=num_cpus)
    except ClusterError as exc:
        raise UsageFailure(str(exc)) from None
    if head.already_running:
        click.echo(f"local Ray head already running at {head.address} (pid {head.pid})")
        return
    tries = f", {head.attempts} attempts" if head.attempts > 1 else ""
    click.echo(f"local Ray head started at {head.address} (pid {head.pid}) in "
               f"{head.start_seconds:.1f} s{tries}")


@cluster_group.command("stop")
def cluster_stop() -> None:
    """Stop the local head by its PID (only the one twister_nb started), and
    wait until it and the actors it ran (the warm pool's too) are gone."""
    from twister_nb.errors import ClusterError

    try:
        stopped = _client().cluster_stop()
    except ClusterError as exc:
        raise UsageFailure(str(exc)) from None
    if stopped:
        click.echo("local Ray head stopped")
    else:
        click.echo("no local Ray head was running")


@cluster_group.command("status")
def cluster_status() -> None:
    """Say whether the local head runs, and where."""
    status = _client().cluster_status()
    head = status.head
    if not status.local:
        click.echo(f"ray.address is {status.address!r} (an existing cluster); the local head is "
                   + ("running" if head else "not running"))
    elif head:
        click.echo(f"local Ray head running at {head.address} (pid {head.pid}), "
                   f"home {status.home}")
    else:
        click.echo(f"local Ray head not running (home {status.home}); "
                   "`twister-nb cluster start` starts it, and so does the first job")


@main.command()
def jobs() -> None:
    """List the jobs of this cluster and store, with their status (live ones marked)."""
    import datetime

    client = _client()
    jobs = client.jobs()
    if not jobs:
        click.echo(f"no jobs on this cluster or in {client.store_uri}")
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

    from twister_nb.errors import JobNotFoundError

    try:
        status = _client().status(job_id)
    except JobNotFoundError:
        raise UsageFailure(f"status: no job {job_id!r}; `twister-nb jobs` lists them") from None
    click.echo(json.dumps(status, indent=2, default=str))


@main.command()
@click.argument("job_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clear(job_id: str, yes: bool) -> None:
    """Delete a job's data (checkpoints, record) from the store."""
    from twister_nb.errors import JobNotFoundError
    from twister_nb.jobs import JobRunningError

    client = _client()

    def confirm() -> None:
        if not yes:
            click.confirm(f"delete every checkpoint of job {job_id!r}?", abort=True)

    try:
        client.clear(job_id, confirm=confirm)
    except JobNotFoundError:
        raise UsageFailure(f"clear: no job {job_id!r} in {client.store_uri}") from None
    except JobRunningError:
        raise UsageFailure(f"clear: job {job_id!r} is running; close it first") from None
    click.echo(f"cleared job {job_id}")


@main.command()
@click.argument("job_id")
def close(job_id: str) -> None:
    """End a live job whose driver is gone: record its end, free its workers
    and cached data (its checkpoints stay; `clear` deletes them)."""
    from twister_nb.errors import JobOwnedError

    try:
        closed = _client().close(job_id)
    except JobOwnedError as exc:
        raise UsageFailure(f"close: {exc}") from None
    if not closed:
        raise UsageFailure(f"close: job {job_id!r} is not running; `twister-nb jobs` lists "
                           "the live ones")
    click.echo(f"closed job {job_id}: its workers and cached data are freed")


@main.group("config")
def config_group() -> None:
    """The configuration: conf/*.yaml defaults < <home>/conf < TWISTER_NB_* variables."""


@config_group.command("check")
def config_check() -> None:
    """Check every configuration value against its schema; exit 1 naming each wrong key."""
    from twister_nb import config

    values = config.load()
    found = config.problems(values)
    if found:
        for line in found:
            click.echo(line, err=True)
        raise UsageFailure(f"config check: {len(found)} wrong value"
                           f"{'s' if len(found) > 1 else ''} (above); fix them in "
                           f"{config.home() / 'conf'} or the TWISTER_NB_* variables")
    click.echo(f"configuration OK: {len(values)} keys checked")


@main.command()
@click.argument("job_id")
@click.option("--checkpoint", "policy", default=None, metavar="POLICY",
              help="The checkpoint policy of the re-run (as for submit).")
@click.option("--checkpoint-params", "policy_params", default=None, metavar="PARAMS",
              help="The policy's parameters (as for submit).")
def restart(job_id: str, policy: str | None, policy_params: str | None) -> None:
    """Re-run a job's recorded program with the same ID: every committed
    persist() is restored, and every checkpointed task recovered, instead of
    recomputed."""
    from twister_nb.errors import ClusterError, JobNotFoundError
    from twister_nb.jobs import NoProgramError

    if policy is None and policy_params is None:
        policy, policy_params = _first_run_policy(job_id)
    _set_policy("restart", policy, policy_params)

    try:
        program = _client().relaunch(job_id)
    except JobNotFoundError:
        raise UsageFailure(
            f"restart: no job {job_id!r} in the store; `twister-nb jobs` lists them") from None
    except NoProgramError:
        raise UsageFailure(
            f"restart: job {job_id!r} has no program to re-run (it was started from a "
            "notebook or its file moved); re-run its cells with the job ID instead"
        ) from None
    except ClusterError as exc:
        raise UsageFailure(str(exc)) from None
    except SyntaxError as exc:
        raise _syntax_error("restart", exc) from None
    _run_program(program)


if __name__ == "__main__":
    main()
