"""Manifests, part descriptions and the store's path layout.

Invariant 4 of the design: *a checkpoint exists only when its manifest exists*. The
manifest, written last with put-if-absent, lists every part with its size, row count,
checksum and format. This module owns the manifest's JSON form and the names of every
object under a store root, so that the layout is written down in one place::

    <root>/jobs/<job_id>/job.json
    <root>/jobs/<job_id>/leases/lease-<epoch>.json
    <root>/jobs/<job_id>/tsets/<tset_id>/<version>/part-<p>-<r>.arrow | part-<p>-<r>.pkl
    <root>/jobs/<job_id>/tsets/<tset_id>/<version>/_manifest.json
    <root>/jobs/<job_id>/tsets/<tset_id>/_damaged/<version>

``<p>`` is the partition index (5 digits), ``<r>`` 8 random hex digits per write, so
that two writers of the same part (a retried task and its zombie) never overwrite each
other; the manifest names the ones that count.

A manifest is signed (HMAC-SHA256 with the signing key that also signs pickles, kept
in the twister_nb home, never in the store): someone who can write to the store but
does not hold the key can change a part, but not the manifest entry (size, checksum)
that would make the changed part pass. A manifest that is unsigned, or whose signature
does not check, is never used.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from twister_nb.storage.signing import hmac_hex

__all__ = [
    "MANIFEST_NAME",
    "Checkpoint",
    "PartInfo",
    "check_id",
    "check_version",
    "manifest_from_json",
    "manifest_signature",
    "manifest_to_json",
    "part_name",
]

MANIFEST_NAME = "_manifest.json"
#: 2: signed (``signature``). Version 1 manifests were unsigned and are not used.
MANIFEST_VERSION = 2
#: Domain of a manifest's HMAC: its tag can never pass for a pickle envelope's.
_MANIFEST_PURPOSE = b"TNBMAN2\n"
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def check_id(value: str, what: str) -> str:
    """Return ``value`` if it is a safe single path component, else raise ``ValueError``.

    Parameters
    ----------
    value : str
        A job or TSet ID.
    what : str
        Its name in the error message, e.g. ``"job_id"``.

    Returns
    -------
    str
        ``value``.

    Examples
    --------
    >>> check_id("job-1", "job_id")
    'job-1'
    >>> check_id("../x", "job_id")
    Traceback (most recent call last):
    ...
    ValueError: job_id must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 200 characters), got '../x'
    """
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValueError(
            f"{what} must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 200 characters), got {value!r}"
        )
    return value


def check_version(version: int) -> int:
    """Return ``version`` if it is a non-negative ``int``, else raise ``ValueError``.

    Examples
    --------
    >>> check_version(3)
    3
    """
    if type(version) is not int or version < 0:
        raise ValueError(f"version must be an int >= 0, got {version!r}")
    return version


def part_name(part_index: int, extension: str, token: str) -> str:
    """File name of a part.

    Parameters
    ----------
    part_index : int
        The partition index.
    extension : str
        ``"arrow"`` or ``"pkl"``.
    token : str
        Random hex digits unique to this write.

    Examples
    --------
    >>> part_name(3, "arrow", "1a2b3c4d")
    'part-00003-1a2b3c4d.arrow'
    """
    if type(part_index) is not int or part_index < 0:
        raise ValueError(f"part_index must be an int >= 0, got {part_index!r}")
    return f"part-{part_index:05d}-{token}.{extension}"


@dataclass(frozen=True)
class PartInfo:
    """One written part file, as returned by ``write_part`` and listed in a manifest.

    Attributes
    ----------
    part_index : int
        The partition index.
    path : str
        Where the part is in the store's filesystem (absolute local path, or
        ``bucket/key`` on S3).
    size : int
        Size in bytes.
    rows : int
        Number of records (``-1`` for a pickled object without a length).
    checksum : str
        ``"<algorithm>:<hex>"`` of the file bytes.
    format : str
        ``"arrow"`` or ``"pickle"``.
    """

    part_index: int
    path: str
    size: int
    rows: int
    checksum: str
    format: str

    @property
    def name(self) -> str:
        """The file name, e.g. ``part-00000.arrow``."""
        return self.path.rsplit("/", 1)[-1]

    def to_json(self) -> dict:
        """The manifest entry: the name, not the full path, so stores can move."""
        d = asdict(self)
        d["name"] = self.name
        del d["path"]
        return d


@dataclass(frozen=True)
class Checkpoint:
    """A committed, validated version of a TSet's partitions.

    Hand it to ``CheckpointStore.read_part`` (it pickles, so it can go to workers).

    Attributes
    ----------
    job_id, tset_id : str
        Whose checkpoint this is.
    version : int
        The committed version.
    parts : tuple of PartInfo
        Sorted by ``part_index``.
    meta : dict
        What the committer passed to ``commit``.
    created : float
        Commit time, seconds since the epoch.
    manifest_path : str
        Where the manifest is.
    """

    job_id: str
    tset_id: str
    version: int
    parts: tuple[PartInfo, ...]
    meta: dict = field(default_factory=dict)
    created: float = 0.0
    manifest_path: str = ""

    @property
    def num_parts(self) -> int:
        """Number of parts."""
        return len(self.parts)

    @property
    def rows(self) -> int:
        """Total number of records over all parts that know their length."""
        return sum(p.rows for p in self.parts if p.rows >= 0)

    def part(self, part_index: int) -> PartInfo:
        """The part with this index.

        Raises
        ------
        KeyError
            If the checkpoint has no such part.
        """
        for p in self.parts:
            if p.part_index == part_index:
                return p
        raise KeyError(
            f"checkpoint {self.job_id}/{self.tset_id}@{self.version} has no part "
            f"{part_index!r}; it has {[p.part_index for p in self.parts]}"
        )


def manifest_signature(doc: Mapping[str, Any], key: bytes) -> str:
    """The signature of a manifest document: an HMAC of its canonical JSON
    (sorted keys, no spaces), every field but ``signature`` itself.

    Examples
    --------
    >>> doc = {"job_id": "j", "parts": []}
    >>> manifest_signature(doc, b"k" * 32) == manifest_signature(dict(doc), b"k" * 32)
    True
    >>> manifest_signature({**doc, "job_id": "x"}, b"k" * 32) == manifest_signature(doc, b"k" * 32)
    False
    """
    body = {k: v for k, v in doc.items() if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac_hex(key, _MANIFEST_PURPOSE, canonical)


def manifest_to_json(
    job_id: str, tset_id: str, version: int, parts: list[PartInfo], meta: dict, key: bytes
) -> bytes:
    """Serialise a manifest, signed with ``key``.

    Raises
    ------
    ValueError
        If part indexes repeat or ``meta`` is not JSON-serialisable.
    """
    indexes = [p.part_index for p in parts]
    if len(set(indexes)) != len(indexes):
        raise ValueError(f"commit: part indexes repeat: {sorted(indexes)}")
    now = time.time()
    doc: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "job_id": job_id,
        "tset_id": tset_id,
        "version": version,
        "created": now,
        "created_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "num_parts": len(parts),
        "rows": sum(p.rows for p in parts if p.rows >= 0),
        "parts": [p.to_json() for p in sorted(parts, key=lambda p: p.part_index)],
        "meta": meta,
    }
    try:
        doc["signature"] = manifest_signature(doc, key)
        return json.dumps(doc, indent=1).encode()
    except (TypeError, ValueError) as e:
        raise ValueError(f"commit: meta must be JSON-serialisable: {e}") from None


def manifest_from_json(data: bytes, version_dir: str, manifest_path: str,
                       key: bytes) -> Checkpoint:
    """Parse a manifest into a :class:`Checkpoint` whose part paths live in ``version_dir``,
    after checking its signature with ``key``.

    Raises
    ------
    ValueError
        If the bytes are not a manifest of a known version, or it is unsigned, or
        its signature does not check (the message says which).
    """
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("it is not a JSON object")
    signature = doc.get("signature")
    if not isinstance(signature, str):
        raise ValueError("it is not signed (written by a twister_nb before 0.2, or edited); "
                         "the TSet is recomputed")
    if not hmac.compare_digest(signature, manifest_signature(doc, key)):
        raise ValueError("its signature does not check with this home's signing key: it was "
                         "changed after it was committed, or written with another key; it is "
                         "never used")
    if doc.get("manifest_version") != MANIFEST_VERSION:
        raise ValueError(f"unknown manifest_version {doc.get('manifest_version')!r}")
    for p in doc["parts"]:
        name = p["name"]
        if not isinstance(name, str) or "/" in name or name.startswith(".") or not name:
            raise ValueError(f"bad part name {name!r}")
    parts = tuple(
        PartInfo(
            part_index=int(p["part_index"]),
            path=f"{version_dir}/{p['name']}",
            size=int(p["size"]),
            rows=int(p["rows"]),
            checksum=str(p["checksum"]),
            format=str(p["format"]),
        )
        for p in doc["parts"]
    )
    return Checkpoint(
        job_id=doc["job_id"],
        tset_id=doc["tset_id"],
        version=int(doc["version"]),
        parts=tuple(sorted(parts, key=lambda p: p.part_index)),
        meta=doc.get("meta") or {},
        created=float(doc["created"]),
        manifest_path=manifest_path,
    )
