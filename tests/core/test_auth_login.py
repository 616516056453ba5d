"""Password sign-in for staff and coordinators: POST /auth/login."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.auth.models import AuthSession, Device
from core.db import utcnow
from tests import factories

PROBLEM = "application/problem+json"
PASSWORD = factories.PASSWORD


@pytest.fixture
def coordinator(session: Any) -> Any:
    station = factories.station(session, [factories.village(session)])
    row = factories.coordinator(session, station, username="wang")
    session.commit()
    return row


@pytest.fixture
def admin(session: Any) -> Any:
    row = factories.staff(session, roles=("admin",), username="li")
    session.commit()
    return row


def login(client: Any, session: Any, username: str, password: str = PASSWORD,
          **extra: Any) -> Any:
    session.commit()  # end the test's transaction: the request's side transactions need that
    environ = extra.pop("environ_base", {})
    return client.post("/api/v1/auth/login",
                       json={"username": username, "password": password, **extra},
                       environ_base=environ)


def whoami(client: Any, session: Any, response: Any) -> dict[str, Any]:
    session.commit()
    token = response.get_json()["access_token"]
    reply = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200
    return reply.get_json()


def assert_invalid_credentials(response: Any) -> dict[str, Any]:
    assert response.status_code == 401
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["code"] == "invalid-credentials"
    return {k: v for k, v in problem.items() if k != "request_id"}


def test_staff_signs_in(client, session, admin):
    response = login(client, session, "li")
    assert response.status_code == 200
    assert whoami(client, session, response)["roles"] == ["admin"]
    event = session.scalars(sa.select(AuditEvent)).one()
    assert event.action == "auth.signed_in"
    assert event.actor == f"staff:{admin.public_id}"
    assert event.summary == {"method": "password", "kind": "staff", "device": None}


def test_username_is_case_insensitive(client, session, admin):
    assert login(client, session, "  LI ").status_code == 200


def test_coordinator_signs_in(client, session, coordinator):
    response = login(client, session, "wang")
    assert response.status_code == 200
    body = whoami(client, session, response)
    assert body["kind"] == "coordinator"
    assert body["village_ids"] == [str(v.public_id) for v in coordinator.station.villages]


def test_failures_look_the_same(client, session, admin, coordinator):
    coordinator.is_active = False
    wrong = assert_invalid_credentials(login(client, session, "li", "wrong password!"))
    unknown = assert_invalid_credentials(login(client, session, "nobody"))
    inactive = assert_invalid_credentials(login(client, session, "wang"))
    assert wrong == unknown == inactive
    assert session.scalar(sa.select(sa.func.count()).select_from(AuthSession)) == 0


def test_rate_limited_per_username_even_with_the_right_password(app, client, session, admin):
    app.config["NONGDAI_LOGIN_PER_USER_PER_HOUR"] = 2
    for n in range(2):
        response = login(client, session, "li", "guess",
                         environ_base={"REMOTE_ADDR": f"10.2.0.{n}"})
        assert_invalid_credentials(response)
    response = login(client, session, "li", environ_base={"REMOTE_ADDR": "10.2.0.9"})
    assert response.status_code == 429
    assert response.mimetype == PROBLEM
    assert int(response.headers["Retry-After"]) > 0


def test_rate_limited_per_client_address(app, client, session, admin, coordinator):
    app.config["NONGDAI_LOGIN_PER_CLIENT_PER_HOUR"] = 2
    here = {"REMOTE_ADDR": "10.3.0.1"}
    assert login(client, session, "li", environ_base=here).status_code == 200
    assert login(client, session, "nobody", environ_base=here).status_code == 401
    response = login(client, session, "wang", environ_base=here)
    assert response.status_code == 429
    assert response.get_json()["code"] == "rate-limited"
    assert login(client, session, "wang", environ_base={"REMOTE_ADDR": "10.3.0.2"}
                 ).status_code == 200


def test_correct_sign_ins_never_lock_the_account(app, client, session, admin):
    limit = app.config["NONGDAI_LOGIN_PER_USER_PER_HOUR"]
    for n in range(limit + 2):
        response = login(client, session, "li", environ_base={"REMOTE_ADDR": f"10.4.0.{n}"})
        assert response.status_code == 200, (n, response.get_json())


def test_failures_below_the_limit_do_not_block_the_right_password(app, client, session, admin):
    app.config["NONGDAI_LOGIN_PER_USER_PER_HOUR"] = 3
    for _ in range(2):
        assert_invalid_credentials(login(client, session, "li", "guess"))
    assert login(client, session, "li").status_code == 200
    assert_invalid_credentials(login(client, session, "li", "guess"))
    assert login(client, session, "li").status_code == 429


def test_the_client_address_limit_counts_successes_too(app, client, session, admin):
    app.config["NONGDAI_LOGIN_PER_CLIENT_PER_HOUR"] = 2
    here = {"REMOTE_ADDR": "10.5.0.1"}
    assert login(client, session, "li", environ_base=here).status_code == 200
    assert login(client, session, "li", environ_base=here).status_code == 200
    assert login(client, session, "li", environ_base=here).status_code == 429


@pytest.mark.parametrize("spelling", [" approver", "APPROVER ", "\tapprover", "Approver"])
def test_every_spelling_of_a_username_signs_in(client, session, spelling):
    factories.staff(session, roles=("approver",), username="approver")
    assert login(client, session, spelling).status_code == 200


def test_every_spelling_of_a_username_counts_against_one_account(app, client, session):
    factories.staff(session, roles=("approver",), username="approver")
    app.config["NONGDAI_LOGIN_PER_USER_PER_HOUR"] = 3
    for n, spelling in enumerate([" approver", "APPROVER ", "\tapprover"]):
        response = login(client, session, spelling, "guess",
                         environ_base={"REMOTE_ADDR": f"10.6.0.{n}"})
        assert_invalid_credentials(response)
    for spelling in ["approver", " approver", "APPROVER ", "\tapprover"]:
        response = login(client, session, spelling, environ_base={"REMOTE_ADDR": "10.6.0.9"})
        assert response.status_code == 429, spelling


def test_coordinator_registers_a_device(client, session, coordinator):
    device_id = uuid.uuid4()
    response = login(client, session, "wang", device={"id": str(device_id), "label": "红米 9A"})
    assert response.status_code == 200
    pair = response.get_json()
    assert pair["refresh_expires_in"] == 90 * 24 * 3600
    assert whoami(client, session, response)["device_id"] == str(device_id)
    device = session.scalars(sa.select(Device)).one()
    assert (device.public_id, device.coordinator_id, device.label) == (
        device_id, coordinator.id, "红米 9A")
    auth = session.scalars(sa.select(AuthSession)).one()
    assert auth.device_id == device.id

    again = login(client, session, "wang", device={"id": str(device_id)})
    assert again.status_code == 200
    assert session.scalar(sa.select(sa.func.count()).select_from(Device)) == 1
    assert session.scalars(sa.select(Device.label)).one() == "红米 9A"


def test_device_of_another_coordinator_conflicts(client, session, coordinator):
    factories.coordinator(session, coordinator.station, username="zhao")
    session.commit()
    device = {"id": str(uuid.uuid4()), "label": "phone"}
    assert login(client, session, "wang", device=device).status_code == 200
    response = login(client, session, "zhao", device=device)
    assert response.status_code == 409
    assert response.mimetype == PROBLEM
    assert response.get_json()["code"] == "device-taken"


def test_revoked_device_cannot_sign_in(client, session, coordinator):
    device = {"id": str(uuid.uuid4())}
    assert login(client, session, "wang", device=device).status_code == 200
    session.scalars(sa.select(Device)).one().revoked_at = utcnow()
    response = login(client, session, "wang", device=device)
    assert response.status_code == 403
    assert response.get_json()["code"] == "device-revoked"


def test_staff_cannot_bind_a_device(client, session, admin):
    response = login(client, session, "li", device={"id": str(uuid.uuid4())})
    assert response.status_code == 422
    assert "device" in response.get_json()["errors"]


@pytest.mark.parametrize("body", [
    {"username": "li"},
    {"username": "li", "password": PASSWORD, "extra": 1},
    {"username": "li", "password": PASSWORD, "device": {"id": "not-a-uuid"}},
])
def test_bad_bodies_are_422(client, session, admin, body):
    session.commit()
    response = client.post("/api/v1/auth/login", json=body)
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
