"""Photos over tus 1.0 (docs/sync-protocol.md §5): create, then ``HEAD`` for the server's
offset and ``PATCH`` chunks from it, each with ``Upload-Checksum: sha256``.

The upload URL is kept in the local store while the upload is unfinished, so an upload broken
by a lost connection (or a restarted app) resumes from the offset the server reports, never
from the device's idea of it.
"""

from __future__ import annotations

import base64
import hashlib

import requests

from agents.client_http import Transport, Unreachable
from agents.client_store import LocalStore, Photo

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = 256 * 1024  # bytes per PATCH: a few seconds on 2G
ROUNDS = 50  # HEAD/PATCH rounds per photo before giving up for this sync


def _b64(value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


class Uploader:
    def __init__(self, transport: Transport, store: LocalStore, chunk: int = CHUNK) -> None:
        self.transport, self.store, self.chunk = transport, store, chunk

    def upload_all(self) -> list[str]:
        """Upload every unfinished photo; returns the SHA-256 of those now on the server."""
        return [photo.sha256 for photo in self.store.unfinished_photos() if self.upload(photo)]

    def upload(self, photo: Photo) -> bool:
        url = photo.url
        for _ in range(ROUNDS):
            if url is None:
                url, offset = self._create(photo)
            else:
                offset = self._offset(url)
            if offset is None:  # the server forgot the upload (expired, discarded): start over
                url = None
                self.store.photo_url(photo.sha256, None)
                continue
            if offset >= len(photo.content):
                self.store.photo_done(photo.sha256)
                return True
            self._patch(url, photo, offset)
        raise Unreachable(f"photo {photo.sha256}: upload did not finish")

    def _create(self, photo: Photo) -> tuple[str, int | None]:
        """``POST`` a new upload; born complete when the server already has the file."""
        metadata = ",".join([f"sha256 {_b64(photo.sha256)}", f"filename {_b64(photo.filename)}",
                             f"content_type {_b64(photo.content_type)}"])
        response = self.transport.request("POST", "sync/uploads", headers={
            **TUS, "Upload-Length": str(len(photo.content)), "Upload-Metadata": metadata})
        url = response.headers["Location"]
        self.store.photo_url(photo.sha256, url)
        offset = response.headers.get("Upload-Offset")
        return url, int(offset) if offset is not None else 0

    def _offset(self, url: str) -> int | None:
        response = self.transport.request("HEAD", url, headers=TUS, ok=_known_or_gone)
        if response.status_code in (404, 410):
            return None
        return int(response.headers["Upload-Offset"])

    def _patch(self, url: str, photo: Photo, offset: int) -> None:
        """Send one chunk from ``offset``. A 409 (offset moved), a 460 (checksum) or a broken
        connection all end the same way: the next round asks the server for its offset."""
        chunk = photo.content[offset:offset + self.chunk]
        headers = {**TUS, "Content-Type": "application/offset+octet-stream",
                   "Upload-Offset": str(offset),
                   "Upload-Checksum": f"sha256 {_b64(hashlib.sha256(chunk).digest())}"}
        try:
            self.transport.request("PATCH", url, headers=headers, data=chunk,
                                   ok=_patched_or_resumable)
        except Unreachable:
            return  # the next round starts with a HEAD


def _known_or_gone(response: requests.Response) -> bool:
    return response.status_code < 400 or response.status_code in (404, 410)


def _patched_or_resumable(response: requests.Response) -> bool:
    return response.status_code < 400 or response.status_code in (404, 409, 410, 460)
