"""Where the bytes of photos live: an interface, and a local filesystem implementation.

The database says how far an upload has got; the store holds the bytes. The contract that
keeps them in step (see :mod:`sync.uploads.services`):

- :meth:`AttachmentStore.append` writes a chunk at ``offset`` and returns only once the bytes
  are durable: the offset is moved in the database (and acknowledged to the phone) after it,
  so an acknowledged offset survives a power cut. Bytes past ``offset`` (a chunk whose
  request failed after writing) are cut off first: the database's offset is the truth.
- :meth:`AttachmentStore.finish` verifies the whole file's SHA-256 and places it under that
  digest, atomically; the partial stays until :meth:`AttachmentStore.discard` (called once
  the database has committed), so a failed commit can be retried with the same chunk.

``NONGDAI_SYNC_STORE`` picks the implementation: ``filesystem`` (the default, under
``NONGDAI_SYNC_UPLOAD_DIR``; on several hosts that directory must be shared storage) or
``module:Class`` for another one (an object store), built with the app's config.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from flask import current_app

EXTENSION_KEY = "nongdai_attachment_store"
_KEY = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_READ = 1024 * 1024


class DigestMismatch(Exception):
    """The bytes stored for an upload do not have the SHA-256 the client announced."""


class MissingBytes(Exception):
    """The store holds fewer bytes of an upload than the database says were acknowledged."""


@runtime_checkable
class AttachmentStore(Protocol):
    """Partial uploads by key, finished files by SHA-256 (lower-case hex)."""

    def append(self, upload_key: str, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` (dropping anything stored past it), durably; the new
        size. :class:`MissingBytes` when fewer than ``offset`` bytes are stored."""

    def size(self, upload_key: str) -> int:
        """Bytes stored for an upload (0 when none)."""

    def finish(self, upload_key: str, sha256: str) -> None:
        """Verify the upload's bytes against ``sha256`` (:class:`DigestMismatch`) and place
        them under it, durably; a file already there is kept."""

    def discard(self, upload_key: str) -> None:
        """Forget an upload's partial bytes (no error when there are none)."""

    def open(self, sha256: str) -> BinaryIO:
        """A finished file, for reading (``FileNotFoundError`` when absent)."""

    def exists(self, sha256: str) -> bool:
        """Whether a finished file is stored under ``sha256``."""


def _fsync_dir(path: Path) -> None:
    """Make a new or renamed directory entry durable (the file's own fsync does not)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class FilesystemStore:
    """Partial uploads in ``<root>/partial/<key>``, files in ``<root>/files/ab/<sha256>``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.partial_dir = self.root / "partial"
        self.files_dir = self.root / "files"
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        self.files_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FilesystemStore:
        return cls(config["NONGDAI_SYNC_UPLOAD_DIR"])

    def _partial(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError("an upload key is 32 lower-case hex digits")
        return self.partial_dir / key

    def _file(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError("a SHA-256 is 64 lower-case hex digits")
        return self.files_dir / sha256[:2] / sha256

    def append(self, upload_key: str, offset: int, data: bytes) -> int:
        path = self._partial(upload_key)
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            stored = os.fstat(fd).st_size
            if stored < offset:
                raise MissingBytes(f"{stored} bytes stored, {offset} acknowledged")
            if stored > offset:  # a chunk written by a request that then failed
                os.ftruncate(fd, offset)
            _write_all(fd, data, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.partial_dir)
        return offset + len(data)

    def size(self, upload_key: str) -> int:
        try:
            return self._partial(upload_key).stat().st_size
        except FileNotFoundError:
            return 0

    def finish(self, upload_key: str, sha256: str) -> None:
        """Hash while copying into a temporary file beside the target, then rename it into
        place: a reader never sees half a file, and the partial stays intact for a retry."""
        target = self._file(sha256)
        target.parent.mkdir(exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            digest = hashlib.sha256()
            with open(self._partial(upload_key), "rb") as source, os.fdopen(fd, "wb") as out:
                while block := source.read(_READ):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise DigestMismatch(sha256)
            os.replace(temporary, target)  # same bytes if another upload got there first
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _fsync_dir(target.parent)

    def discard(self, upload_key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._partial(upload_key).unlink()

    def open(self, sha256: str) -> BinaryIO:
        return self._file(sha256).open("rb")

    def exists(self, sha256: str) -> bool:
        return self._file(sha256).is_file()


def build(config: Mapping[str, Any]) -> AttachmentStore:
    """The store ``NONGDAI_SYNC_STORE`` names: ``filesystem`` or ``module:Class`` (a class
    with ``from_config(config)``, or one taking the config as its only argument)."""
    name = str(config.get("NONGDAI_SYNC_STORE") or "filesystem")
    if name == "filesystem":
        return FilesystemStore.from_config(config)
    module_name, _, class_name = name.partition(":")
    if not class_name:
        raise ValueError(f"NONGDAI_SYNC_STORE must be 'filesystem' or 'module:Class', not {name!r}")
    cls = getattr(importlib.import_module(module_name), class_name)
    store = cls.from_config(config) if hasattr(cls, "from_config") else cls(config)
    if not isinstance(store, AttachmentStore):
        raise TypeError(f"{name} does not implement AttachmentStore")
    return store


def current_store() -> AttachmentStore:
    """The app's store, built on first use from the config of that moment."""
    extensions = current_app.extensions
    store = extensions.get(EXTENSION_KEY)
    if store is None:
        store = extensions.setdefault(EXTENSION_KEY, build(current_app.config))
    return store
