"""The tus 1.0.0 headers (https://tus.io/protocols/resumable-upload): read strictly, so
that a malformed one is a 400 problem, never a 500."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import Headers

from core.i18n import _
from sync.uploads.errors import TUS_VERSION, InvalidUploadHeader, TusVersionUnsupported

EXTENSIONS = "creation,checksum,termination"
CHUNK_TYPE = "application/offset+octet-stream"
CHECKSUMS: dict[str, Callable[..., Any]] = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Served back to staff's browsers as they were declared: raster images only (an SVG or HTML
# "photo" could run script), anything else is kept as opaque bytes.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/heic", "image/heif",
                         "image/gif"})
METADATA_MAX = 4096  # bytes of Upload-Metadata kept

_NUMBER = re.compile(r"[0-9]{1,18}")
_KEY = re.compile(r"[!-+\--~]+")  # printable ASCII, no space and no comma
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def require_resumable(headers: Headers) -> None:
    """Every request but OPTIONS names the protocol version (412 otherwise)."""
    if headers.get("Tus-Resumable", "").strip() != TUS_VERSION:
        raise TusVersionUnsupported()


def number(headers: Headers, name: str) -> int:
    """A required non-negative integer header (``Upload-Length``, ``Upload-Offset``)."""
    value = headers.get(name, "").strip()
    if not _NUMBER.fullmatch(value):
        raise InvalidUploadHeader(_("%(header)s must be a non-negative integer", header=name))
    return int(value)


def _decode(key: str, value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidUploadHeader(_("The value of %(key)s in Upload-Metadata is not base64 of "
                                    "UTF-8 text", key=key)) from exc


def metadata(header: str) -> dict[str, str]:
    """``key base64,key base64,key``: keys unique, values base64 (decoded here)."""
    if len(header.encode("utf-8", "replace")) > METADATA_MAX:
        raise InvalidUploadHeader(_("Upload-Metadata is longer than %(max)s bytes",
                                    max=METADATA_MAX))
    pairs: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in header.split(","))):
        key, _space, value = pair.partition(" ")
        if not _KEY.fullmatch(key) or key in pairs or " " in value.strip():
            raise InvalidUploadHeader(_("Upload-Metadata must be unique keys, each with an "
                                        "optional base64 value, separated by commas"))
        pairs[key] = _decode(key, value.strip()) if value.strip() else ""
    return pairs


@dataclass(frozen=True)
class Announced:
    """What a creation request says of the file to come."""

    sha256: str
    filename: str | None
    content_type: str


def announced(pairs: Mapping[str, str]) -> Announced:
    """The file's SHA-256 (required: storage is by content), its name and its media type."""
    sha = pairs.get("sha256", "").strip()
    if not _SHA256.fullmatch(sha):
        raise InvalidUploadHeader(_("Upload-Metadata must hold sha256: the base64 of the "
                                    "file's SHA-256 as 64 hex digits"))
    filename = pairs.get("filename", "").strip()[:255] or None
    declared = pairs.get("content_type", "").strip().lower()
    content_type = declared if declared in IMAGE_TYPES else DEFAULT_CONTENT_TYPE
    return Announced(sha.lower(), filename, content_type)


@dataclass(frozen=True)
class Checksum:
    """``Upload-Checksum: <algorithm> <base64 digest>`` of one chunk."""

    algorithm: str
    digest: bytes

    def matches(self, data: bytes) -> bool:
        return bool(CHECKSUMS[self.algorithm](data).digest() == self.digest)


def checksum(header: str | None) -> Checksum | None:
    """The chunk's checksum, if sent; an unknown algorithm or a bad digest is 400 (tus)."""
    if header is None:
        return None
    algorithm, _space, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUMS:
        raise InvalidUploadHeader(_("Upload-Checksum algorithm must be one of %(names)s",
                                    names=", ".join(CHECKSUMS)))
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidUploadHeader(_("Upload-Checksum must be an algorithm and a base64 "
                                    "digest")) from exc
    if len(digest) != CHECKSUMS[algorithm]().digest_size:
        raise InvalidUploadHeader(_("Upload-Checksum must be an algorithm and a base64 "
                                    "digest"))
    return Checksum(algorithm, digest)
