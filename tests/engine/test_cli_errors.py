"""`twister-nb submit` tells a failure the way Python tells a script's: one line
saying what happened, then only the program's own frames; the job's record says
failed. A syntax error is reported before any banner or job."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

CLI = [sys.executable, "-m", "twister_nb.cli"]

USER_FUNCTION_FAILS = textwrap.dedent("""
    from twister_nb import TSetEnvironment

    def bad(x):
        return x / 0

    env = TSetEnvironment(name="fails")
    print(env.parallelize_list([1, 2, 3], 2).map(bad).collect())
""")
DRIVER_FAILS = textwrap.dedent("""
    from twister_nb import TSetEnvironment

    env = TSetEnvironment(name="driver-fails")
    values = env.parallelize_list([1, 2, 3], 2).collect()
    raise RuntimeError(f"the program's own check failed on {values}")
""")


def _submit(tmp_path, source: str, *flags: str) -> subprocess.CompletedProcess:
    program = tmp_path / "prog.py"
    program.write_text(source)
    return subprocess.run([*CLI, *flags, "submit", str(program)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)


def _job_id(stdout: str) -> str:
    return stdout.split("Job ID", 1)[1].split(":", 1)[1].split()[0]


def _errors(stderr: str) -> list[str]:
    """stderr's lines but submit's start-up and stage lines (``[twister-nb] ...``)."""
    return [ln for ln in stderr.strip().splitlines() if not ln.startswith("[twister-nb] ")]


def _no_machinery(stderr: str) -> None:
    for frame in ("click/", "runpy", "twister_nb/", "ray/"):
        assert frame not in stderr, f"{frame} frames shown:\n{stderr}"


def test_syntax_error_is_reported_before_any_job(tmp_path):
    done = _submit(tmp_path, "from twister_nb import TSetEnvironment\nenv = TSetEnvironment(\n")
    assert done.returncode == 1
    assert "Job ID" not in done.stdout, "no banner, no job"
    first, *rest = _errors(done.stderr)
    assert first.endswith("prog.py does not compile; no job was started"), first
    assert rest[-1].startswith("SyntaxError:") and 'prog.py", line 2' in rest[0]
    _no_machinery(done.stderr)


@pytest.mark.slow
def test_user_function_failure_is_one_line_and_its_own_frames(ray_cluster, tmp_path):
    from twister_nb.jobs import JobClient

    done = _submit(tmp_path, USER_FUNCTION_FAILS)
    assert done.returncode == 1
    lines = _errors(done.stderr)
    assert lines[0] == ("error: prog.py failed: UserFunctionError: user function of TSet 'map' "
                        "(map) failed on partition 0, worker 0: ZeroDivisionError: division by "
                        "zero"), lines[0]
    assert 'prog.py", line 8, in <module>' in done.stderr, "where the action was called"
    assert 'prog.py", line 5, in bad' in done.stderr, "the user function's own frame"
    assert len(lines) < 25, done.stderr
    _no_machinery(done.stderr)
    record = JobClient().record(_job_id(done.stdout))
    assert record["status"] == "failed" and "ZeroDivisionError" in record["error"]


@pytest.mark.slow
def test_a_failing_program_fails_its_job_and_debug_shows_everything(ray_cluster, tmp_path):
    from twister_nb.jobs import JobClient

    done = _submit(tmp_path, DRIVER_FAILS)
    assert done.returncode == 1
    first = _errors(done.stderr)[0]
    assert first == ("error: prog.py failed: RuntimeError: the program's own check failed on "
                     "[1, 2, 3]"), first
    _no_machinery(done.stderr)
    record = JobClient().record(_job_id(done.stdout))
    assert record["status"] == "failed", "a program that raised is not 'finished'"
    assert record["error"].startswith("RuntimeError: the program's own check failed")

    debug = _submit(tmp_path, DRIVER_FAILS, "--debug")
    assert debug.returncode == 1 and "runpy" in debug.stderr, "the whole traceback"
    env = {**os.environ, "TWISTER_NB_DEBUG": "1"}
    program = tmp_path / "prog.py"
    again = subprocess.run([*CLI, "submit", str(program)], capture_output=True, text=True,
                           timeout=300, cwd=tmp_path, env=env)
    assert "runpy" in again.stderr
