"""The layers of docs/architecture.md, checked from the code's own imports.

Every ``import`` of every module of the package is read with :mod:`ast` (the
ones inside functions too: a lazy import is still a dependency), and each is
held against the layer table below. A layer may import its own layer and the
layers below it, never one above; the pure layers never import Ray. The
package root (``twister_nb/__init__.py``) is the one place that wires the
layers together, and ``twister_nb.testing`` serves the tests, so neither is
checked.

Above them all sits the ``twister2`` package (Twister2's module names, beside
``twister_nb/`` in the same distribution): it may import twister_nb's API
(``twister_nb`` and ``twister_nb.tset``) and nothing below it, never Ray, and
nothing of twister_nb imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import twister_nb

PACKAGE = Path(twister_nb.__file__).parent
TWISTER2 = PACKAGE.parent / "twister2"
#: What the twister2 layer may import of twister_nb: its public API.
TWISTER2_MAY_IMPORT = ("twister_nb", "twister_nb.tset")

#: Module prefix -> layer, lowest first. The longest matching prefix wins.
LAYERS: dict[str, int] = {
    "twister_nb.config": 0,
    "twister_nb.errors": 0,
    "twister_nb.events": 0,
    "twister_nb.storage": 1,
    "twister_nb.tset": 2,
    "twister_nb.plan": 3,
    "twister_nb.checkpoint": 4,
    "twister_nb.runtime": 5,
    "twister_nb.jobs": 6,
    "twister_nb.job_rows": 6,
    "twister_nb.notebook": 7,
    "twister_nb.cli": 7,
    "twister_nb.cli_progress": 7,
    "twister_nb.server": 7,
}
#: Layers that build or decide and must run without a cluster: no Ray, anywhere.
RAY_FREE = ("twister_nb.config", "twister_nb.errors", "twister_nb.events", "twister_nb.storage",
            "twister_nb.tset", "twister_nb.plan", "twister_nb.checkpoint")
#: Layers that import nothing of ours but the bottom modules (and themselves).
STANDALONE = {"twister_nb.storage": (), "twister_nb.tset": ("twister_nb.config",
                                                           "twister_nb.errors",
                                                           "twister_nb.events")}


def _unchecked(module: str) -> bool:
    return module == "twister_nb" or module == "twister_nb.testing" or module.startswith(
        "twister_nb.testing.")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer_of(module: str) -> tuple[str, int] | None:
    best = None
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, layer)
    return best


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in the file, absolute names."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.append((node.lineno, base))
            # ``from twister_nb import config`` imports the module twister_nb.config
            out.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names
                       if f"{base}.{alias.name}" in LAYERS)
    return out


def _modules() -> list[tuple[str, Path]]:
    return sorted((_module_name(p), p) for p in PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = [name for name, _ in _modules()
               if not _unchecked(name) and _layer_of(name) is None]
    assert not missing, f"modules outside the layer table {missing}: add them to LAYERS"


def test_no_layer_imports_one_above_it():
    violations = []
    for name, path in _modules():
        if _unchecked(name) or _layer_of(name) is None:
            continue  # reported by test_every_module_has_a_layer
        own_prefix, own = _layer_of(name)
        for line, target in _imports(path):
            if not target.startswith("twister_nb.") or _unchecked(target):
                continue
            found = _layer_of(target)
            if found is None:
                continue
            prefix, layer = found
            if layer > own:
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own_prefix}, "
                                  f"layer {own}) imports {target} ({prefix}, layer {layer})")
            allowed = STANDALONE.get(own_prefix)
            if allowed is not None and prefix != own_prefix and prefix not in allowed:
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own_prefix}) "
                                  f"imports {target}: {own_prefix} imports only "
                                  f"{list(allowed) or 'itself'}")
    assert not violations, "imports that reach up:\n" + "\n".join(violations)


def test_pure_layers_never_import_ray():
    violations = []
    for name, path in _modules():
        if not any(name == p or name.startswith(p + ".") for p in RAY_FREE):
            continue
        for line, target in _imports(path):
            if target == "ray" or target.startswith("ray."):
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not violations, "Ray imported by a layer that must run without it:\n" + "\n".join(
        violations)


def test_the_checker_sees_a_violation(tmp_path):
    """The parser finds lazy and relative imports (so the tests above can fail)."""
    sample = PACKAGE / "tset" / "_layer_probe.py"
    sample.write_text("def f():\n    from ..notebook import cell\n    import ray\n")
    try:
        found = [t for _, t in _imports(sample)]
    finally:
        sample.unlink()
    assert "twister_nb.notebook" in found and "ray" in found
    assert _layer_of("twister_nb.notebook.cell")[1] > _layer_of("twister_nb.tset.ops")[1]


def test_a_long_module_says_why():
    """No module over ~400 lines without a reason stated at its top."""
    long = []
    for name, path in _modules():
        source = path.read_text()
        if source.count("\n") > 420:
            doc = ast.get_docstring(ast.parse(source)) or ""
            if "Why this module is long:" not in doc:
                long.append(f"{path.relative_to(PACKAGE.parent)} ({source.count(chr(10))} lines)")
    assert not long, ("split these, or say at the top why not ('Why this module is long: "
                      "...'): " + ", ".join(long))


def _twister2_modules() -> list[tuple[str, Path]]:
    return sorted((_module_name(p), p) for p in TWISTER2.rglob("*.py"))


def test_the_twister2_layer_uses_only_the_api():
    assert _twister2_modules(), f"no twister2 package beside twister_nb in {TWISTER2}"
    violations = []
    for _, path in _twister2_modules():
        for line, target in _imports(path):
            where = f"{path.relative_to(TWISTER2.parent)}:{line} imports {target}"
            if target == "ray" or target.startswith("ray."):
                violations.append(where)
            elif (target.startswith("twister_nb.") and target not in TWISTER2_MAY_IMPORT
                  and not target.startswith("twister_nb.tset.")):
                violations.append(f"{where}: the twister2 layer imports only "
                                  f"{list(TWISTER2_MAY_IMPORT)}")
    assert not violations, "\n".join(violations)


def test_nothing_below_imports_the_twister2_layer():
    found = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
             for _, path in _modules() for line, target in _imports(path)
             if target == "twister2" or target.startswith("twister2.")]
    assert not found, "twister_nb reaches up into the twister2 layer:\n" + "\n".join(found)
