"""The OpenAPI description of the tus routes: their headers (tus speaks in headers, not JSON
bodies) and the binary chunk body. The 460 of the checksum extension is stated in the text:
it is no status the OpenAPI tooling knows."""

from __future__ import annotations

from typing import Any

from sync.uploads.errors import TUS_VERSION
from sync.uploads.tus import CHECKSUMS, CHUNK_TYPE, IMAGE_TYPES

_INT = {"type": "integer", "minimum": 0}
_TEXT = {"type": "string"}


def _header(name: str, schema: dict[str, Any], description: str,
            required: bool = True) -> dict[str, Any]:
    return {"in": "header", "name": name, "required": required, "schema": schema,
            "description": description}


RESUMABLE = _header("Tus-Resumable", {"type": "string", "enum": [TUS_VERSION]},
                    "The tus version; any other (or none) is 412 with Tus-Version.")


def _said(description: str) -> dict[str, Any]:
    return {"description": description, "schema": _TEXT}


OFFSET_ONLY = {
    "Tus-Resumable": _said(TUS_VERSION),
    "Upload-Offset": {"description": "Bytes the server holds", "schema": _INT},
}
CREATED = {**OFFSET_ONLY, "Location": _said("The upload's URL: HEAD, PATCH and DELETE it")}
OFFSET = {
    **OFFSET_ONLY,
    "Upload-Length": {"description": "The upload's length in bytes", "schema": _INT},
    "Upload-Metadata": _said("The metadata given at creation"),
    "Cache-Control": _said("no-store"),
}
ATTACHMENT_HEADERS = {"ETag": _said("The photo's SHA-256")}

_TUS = "tus 1.0.0 (https://tus.io/protocols/resumable-upload)."
CREATE: dict[str, Any] = {
    "description": (
        f"{_TUS} Upload-Metadata holds `sha256` (the base64 of the file's SHA-256 as 64 hex "
        "digits), optionally `filename` and `content_type`. A file already stored with that "
        "SHA-256 makes the upload complete at once (Upload-Offset equals Upload-Length). "
        "Needs a device-bound session."),
    "parameters": [
        RESUMABLE,
        _header("Upload-Length", {"type": "integer", "minimum": 1},
                "The file's length in bytes, at most Tus-Max-Size (413 beyond)."),
        _header("Upload-Metadata", {"type": "string", "maxLength": 4096},
                "Comma-separated `key base64value` pairs; `sha256` is required."),
    ],
}
HEAD: dict[str, Any] = {"description": f"{_TUS} Only the coordinator who created it sees it.",
                        "parameters": [RESUMABLE]}
PATCH: dict[str, Any] = {
    "description": (
        f"{_TUS} The body is the bytes from Upload-Offset on. A wrong offset is 409; a chunk "
        "that does not match Upload-Checksum is **460 Checksum Mismatch** (problem code "
        "`checksum-mismatch`; nothing of it is kept), and so is a whole file whose SHA-256 "
        "is not the one announced (the upload is discarded). Needs a device-bound session."),
    "parameters": [
        RESUMABLE,
        _header("Upload-Offset", _INT, "The server's offset (ask with HEAD)."),
        _header("Upload-Checksum", {"type": "string", "maxLength": 100},
                f"`<algorithm> <base64 digest>` of this chunk; algorithms: "
                f"{', '.join(CHECKSUMS)}.", required=False),
    ],
    "requestBody": {"required": True, "content": {
        CHUNK_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
}
DELETE: dict[str, Any] = {"description": f"{_TUS} (termination extension).",
                          "parameters": [RESUMABLE]}
ATTACHMENT: dict[str, Any] = {
    "parameters": [{"in": "path", "name": "sha256", "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}],
    "responses": {"200": {"description": "The photo", "content": {
        media: {"schema": {"type": "string", "format": "binary"}}
        for media in (*sorted(IMAGE_TYPES), "application/octet-stream")}}},
}
