"""tus uploads of photos over real HTTP, driven by tuspy (a stock tus client) and, for the
exact headers, by plain ``requests``: docs/sync-protocol.md §5."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import socket
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.uploader import Uploader

from core import jobs
from core.audit import AuditEvent
from core.db import utcnow
from sync.uploads import services
from sync.uploads.models import StoredFile, Upload
from sync.uploads.store import current_store
from tests import factories as f

MB = 1024 * 1024
CHUNK = 300 * 1024  # above the app-wide 256 KB body limit: raised for chunks only
TUS = {"Tus-Resumable": "1.0.0"}
TIMEOUT = 30


def photo(size: int = MB, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)  # noqa: S311 - test data, not a secret


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def meta(digest: str, filename: str = "plot.jpg", content_type: str = "image/jpeg"
         ) -> dict[str, str]:
    """tuspy's metadata (it base64-encodes the values itself)."""
    return {"sha256": digest, "filename": filename, "content_type": content_type}


def meta_header(digest: str, **extra: str) -> str:
    pairs = {"sha256": digest, "filename": "plot.jpg", "content_type": "image/jpeg", **extra}
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                    for key, value in pairs.items())


@pytest.fixture(autouse=True)
def upload_dir(app: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "uploads"
    app.config["NONGDAI_SYNC_UPLOAD_DIR"] = str(folder)
    return folder


@pytest.fixture
def station(session: Any) -> Any:
    return f.station(session, [f.village(session)])


@pytest.fixture
def phone(session: Any, station: Any) -> dict[str, str]:
    """A coordinator's device-bound session: its Authorization header."""
    headers, _device = f.device_headers(session, f.coordinator(session, station))
    return headers


@pytest.fixture
def other_phone(session: Any, station: Any) -> dict[str, str]:
    headers, _device = f.device_headers(session, f.coordinator(session, station))
    return headers


@pytest.fixture
def uploads(live_server: str) -> str:
    return f"{live_server}/api/v1/sync/uploads"


def uploader(url: str, headers: dict[str, str], data: bytes, digest: str | None = None,
             cls: type[Uploader] = Uploader, **kwargs: Any) -> Uploader:
    kwargs.setdefault("chunk_size", CHUNK)
    return cls(file_stream=io.BytesIO(data), client=tus.TusClient(url, headers=headers),
               metadata=meta(digest or sha(data)), upload_checksum=True, **kwargs)


def url_of(sent: Uploader) -> str:
    assert sent.url is not None
    return str(sent.url)


def create(url: str, headers: dict[str, str], data: bytes, digest: str | None = None) -> str:
    response = requests.post(url, headers={**headers, **TUS, "Upload-Length": str(len(data)),
                                           "Upload-Metadata": meta_header(digest or sha(data))},
                             timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    return requests.compat.urljoin(url, response.headers["Location"])


def patch(url: str, headers: dict[str, str], data: bytes, offset: int,
          **extra: str) -> requests.Response:
    return requests.patch(url, data=data, timeout=TIMEOUT, headers={
        **headers, **TUS, "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": str(offset), **extra})


def head(url: str, headers: dict[str, str]) -> requests.Response:
    return requests.head(url, headers={**headers, **TUS}, timeout=TIMEOUT)


def assert_problem(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code


def upload_row(session: Any, url: str) -> Upload | None:
    """The upload's row as it is now, read in a transaction that ends at once (SQLite: the
    test's session must not hold the write lock while the server works)."""
    session.expire_all()
    public_id = uuid.UUID(url.rsplit("/", 1)[1])
    row = session.scalar(sa.select(Upload).where(Upload.public_id == public_id))
    if row is not None:
        session.expunge(row)
    session.rollback()
    return row


# --- the whole way ------------------------------------------------------------------------------

def test_a_photo_arrives_in_chunks(app: Any, session: Any, uploads: str,
                                   phone: dict[str, str]) -> None:
    data = photo()
    sent = uploader(uploads, phone, data)

    sent.upload()

    answer = head(url_of(sent), phone)
    assert answer.status_code == 200
    assert answer.headers["Upload-Offset"] == answer.headers["Upload-Length"] == str(MB)
    assert answer.headers["Cache-Control"] == "no-store"
    assert services.ready(session, [sha(data)]) == {sha(data)}
    row = upload_row(session, url_of(sent))
    assert row is not None
    assert row.completed_at is not None
    assert row.device_id is not None
    with services.open(sha(data)) as stored:
        assert stored.read() == data
    assert current_store().size(row.key) == 0  # the partial bytes are freed
    actions = session.scalars(sa.select(AuditEvent.action).where(
        AuditEvent.object_id == str(row.public_id))).all()
    assert sorted(actions) == ["sync.upload.complete", "sync.upload.create"]


def test_staff_and_the_uploader_see_the_photo_others_do_not(
        session: Any, uploads: str, live_server: str, phone: dict[str, str],
        other_phone: dict[str, str]) -> None:
    data = photo(200 * 1024, seed=7)
    uploader(uploads, phone, data).upload()
    staff = f.auth_headers(session, f.staff(session, ("reviewer",)))
    url = f"{live_server}/api/v1/sync/attachments/{sha(data)}"

    for headers in (staff, phone):
        answer = requests.get(url, headers=headers, timeout=TIMEOUT)
        assert answer.status_code == 200
        assert answer.content == data
        assert answer.headers["Content-Type"] == "image/jpeg"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert_problem(requests.get(url, headers=other_phone, timeout=TIMEOUT), 404, "not-found")
    assert_problem(requests.get(f"{live_server}/api/v1/sync/attachments/{'0' * 64}",
                                headers=staff, timeout=TIMEOUT), 404, "not-found")


def test_a_declared_type_that_is_no_raster_image_is_served_as_bytes(
        session: Any, uploads: str, live_server: str, phone: dict[str, str]) -> None:
    data = b"<svg onload='alert(1)'/>"
    created = requests.post(uploads, timeout=TIMEOUT, headers={
        **phone, **TUS, "Upload-Length": str(len(data)),
        "Upload-Metadata": meta_header(sha(data), content_type="image/svg+xml")})
    url = requests.compat.urljoin(uploads, created.headers["Location"])
    assert patch(url, phone, data, 0).status_code == 204
    staff = f.auth_headers(session, f.staff(session))

    answer = requests.get(f"{live_server}/api/v1/sync/attachments/{sha(data)}", headers=staff,
                          timeout=TIMEOUT)

    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.headers["Content-Disposition"].startswith("attachment")


# --- broken connections -------------------------------------------------------------------------

def _cut_patch(url: str, headers: dict[str, str], offset: int, data: bytes) -> None:
    """A PATCH whose connection breaks half-way through its body."""
    parts = urlsplit(url)
    lines = [f"PATCH {parts.path} HTTP/1.1", f"Host: {parts.netloc}",
             "Content-Type: application/offset+octet-stream", f"Content-Length: {len(data)}",
             f"Upload-Offset: {offset}", "Tus-Resumable: 1.0.0",
             *(f"{name}: {value}" for name, value in headers.items())]
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data[: len(data) // 2])


def test_an_upload_resumes_from_the_servers_offset_after_a_broken_connection(
        session: Any, uploads: str, phone: dict[str, str]) -> None:
    data = photo(seed=2)
    first = uploader(uploads, phone, data, chunk_size=200 * 1024)
    first.upload(stop_at=400 * 1024)  # two chunks, then the signal goes
    _cut_patch(url_of(first), phone, 400 * 1024, data[400 * 1024: 600 * 1024])

    again = Uploader(file_stream=io.BytesIO(data), url=url_of(first), chunk_size=CHUNK,
                     client=tus.TusClient(uploads, headers=phone), upload_checksum=True)
    assert again.offset == int(head(url_of(first), phone).headers["Upload-Offset"]) == 400 * 1024
    again.upload()

    assert again.offset == MB
    with services.open(sha(data)) as stored:
        assert stored.read() == data


def test_bytes_past_the_acknowledged_offset_are_dropped(session: Any, uploads: str,
                                                       phone: dict[str, str]) -> None:
    """A chunk written to the store by a request that then failed (its offset never committed)
    is overwritten by the retry, not appended to."""
    data = photo(100 * 1024, seed=3)
    url = create(uploads, phone, data)
    row = upload_row(session, url)
    assert row is not None
    current_store().append(row.key, 0, b"garbage that was never acknowledged")

    assert patch(url, phone, data, 0).status_code == 204

    with services.open(sha(data)) as stored:
        assert stored.read() == data


def test_an_upload_whose_bytes_were_lost_is_gone(session: Any, uploads: str,
                                                phone: dict[str, str]) -> None:
    """The store lost acknowledged bytes (a discard whose row deletion did not commit): the
    next chunk finds it gone, and the phone starts again."""
    data = photo(2000, seed=21)
    url = create(uploads, phone, data)
    assert patch(url, phone, data[:1000], 0).status_code == 204
    row = upload_row(session, url)
    assert row is not None
    current_store().discard(row.key)

    assert_problem(patch(url, phone, data[1000:], 1000), 404, "not-found")

    assert upload_row(session, url) is None


# --- checksums ----------------------------------------------------------------------------------

def corrupt_sha256(chunk: bytes) -> Any:
    return hashlib.sha256(b"!" + chunk)


class CorruptingUploader(Uploader):
    """Sends a checksum of other bytes than the chunk, as a line that flips a bit would."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", corrupt_sha256)  # type: ignore[assignment]


def test_a_chunk_that_does_not_match_its_checksum_is_460_and_not_kept(
        session: Any, uploads: str, phone: dict[str, str]) -> None:
    data = photo(seed=4)
    sent = uploader(uploads, phone, data, cls=CorruptingUploader)

    with pytest.raises(TusUploadFailed) as failed:
        sent.upload()

    assert failed.value.status_code == 460
    assert head(url_of(sent), phone).headers["Upload-Offset"] == "0"
    row = upload_row(session, url_of(sent))
    assert row is not None
    assert current_store().size(row.key) == 0


def test_exact_answer_to_a_checksum_mismatch(uploads: str, phone: dict[str, str]) -> None:
    data = photo(1000, seed=5)
    url = create(uploads, phone, data)
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()

    answer = patch(url, phone, data, 0, **{"Upload-Checksum": f"sha256 {wrong}"})

    assert_problem(answer, 460, "checksum-mismatch")
    assert answer.headers["Tus-Resumable"] == "1.0.0"
    good = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert patch(url, phone, data, 0, **{"Upload-Checksum": f"sha256 {good}"}).status_code == 204


@pytest.mark.parametrize("value", ["md5 AAAA", "sha256 not-base64!", "sha1 AAAA", "sha256"])
def test_a_malformed_or_unknown_checksum_is_400(uploads: str, phone: dict[str, str],
                                                value: str) -> None:
    data = b"x" * 10
    url = create(uploads, phone, data)
    assert_problem(patch(url, phone, data, 0, **{"Upload-Checksum": value}), 400,
                   "invalid-upload-header")


def test_a_file_that_is_not_what_was_announced_is_460_and_discarded(
        session: Any, uploads: str, phone: dict[str, str], upload_dir: Path) -> None:
    data = photo(seed=6)
    sent = uploader(uploads, phone, data, digest=sha(b"another photo"))

    with pytest.raises(TusUploadFailed) as failed:
        sent.upload()

    assert failed.value.status_code == 460
    assert b"checksum-mismatch" in failed.value.response_content
    assert head(url_of(sent), phone).status_code == 404
    assert upload_row(session, url_of(sent)) is None
    assert services.ready(session, [sha(data), sha(b"another photo")]) == set()
    assert not list((upload_dir / "partial").iterdir())


# --- content addressing -------------------------------------------------------------------------

def test_a_photo_already_stored_is_born_complete_and_stored_once(
        session: Any, uploads: str, phone: dict[str, str], other_phone: dict[str, str]) -> None:
    data = photo(seed=8)
    uploader(uploads, phone, data).upload()

    answer = requests.post(uploads, timeout=TIMEOUT, headers={
        **other_phone, **TUS, "Upload-Length": str(MB), "Upload-Metadata": meta_header(sha(data))})
    assert answer.status_code == 201
    assert answer.headers["Upload-Offset"] == str(MB)
    again = uploader(uploads, phone, data)  # tuspy ignores that offset and sends from 0
    again.upload()

    assert again.offset == MB
    assert session.scalar(sa.select(sa.func.count()).select_from(StoredFile)) == 1
    assert session.scalar(sa.select(sa.func.count()).select_from(Upload).where(
        Upload.completed_at.is_not(None))) == 3


def test_a_known_photo_with_another_length_is_refused(uploads: str, phone: dict[str, str]
                                                      ) -> None:
    data = photo(1000, seed=9)
    uploader(uploads, phone, data).upload()

    answer = requests.post(uploads, timeout=TIMEOUT, headers={
        **phone, **TUS, "Upload-Length": "999", "Upload-Metadata": meta_header(sha(data))})

    assert_problem(answer, 400, "invalid-upload-header")


def test_ready_answers_with_one_query(session: Any, uploads: str, phone: dict[str, str]) -> None:
    data = photo(5000, seed=10)
    uploader(uploads, phone, data).upload()
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = session.get_bind()
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        found = services.ready(session, [sha(data).upper(), sha(b"missing")])
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)

    assert found == {sha(data)}
    assert len([s for s in statements if "sync_stored_files" in s]) == 1
    assert services.ready(session, []) == set()


# --- limits and protocol errors -----------------------------------------------------------------

def test_options_says_what_the_server_speaks(app: Any, uploads: str) -> None:
    answer = requests.options(uploads, timeout=TIMEOUT)

    assert answer.status_code == 204
    assert answer.headers["Tus-Version"] == "1.0.0"
    assert answer.headers["Tus-Extension"] == "creation,checksum,termination"
    assert answer.headers["Tus-Max-Size"] == str(app.config["NONGDAI_SYNC_UPLOAD_MAX_BYTES"])
    assert answer.headers["Tus-Checksum-Algorithm"] == "sha1,sha256"


def test_an_upload_larger_than_the_limit_is_413(app: Any, uploads: str,
                                                phone: dict[str, str]) -> None:
    app.config["NONGDAI_SYNC_UPLOAD_MAX_BYTES"] = 64 * 1024
    data = photo(64 * 1024 + 1, seed=11)

    with pytest.raises(TusCommunicationError) as failed:
        uploader(uploads, phone, data).upload()
    assert failed.value.status_code == 413

    fits = create(uploads, phone, data[:1000])
    assert_problem(patch(fits, phone, data[:1001], 0), 413, "upload-too-large")
    assert_problem(patch(fits, phone, data, 0), 413, "payload-too-large")
    assert patch(fits, phone, data[:1000], 0).status_code == 204


def test_a_wrong_offset_is_409_with_the_servers_offset(uploads: str,
                                                      phone: dict[str, str]) -> None:
    data = photo(1000, seed=12)
    url = create(uploads, phone, data)
    assert patch(url, phone, data[:100], 0).status_code == 204

    answer = patch(url, phone, data[:100], 0)

    assert_problem(answer, 409, "upload-offset-mismatch")
    assert answer.headers["Upload-Offset"] == "100"


def test_two_phones_sending_the_same_chunk_at_once_one_wins(
        uploads: str, phone: dict[str, str]) -> None:
    data = photo(200 * 1024, seed=13)
    url = create(uploads, phone, data)
    statuses: list[int] = []

    def send() -> None:
        statuses.append(patch(url, phone, data[:100 * 1024], 0).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [204, 409]
    assert head(url, phone).headers["Upload-Offset"] == str(100 * 1024)


@pytest.mark.parametrize("version", [None, "0.2.2"])
def test_requests_without_the_tus_version_are_412(uploads: str, phone: dict[str, str],
                                                  version: str | None) -> None:
    url = create(uploads, phone, b"abc")
    sent = {**phone, **({"Tus-Resumable": version} if version else {})}
    answers = [
        requests.post(uploads, headers={**sent, "Upload-Length": "3",
                                        "Upload-Metadata": meta_header(sha(b"abc"))},
                      timeout=TIMEOUT),
        requests.patch(url, data=b"abc", timeout=TIMEOUT, headers={
            **sent, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}),
        requests.delete(url, headers=sent, timeout=TIMEOUT),
    ]
    for answer in answers:
        assert_problem(answer, 412, "tus-version-unsupported")
        assert answer.headers["Tus-Version"] == "1.0.0"
    answer = requests.head(url, headers=sent, timeout=TIMEOUT)
    assert answer.status_code == 412
    assert answer.headers["Tus-Version"] == "1.0.0"


@pytest.mark.parametrize("headers", [
    {"Upload-Metadata": meta_header(sha(b"abc"))},  # no Upload-Length
    {"Upload-Length": "-3", "Upload-Metadata": meta_header(sha(b"abc"))},
    {"Upload-Length": "3"},  # no sha256
    {"Upload-Length": "3", "Upload-Metadata": "sha256 bm90IGhleA=="},  # "not hex"
    {"Upload-Length": "3", "Upload-Metadata": "sha256 !!!"},
    {"Upload-Length": "3", "Upload-Metadata": meta_header(sha(b"abc")) + ",sha256 YQ=="},
    {"Upload-Length": "0", "Upload-Metadata": meta_header(sha(b""))},
])
def test_a_malformed_creation_is_400(uploads: str, phone: dict[str, str],
                                     headers: dict[str, str]) -> None:
    answer = requests.post(uploads, headers={**phone, **TUS, **headers}, timeout=TIMEOUT)
    assert_problem(answer, 400, "invalid-upload-header")


def test_a_chunk_in_another_media_type_is_415(uploads: str, phone: dict[str, str]) -> None:
    url = create(uploads, phone, b"abc")
    answer = patch(url, phone, b"abc", 0, **{"Content-Type": "application/octet-stream"})
    assert_problem(answer, 415, "unsupported-media-type")
    empty = requests.patch(url, headers={**phone, **TUS, "Upload-Offset": "0"}, timeout=TIMEOUT)
    assert_problem(empty, 415, "unsupported-media-type")


def test_a_session_without_a_device_cannot_upload(session: Any, station: Any,
                                                  uploads: str) -> None:
    plain = f.auth_headers(session, f.coordinator(session, station))
    answer = requests.post(uploads, headers={**plain, **TUS, "Upload-Length": "3",
                                             "Upload-Metadata": meta_header(sha(b"abc"))},
                           timeout=TIMEOUT)
    assert_problem(answer, 403, "forbidden")


def test_another_coordinators_upload_is_404(uploads: str, phone: dict[str, str],
                                           other_phone: dict[str, str]) -> None:
    data = photo(1000, seed=14)
    url = create(uploads, phone, data)

    assert head(url, other_phone).status_code == 404
    assert_problem(patch(url, other_phone, data, 0), 404, "not-found")
    assert_problem(requests.delete(url, headers={**other_phone, **TUS}, timeout=TIMEOUT), 404,
                   "not-found")
    with pytest.raises(TusCommunicationError):
        Uploader(file_stream=io.BytesIO(data), url=url, client=tus.TusClient(uploads,
                 headers=other_phone))
    assert head(url, phone).headers["Upload-Offset"] == "0"


# --- termination --------------------------------------------------------------------------------

def test_an_abandoned_upload_is_gone_with_its_bytes(session: Any, uploads: str,
                                                   phone: dict[str, str]) -> None:
    data = photo(seed=15)
    sent = uploader(uploads, phone, data)
    sent.upload(stop_at=CHUNK)
    row = upload_row(session, url_of(sent))
    assert row is not None
    assert current_store().size(row.key) == CHUNK

    answer = requests.delete(url_of(sent), headers={**phone, **TUS}, timeout=TIMEOUT)

    assert answer.status_code == 204
    assert answer.headers["Tus-Resumable"] == "1.0.0"
    assert head(url_of(sent), phone).status_code == 404
    assert current_store().size(row.key) == 0
    assert upload_row(session, url_of(sent)) is None


def test_a_complete_upload_cannot_be_terminated(uploads: str, phone: dict[str, str]) -> None:
    data = photo(1000, seed=16)
    sent = uploader(uploads, phone, data)
    sent.upload()

    answer = requests.delete(url_of(sent), headers={**phone, **TUS}, timeout=TIMEOUT)

    assert_problem(answer, 409, "upload-complete")


# --- housekeeping and the store interface -------------------------------------------------------

def test_abandoned_uploads_expire_with_their_bytes(app: Any, session: Any, uploads: str,
                                                   phone: dict[str, str]) -> None:
    data = photo(seed=17)
    old, fresh = uploader(uploads, phone, data), uploader(uploads, phone, photo(seed=18))
    old.upload(stop_at=CHUNK)
    fresh.upload(stop_at=CHUNK)
    done = uploader(uploads, phone, photo(1000, seed=19))
    done.upload()
    days = app.config["NONGDAI_SYNC_MAX_OFFLINE_DAYS"]
    for url in (url_of(old), url_of(done)):
        session.execute(sa.update(Upload).where(
            Upload.public_id == uuid.UUID(url.rsplit("/", 1)[1])).values(
            created_at=utcnow() - timedelta(days=days + 1)))
    session.commit()
    row = upload_row(session, url_of(old))
    assert row is not None

    assert jobs.run("sync.uploads.expire") == "ok"

    assert current_store().size(row.key) == 0
    assert upload_row(session, url_of(old)) is None
    assert upload_row(session, url_of(fresh)) is not None
    assert upload_row(session, url_of(done)) is not None  # a finished one stays


def test_another_store_serves_the_same_protocol(app: Any, session: Any, uploads: str,
                                                phone: dict[str, str], live_server: str) -> None:
    app.config["NONGDAI_SYNC_STORE"] = "tests.sync.test_uploads_store:MemoryStore"
    app.extensions.pop("nongdai_attachment_store", None)
    data = photo(seed=20)

    uploader(uploads, phone, data).upload()

    assert type(current_store()).__name__ == "MemoryStore"
    staff = f.auth_headers(session, f.staff(session))
    answer = requests.get(f"{live_server}/api/v1/sync/attachments/{sha(data)}", headers=staff,
                          timeout=TIMEOUT)
    assert answer.content == data
