"""Fixtures for the storage tests: every test runs on a local folder and on SeaweedFS S3.

The ``store`` fixture is parametrized with the ids ``local`` and ``s3``; the s3 one is
marked ``s3`` (deselect with ``-m "not s3"``) and skipped, with the reason, only when the
``weed`` binary is missing. One SeaweedFS server serves the whole session; each test
gets its own key prefix in its bucket.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from twister_nb.storage import CheckpointStore

if str(Path(__file__).parent) not in sys.path:  # helper modules, whatever the import mode
    sys.path.insert(0, str(Path(__file__).parent))

from storage_helpers import KEY


class Backend:
    """How to open stores on one backend; ``open(key)`` gives another handle on it."""

    def __init__(self, name: str, uri: str, s3_options: dict | None) -> None:
        self.name = name
        self.uri = uri
        self.s3_options = s3_options

    def open(self, key: bytes = KEY, **kwargs) -> CheckpointStore:
        return CheckpointStore.from_uri(
            self.uri, signing_key=key, s3_options=self.s3_options, **kwargs
        )


@pytest.fixture(
    params=[pytest.param("local", id="local"), pytest.param("s3", id="s3", marks=pytest.mark.s3)]
)
def backend(request, tmp_path) -> Backend:
    """The backend under test, with a fresh, empty root."""
    if request.param == "local":
        return Backend("local", (tmp_path / "store").as_uri(), None)
    server = request.getfixturevalue("seaweed")
    return Backend("s3", f"s3://{server.bucket}/{uuid.uuid4().hex}", server.s3_options)


@pytest.fixture
def store(backend) -> CheckpointStore:
    """A store on the backend under test, signed with :data:`KEY`."""
    return backend.open()
