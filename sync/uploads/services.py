"""Uploads of photos: create, resume, finish, abandon; and which photos have arrived.

The database holds every upload's ``offset``; the store holds its bytes. A chunk is written
to the store (durably) while the upload's row is locked, and the new offset is committed with
the request: several workers on several hosts agree on the offset, and one acknowledged to a
phone survives a power cut. Services flush and never commit (the request commits).

For :mod:`sync.push` (the internal contract): :func:`ready` says which photos have fully
arrived and been verified; :func:`open` reads one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any, BinaryIO

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from core import audit
from core.authz import Principal, get_visible, not_found
from core.db import DbSession, table, utcnow
from core.errors import NotFound
from core.i18n import _
from core.lifecycle import after_commit, ride_along
from sync.uploads import tus
from sync.uploads.errors import (
    ChecksumMismatch,
    InvalidUploadHeader,
    OffsetMismatch,
    UploadComplete,
    UploadTooLarge,
)
from sync.uploads.models import StoredFile, Upload
from sync.uploads.store import DigestMismatch, MissingBytes, current_store

log = logging.getLogger(__name__)


def max_bytes() -> int:
    return int(current_app.config["NONGDAI_SYNC_UPLOAD_MAX_BYTES"])


# --- creation ---------------------------------------------------------------------------------

def create(session: DbSession, principal: Principal, length: int, metadata_header: str) -> Upload:
    """A new upload of ``length`` bytes; born complete when that SHA-256 is already stored."""
    if length > max_bytes():
        raise UploadTooLarge(_("Upload-Length is larger than %(max)s bytes", max=max_bytes()))
    if length == 0:
        raise InvalidUploadHeader(_("Upload-Length must be at least 1: a photo is never empty"))
    file = tus.announced(tus.metadata(metadata_header))
    stored = session.scalar(sa.select(StoredFile).where(StoredFile.sha256 == file.sha256))
    if stored is not None and stored.size != length:
        raise InvalidUploadHeader(_("Upload-Length differs from the size of the file stored "
                                    "with this sha256"))
    upload = Upload(coordinator_id=principal.id, device_id=principal.device_id,
                    sha256=file.sha256, length=length, offset=0,
                    metadata_header=metadata_header.strip(), filename=file.filename,
                    content_type=file.content_type)
    if stored is not None:  # the bytes are here already: nothing to send
        upload.offset, upload.completed_at = length, utcnow()
    session.add(upload)
    session.flush()
    audit.record(session, "sync.upload.create", upload, summary={
        "sha256": file.sha256, "length": length, "complete": upload.is_complete})
    return upload


# --- finding one's own upload -------------------------------------------------------------------

def locate(session: DbSession, principal: Principal, upload_id: uuid.UUID, *,
           lock: bool = False) -> Upload:
    """The caller's own upload (404 for anyone else's).

    ``lock``: hold its row until the request ends (PostgreSQL ``FOR UPDATE``; SQLite's writers
    are serialised already), and check that the store still holds the bytes acknowledged: an
    upload whose bytes were discarded (a failed whole-file check whose row outlived it) is
    gone. Only under the lock: a reader could see the row just before its last chunk commits
    and the store just after the partial bytes were freed.
    """
    if not lock:
        return get_visible(session, Upload, upload_id, principal)
    stmt = sa.select(Upload).where(Upload.public_id == upload_id,
                                   Upload.visible_to(principal)).with_for_update()
    upload = session.scalars(stmt).first()
    if upload is None:
        raise NotFound(not_found(Upload))
    if not upload.is_complete and current_store().size(upload.key) < upload.offset:
        _forget(upload)
        raise NotFound(not_found(Upload))
    return upload


def _forget(upload: Upload) -> None:
    """Delete the unfinished upload's row even though the request fails (the failure rolls
    back its own transaction; this statement commits alone afterwards)."""
    uploads = table(Upload)
    ride_along(sa.delete(uploads).where(uploads.c.id == upload.id,
                                        uploads.c.completed_at.is_(None)))


# --- receiving a chunk --------------------------------------------------------------------------

def append(session: DbSession, upload: Upload, offset: int, data: bytes,
           checksum: tus.Checksum | None) -> Upload:
    """Store one chunk at ``offset`` (the server's, or 409); on the last byte, check the whole
    file against its SHA-256 and keep it under that digest.

    A complete upload acknowledges any chunk with its full offset, keeping nothing: its bytes
    are all here. That is the retry of a last chunk whose answer was lost, or a client that
    sends from 0 after a creation born complete (tus clients such as tuspy ignore the
    creation's Upload-Offset).
    """
    if upload.is_complete:
        return upload
    if offset != upload.offset:
        raise OffsetMismatch(_("The server has %(offset)s bytes of this upload; send from "
                               "there", offset=upload.offset),
                             headers={"Upload-Offset": str(upload.offset)})
    if offset + len(data) > upload.length:
        raise UploadTooLarge(_("The chunk goes past Upload-Length (%(length)s bytes)",
                               length=upload.length))
    if checksum is not None and not checksum.matches(data):
        raise ChecksumMismatch(_("The chunk does not match Upload-Checksum; nothing of it was "
                                 "kept: send it again"))
    if data:
        upload.offset = _write(upload, offset, data)
    if upload.offset == upload.length and not upload.is_complete:
        _complete(session, upload)
    return upload


def _write(upload: Upload, offset: int, data: bytes) -> int:
    try:
        return current_store().append(upload.key, offset, data)
    except MissingBytes:
        log.error("upload bytes missing from the store", extra={"upload": str(upload.public_id)})
        _forget(upload)
        raise NotFound(not_found(Upload)) from None


def _complete(session: DbSession, upload: Upload) -> None:
    store = current_store()
    try:
        store.finish(upload.key, upload.sha256)
    except DigestMismatch:
        store.discard(upload.key)
        _forget(upload)
        raise ChecksumMismatch(_("The file does not match the sha256 given when the upload was "
                                 "created; the upload is discarded: create a new one")
                               ) from None
    _record_file(session, upload)
    upload.completed_at = utcnow()
    key = upload.key
    after_commit(lambda: store.discard(key))
    audit.record(session, "sync.upload.complete", upload, summary={
        "sha256": upload.sha256, "length": upload.length})


def _record_file(session: DbSession, upload: Upload) -> None:
    """One row per SHA-256, whichever of several uploads of the same photo finishes first."""
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(table(StoredFile)).values(
        sha256=upload.sha256, size=upload.length, content_type=upload.content_type,
        created_at=utcnow()).on_conflict_do_nothing(index_elements=["sha256"]))


# --- termination --------------------------------------------------------------------------------

def terminate(session: DbSession, upload: Upload) -> None:
    """Abandon an unfinished upload and free its bytes (a finished one's file is kept: 409)."""
    if upload.is_complete:
        raise UploadComplete(_("This upload is complete; its photo is kept"))
    key = upload.key
    audit.record(session, "sync.upload.terminate", upload, summary={"sha256": upload.sha256})
    session.delete(upload)
    session.flush()
    store = current_store()
    after_commit(lambda: store.discard(key))


# --- arrived photos -----------------------------------------------------------------------------

def ready(session: DbSession, shas: Iterable[str]) -> set[str]:
    """Which of these photos (SHA-256, hex) have fully arrived and been verified: one query."""
    wanted = sorted({sha.lower() for sha in shas if isinstance(sha, str)})
    if not wanted:
        return set()
    found = session.scalars(sa.select(StoredFile.sha256).where(StoredFile.sha256.in_(wanted)))
    return set(found)


def open(sha256: str) -> BinaryIO:  # noqa: A001 - the contract's name: sync.uploads.services.open
    """A stored photo's bytes, for reading (``FileNotFoundError`` when absent)."""
    return current_store().open(sha256.lower())


def attachment(session: DbSession, principal: Principal, sha256: str) -> StoredFile:
    """A stored photo, for staff or for a coordinator who uploaded it (404 otherwise)."""
    sha = sha256.lower()
    stmt = sa.select(StoredFile).where(StoredFile.sha256 == sha)
    if not principal.is_staff:
        uploaded = sa.select(Upload.id).where(Upload.sha256 == sha,
                                              Upload.coordinator_id == principal.id,
                                              Upload.completed_at.is_not(None))
        stmt = stmt.where(sa.exists(uploaded)) if principal.kind == "coordinator" else (
            stmt.where(sa.false()))
    stored = session.scalars(stmt).first()
    if stored is None:
        raise NotFound(_("No photo with that SHA-256"))
    return stored
