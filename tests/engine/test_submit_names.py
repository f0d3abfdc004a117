"""``twister-nb submit`` of a program that names its job: one name, the program's,
in the banner, the job's record and ``twister-nb jobs`` (issue 14's trial)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "twister_nb.cli"]

PROGRAM = '''\
from twister_nb import Twister2Environment

env = Twister2Environment(name="MyPython", resources=[{"cpu": 1, "ram": 512, "instances": 2}])
print("RESULT", env.parallelize_list(list(range(10)), 2).map(lambda x: x * 3).collect())
'''


@pytest.mark.slow
def test_the_banner_names_the_job_as_the_program_does(ray_cluster, tmp_path):
    program = tmp_path / "named.py"
    program.write_text(PROGRAM)
    done = subprocess.run([*CLI, "submit", str(program)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert re.match(r"Job Name\s*:\s*MyPython$", lines[0]), lines[:4]
    assert done.stdout.count("Job Name") == 1
    assert f"RESULT {[x * 3 for x in range(10)]}" in lines
    job_id = re.search(r"Job ID\s*:\s*(\S+)", done.stdout).group(1)
    listed = subprocess.run([*CLI, "jobs"], capture_output=True, text=True, timeout=120).stdout
    row = next(line for line in listed.splitlines() if line.startswith(job_id))
    assert row.split()[1] == "MyPython"
