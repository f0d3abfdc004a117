"""The test-only crash point (storage/crashpoint.py) on both backends: writes are
counted in order, the setting travels with a pickled store into a process
without it, and write number n kills the process that makes it, right after."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys

from storage_helpers import KEY

from twister_nb.storage.crashpoint import ENV_VAR


def _lines(counter) -> list[list[str]]:
    return [line.split("\t") for line in counter.read_text().splitlines()]


def test_writes_are_counted_in_order_and_travel_with_the_store(backend, tmp_path, monkeypatch):
    counter = tmp_path / "writes.txt"
    monkeypatch.setenv(ENV_VAR, f"0:{counter}")
    store = backend.open()
    monkeypatch.delenv(ENV_VAR)
    part = store.write_part("job", "tset", 0, 0, [1, 2, 3])
    assert store.commit("job", "tset", 0, [part], {"label": "t"})
    # a worker gets the store pickled, without the variable: it counts too
    pickle.loads(pickle.dumps(store)).write_job("job", {"status": "running"})
    assert backend.open().read_job("job") == {"status": "running"}  # unset: not counted
    rows = _lines(counter)
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    files = [r[2].rsplit("/", 1)[-1] for r in rows if r[1] in ("rename", "link", "put",
                                                               "put-if-absent")]
    assert files == [part.name, "_manifest.json", "job.json"]
    if backend.name == "local":  # each preceded by its temp file
        assert [r[1] for r in rows] == ["temp", "rename", "temp", "link", "temp", "rename"]


_CRASH = """
import sys
from twister_nb.storage import CheckpointStore
store = CheckpointStore.from_uri(sys.argv[1], signing_key=KEY, s3_options=OPTIONS)
for p in range(4):
    store.write_part("job", "tset", 0, p, [p])
    print("wrote", p, flush=True)
"""


def test_the_nth_write_kills_its_process(backend, tmp_path):
    counter = tmp_path / "writes.txt"
    n = 4 if backend.name == "local" else 2  # the second part's rename, or its PUT
    code = _CRASH.replace("KEY", repr(KEY)).replace("OPTIONS", repr(backend.s3_options))
    env = {**os.environ, ENV_VAR: f"{n}:{counter}"}
    done = subprocess.run([sys.executable, "-c", code, backend.uri], text=True, check=False,
                          capture_output=True, timeout=60, env=env)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout.split("\n")[:-1] == ["wrote 0"], "killed right after write n"
    assert len(_lines(counter)) == n
    parts = [r[2].rsplit("/", 1)[-1] for r in _lines(counter) if r[1] != "temp"]
    assert len(parts) == 2 and parts[1].startswith("part-00001-")

