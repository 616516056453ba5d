"""Authenticating a request: one SQL statement, a cached key, and public routes left alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core import security
from core.auth import sessions
from core.auth.models import AuthSession
from core.db import db, utcnow
from tests import factories


@pytest.fixture
def coordinator(session: Any) -> Any:
    villages = [factories.village(session), factories.village(session)]
    row = factories.coordinator(session, factories.station(session, villages), username="wang")
    session.commit()
    return row


def device_login(client: Any) -> dict[str, Any]:
    response = client.post("/api/v1/auth/login", json={
        "username": "wang", "password": factories.PASSWORD, "device": {"id": str(uuid.uuid4())}})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth_statements(app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The SQL statements run while a request authenticates its Bearer token.

    SQLite's ``BEGIN IMMEDIATE`` (issued by ``core.db`` to open every transaction) is left out:
    it marks the transaction, as PostgreSQL's implicit BEGIN does, and carries no query.
    """
    with app.app_context():
        engine = db.engine
    statements: list[str] = []
    authenticate = app.extensions["nongdai_authenticator"]

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith("BEGIN"):
            statements.append(statement.split(maxsplit=1)[0].upper())

    def counting(token: str) -> Any:
        sa.event.listen(engine, "before_cursor_execute", seen)
        try:
            return authenticate(token)
        finally:
            sa.event.remove(engine, "before_cursor_execute", seen)

    monkeypatch.setitem(app.extensions, "nongdai_authenticator", counting)
    return statements


def test_authentication_is_one_statement(client, session, coordinator, auth_statements):
    pair = device_login(client)
    first = client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))
    assert first.status_code == 200
    assert len(first.get_json()["village_ids"]) == 2
    # The first use records the last-used time, not while authenticating: after a read (or
    # with a writing request's own commit), see core.lifecycle.ride_along.
    assert auth_statements == ["SELECT"]
    assert session.scalars(sa.select(AuthSession.last_used_at)).one() is not None

    auth_statements.clear()
    second = client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))
    assert second.get_json() == first.get_json()
    assert auth_statements == ["SELECT"]


def test_a_coordinator_without_villages_is_still_authenticated(client, session):
    station = factories.station(session, [factories.village(session)])
    row = factories.coordinator(session, station)
    station.villages = []
    session.commit()
    token = sessions.issue_tokens(session, "coordinator", row.id)["access_token"]
    session.commit()
    response = client.get("/api/v1/auth/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json()["village_ids"] == []


def test_the_token_key_is_derived_once(client, session, coordinator):
    pair = device_login(client)
    assert client.get("/api/v1/auth/me", headers=bearer(pair["access_token"])).status_code == 200
    misses = security.derive_key.cache_info().misses
    for _ in range(3):
        assert client.get("/api/v1/auth/me",
                          headers=bearer(pair["access_token"])).status_code == 200
    assert security.derive_key.cache_info().misses == misses


def _expired_token(session: Any, row: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    earlier = utcnow() - timedelta(hours=1)
    monkeypatch.setattr(sessions, "utcnow", lambda: earlier)
    token = sessions.issue_tokens(session, "coordinator", row.id)["access_token"]
    monkeypatch.undo()
    session.commit()
    return token


@pytest.fixture
def stale_headers(session: Any, coordinator: Any,
                  monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """What a phone may still attach: an expired token, garbage, another scheme, nothing."""
    return [bearer(_expired_token(session, coordinator, monkeypatch)), bearer("garbage"),
            {"Authorization": "Basic d2FuZzp4"}, {"Authorization": "Bearer "}]


def test_sign_in_ignores_a_stale_authorization_header(client, session, coordinator,
                                                      stale_headers):
    for headers in stale_headers:
        response = client.post("/api/v1/auth/login", headers=headers,
                               json={"username": "wang", "password": factories.PASSWORD})
        assert response.status_code == 200, (headers, response.get_json())


def test_refresh_ignores_a_stale_authorization_header(client, session, coordinator,
                                                      stale_headers):
    refresh_token = sessions.issue_tokens(session, "coordinator", coordinator.id)[
        "refresh_token"]
    session.commit()
    for headers in stale_headers:
        response = client.post("/api/v1/auth/refresh", headers=headers,
                               json={"refresh_token": refresh_token})
        assert response.status_code == 200, (headers, response.get_json())
        refresh_token = response.get_json()["refresh_token"]


def test_code_requests_ignore_a_stale_authorization_header(client, stale_headers):
    for headers in stale_headers:
        response = client.post("/api/v1/auth/otp", headers=headers,
                               json={"phone": "13800001111"})
        assert response.status_code == 202


def test_a_protected_route_still_refuses_a_stale_header(client, stale_headers):
    for headers in stale_headers:
        response = client.get("/api/v1/auth/me", headers=headers)
        assert response.status_code == 401


@pytest.mark.parametrize("change", ["revoke_session", "deactivate", "other_device"])
def test_every_check_of_the_row_still_holds(client, session, coordinator, change):
    pair = device_login(client)
    auth = session.scalars(sa.select(AuthSession)).one()
    if change == "revoke_session":
        auth.revoked_at = utcnow()
    elif change == "deactivate":
        coordinator.is_active = False
    else:
        auth.device_id = None  # the token names a device the session no longer has
    session.commit()
    response = client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))
    assert response.status_code == 401
    assert response.get_json()["code"] == "invalid-token"
