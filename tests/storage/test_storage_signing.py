"""The signing key file and the signed-pickle envelope."""

from __future__ import annotations

import os
import stat

import pytest

from twister_nb.storage import CheckpointCorruptError, load_or_create_key
from twister_nb.storage.signing import dumps_signed, loads_signed


def test_key_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "home" / "signing.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert load_or_create_key(tmp_path / "other.key") != key
    assert [p.name for p in path.parent.iterdir()] == ["signing.key"]  # no temp left


def test_key_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "signing.key"
    load_or_create_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_or_create_key(path)


def test_short_key_file_is_refused(tmp_path):
    path = tmp_path / "signing.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"abc")
    os.close(fd)
    with pytest.raises(ValueError, match="3 bytes"):
        load_or_create_key(path)


def test_envelope_roundtrip_and_refusals():
    key, other = b"a" * 32, b"b" * 32
    blob = dumps_signed({"x": [1, 2]}, key)
    assert loads_signed(blob, key, "p") == {"x": [1, 2]}
    with pytest.raises(CheckpointCorruptError, match="another key"):
        loads_signed(blob, other, "p")
    with pytest.raises(CheckpointCorruptError, match="truncated"):
        loads_signed(blob[:20], key, "p")
    with pytest.raises(CheckpointCorruptError, match="'p'.*not a signed"):
        loads_signed(b"\x80\x05N.", key, "p")
