"""The local head's Python start-up hook (runtime/head_python/sitecustomize.py).

Every process of the head twister_nb starts loads jsonschema without
``rfc3987_syntax`` (0.85 s of ``import ray`` here), and an environment's own
``sitecustomize``, which the hook hides, still runs.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import twister_nb.runtime

HOOK_DIR = Path(twister_nb.runtime.__file__).with_name("head_python")

needs_rfc3987 = pytest.mark.skipif(importlib.util.find_spec("rfc3987_syntax") is None,
                                   reason="rfc3987_syntax is not installed: nothing is hidden")


def _python(code: str, pythonpath: list[Path]) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in pythonpath))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, timeout=60).stdout


@needs_rfc3987
def test_a_process_with_the_hook_imports_ray_without_rfc3987(tmp_path):
    code = "import sys, ray; print('rfc3987_syntax' in sys.modules, 'jsonschema' in sys.modules)"
    assert _python(code, []).split() == ["True", "True"]  # without the hook: the slow import
    assert _python(code, [HOOK_DIR]).split() == ["False", "True"]
    # imported by name later, the module still works
    later = "import sys, ray, rfc3987_syntax; print(rfc3987_syntax.is_valid_syntax('iri', 'a:b'))"
    assert _python(later, [HOOK_DIR]).strip() == "True"


def test_the_environments_own_sitecustomize_still_runs(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.SITE_MARK = 'theirs'\n")
    out = _python("import builtins; print(getattr(builtins, 'SITE_MARK', None))",
                  [HOOK_DIR, tmp_path])
    assert out.strip() == "theirs"


@needs_rfc3987
def test_the_local_heads_actors_start_without_rfc3987(ray_cluster):
    import ray

    @ray.remote(num_cpus=0)
    def loaded() -> tuple[bool, bool]:
        return "rfc3987_syntax" in sys.modules, "jsonschema" in sys.modules

    assert ray.get(loaded.remote(), timeout=120) == (False, True)
