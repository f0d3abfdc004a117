"""Every persist test runs on the local store and on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import uuid

import pytest


class JobStore:
    """Where a test's jobs keep their checkpoints, as config and as env vars."""

    def __init__(self, name: str, uri: str, s3: dict | None) -> None:
        self.name = name
        self.uri = uri
        self.s3 = s3 or {}

    @property
    def config(self) -> dict:
        cfg = {"twister2.checkpointing.store": self.uri}
        cfg.update({f"twister2.checkpointing.s3.{k}": v for k, v in self.s3.items()})
        return cfg

    @property
    def environ(self) -> dict:
        """The same settings for a subprocess (TWISTER_NB_<KEY>, ``__`` for dots)."""
        return {"TWISTER_NB_" + k.upper().replace(".", "__"): str(v) for k, v in self.config.items()}

    def open(self):
        from twister_nb.checkpoint import open_store

        return open_store(self.config)


@pytest.fixture(params=[pytest.param("local", id="local"),
                        pytest.param("s3", id="s3", marks=pytest.mark.s3)])
def job_store(request, tmp_path) -> JobStore:
    if request.param == "local":
        return JobStore("local", (tmp_path / "store").as_uri(), None)
    server = request.getfixturevalue("seaweed")
    return JobStore("s3", f"s3://{server.bucket}/{uuid.uuid4().hex}", server.s3_options)


@pytest.fixture
def local_store(tmp_path) -> JobStore:
    """The local store alone, for a test that checks no store-specific behaviour."""
    return JobStore("local", (tmp_path / "store").as_uri(), None)
