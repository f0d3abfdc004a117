"""HMAC signing of pickled parts and the signing-key file.

Invariant 5 of the design: *never unpickle what we did not sign*. Data that Arrow cannot
hold is cloudpickled, and the bytes are wrapped in a small envelope that carries an
HMAC-SHA256 tag computed with a key kept outside the store (in the twister_nb home,
mode 0600). :func:`open_envelope` refuses anything whose tag is missing or wrong before
a single byte reaches :func:`pickle.loads`.

Envelope layout::

    b"TNBPKL1\\n"  (8 bytes magic and version)
    tag           (32 bytes, HMAC-SHA256(key, magic + payload))
    payload       (cloudpickle bytes)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
import stat
import time
from pathlib import Path
from typing import Any

import cloudpickle

from twister_nb.storage.errors import CheckpointCorruptError

__all__ = [
    "KEY_BYTES",
    "MAGIC",
    "check_key",
    "dumps_signed",
    "hmac_hex",
    "load_or_create_key",
    "loads_signed",
    "open_envelope",
    "seal_envelope",
]

MAGIC = b"TNBPKL1\n"
TAG_BYTES = 32
KEY_BYTES = 32
MIN_KEY_BYTES = 16


def check_key(key: bytes) -> bytes:
    """Return ``key`` if it can sign, else raise.

    Parameters
    ----------
    key : bytes
        A signing key, at least 16 bytes.

    Returns
    -------
    bytes
        The same key.

    Raises
    ------
    TypeError
        If ``key`` is not bytes.
    ValueError
        If it is shorter than 16 bytes.

    Examples
    --------
    >>> len(check_key(b"k" * 32))
    32
    """
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(
            f"signing_key must be bytes, got {type(key).__name__}; use "
            f"twister_nb.storage.load_or_create_key(path)"
        )
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"signing_key is {len(key)} bytes, need at least {MIN_KEY_BYTES}; use "
            f"twister_nb.storage.load_or_create_key(path) for a 32-byte random key"
        )
    return bytes(key)


def _tag(key: bytes, payload) -> bytes:
    mac = hmac.new(key, MAGIC, hashlib.sha256)
    mac.update(payload)
    return mac.digest()


def hmac_hex(key: bytes, purpose: bytes, data: bytes) -> str:
    """``hmac-sha256:<hex>`` of ``purpose + data``: a tag for something that is not a pickle.

    ``purpose`` keeps tags of one kind from being valid for another (a manifest's tag
    can never pass as a pickle's). Compare tags with :func:`hmac.compare_digest`.

    Examples
    --------
    >>> hmac_hex(b"k" * 32, b"A", b"x") == hmac_hex(b"k" * 32, b"A", b"x")
    True
    >>> hmac_hex(b"k" * 32, b"A", b"x") == hmac_hex(b"k" * 32, b"B", b"x")
    False
    """
    mac = hmac.new(check_key(key), purpose, hashlib.sha256)
    mac.update(data)
    return "hmac-sha256:" + mac.hexdigest()


def seal_envelope(payload: bytes, key: bytes) -> bytes:
    """Wrap ``payload`` in a signed envelope.

    Parameters
    ----------
    payload : bytes
        The bytes to protect.
    key : bytes
        The signing key.

    Returns
    -------
    bytes
        ``MAGIC + tag + payload``.

    Examples
    --------
    >>> env = seal_envelope(b"abc", b"k" * 32)
    >>> open_envelope(env, b"k" * 32, "x") == b"abc"
    True
    """
    return MAGIC + _tag(key, payload) + payload


def open_envelope(data, key: bytes, path: str) -> memoryview:
    """Check an envelope's signature and return its payload.

    Parameters
    ----------
    data : bytes-like
        The whole envelope.
    key : bytes
        The signing key.
    path : str
        Where the bytes came from, for the error message.

    Returns
    -------
    memoryview
        The payload, a view on ``data``.

    Raises
    ------
    CheckpointCorruptError
        If the envelope is not one of ours (unsigned), is truncated, or its tag does not
        match (tampered, or signed with another key).

    Examples
    --------
    >>> open_envelope(b"\\x80\\x05N.", b"k" * 32, "p.pkl")
    Traceback (most recent call last):
    ...
    twister_nb.storage.errors.CheckpointCorruptError: checkpoint file 'p.pkl' is corrupt: \
not a signed twister_nb pickle (no signature header); refusing to unpickle it
    """
    view = memoryview(data).cast("B")
    head = len(MAGIC)
    if bytes(view[:head]) != MAGIC:
        raise CheckpointCorruptError(
            path, "not a signed twister_nb pickle (no signature header); refusing to unpickle it"
        )
    if len(view) < head + TAG_BYTES:
        raise CheckpointCorruptError(path, "signed pickle is truncated inside its signature")
    tag = bytes(view[head : head + TAG_BYTES])
    payload = view[head + TAG_BYTES :]
    if not hmac.compare_digest(tag, _tag(key, payload)):
        raise CheckpointCorruptError(
            path,
            "HMAC signature mismatch: the pickle was tampered with or signed with another "
            "key; refusing to unpickle it (check that every process uses the same "
            "signing key file)",
        )
    return payload


def dumps_signed(obj: Any, key: bytes) -> bytes:
    """Cloudpickle ``obj`` and sign the bytes.

    Parameters
    ----------
    obj : Any
        Anything cloudpickle can serialise.
    key : bytes
        The signing key.

    Returns
    -------
    bytes
        A signed envelope.
    """
    return seal_envelope(cloudpickle.dumps(obj, protocol=5), key)


def loads_signed(data, key: bytes, path: str) -> Any:
    """Verify and unpickle an envelope written by :func:`dumps_signed`.

    Parameters
    ----------
    data : bytes-like
        The envelope.
    key : bytes
        The signing key.
    path : str
        Where it came from, for error messages.

    Returns
    -------
    Any
        The unpickled object.

    Raises
    ------
    CheckpointCorruptError
        If the signature is missing or wrong.
    """
    return pickle.loads(open_envelope(data, key, path))


def load_or_create_key(path: str | os.PathLike) -> bytes:
    """Read the signing key at ``path``, creating a random 32-byte one if missing.

    The file is created with mode 0600 (its folder with 0700 if it has to be made), and
    atomically: concurrent callers all end up with the same key. The key is never
    written to the checkpoint store.

    Parameters
    ----------
    path : str or os.PathLike
        The key file, e.g. ``<TWISTER_NB_HOME>/signing.key``.

    Returns
    -------
    bytes
        The key.

    Raises
    ------
    PermissionError
        If an existing key file can be read by group or others.
    ValueError
        If an existing key file is too short to be a key.
    """
    path = Path(path).expanduser()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic and exclusive: a concurrent creator wins or we do
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(
            f"signing key file {str(path)!r} has mode {oct(mode)}; it must be readable by "
            f"its owner only: run `chmod 600 {path}`"
        )
    for _ in range(50):  # a creator on a filesystem without link() may still be writing
        key = path.read_bytes()
        if len(key) >= MIN_KEY_BYTES:
            return key
        time.sleep(0.01)
    raise ValueError(
        f"signing key file {str(path)!r} holds {len(key)} bytes, need at least "
        f"{MIN_KEY_BYTES}; delete it to have a new key created (old signed pickles will "
        f"then be refused)"
    )
