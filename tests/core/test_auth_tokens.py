"""Access tokens, refresh rotation with reuse detection, sign-out, and /auth/me."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import jwt
import pytest
import sqlalchemy as sa

from core import security
from core.audit import AuditEvent
from core.auth import keys, sessions
from core.auth.models import AuthSession, RefreshToken
from core.db import utcnow
from tests import factories

PROBLEM = "application/problem+json"


@pytest.fixture
def staff(session: Any) -> Any:
    row = factories.staff(session, roles=("admin", "reviewer"))
    session.commit()
    return row


sign_in = factories.token_pair


def call(client: Any, session: Any, method: str, url: str, token: str | None = None,
         **kwargs: Any) -> Any:
    session.commit()  # end the test's transaction: the request's side transactions need that
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.open(url, method=method, headers=headers, **kwargs)


def me(client: Any, session: Any, token: str) -> Any:
    return call(client, session, "GET", "/api/v1/auth/me", token)


def refresh(client: Any, session: Any, refresh_token: str) -> Any:
    return call(client, session, "POST", "/api/v1/auth/refresh",
                json={"refresh_token": refresh_token})


def assert_invalid_token(response: Any, code: str = "invalid-token") -> None:
    assert response.status_code == 401
    assert response.mimetype == PROBLEM
    assert response.get_json()["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_me_describes_staff(client, session, staff):
    pair = sign_in(session, staff)
    response = me(client, session, pair["access_token"])
    assert response.status_code == 200
    assert response.get_json() == {"kind": "staff", "id": str(staff.public_id), "name": "行员",
                                   "roles": ["admin", "reviewer"], "device_id": None,
                                   "village_ids": []}


def test_access_token_claims(app, session, staff):
    pair = sign_in(session, staff)
    claims = jwt.decode(pair["access_token"], keys.derive(keys.ACCESS_TOKEN),
                        algorithms=["HS256"], audience="nongdai-api", issuer="nongdai")
    auth = session.scalars(sa.select(AuthSession)).one()
    assert claims["sub"] == str(staff.public_id)
    assert claims["kind"] == "staff"
    assert claims["sid"] == str(auth.public_id)
    assert claims["did"] is None
    assert claims["exp"] - claims["iat"] == app.config["NONGDAI_ACCESS_TOKEN_SECONDS"]
    assert claims["jti"]


def test_without_token_me_is_401(client, session):
    response = call(client, session, "GET", "/api/v1/auth/me")
    assert response.status_code == 401
    assert response.get_json()["code"] == "unauthorized"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_tampered_tokens_are_refused(client, session, staff):
    token = sign_in(session, staff)["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["kind"] = "farmer"
    forged = [
        f"{header}.{_b64(claims)}.{signature}",  # payload changed, old signature
        f"{header}.{payload}.{signature[:-4]}AAAA",  # signature changed
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",  # unsigned
        jwt.encode({**claims, "kind": "staff"}, "another-key-that-is-long-enough-32b",
                   algorithm="HS256"),  # signed with another key
        "not-a-jwt",
    ]
    for bad in forged:
        assert_invalid_token(me(client, session, bad))
    assert me(client, session, token).status_code == 200


def test_expired_access_token_is_refused(client, session, staff, monkeypatch):
    issued = utcnow() - timedelta(hours=1)
    monkeypatch.setattr(sessions, "utcnow", lambda: issued)
    pair = sign_in(session, staff)
    monkeypatch.undo()
    assert_invalid_token(me(client, session, pair["access_token"]))
    fresh = refresh(client, session, pair["refresh_token"])  # the session itself lives on
    assert fresh.status_code == 200
    assert me(client, session, fresh.get_json()["access_token"]).status_code == 200


def test_refresh_rotates_the_pair(client, session, staff):
    first = sign_in(session, staff)
    response = refresh(client, session, first["refresh_token"])
    assert response.status_code == 200
    second = response.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["refresh_expires_in"] == 30 * 24 * 3600
    assert me(client, session, second["access_token"]).status_code == 200
    third = refresh(client, session, second["refresh_token"])
    assert third.status_code == 200
    actions = session.scalars(sa.select(AuditEvent.action)).all()
    assert actions.count("auth.token_refreshed") == 2


def test_reused_refresh_token_revokes_the_session(app, client, session, staff):
    app.config["NONGDAI_REFRESH_GRACE_SECONDS"] = 0  # no retry of a lost answer is excused
    first = sign_in(session, staff)
    second = refresh(client, session, first["refresh_token"]).get_json()

    replay = refresh(client, session, first["refresh_token"])
    assert_invalid_token(replay, "refresh-reused")

    assert_invalid_token(refresh(client, session, second["refresh_token"]))
    assert_invalid_token(me(client, session, second["access_token"]))
    auth = session.scalars(sa.select(AuthSession)).one()
    assert auth.revoked_at is not None  # survived the 401's rollback
    event = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "auth.refresh_reused")).one()
    assert event.object_id == str(auth.public_id)
    assert first["refresh_token"] not in str(event.summary)


def test_unknown_or_expired_refresh_token_is_refused(client, session, staff):
    pair = sign_in(session, staff)
    assert_invalid_token(refresh(client, session, "x" * 43))
    token = session.scalars(sa.select(RefreshToken)).one()
    token.expires_at = utcnow() - timedelta(seconds=1)
    assert_invalid_token(refresh(client, session, pair["refresh_token"]))


def test_refresh_stored_only_hashed(session, staff):
    pair = sign_in(session, staff)
    stored = session.scalars(sa.select(RefreshToken.token_hash)).one()
    assert stored == security.sha256_hex(pair["refresh_token"])
    assert pair["refresh_token"] not in stored


def test_logout_ends_the_session_at_once(client, session, staff):
    pair = sign_in(session, staff)
    other = sign_in(session, staff)  # another sign-in (another phone) is not affected
    response = call(client, session, "POST", "/api/v1/auth/logout", pair["access_token"])
    assert response.status_code == 204
    assert_invalid_token(me(client, session, pair["access_token"]))
    assert_invalid_token(refresh(client, session, pair["refresh_token"]))
    assert me(client, session, other["access_token"]).status_code == 200
    assert "auth.signed_out" in session.scalars(sa.select(AuditEvent.action)).all()


def test_deactivated_subject_loses_access(client, session, staff):
    pair = sign_in(session, staff)
    staff.is_active = False
    assert_invalid_token(me(client, session, pair["access_token"]))
    assert_invalid_token(refresh(client, session, pair["refresh_token"]))


def test_expired_session_is_refused(client, session, staff):
    pair = sign_in(session, staff)
    auth = session.scalars(sa.select(AuthSession)).one()
    auth.expires_at = utcnow() - timedelta(seconds=1)
    assert_invalid_token(me(client, session, pair["access_token"]))


def test_farmer_and_coordinator_principals(client, session):
    home, other = factories.village(session), factories.village(session)
    station = factories.station(session, [home, other])
    coordinator = factories.coordinator(session, station)
    farmer = factories.farmer(session, home)
    session.commit()
    c_token = sign_in(session, coordinator)["access_token"]
    f_token = sign_in(session, farmer)["access_token"]
    expected = sorted([str(home.public_id), str(other.public_id)])
    body = me(client, session, c_token).get_json()
    assert (body["kind"], body["roles"]) == ("coordinator", ["coordinator"])
    assert sorted(body["village_ids"]) == expected
    body = me(client, session, f_token).get_json()
    assert (body["kind"], body["roles"]) == ("farmer", ["farmer"])
    assert body["village_ids"] == [str(home.public_id)]


def test_last_used_is_written_at_most_once_a_minute(client, session, staff):
    pair = sign_in(session, staff)
    assert me(client, session, pair["access_token"]).status_code == 200
    auth = session.scalars(sa.select(AuthSession)).one()
    assert auth.last_used_at is not None

    recent = utcnow() - timedelta(seconds=10)
    auth.last_used_at = recent
    assert me(client, session, pair["access_token"]).status_code == 200
    assert session.scalars(sa.select(AuthSession.last_used_at)).one() == recent

    stale = utcnow() - timedelta(minutes=2)
    session.scalars(sa.select(AuthSession)).one().last_used_at = stale
    assert me(client, session, pair["access_token"]).status_code == 200
    assert session.scalars(sa.select(AuthSession.last_used_at)).one() > stale


def test_a_writing_request_records_use_in_its_own_transaction(client, session, staff):
    """The last-used time rides along with a state-changing request's commit; a failed
    request still records it (alone, after the rollback)."""
    headers = {"Authorization": f"Bearer {sign_in(session, staff)['access_token']}"}
    stale = utcnow() - timedelta(hours=1)
    session.scalars(sa.select(AuthSession)).one().last_used_at = stale
    session.commit()
    failed = client.post("/api/v1/counties", json={"code": "1"}, headers=headers)
    assert failed.status_code == 422
    assert session.scalars(sa.select(AuthSession.last_used_at)).one() > stale
    session.scalars(sa.select(AuthSession)).one().last_used_at = stale
    session.commit()
    made = client.post("/api/v1/counties", json={"code": "330599", "name": "测试县"},
                       headers=headers)
    assert made.status_code == 201, made.get_json()
    assert session.scalars(sa.select(AuthSession.last_used_at)).one() > stale
