"""The object store's refusals in words, caused for real on SeaweedFS: wrong
credentials, a missing bucket (created only when config says so), and a dead
endpoint that fails fast with the defaults."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

from twister_nb.storage import (
    CheckpointStore,
    StoreAccessError,
    StoreNotice,
    StoreUnavailableError,
)

pytestmark = pytest.mark.s3

KEY = b"k" * 32


def _store(server, bucket=None, prefix=None, **options):
    opts = {**server.s3_options, **options}
    return CheckpointStore.from_uri(f"s3://{bucket or server.bucket}/{prefix or uuid.uuid4().hex}",
                                    signing_key=KEY, s3_options=opts)


@pytest.mark.parametrize("wrong", ["secret_key", "access_key"])
def test_wrong_credentials_are_named(seaweed, wrong):
    bad = {"secret_key": "not-the-secret"} if wrong == "secret_key" else {
        "access_key": "nobody", "secret_key": "nothing"}
    store = _store(seaweed, **bad)
    with pytest.raises(StoreAccessError) as info:
        store.write_part("job", "t", 0, 0, [1, 2, 3])
    message = str(info.value)
    assert "refused the credentials" in message, message
    assert "twister2.checkpointing.s3.access_key" in message and "\n" not in message
    with pytest.raises(StoreAccessError, match="refused the credentials"):
        store.list_jobs()


def test_valid_credentials_without_permission_are_told_apart(seaweed):
    store = CheckpointStore.from_uri(f"s3://{seaweed.bucket}/{uuid.uuid4().hex}",
                                     signing_key=KEY, s3_options=seaweed.outsider_s3_options)
    with pytest.raises(StoreAccessError) as info:
        store.write_part("job", "t", 0, 0, [1, 2, 3])
    message = str(info.value)
    assert f"refused access to the bucket '{seaweed.bucket}'" in message, message
    assert "the credentials are valid but lack permission" in message
    assert "refused the credentials" not in message


def test_missing_bucket_is_created_only_when_config_says_so(seaweed):
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    store = _store(seaweed, bucket=bucket, prefix="p")
    with pytest.raises(StoreAccessError, match=f"the bucket '{bucket}' does not exist") as info:
        store.write_part("job", "t", 0, 0, [1, 2, 3])
    assert "twister2.checkpointing.s3.create_bucket: true" in str(info.value)
    creating = _store(seaweed, bucket=bucket, prefix="p", create_bucket=True)
    with pytest.warns(StoreNotice, match=f"created the missing bucket '{bucket}'"):
        part = creating.write_part("job", "t", 0, 0, [1, 2, 3])
    assert creating.commit("job", "t", 0, [part])
    assert store.read_part(store.latest("job", "t"), 0) == [1, 2, 3], "now it exists for all"


def test_silent_endpoint_fails_fast_with_the_defaults():
    """An endpoint that accepts connections and never answers (the trial: 102 s)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # accepted, never answered
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        store = CheckpointStore.from_uri(
            "s3://bucket/prefix", signing_key=KEY,
            s3_options={"endpoint_url": f"http://127.0.0.1:{port}", "access_key": "a",
                        "secret_key": "b"})
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="twister2.checkpointing.s3.endpoint_url"):
            store.list_jobs()
        took = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
    assert took < 30, f"a silent store stalled the caller for {took:.0f} s"
