"""The JupyterLab extension (extension/): type-checked and linted, built, and both
halves enabled as JupyterLab lists them.

``scripts/build_extension.py --check`` runs ``tsc --noEmit`` and eslint (what CI runs);
``jupyter labextension list`` and ``jupyter server extension list`` are read in a Jupyter
whose config and data folders hold what an install puts there: the repository's
``jupyter-config/`` and the built extension (as ``--develop`` links it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twister_nb.runtime.ray_errors import ANSI_CODE

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "scripts" / "build_extension.py"
BUILT = ROOT / "twister_nb" / "labextension"


def _node_ok() -> bool:
    return subprocess.run([sys.executable, str(BUILDER), "--node-ok"]).returncode == 0


@pytest.mark.slow
def test_extension_type_checks_and_lints():
    if not _node_ok():
        pytest.skip("no Node.js >= 20.19 to run tsc and eslint (scripts/setup.sh installs it)")
    done = subprocess.run([sys.executable, str(BUILDER), "--check"], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr


def _jupyter(args: list[str], tmp_path: Path) -> str:
    config, data = tmp_path / "config", tmp_path / "data"
    (data / "labextensions").mkdir(parents=True, exist_ok=True)
    link = data / "labextensions" / "twister-nb"
    if not link.exists():
        link.symlink_to(BUILT, target_is_directory=True)
    shutil.copytree(ROOT / "jupyter-config", config, dirs_exist_ok=True)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(data)}
    done = subprocess.run([sys.executable, "-m", "jupyter", *args], env=env, capture_output=True,
                          text=True, timeout=120)
    return ANSI_CODE.sub("", done.stdout + done.stderr)


def test_both_extensions_are_enabled(tmp_path):
    assert (BUILT / "package.json").is_file(), (
        "the lab extension is not built: python3 scripts/build_extension.py (setup.sh runs it)")
    labs = _jupyter(["labextension", "list"], tmp_path)
    assert re.search(r"^\s+twister-nb v\S+ enabled OK", labs, re.MULTILINE), labs
    servers = _jupyter(["server", "extension", "list"], tmp_path)
    assert "twister_nb.server enabled" in servers, servers
    assert re.search(r"^\s+twister_nb\.server\s+OK$", servers, re.MULTILINE), servers
