"""Upload errors. tus prescribes the status of most (412, 409, 413, 460); each still answers
with a problem document and a stable ``code``."""

from __future__ import annotations

from core.errors import Conflict, NongdaiError
from core.i18n import lazy_gettext

TUS_VERSION = "1.0.0"


class TusVersionUnsupported(NongdaiError):
    """tus: a request without a ``Tus-Resumable`` the server speaks is 412, with the versions
    it does speak in ``Tus-Version``."""

    status, code = 412, "tus-version-unsupported"
    title = lazy_gettext("Send the header Tus-Resumable: 1.0.0")

    def __init__(self) -> None:
        super().__init__(headers={"Tus-Version": TUS_VERSION})


class InvalidUploadHeader(NongdaiError):
    status, code = 400, "invalid-upload-header"
    title = lazy_gettext("A tus header is missing or malformed")


class UploadTooLarge(NongdaiError):
    status, code = 413, "upload-too-large"
    title = lazy_gettext("The upload is larger than the server accepts")


class OffsetMismatch(Conflict):
    code = "upload-offset-mismatch"
    title = lazy_gettext("Upload-Offset is not the server's offset; ask with HEAD and resume")


class UploadComplete(Conflict):
    code = "upload-complete"
    title = lazy_gettext("The upload is complete and its file is kept")


class ChecksumMismatch(NongdaiError):
    """tus checksum extension: 460 Checksum Mismatch (not a status the OpenAPI tooling knows,
    so it is documented in the operations' text)."""

    status, code = 460, "checksum-mismatch"
    title = lazy_gettext("The bytes received do not match their checksum")
