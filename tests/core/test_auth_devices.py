"""Coordinators' devices: GET /devices and POST /devices/<id>/revoke."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.auth.models import AuthSession, Device
from tests import factories

PROBLEM = "application/problem+json"


@pytest.fixture
def people(session: Any) -> dict[str, Any]:
    station = factories.station(session, [factories.village(session)])
    rows = {
        "wang": factories.coordinator(session, station, username="wang"),
        "zhao": factories.coordinator(session, station, username="zhao"),
        "admin": factories.staff(session, roles=("admin",), username="admin"),
        "reviewer": factories.staff(session, roles=("reviewer",), username="rev"),
    }
    session.commit()
    return rows


def call(client: Any, session: Any, method: str, url: str, token: str | None = None,
         **kwargs: Any) -> Any:
    session.commit()  # end the test's transaction: the request's side transactions need that
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.open(url, method=method, headers=headers, **kwargs)


def device_login(client: Any, session: Any, username: str, device_id: uuid.UUID) -> dict:
    response = call(client, session, "POST", "/api/v1/auth/login",
                    json={"username": username, "password": factories.PASSWORD,
                          "device": {"id": str(device_id), "label": f"{username}'s phone"}})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def token_for(session: Any, row: Any) -> str:
    return factories.auth_headers(session, row)["Authorization"].split()[1]


def test_admin_sees_all_devices_a_coordinator_their_own(client, session, people):
    ids = {name: uuid.uuid4() for name in ("wang", "zhao")}
    for name, device_id in ids.items():
        device_login(client, session, name, device_id)

    admin = call(client, session, "GET", "/api/v1/devices", token_for(session, people["admin"]))
    assert admin.status_code == 200
    assert {d["id"] for d in admin.get_json()["items"]} == {str(i) for i in ids.values()}

    own = call(client, session, "GET", "/api/v1/devices", token_for(session, people["wang"]))
    items = own.get_json()["items"]
    assert [d["id"] for d in items] == [str(ids["wang"])]
    assert items[0]["coordinator_id"] == str(people["wang"].public_id)
    assert items[0]["label"] == "wang's phone"
    assert items[0]["revoked_at"] is None

    reviewer = call(client, session, "GET", "/api/v1/devices",
                    token_for(session, people["reviewer"]))
    assert reviewer.status_code == 403


def test_device_list_pages_with_a_cursor(client, session, people):
    created = {str(uuid.uuid4()) for _ in range(3)}
    for device_id in created:
        device_login(client, session, "wang", uuid.UUID(device_id))
    token = token_for(session, people["admin"])
    seen, cursor = [], None
    for _ in range(5):
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = call(client, session, "GET", "/api/v1/devices", token, query_string=query)
        assert page.status_code == 200
        body = page.get_json()
        seen += [d["id"] for d in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(created)
    assert len(seen) == 3


def test_coordinator_revokes_own_device_and_its_sessions_end(client, session, people):
    device_id = uuid.uuid4()
    pair = device_login(client, session, "wang", device_id)
    other = token_for(session, people["wang"])  # a session without the device survives

    response = call(client, session, "POST", f"/api/v1/devices/{device_id}/revoke",
                    pair["access_token"])
    assert response.status_code == 200
    assert response.get_json()["revoked_at"] is not None

    me = call(client, session, "GET", "/api/v1/auth/me", pair["access_token"])
    assert me.status_code == 401
    assert me.get_json()["code"] == "invalid-token"
    again = call(client, session, "POST", "/api/v1/auth/refresh",
                 json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 401
    assert call(client, session, "GET", "/api/v1/auth/me", other).status_code == 200

    relogin = call(client, session, "POST", "/api/v1/auth/login",
                   json={"username": "wang", "password": factories.PASSWORD,
                         "device": {"id": str(device_id)}})
    assert relogin.status_code == 403
    event = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "device.revoked")).one()
    assert event.object_id == str(device_id)
    assert event.summary["sessions_revoked"] == 1


def test_admin_revokes_any_device(client, session, people):
    device_id = uuid.uuid4()
    device_login(client, session, "wang", device_id)
    device_login(client, session, "wang", device_id)
    response = call(client, session, "POST", f"/api/v1/devices/{device_id}/revoke",
                    token_for(session, people["admin"]))
    assert response.status_code == 200
    device = session.scalars(sa.select(Device)).one()
    assert device.revoked_at is not None
    live = session.scalar(sa.select(sa.func.count()).select_from(AuthSession).where(
        AuthSession.device_id == device.id, AuthSession.revoked_at.is_(None)))
    assert live == 0


def test_another_coordinator_cannot_see_or_revoke(client, session, people):
    device_id = uuid.uuid4()
    device_login(client, session, "wang", device_id)
    response = call(client, session, "POST", f"/api/v1/devices/{device_id}/revoke",
                    token_for(session, people["zhao"]))
    assert response.status_code == 404
    assert response.mimetype == PROBLEM
    assert session.scalars(sa.select(Device.revoked_at)).one() is None


def test_farmer_cannot_list_devices(client, session):
    farmer = factories.farmer(session, factories.village(session))
    session.commit()
    response = call(client, session, "GET", "/api/v1/devices", token_for(session, farmer))
    assert response.status_code == 403
