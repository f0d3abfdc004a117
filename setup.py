"""The wheel carries the prebuilt JupyterLab extension (share/jupyter/labextensions).

Everything else is in pyproject.toml. ``build_py`` first makes sure
twister_nb/labextension is built from extension/ (scripts/build_extension.py: nothing
to do when it is up to date, so a tree built by scripts/setup.sh needs no Node.js),
then adds its files as data files, which the wheel installs under
``<prefix>/share/jupyter/labextensions/twister-nb``, where JupyterLab finds it. An
editable install builds nothing here: scripts/setup.sh builds and links it.
"""

import json
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUILDER = ROOT / "scripts" / "build_extension.py"


class BuildPyWithLabextension(build_py):
    def run(self):
        if not getattr(self, "editable_mode", False):
            subprocess.run([sys.executable, str(BUILDER)], cwd=ROOT, check=True)
            listed = subprocess.run([sys.executable, str(BUILDER), "--data-files"], cwd=ROOT,
                                    check=True, capture_output=True, text=True).stdout
            data = [(folder, files) for folder, files in json.loads(listed)]
            self.distribution.data_files = list(self.distribution.data_files or []) + data
        super().run()


setup(cmdclass={"build_py": BuildPyWithLabextension})
