"""The package as users install it: its config defaults travel with it, and a regular
(non-editable) ``pip install`` runs the seed program from any folder.

The defaults live in ``twister_nb/conf/*.yaml`` (package data); the repository's
top-level ``conf/`` is a symlink to that folder, the place the README sends readers.
The first test fails if the two ever hold different files (a ``conf/`` replaced by a
real folder and edited, a file added to one side only).

The slow test builds the project from a copy of the checkout into a fresh virtual
environment (``--system-site-packages`` reuses Ray; ``--no-deps --no-build-isolation``
needs no network, hence ``setuptools`` and ``wheel`` in the test extras), then runs the
seed with that environment's ``twister-nb`` from another folder, with a private home.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "tset_checkpointing.py"

#: Left out of the copy the venv installs from: build output, caches, version control.
_NOT_COPIED = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", "build", "dist", ".venv", ".pytest_cache",
    "node_modules", "test-artifacts", ".ipynb_checkpoints",
)

#: A program whose one task reports which twister_nb the workers imported.
_WHERE = """\
from twister_nb import TSetEnvironment


def where(_):
    import twister_nb

    return twister_nb.__file__


env = TSetEnvironment(name="where", resources=[{"instances": 1}])
print("WORKER", env.parallelize_list([0], 1).map(where).collect()[0], flush=True)
env.close()
"""

#: Run by the venv's interpreter: which twister_nb (and twister2 layer) it imports and
#: what its config says.
_PROBE = """\
import json, twister_nb, twister2
from twister_nb import config
from twister2.Twister2Environment import Twister2Environment
print(json.dumps({"file": twister_nb.__file__, "twister2": twister2.__file__,
                  "conf": str(config.PACKAGED_CONF),
                  "retention": config.get("twister2.checkpointing.retention")}))
"""


def _yaml_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.yaml"))}


def test_packaged_defaults_are_the_top_level_conf():
    from twister_nb import config

    assert config.PACKAGED_CONF == REPO / "twister_nb" / "conf"
    packaged, documented = _yaml_files(config.PACKAGED_CONF), _yaml_files(REPO / "conf")
    assert packaged, f"no defaults in {config.PACKAGED_CONF}"
    assert packaged.keys() == documented.keys(), (
        "conf/ and twister_nb/conf/ list different files; conf/ should be a symlink to "
        "twister_nb/conf (ln -s twister_nb/conf conf)")
    differ = sorted(name for name in packaged if packaged[name] != documented[name])
    assert not differ, f"conf/ and twister_nb/conf/ differ in {differ}"


def _inside(path: str | Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def _run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float
         ) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, text=True,
                          capture_output=True, timeout=timeout, check=False)


@pytest.mark.slow
def test_regular_install_runs_the_seed_from_another_folder(tmp_path):
    src, venv, elsewhere, home = (tmp_path / n for n in ("src", "venv", "elsewhere", "home"))
    shutil.copytree(REPO, src, symlinks=True, ignore=_NOT_COPIED)
    elsewhere.mkdir()
    shutil.copy(SEED, elsewhere / "seed.py")
    (elsewhere / "where.py").write_text(_WHERE)

    # Nothing of the caller's twister_nb: no source tree on the path, no home, no config,
    # none of the Ray settings (the auth token path) the test session set for its own head.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TWISTER_NB_", "RAY_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(TWISTER_NB_HOME=str(home), TWISTER_NB_RAY__NUM_CPUS="2",
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")

    made = _run([sys.executable, "-m", "venv", "--system-site-packages", venv], env,
                tmp_path, 120)
    assert made.returncode == 0, made.stdout + made.stderr
    python = venv / "bin" / "python"
    installed = _run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                      "--no-index", "--no-cache-dir", "--disable-pip-version-check", "-q", src],
                     env, elsewhere, 300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # Ray comes from the system site-packages, so the venv has no `ray` entry point and
    # the local head would start under the system interpreter, whose workers import the
    # system's (editable) twister_nb. Write the entry point `pip install ray` would have.
    (venv / "bin" / "ray").write_text(
        f"#!{python}\nimport sys\nfrom ray.scripts.scripts import main\nsys.exit(main())\n")
    (venv / "bin" / "ray").chmod(0o755)
    twister_nb = venv / "bin" / "twister-nb"
    try:
        probe = _run([python, "-c", _PROBE], env, elsewhere, 60)
        assert probe.returncode == 0, probe.stdout + probe.stderr
        found = json.loads(probe.stdout.strip().splitlines()[-1])
        assert _inside(found["file"], venv), f"not the venv's install: {found['file']}"
        assert _inside(found["twister2"], venv), f"twister2 not installed: {found['twister2']}"
        assert _inside(found["conf"], venv), f"defaults read from {found['conf']}"
        shipped = yaml.safe_load((REPO / "conf" / "checkpoint.yaml").read_text())
        assert found["retention"] == shipped["twister2.checkpointing.retention"]

        seed = _run([twister_nb, "submit", elsewhere / "seed.py"], env, elsewhere, 420)
        assert seed.returncode == 0, seed.stdout + seed.stderr
        assert "SUM = 999980000" in seed.stdout, seed.stdout + seed.stderr
        where = _run([twister_nb, "submit", elsewhere / "where.py"], env, elsewhere, 300)
        assert where.returncode == 0, where.stdout + where.stderr
        worker_file = where.stdout.split("WORKER", 1)[1].split()[0]
        assert _inside(worker_file, venv), f"the workers imported {worker_file}"
    finally:
        state_file = home / "ray" / "cluster.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        stopped = _run([twister_nb, "cluster", "stop"], env, elsewhere, 120)
        if state_file.exists() and state.get("pid"):  # the CLI could not: by its PID
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(state["pid"], signal.SIGKILL)  # the head leads its own group
        if state.get("temp_dir"):
            shutil.rmtree(state["temp_dir"], ignore_errors=True)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
