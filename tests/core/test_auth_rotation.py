"""Refresh rotation with a grace window: a retry whose answer was lost keeps the session.

A coordinator on 2G sends a refresh, the server rotates, the answer is lost, and the phone
retries with the same refresh token. Within ``NONGDAI_REFRESH_GRACE_SECONDS`` it gets the same
successor again; after the window, or once the successor was used, the reuse still revokes the
whole session.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.auth import rotation, tokens
from core.auth.models import AuthSession, RefreshToken
from core.db import utcnow
from tests import factories


@pytest.fixture
def coordinator(session: Any) -> Any:
    station = factories.station(session, [factories.village(session)])
    row = factories.coordinator(session, station)
    session.commit()
    return row


sign_in = factories.token_pair


def refresh(client: Any, refresh_token: str) -> Any:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


def me(client: Any, access_token: str) -> int:
    return client.get("/api/v1/auth/me",
                      headers={"Authorization": f"Bearer {access_token}"}).status_code


def actions(session: Any) -> list[str]:
    session.rollback()  # read what the requests committed
    return list(session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)))


def revoked(session: Any) -> bool:
    session.rollback()
    return session.scalars(sa.select(AuthSession.revoked_at)).one() is not None


def spend_earlier(session: Any, refresh_token: str, seconds: int) -> None:
    """Pretend ``refresh_token`` was rotated ``seconds`` ago."""
    token = session.scalars(sa.select(RefreshToken).where(
        RefreshToken.token_hash == tokens.refresh_hash(refresh_token))).one()
    token.used_at = utcnow() - timedelta(seconds=seconds)
    session.commit()


def assert_reused(response: Any) -> None:
    assert response.status_code == 401
    assert response.get_json()["code"] == "refresh-reused"


def test_grace_defaults_to_thirty_seconds(app):
    assert app.config["NONGDAI_REFRESH_GRACE_SECONDS"] == 30


def test_a_retry_within_grace_gets_the_same_successor(client, session, coordinator):
    first = sign_in(session, coordinator)
    lost = refresh(client, first["refresh_token"])  # rotated, but the answer never arrived
    assert lost.status_code == 200

    retry = refresh(client, first["refresh_token"])
    assert retry.status_code == 200
    again = retry.get_json()
    assert again["refresh_token"] == lost.get_json()["refresh_token"]
    assert again["access_token"] != lost.get_json()["access_token"]
    assert 0 < again["refresh_expires_in"] <= lost.get_json()["refresh_expires_in"]
    for access in (first["access_token"], lost.get_json()["access_token"],
                   again["access_token"]):
        assert me(client, access) == 200
    assert not revoked(session)
    assert actions(session) == ["auth.token_refreshed", "auth.token_refresh_retried"]

    onward = refresh(client, again["refresh_token"])  # the successor rotates as usual
    assert onward.status_code == 200
    assert onward.get_json()["refresh_token"] not in (first["refresh_token"],
                                                      again["refresh_token"])


def test_the_successor_is_stored_hashed_only(client, session, coordinator):
    first = sign_in(session, coordinator)
    successor = refresh(client, first["refresh_token"]).get_json()["refresh_token"]
    session.rollback()
    stored = session.scalars(sa.select(RefreshToken.token_hash).order_by(RefreshToken.id)).all()
    assert stored == [tokens.refresh_hash(first["refresh_token"]),
                      tokens.refresh_hash(successor)]
    assert len(successor) == 43  # as long as a random one, base64url without padding


def test_a_retry_after_grace_revokes_the_session(client, session, coordinator):
    first = sign_in(session, coordinator)
    second = refresh(client, first["refresh_token"]).get_json()
    spend_earlier(session, first["refresh_token"], 31)

    assert_reused(refresh(client, first["refresh_token"]))
    assert revoked(session)  # committed on the side, although the answer was a 401
    assert refresh(client, second["refresh_token"]).status_code == 401
    assert me(client, second["access_token"]) == 401
    event = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "auth.refresh_reused")).one()
    assert event.summary == {"kind": "coordinator", "revoked": True, "reason": "after-grace"}


def test_grace_is_configurable(app, client, session, coordinator):
    app.config["NONGDAI_REFRESH_GRACE_SECONDS"] = 120
    first = sign_in(session, coordinator)
    second = refresh(client, first["refresh_token"]).get_json()
    spend_earlier(session, first["refresh_token"], 90)
    retry = refresh(client, first["refresh_token"])
    assert retry.status_code == 200
    assert retry.get_json()["refresh_token"] == second["refresh_token"]


def test_a_retry_after_the_successor_was_used_revokes_the_session(client, session,
                                                                  coordinator):
    first = sign_in(session, coordinator)
    second = refresh(client, first["refresh_token"]).get_json()
    third = refresh(client, second["refresh_token"]).get_json()

    assert_reused(refresh(client, first["refresh_token"]))
    assert revoked(session)
    assert me(client, third["access_token"]) == 401
    assert refresh(client, third["refresh_token"]).status_code == 401
    event = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "auth.refresh_reused")).one()
    assert event.summary["reason"] == "successor-used"


def test_a_retry_of_a_revoked_session_is_refused(client, session, coordinator):
    first = sign_in(session, coordinator)
    refresh(client, first["refresh_token"])
    session.scalars(sa.select(AuthSession)).one().revoked_at = utcnow()
    session.commit()
    response = refresh(client, first["refresh_token"])
    assert response.status_code == 401
    assert response.get_json()["code"] == "invalid-token"


def _parallel(app: Any, refresh_token: str, count: int = 2) -> list[Any]:
    """``count`` refreshes of one token, each from its own thread and client."""
    answers: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            answers.append(refresh(app.test_client(), refresh_token))
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return answers


def _assert_one_successor(answers: list[Any]) -> str:
    assert [a.status_code for a in answers] == [200] * len(answers), [
        a.get_json() for a in answers]
    successors = {a.get_json()["refresh_token"] for a in answers}
    assert len(successors) == 1
    return successors.pop()


def test_parallel_refreshes_of_one_token_keep_the_session(app, client, session, coordinator):
    first = sign_in(session, coordinator)
    successor = _assert_one_successor(_parallel(app, first["refresh_token"]))
    assert not revoked(session)
    assert sorted(actions(session)) == ["auth.token_refresh_retried", "auth.token_refreshed"]
    assert refresh(client, successor).status_code == 200


@pytest.mark.postgres
def test_parallel_refreshes_race_for_the_claim(app, client, session, coordinator,
                                               monkeypatch):
    """Both requests read the unspent token, then both try to spend it: the loser's UPDATE
    waits for the winner's commit, finds the token spent and answers the same successor."""
    first = sign_in(session, coordinator)
    both_read = threading.Barrier(2, timeout=20)
    claim = rotation._claim

    def claim_together(*args: Any) -> bool:
        both_read.wait()
        return claim(*args)

    monkeypatch.setattr(rotation, "_claim", claim_together)
    successor = _assert_one_successor(_parallel(app, first["refresh_token"]))
    assert not revoked(session)
    assert sorted(actions(session)) == ["auth.token_refresh_retried", "auth.token_refreshed"]
    monkeypatch.undo()
    assert refresh(client, successor).status_code == 200
