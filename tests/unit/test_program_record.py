"""What `twister-nb restart` would re-run: a script, never a -m module."""

import subprocess
import sys


def test_script_is_recorded_and_modules_are_not(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text("from twister_nb.runtime.executor import _program\nprint(_program())\n")
    out = subprocess.run([sys.executable, str(script), "--flag"], capture_output=True, text=True,
                         check=True).stdout
    assert str(script) in out and "'--flag'" in out
    # run as a module (like pytest or our CLI): nothing to re-run
    out = subprocess.run([sys.executable, "-m", "prog"], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "None"
