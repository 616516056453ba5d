"""tus 1.0.0 resumable uploads of photos (``/sync/uploads``) and the photos that arrived
(``/sync/attachments/<sha256>``). docs/sync-protocol.md §5 is the contract.

tus prescribes plain statuses (412, 409, 413, 460); each still carries a problem document.
Every tus answer carries ``Tus-Resumable``. The work is in :mod:`sync.uploads.services`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import flask
from flask import Response, g, request, send_file
from werkzeug.exceptions import UnsupportedMediaType

from core.api import Blueprint, raises
from core.authz import Principal, access, current_principal
from core.db import begin_read, db
from core.errors import Forbidden
from core.i18n import _
from core.idempotency import idempotent
from core.lifecycle import raw_body
from sync.uploads import docs, services, tus
from sync.uploads.errors import (
    TUS_VERSION,
    InvalidUploadHeader,
    OffsetMismatch,
    TusVersionUnsupported,
    UploadComplete,
    UploadTooLarge,
)
from sync.uploads.models import Upload

blp = Blueprint("uploads", __name__, description="Photos from coordinators' phones: tus 1.0.0 "
                "resumable uploads (docs/sync-protocol.md §5)")
files = Blueprint("attachments", __name__, description="Photos that arrived, for staff")
discovery = flask.Blueprint("tus", __name__)

UPLOADS = "/sync/uploads"
F = TypeVar("F", bound=Callable[..., Any])


@blp.after_request
@discovery.after_request
def _speak_tus(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    return response


def _options_elsewhere(view: F) -> F:
    """OPTIONS of this URL is :func:`upload_capabilities`, not Flask's automatic answer
    (flask-smorest does not pass ``provide_automatic_options`` on; Flask reads it here)."""
    view.provide_automatic_options = False  # type: ignore[attr-defined]
    return view


def _on_device() -> Principal:
    """Uploads come from a coordinator's phone: a session bound to a device."""
    principal = current_principal()
    if principal.device_id is None:
        raise Forbidden(_("Sign in on your device to upload photos"))
    return principal


def _location(upload: Upload) -> str:
    return f"{request.script_root}{request.path.rstrip('/')}/{upload.public_id}"


def _progress(upload: Upload, status: int) -> Response:
    response = Response(status=status)
    response.headers["Upload-Offset"] = str(upload.offset)
    return response


@discovery.route(UPLOADS, methods=["OPTIONS"])
@access(public=True)
def upload_capabilities() -> Response:
    """What this tus server speaks: version, extensions, size limit, checksum algorithms.

    Protocol discovery, outside the OpenAPI document (docs/sync-protocol.md §5 states it): an
    operation without inputs cannot be fuzzed with invalid ones."""
    response = Response(status=204)
    response.headers.update({
        "Tus-Version": TUS_VERSION, "Tus-Extension": tus.EXTENSIONS,
        "Tus-Max-Size": str(services.max_bytes()),
        "Tus-Checksum-Algorithm": ",".join(tus.CHECKSUMS)})
    return response


@blp.route(UPLOADS, methods=["POST"])
@_options_elsewhere
@access("coordinator")
@raises(TusVersionUnsupported, InvalidUploadHeader, UploadTooLarge)
@idempotent
@blp.doc(**docs.CREATE)
@blp.response(201, headers=docs.CREATED)
def create_upload() -> Response:
    """Announce a photo (tus creation): its length and, in Upload-Metadata, its sha256."""
    tus.require_resumable(request.headers)
    principal = _on_device()
    length = tus.number(request.headers, "Upload-Length")
    upload = services.create(db.session, principal, length,
                             request.headers.get("Upload-Metadata", ""))
    response = _progress(upload, 201)
    response.headers["Location"] = _location(upload)
    return response


@blp.route(f"{UPLOADS}/<uuid:upload_id>", methods=["HEAD"])
@access("coordinator")
@raises(TusVersionUnsupported)
@blp.doc(**docs.HEAD)
@blp.response(200, headers=docs.OFFSET)
def upload_offset(upload_id: uuid.UUID) -> Response:
    """How many bytes of the upload the server holds: resume from there."""
    tus.require_resumable(request.headers)
    begin_read(db.session)
    upload = services.locate(db.session, current_principal(), upload_id)
    response = _progress(upload, 200)
    response.headers["Upload-Length"] = str(upload.length)
    if upload.metadata_header:
        response.headers["Upload-Metadata"] = upload.metadata_header
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route(f"{UPLOADS}/<uuid:upload_id>", methods=["PATCH"])
@raw_body(tus.CHUNK_TYPE, "NONGDAI_SYNC_UPLOAD_MAX_BYTES")
@access("coordinator")
@raises(TusVersionUnsupported, InvalidUploadHeader, OffsetMismatch, UploadTooLarge)
@blp.doc(**docs.PATCH)
@blp.response(204, headers=docs.OFFSET_ONLY)
def append_chunk(upload_id: uuid.UUID) -> Response:
    """Send the bytes from Upload-Offset on; the answer gives the new offset."""
    tus.require_resumable(request.headers)
    principal = _on_device()
    if request.mimetype != tus.CHUNK_TYPE:  # an empty body passed the lifecycle's check
        raise UnsupportedMediaType(_("Send the body as %(type)s", type=tus.CHUNK_TYPE))
    offset = tus.number(request.headers, "Upload-Offset")
    checksum = tus.checksum(request.headers.get("Upload-Checksum"))
    data = request.get_data(cache=False)  # read before the row is locked: phones are slow
    upload = services.locate(db.session, principal, upload_id, lock=True)
    was_complete = upload.is_complete
    services.append(db.session, upload, offset, data, checksum)
    if upload.is_complete == was_complete:
        g.no_audit_needed = True  # bytes on their way; creation and completion are audited
    return _progress(upload, 204)


@blp.route(f"{UPLOADS}/<uuid:upload_id>", methods=["DELETE"])
@access("coordinator")
@raises(TusVersionUnsupported, UploadComplete)
@blp.doc(**docs.DELETE)
@blp.response(204)
def terminate_upload(upload_id: uuid.UUID) -> Response:
    """Abandon an unfinished upload (tus termination); its bytes are freed."""
    tus.require_resumable(request.headers)
    upload = services.locate(db.session, current_principal(), upload_id, lock=True)
    services.terminate(db.session, upload)
    return Response(status=204)


@files.route("/sync/attachments/<sha256>", methods=["GET"])
@access("coordinator", "staff")
@blp.doc(**docs.ATTACHMENT)
@blp.response(200, headers=docs.ATTACHMENT_HEADERS)
def get_attachment(sha256: str) -> Any:
    """A photo's bytes in its stored media type: staff, and the coordinator who uploaded it."""
    begin_read(db.session)
    stored = services.attachment(db.session, current_principal(), sha256)
    db.session.rollback()  # the read is over; the file is served after it
    image = stored.content_type in tus.IMAGE_TYPES
    response = send_file(services.open(stored.sha256), mimetype=stored.content_type,
                         as_attachment=not image, download_name=stored.sha256,
                         etag=stored.sha256, max_age=3600, conditional=True)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
