"""S3-only behaviour: option resolution and a clear, quick error when unreachable."""

from __future__ import annotations

import time

import pytest

from twister_nb.storage import CheckpointStore, StoreUnavailableError
from twister_nb.storage.s3 import resolve_s3_options
from twister_nb.testing import closed_port


def test_options_fall_back_to_aws_environment():
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "ak",
        "AWS_SECRET_ACCESS_KEY": "sk",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    opts = resolve_s3_options({"access_key": "explicit"}, env=env)
    assert opts["endpoint_url"] == "http://127.0.0.1:9"
    assert opts["access_key"] == "explicit"
    assert opts["secret_key"] == "sk"
    assert opts["region"] == "eu-west-1"


def test_s3_store_pickles_with_resolved_options(monkeypatch):
    import pickle

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    store = CheckpointStore.from_uri(
        "s3://bucket/pre/fix",
        signing_key=b"k" * 32,
        s3_options={"endpoint_url": "http://127.0.0.1:9"},
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    clone = pickle.loads(pickle.dumps(store))
    assert clone.uri == "s3://bucket/pre/fix"
    assert clone._options()["access_key"] == "from-env"


def test_half_credentials_are_refused():
    with pytest.raises(ValueError, match="both"):
        CheckpointStore.from_uri("s3://b", signing_key=b"k" * 32, s3_options={"access_key": "a"})


def test_bad_endpoint_url_is_refused():
    with pytest.raises(ValueError, match="'127.0.0.1:9'"):
        CheckpointStore.from_uri(
            "s3://b", signing_key=b"k" * 32, s3_options={"endpoint_url": "127.0.0.1:9"}
        )


def _unreachable_store():
    endpoint = f"http://127.0.0.1:{closed_port()}"
    store = CheckpointStore.from_uri(
        "s3://bucket/prefix",
        signing_key=b"k" * 32,
        s3_options={"endpoint_url": endpoint, "access_key": "a", "secret_key": "b"},
    )
    return store, endpoint


@pytest.mark.s3
@pytest.mark.parametrize("operation", ["latest", "write_part", "write_job", "acquire_lease"])
def test_unreachable_store_fails_fast_and_clearly(operation):
    store, endpoint = _unreachable_store()
    calls = {
        "latest": lambda: store.latest("job", "tset"),
        "write_part": lambda: store.write_part("job", "tset", 0, 0, [1]),
        "write_job": lambda: store.write_job("job", {"a": 1}),
        "acquire_lease": lambda: store.acquire_lease("job", "me", ttl_s=5),
    }
    start = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="cannot reach the S3 store") as e:
        calls[operation]()
    assert endpoint in str(e.value)
    assert time.monotonic() - start < 15


@pytest.mark.s3
def test_unreachable_conditional_put_fails_fast_and_is_recognised():
    store, endpoint = _unreachable_store()
    start = time.monotonic()
    with pytest.raises(Exception) as e:  # the botocore request that commit() ends with
        store._put_if_absent("bucket/prefix/_manifest.json", b"{}")
    assert time.monotonic() - start < 15
    message = store._unreachable_message(e.value)
    assert message is not None and endpoint in message
