"""The tus routes under schemathesis, as tests/test_api_fuzz.py runs every route: their
OpenAPI description (headers, the binary chunk body) must hold for generated requests."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from schemathesis import GenerationMode

from core.authz import Principal
from sync.uploads import services
from tests import factories as f
from tests import test_api_fuzz as api_fuzz
from tests.test_api_fuzz import fuzz, operations

OURS = ("/api/v1/sync/uploads", "/api/v1/sync/attachments")
SHA_B64 = base64.b64encode(hashlib.sha256(b"photo").hexdigest().encode()).decode()


@schemathesis.serializer("application/offset+octet-stream")
def tus_chunk(_ctx: Any, value: Any) -> bytes:
    """A tus chunk is bytes; a generated non-string (a negative case) is sent as its JSON."""
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


@pytest.fixture(autouse=True)
def upload_dir(app: Any, tmp_path: Any) -> None:
    app.config["NONGDAI_SYNC_UPLOAD_DIR"] = str(tmp_path / "uploads")


@pytest.fixture
def admin(session: Any) -> Callable[[], dict[str, str]]:
    row = f.staff(session)
    return lambda: f.auth_headers(session, row)


def test_the_upload_routes_pass_every_check_as_staff(
        app: Any, admin: Callable[[], dict[str, str]]) -> None:
    ours = [op for op in operations(app) if op.path.startswith(OURS)]
    assert len(ours) == 5

    failures = [failure for operation in ours
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                for failure in fuzz(operation, mode, admin)]

    assert failures == [], "\n\n".join(failures)


# Checks of the answers themselves. Not positive_data_acceptance: a schema-valid chunk still
# meets the server's offset (409) and checksums (460), rules no schema states. Not
# negative_data_rejection: tus answers a request without Tus-Resumable 412, a status that
# check does not count as a refusal (test_uploads.py tests that 412 and its Tus-Version).
ANSWER_CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
                 "response_headers_conformance", "response_schema_conformance",
                 "missing_required_header")


def test_the_upload_routes_answer_a_coordinators_phone_as_documented(
        app: Any, session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """As their real caller (a device-bound coordinator), on an upload of their own: every
    generated request reaches the handler, and no answer is a 5xx or undocumented."""
    coordinator = f.coordinator(session, f.station(session, [f.village(session)]))
    headers, _device = f.device_headers(session, coordinator)
    own = services.create(session, Principal(
        kind="coordinator", id=coordinator.id, public_id=coordinator.public_id,
        roles=frozenset({"coordinator"})), 10 * 1024, f"sha256 {SHA_B64}")
    known = {"upload_id": str(own.public_id)}
    session.commit()
    selected = [check for check in api_fuzz.checks() if check.__name__ in ANSWER_CHECKS]
    assert len(selected) == len(ANSWER_CHECKS)
    monkeypatch.setattr(api_fuzz, "checks", lambda: selected)
    ours = [op for op in operations(app) if op.path.startswith("/api/v1/sync/uploads")]

    failures = [failure for operation in ours
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                for failure in fuzz(operation, mode, lambda: headers, known)]

    assert failures == [], "\n\n".join(failures)
