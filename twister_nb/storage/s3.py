"""The S3 backend of ``CheckpointStore`` (``s3://bucket/prefix``; AWS, SeaweedFS, MinIO...).

What differs from a local folder: there are no renames, so a part is written with one
upload (``open_output_stream`` sends a single PUT, or a multipart upload that becomes
visible only when completed); and put-if-absent needs a conditional PUT
(``If-None-Match: *``), which ``pyarrow.fs.S3FileSystem`` cannot send, so that one
request goes through ``botocore`` (an optional dependency, imported when first needed).
Timeouts and retry limits are kept short so that an unreachable endpoint fails in about
a second with :class:`~twister_nb.storage.errors.StoreUnavailableError` instead of
hanging.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from twister_nb.storage.errors import StoreAccessError, StoreNotice
from twister_nb.storage.store import CheckpointStore, HashingSink



def _botocore() -> Any:
    """botocore, imported at its first use (None if it is not installed): an
    optional dependency that only the conditional PUT (and the probe of a
    refusal) needs, and 0.15-0.2 s to import, which listing jobs (this module's
    :data:`S3_OPTION_KEYS`) should not pay."""
    try:
        import botocore.config
        import botocore.exceptions
        import botocore.session
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return botocore


def _botocore_exceptions() -> Any:
    """botocore's exceptions if botocore is loaded (an error can come from it
    only then), else None."""
    return sys.modules.get("botocore.exceptions")

__all__ = ["S3_OPTION_KEYS", "S3CheckpointStore", "resolve_s3_options"]

S3_OPTION_KEYS = (
    "endpoint_url",
    "access_key",
    "secret_key",
    "session_token",
    "region",
    "connect_timeout",
    "request_timeout",
    "max_attempts",
    "create_bucket",
)
_ENV = {
    "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "access_key": ("AWS_ACCESS_KEY_ID",),
    "secret_key": ("AWS_SECRET_ACCESS_KEY",),
    "session_token": ("AWS_SESSION_TOKEN",),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
}
#: A job fails fast and clearly on a dead store: an endpoint that accepts connections
#: and never answers costs about request_timeout x max_attempts (~10 s), not minutes.
#: request_timeout bounds a silence, not a transfer: a long upload that keeps sending
#: is not cut.
_DEFAULTS = {
    "region": "us-east-1",
    "connect_timeout": 3.0,
    "request_timeout": 5.0,
    "max_attempts": 2,
    "create_bucket": False,
}
#: How the store's refusals read in pyarrow's and botocore's messages.
_REFUSED_MARKS = ("ACCESS_DENIED", "AccessDenied", "INVALID_ACCESS_KEY", "InvalidAccessKeyId",
                  "SIGNATURE_DOES_NOT_MATCH", "SignatureDoesNotMatch", "NoSuchBucket",
                  "NO_SUCH_BUCKET", "HTTP response code: 403", "HTTP response code: 404")
#: S3 error codes that mean the credentials themselves are wrong.
_BAD_CREDENTIALS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                    "ExpiredToken", "AuthorizationHeaderMalformed", "InvalidSecurity")
_UNREACHABLE_MARKS = (
    "NETWORK_CONNECTION",
    "curlCode: 7",
    "curlCode: 28",
    "Could not connect",
    "Couldn't connect",
    "Connection refused",
    "Could not resolve host",
    "Timeout was reached",
)


def resolve_s3_options(options: dict | None, env: dict | None = None) -> dict:
    """Fill S3 options from the usual AWS environment variables and defaults.

    Parameters
    ----------
    options : dict, optional
        Explicit options (see :data:`S3_OPTION_KEYS`); they win over the environment.
    env : dict, optional
        The environment to read (default ``os.environ``).

    Returns
    -------
    dict
        Every key of :data:`S3_OPTION_KEYS`; unset credentials stay None (pyarrow and
        botocore then use their own credential chains).

    Raises
    ------
    ValueError
        For an unknown option.

    Examples
    --------
    >>> resolve_s3_options({"endpoint_url": "http://127.0.0.1:8333"}, env={})["region"]
    'us-east-1'
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(S3_OPTION_KEYS))
    if unknown:
        raise ValueError(
            f"CheckpointStore.from_uri: unknown s3_options {unknown!r}; known: "
            f"{list(S3_OPTION_KEYS)!r}"
        )
    env = os.environ if env is None else env
    out = {}
    for key in S3_OPTION_KEYS:
        value = options.get(key)
        if value is None:
            value = next((env[v] for v in _ENV.get(key, ()) if env.get(v)), None)
        if value is None:
            value = _DEFAULTS.get(key)
        out[key] = value
    return out


class S3CheckpointStore(CheckpointStore):
    """``CheckpointStore`` on an S3-compatible object store.

    Use :meth:`CheckpointStore.from_uri`; see there for the parameters.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        signing_key: bytes,
        s3_options: dict | None = None,
        checksum: str | None = None,
    ) -> None:
        uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._setup(uri, signing_key, checksum)
        self._bucket = bucket
        self._prefix = prefix
        self._opts = resolve_s3_options(s3_options)
        self._endpoint = self._opts["endpoint_url"]
        if (self._opts["access_key"] is None) != (self._opts["secret_key"] is None):
            raise ValueError(
                "CheckpointStore.from_uri: give both s3_options 'access_key' and "
                "'secret_key' (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or neither"
            )
        kwargs: dict[str, Any] = {
            "access_key": self._opts["access_key"],
            "secret_key": self._opts["secret_key"],
            "session_token": self._opts["session_token"],
            "region": self._opts["region"],
            "connect_timeout": float(self._opts["connect_timeout"]),
            "request_timeout": float(self._opts["request_timeout"]),
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(
                max_attempts=int(self._opts["max_attempts"])
            ),
            "allow_bucket_creation": bool(self._opts["create_bucket"]),
        }
        if self._endpoint:
            url = urlsplit(self._endpoint)
            if url.scheme not in ("http", "https") or not url.netloc:
                raise ValueError(
                    f"CheckpointStore.from_uri: s3_options['endpoint_url'] must look like "
                    f"'http://host:port', got {self._endpoint!r}"
                )
            kwargs["endpoint_override"] = url.netloc
            kwargs["scheme"] = url.scheme
        self._fs = pafs.S3FileSystem(**kwargs)
        self._base = f"{bucket}/{prefix}" if prefix else bucket
        self._client = None
        self._bucket_ready = False

    def _options(self) -> dict:
        return dict(self._opts)

    # ------------------------------------------------------------------ hooks

    def _unreachable_message(self, error: BaseException) -> str | None:
        text = str(error)
        network = any(mark in text for mark in _UNREACHABLE_MARKS)
        exceptions = _botocore_exceptions()
        if exceptions is not None and isinstance(
            error,
            (
                exceptions.EndpointConnectionError,
                exceptions.ConnectTimeoutError,
                exceptions.ReadTimeoutError,
            ),
        ):
            network = True
        if not network:
            return None
        where = self._endpoint or "the AWS default endpoint"
        return (
            f"cannot reach the S3 store {self._uri!r} at {where!r}: {text.splitlines()[0]} "
            f"-- check that the server is running and that the endpoint (config "
            f"twister2.checkpointing.s3.endpoint_url, or AWS_ENDPOINT_URL) points at it"
        )

    def _access_message(self, error: BaseException) -> str | None:
        """Which refusal it is, asked of the store itself: a HEAD request (what
        pyarrow sends first) carries no error code, so a 403 cannot tell wrong
        credentials from a missing permission; a listing's answer can."""
        text = str(error)
        if not any(mark in text for mark in _REFUSED_MARKS):
            return None
        code = self._probe_bucket()
        where = f"the S3 store {self._uri!r} at {self._endpoint or 'the AWS default endpoint'!r}"
        if code in _BAD_CREDENTIALS:
            return (f"{where} refused the credentials ({code}): check "
                    "twister2.checkpointing.s3.access_key and .secret_key (or "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        if code == "NoSuchBucket":
            return (f"{where}: the bucket {self._bucket!r} does not exist; create it, or set "
                    "twister2.checkpointing.s3.create_bucket: true to have twister_nb create it")
        return (f"{where} refused access to the bucket {self._bucket!r} ({code or 'AccessDenied'}"
                f"): the credentials are valid but lack permission on it (to list, read and "
                f"write under {self._prefix or 'its root'!r}), or the bucket does not exist and "
                "they may not see that; ask the store's administrator")

    def _probe_bucket(self) -> str | None:
        """The S3 error code of listing one key of the bucket (None if it succeeds)."""
        try:
            client = self._boto_client()
        except ImportError:
            return None
        try:
            client.list_objects_v2(Bucket=self._bucket, MaxKeys=1)
        except _botocore_exceptions().ClientError as e:
            return e.response.get("Error", {}).get("Code")
        except Exception:  # noqa: BLE001 - unknown: the caller words it as a refusal
            return None
        return None

    def _prepare_write(self) -> None:
        if self._bucket_ready:
            return
        if self._fs.get_file_info(self._bucket).type == pafs.FileType.NotFound:
            if not self._opts["create_bucket"]:
                raise StoreAccessError(
                    f"the S3 store {self._uri!r}: the bucket {self._bucket!r} does not exist; "
                    "create it, or set twister2.checkpointing.s3.create_bucket: true to have "
                    "twister_nb create it")
            self._fs.create_dir(self._bucket)
            warnings.warn(f"created the missing bucket {self._bucket!r} on "
                          f"{self._endpoint or 'AWS'} (twister2.checkpointing.s3.create_bucket)",
                          StoreNotice, stacklevel=2)
        self._bucket_ready = True

    def _write_file(self, path: str, produce: Callable[[Any], None]) -> tuple[int, str]:
        out = self._fs.open_output_stream(path)
        sink = HashingSink(out.write, self._checksum)
        try:
            produce(sink)
        except BaseException:
            # pyarrow cannot abort an upload: closing publishes what was sent, so remove it.
            try:
                out.close()
            finally:
                self._delete_file(path)
            raise
        out.close()
        self._wrote("put", path)
        return sink.size, sink.checksum

    def _boto_client(self):
        if self._client is None:
            botocore = _botocore()
            if botocore is None:
                raise ImportError(
                    "committing to an S3 store needs a conditional PUT, which pyarrow "
                    "cannot send: pip install botocore (or boto3)"
                )
            config = botocore.config.Config(
                connect_timeout=float(self._opts["connect_timeout"]),
                read_timeout=float(self._opts["request_timeout"]),
                retries={"max_attempts": int(self._opts["max_attempts"]), "mode": "standard"},
                s3={"addressing_style": "path"},
                signature_version="s3v4",
            )
            self._client = botocore.session.get_session().create_client(
                "s3",
                endpoint_url=self._endpoint,
                aws_access_key_id=self._opts["access_key"],
                aws_secret_access_key=self._opts["secret_key"],
                aws_session_token=self._opts["session_token"],
                region_name=self._opts["region"],
                config=config,
            )
        return self._client

    def _put_if_absent(self, path: str, data: bytes) -> bool:
        bucket, _, key = path.partition("/")
        client = self._boto_client()
        for attempt in range(5):
            try:
                client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
                self._wrote("put-if-absent", path)
                return True
            except _botocore_exceptions().ClientError as e:
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = e.response.get("Error", {}).get("Code")
                if status == 412 or code == "PreconditionFailed":
                    return False
                if status == 409 and attempt < 4:  # a concurrent conditional write: retry
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise
        return False  # pragma: no cover

    def _delete_dir(self, path: str) -> bool:
        # Not pyarrow's delete_dir: that leaves a marker object for the parent, and stores
        # with real folders (SeaweedFS) keep listing the emptied folders unless their
        # "folder/" keys are deleted too, deepest first.
        infos = self._list(path, recursive=True)
        if not infos and self._fs.get_file_info(path).type == pafs.FileType.NotFound:
            return False
        bucket, _, prefix = path.partition("/")
        files = [i.path.partition("/")[2] for i in infos if i.type == pafs.FileType.File]
        folders = {i.path.partition("/")[2] + "/" for i in infos if i.type != pafs.FileType.File}
        folders.add(prefix + "/")
        client = self._boto_client()
        for keys in (files, sorted(folders, key=lambda k: (-k.count("/"), k))):
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                reply = client.delete_objects(
                    Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
                )
                errors = [e for e in reply.get("Errors", []) if e.get("Code") != "NoSuchKey"]
                if errors:
                    raise OSError(f"deleting {path!r} on S3 failed for {errors[:3]!r}")
        self._wrote("delete", path)
        return True

    def _read_buffer(self, path: str) -> pa.Buffer | None:
        try:
            with self._fs.open_input_stream(path) as f:
                return f.read_buffer()
        except FileNotFoundError:
            return None
