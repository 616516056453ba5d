"""Coordinator and staff accounts: managed by admins, usernames unique across both."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.people.models import Coordinator, Staff
from core.security import verify_password
from tests import factories as f
from tests.core.test_people_helpers import API, World, assert_problem, build_world, creating

PASSWORD = "a-long-enough-password"


@pytest.fixture
def world(session: Any) -> World:
    return build_world(session)


@pytest.fixture
def admin(session: Any, world: World) -> dict[str, str]:
    return f.auth_headers(session, world.admin)


def _coordinator_body(world: World, **overrides: Any) -> dict[str, Any]:
    return {"username": "liu.wei", "name": "刘伟", "phone": "13911112222",
            "password": PASSWORD, "station_id": str(world.station_a.public_id), **overrides}


def _staff_body(**overrides: Any) -> dict[str, Any]:
    return {"username": "chen_jing", "name": "陈静", "password": PASSWORD,
            "roles": ["reviewer", "approver"], **overrides}


def _no_secrets(response: Any) -> None:
    text = response.get_data(as_text=True)
    assert "password" not in text
    assert PASSWORD not in text
    assert "argon2" not in text


def test_admin_creates_and_updates_a_coordinator(client: Any, session: Any, world: World,
                                                 admin: dict[str, str]) -> None:
    response = client.post(f"{API}/coordinators", json=_coordinator_body(world),
                           headers=creating(admin))
    assert response.status_code == 201, response.get_json()
    _no_secrets(response)
    body = response.get_json()
    assert body["station_id"] == str(world.station_a.public_id)
    assert set(body) == {"id", "username", "name", "phone", "station_id", "is_active",
                         "created_at"}
    url = f"{API}/coordinators/{body['id']}"
    response = client.patch(url, json={"station_id": str(world.station_b.public_id),
                                       "is_active": False}, headers=admin)
    assert response.status_code == 200
    _no_secrets(response)
    assert response.get_json()["station_id"] == str(world.station_b.public_id)
    assert response.get_json()["is_active"] is False
    session.rollback()
    row = session.scalars(sa.select(Coordinator).where(Coordinator.username == "liu.wei")).one()
    assert verify_password(row.password_hash, PASSWORD)
    summaries = session.scalars(sa.select(AuditEvent.summary).where(
        AuditEvent.action.like("coordinator.%")).order_by(AuditEvent.id)).all()
    assert summaries == [{"username": "liu.wei", "station_id": str(world.station_a.public_id)},
                         {"changed": ["is_active", "station_id"]}]
    assert PASSWORD not in str(summaries)


def test_coordinator_list_and_filter(client: Any, session: Any, world: World,
                                     admin: dict[str, str]) -> None:
    items = client.get(f"{API}/coordinators", headers=admin).get_json()["items"]
    assert [i["id"] for i in items] == sorted([str(world.coordinator_a.public_id),
                                               str(world.coordinator_b.public_id)])
    query = {"station_id": str(world.station_b.public_id)}
    items = client.get(f"{API}/coordinators", query_string=query,
                       headers=admin).get_json()["items"]
    assert [i["id"] for i in items] == [str(world.coordinator_b.public_id)]
    got = client.get(f"{API}/coordinators/{world.coordinator_a.public_id}", headers=admin)
    assert got.get_json()["username"] == world.coordinator_a.username
    _no_secrets(got)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"username": "Liu"}, "username"),
    ({"username": "ab"}, "username"),
    ({"username": "刘伟"}, "username"),
    ({"phone": "0571123456"}, "phone"),
    ({"password": "short"}, "password"),
    ({"station_id": "x"}, "station_id"),
    ({"is_active": False}, "is_active"),
    ({"password_hash": "x"}, "password_hash"),
])
def test_invalid_coordinators_are_422(client: Any, world: World, admin: dict[str, str],
                                      overrides: dict[str, Any], field: str) -> None:
    response = client.post(f"{API}/coordinators", json=_coordinator_body(world, **overrides),
                           headers=creating(admin))
    assert list(assert_problem(response, 422)["errors"]) == [field]


def test_unknown_station_is_404(client: Any, world: World, admin: dict[str, str]) -> None:
    response = client.post(f"{API}/coordinators", headers=creating(admin),
                           json=_coordinator_body(world, station_id=str(uuid.uuid4())))
    assert_problem(response, 404, "not-found")


def test_usernames_are_unique_across_staff_and_coordinators(
        client: Any, world: World, admin: dict[str, str]) -> None:
    taken = [world.admin.username, world.coordinator_a.username]
    for username in taken:
        response = client.post(f"{API}/coordinators", headers=creating(admin),
                               json=_coordinator_body(world, username=username))
        assert_problem(response, 409, "username-taken")
        response = client.post(f"{API}/staff", json=_staff_body(username=username),
                               headers=creating(admin))
        assert_problem(response, 409, "username-taken")


def test_admin_manages_staff(client: Any, session: Any, world: World,
                             admin: dict[str, str]) -> None:
    response = client.post(f"{API}/staff", json=_staff_body(roles=["reviewer", "approver",
                                                                   "reviewer"]),
                           headers=creating(admin))
    assert response.status_code == 201, response.get_json()
    _no_secrets(response)
    body = response.get_json()
    assert body["roles"] == ["approver", "reviewer"]
    url = f"{API}/staff/{body['id']}"
    response = client.patch(url, json={"roles": ["admin"], "name": "陈静"}, headers=admin)
    assert response.get_json()["roles"] == ["admin"]
    listed = client.get(f"{API}/staff", headers=admin).get_json()["items"]
    assert [s["id"] for s in listed] == sorted([str(world.admin.public_id), body["id"]])
    session.rollback()
    row = session.scalars(sa.select(Staff).where(Staff.username == "chen_jing")).one()
    assert row.roles == "admin"
    event = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "staff.update")).one()
    assert event.summary == {"changed": ["roles"], "roles": ["admin"]}


@pytest.mark.parametrize("roles", [[], ["farmer"], ["coordinator"], ["staff"], "admin"])
def test_staff_roles_are_a_non_empty_subset(client: Any, admin: dict[str, str],
                                            roles: Any) -> None:
    response = client.post(f"{API}/staff", json=_staff_body(roles=roles),
                           headers=creating(admin))
    assert list(assert_problem(response, 422, "validation-failed")["errors"]) == ["roles"]


def test_an_admin_cannot_lock_themself_out(client: Any, session: Any, world: World,
                                           admin: dict[str, str]) -> None:
    url = f"{API}/staff/{world.admin.public_id}"
    for change in ({"roles": ["reviewer"]}, {"is_active": False},
                   {"roles": ["admin"], "is_active": False}):
        assert_problem(client.patch(url, json=change, headers=admin), 409, "self-lockout")
    response = client.patch(url, json={"roles": ["admin", "approver"]}, headers=admin)
    assert response.get_json()["roles"] == ["admin", "approver"]
    other = f.staff(session, ("admin",))
    session.commit()
    response = client.patch(f"{API}/staff/{other.public_id}", json={"is_active": False},
                            headers=admin)
    assert response.get_json()["is_active"] is False


@pytest.mark.parametrize("roles", [("reviewer",), ("approver",)])
def test_only_admins_manage_people(client: Any, session: Any, world: World,
                                   roles: tuple[str, ...]) -> None:
    callers = [f.staff(session, roles), world.coordinator_a, world.farmer_a]
    session.commit()
    for caller in callers:
        headers = f.auth_headers(session, caller)
        for path, body in [("/staff", _staff_body()),
                           ("/coordinators", _coordinator_body(world))]:
            assert_problem(client.post(f"{API}{path}", json=body, headers=creating(headers)),
                           403, "forbidden")
            assert_problem(client.get(f"{API}{path}", headers=headers), 403)
        assert_problem(client.patch(f"{API}/staff/{world.admin.public_id}",
                                    json={"name": "x"}, headers=headers), 403)
        assert_problem(client.get(f"{API}/coordinators/{world.coordinator_a.public_id}",
                                  headers=headers), 403)
