"""The filesystem attachment store, and choosing a store by configuration."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest

from sync.uploads.store import (
    AttachmentStore,
    DigestMismatch,
    FilesystemStore,
    MissingBytes,
    build,
)

KEY = "0" * 31 + "1"


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    return FilesystemStore(tmp_path)


def test_chunks_append_at_their_offset(store: FilesystemStore) -> None:
    assert store.append(KEY, 0, b"abc") == 3
    assert store.append(KEY, 3, b"def") == 6
    assert store.size(KEY) == 6


def test_bytes_past_the_offset_are_cut_before_writing(store: FilesystemStore) -> None:
    store.append(KEY, 0, b"abcdef")  # the last 3 bytes were never acknowledged

    assert store.append(KEY, 3, b"XY") == 5

    store.finish(KEY, hashlib.sha256(b"abcXY").hexdigest())
    with store.open(hashlib.sha256(b"abcXY").hexdigest()) as stored:
        assert stored.read() == b"abcXY"


def test_missing_acknowledged_bytes_are_reported(store: FilesystemStore) -> None:
    store.append(KEY, 0, b"abc")
    with pytest.raises(MissingBytes):
        store.append(KEY, 10, b"x")


def test_finish_places_the_file_under_its_digest_and_keeps_the_partial(
        store: FilesystemStore) -> None:
    digest = hashlib.sha256(b"photo").hexdigest()
    store.append(KEY, 0, b"photo")

    store.finish(KEY, digest)
    store.finish(KEY, digest)  # again (a retried commit): the same file stays

    assert store.exists(digest)
    assert store.size(KEY) == 5  # freed only by discard(), once the database has committed
    store.discard(KEY)
    store.discard(KEY)
    assert store.size(KEY) == 0
    assert (store.files_dir / digest[:2] / digest).read_bytes() == b"photo"


def test_a_mismatch_leaves_nothing_in_place(store: FilesystemStore) -> None:
    digest = hashlib.sha256(b"announced").hexdigest()
    store.append(KEY, 0, b"received")

    with pytest.raises(DigestMismatch):
        store.finish(KEY, digest)

    assert not store.exists(digest)
    assert [p for p in store.files_dir.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("key", ["../../etc/passwd", "ABC", ""])
def test_keys_and_digests_are_never_paths(store: FilesystemStore, key: str) -> None:
    with pytest.raises(ValueError, match="hex"):
        store.append(key, 0, b"x")
    with pytest.raises(ValueError, match="hex"):
        store.open(key)


class MemoryStore:
    """An object store stand-in: what another implementation must provide."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.partial: dict[str, bytes] = {}
        self.files: dict[str, bytes] = {}

    def append(self, upload_key: str, offset: int, data: bytes) -> int:
        self.partial[upload_key] = self.partial.get(upload_key, b"")[:offset] + data
        return len(self.partial[upload_key])

    def size(self, upload_key: str) -> int:
        return len(self.partial.get(upload_key, b""))

    def finish(self, upload_key: str, sha256: str) -> None:
        if hashlib.sha256(self.partial[upload_key]).hexdigest() != sha256:
            raise DigestMismatch(sha256)
        self.files[sha256] = self.partial[upload_key]

    def discard(self, upload_key: str) -> None:
        self.partial.pop(upload_key, None)

    def open(self, sha256: str) -> Any:
        return io.BytesIO(self.files[sha256])

    def exists(self, sha256: str) -> bool:
        return sha256 in self.files


def test_the_store_is_chosen_by_configuration(tmp_path: Path) -> None:
    config = {"NONGDAI_SYNC_UPLOAD_DIR": str(tmp_path)}

    assert isinstance(build(config), FilesystemStore)
    chosen = build({**config, "NONGDAI_SYNC_STORE": f"{__name__}:MemoryStore"})
    assert isinstance(chosen, MemoryStore)
    assert isinstance(chosen, AttachmentStore)
    with pytest.raises(ValueError, match="module:Class"):
        build({**config, "NONGDAI_SYNC_STORE": "s3"})
    with pytest.raises(TypeError, match="AttachmentStore"):
        build({**config, "NONGDAI_SYNC_STORE": "collections:OrderedDict"})
