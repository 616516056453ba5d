"""Farmers API: household profiles registered by coordinators and staff, scoped reads."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.crypto import vault
from core.people import idnumber
from core.people.models import Farmer
from tests import factories as f
from tests.core.test_people_helpers import API, World, assert_problem, build_world, creating

X_NUMBER = idnumber.make("330521", date(1985, 3, 9), 8)  # ends in X
assert X_NUMBER.endswith("X")


def with_check(first17: str) -> str:
    return first17 + idnumber.check_digit(first17)


@pytest.fixture
def world(session: Any) -> World:
    return build_world(session)


@pytest.fixture
def coordinator(session: Any, world: World) -> dict[str, str]:
    return f.auth_headers(session, world.coordinator_a)


def _body(world: World, **overrides: Any) -> dict[str, Any]:
    return {"name": "王五", "phone": "13712345678", "id_number": X_NUMBER,
            "village_id": str(world.village_a.public_id), **overrides}


def _register(client: Any, headers: dict[str, str], body: dict[str, Any]) -> Any:
    return client.post(f"{API}/farmers", json=body, headers=creating(headers))


def test_coordinator_registers_a_farmer(client: Any, session: Any, world: World,
                                        coordinator: dict[str, str]) -> None:
    response = _register(client, coordinator, _body(world, id_number=X_NUMBER.lower()))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["id_number_masked"] == "3305**********008X"
    assert body["birth_date"] == "1985-03-09"
    assert body["village_id"] == str(world.village_a.public_id)
    assert set(body) == {"id", "name", "phone", "id_number_masked", "birth_date",
                         "village_id", "is_active", "created_at"}
    session.rollback()
    row = session.scalars(sa.select(Farmer).where(Farmer.public_id == uuid.UUID(body["id"]))).one()
    assert X_NUMBER not in row.id_number_ciphertext
    assert vault().decrypt(row.id_number_ciphertext, "farmer.id_number") == X_NUMBER
    event = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "farmer.create")).one()
    assert event.summary == {"village_id": str(world.village_a.public_id),
                             "id_number": "3305**********008X"}
    assert event.actor == f"coordinator:{world.coordinator_a.public_id}"


@pytest.mark.parametrize(("field", "value"), [
    ("id_number", X_NUMBER[:17] + "1"),  # check digit
    ("id_number", with_check("33052119850230008")),  # 30 February
    ("id_number", with_check("33052118850309008")),  # before 1900
    ("id_number", X_NUMBER[:17]),
    ("id_number", "33052119850309007Y"),
    ("phone", "23712345678"),
    ("phone", "1371234567"),
    ("name", ""),
    ("village_id", "not-a-uuid"),
])
def test_invalid_fields_are_422(client: Any, world: World, coordinator: dict[str, str],
                                field: str, value: str) -> None:
    response = _register(client, coordinator, _body(world, **{field: value}))
    problem = assert_problem(response, 422, "validation-failed")
    assert list(problem["errors"]) == [field]
    if field == "id_number":  # never echoed, not even when invalid
        assert value not in response.get_data(as_text=True)


def test_server_owned_fields_are_refused(client: Any, world: World,
                                         coordinator: dict[str, str]) -> None:
    body = _body(world, id_number_masked="3305**********008X", birth_date="1985-03-09")
    problem = assert_problem(_register(client, {**coordinator, "Accept-Language": "en"}, body),
                             422)
    assert problem["errors"] == {"id_number_masked": ["Set by the server; it cannot be sent."],
                                 "birth_date": ["Set by the server; it cannot be sent."]}


def test_duplicates_are_409_without_saying_whose(client: Any, session: Any, world: World,
                                                 coordinator: dict[str, str]) -> None:
    number = idnumber.make("330521", date(1970, 1, 1), 5)
    other = f.auth_headers(session, world.coordinator_b)
    first = _register(client, other, _body(world, id_number=number, phone="13700000001",
                                           village_id=str(world.village_b.public_id)))
    assert first.status_code == 201
    response = _register(client, coordinator, _body(world, id_number=number))
    text = response.get_data(as_text=True)
    assert_problem(response, 409, "farmer-exists")
    assert first.get_json()["id"] not in text
    assert "13700000001" not in text
    assert "id_number_masked" not in text
    assert str(world.village_b.public_id) not in text
    response = _register(client, coordinator, _body(world, phone="13700000001"))
    assert_problem(response, 409, "phone-taken")


def test_coordinator_cannot_register_outside_its_villages(client: Any, world: World,
                                                          coordinator: dict[str, str]) -> None:
    hidden = _register(client, coordinator, _body(world,
                                                  village_id=str(world.village_b.public_id)))
    missing = _register(client, coordinator, _body(world, village_id=str(uuid.uuid4())))
    assert assert_problem(hidden, 404, "not-found")["detail"] == \
        assert_problem(missing, 404, "not-found")["detail"]


def test_staff_register_anywhere_farmers_cannot(client: Any, session: Any,
                                                world: World) -> None:
    reviewer = f.staff(session, ("reviewer",))
    session.commit()
    staff = f.auth_headers(session, reviewer)
    response = _register(client, staff, _body(world, village_id=str(world.village_b.public_id)))
    assert response.status_code == 201
    farmer = f.auth_headers(session, world.farmer_a)
    assert_problem(_register(client, farmer, _body(world, phone="13700000009")), 403)


def test_list_is_scoped_and_filtered(client: Any, session: Any, world: World,
                                     coordinator: dict[str, str]) -> None:
    extra = f.farmer(session, world.village_a)
    session.commit()
    items = client.get(f"{API}/farmers", headers=coordinator).get_json()["items"]
    assert [i["id"] for i in items] == sorted([str(world.farmer_a.public_id),
                                               str(extra.public_id)])
    assert all(set(i["id_number_masked"][4:14]) == {"*"} for i in items)
    admin = f.auth_headers(session, world.admin)
    query = {"village_id": str(world.village_b.public_id)}
    items = client.get(f"{API}/farmers", query_string=query, headers=admin).get_json()["items"]
    assert [i["id"] for i in items] == [str(world.farmer_b.public_id)]
    items = client.get(f"{API}/farmers", query_string=query,
                       headers=coordinator).get_json()["items"]
    assert items == []


def test_get_and_update(client: Any, session: Any, world: World,
                        coordinator: dict[str, str]) -> None:
    url = f"{API}/farmers/{world.farmer_a.public_id}"
    assert client.get(url, headers=coordinator).get_json()["name"] == "张三"
    response = client.patch(url, json={"name": "张三丰", "phone": "13699999999"},
                            headers=coordinator)
    assert response.status_code == 200
    assert response.get_json()["phone"] == "13699999999"
    session.rollback()
    event = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "farmer.update")).one()
    assert event.summary == {"changed": ["name", "phone"]}
    response = client.patch(url, json={"phone": world.farmer_b.phone}, headers=coordinator)
    assert_problem(response, 409, "phone-taken")
    response = client.patch(url, json={"id_number": X_NUMBER}, headers=coordinator)
    assert_problem(response, 422)
    response = client.patch(url, json={"village_id": str(world.village_b.public_id)},
                            headers=coordinator)
    assert_problem(response, 422)


def test_lookup_by_id_number(client: Any, session: Any, world: World,
                             coordinator: dict[str, str]) -> None:
    number = idnumber.make("330521", date(1990, 12, 31), 3)
    mine = f.farmer(session, world.village_a, id_no=number)
    theirs = f.farmer(session, world.village_b, id_no=X_NUMBER)
    session.commit()
    url = f"{API}/farmers/lookup"
    found = client.post(url, json={"id_number": number}, headers=coordinator)
    assert found.status_code == 200
    assert found.get_json()["id"] == str(mine.public_id)
    hidden = client.post(url, json={"id_number": X_NUMBER.lower()}, headers=coordinator)
    assert_problem(hidden, 404, "not-found")
    admin = f.auth_headers(session, world.admin)
    found = client.post(url, json={"id_number": X_NUMBER.lower()}, headers=admin)
    assert found.get_json()["id"] == str(theirs.public_id)
    nobody = idnumber.make("330521", date(1990, 12, 31), 4)
    assert_problem(client.post(url, json={"id_number": nobody}, headers=admin), 404)
    assert_problem(client.post(url, json={"id_number": nobody[:-1] + "0"}, headers=admin), 422)
    session.rollback()
    lookups = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "farmer.lookup").order_by(AuditEvent.id))
    assert [e.summary["id_number"] for e in lookups] == [mine.id_number_masked,
                                                         theirs.id_number_masked]


def test_a_farmer_sees_only_themself(client: Any, session: Any, world: World) -> None:
    neighbour = f.farmer(session, world.village_a)
    session.commit()
    headers = f.auth_headers(session, world.farmer_a)
    me = client.get(f"{API}/farmers/me", headers=headers)
    assert me.status_code == 200
    assert me.get_json()["id"] == str(world.farmer_a.public_id)
    own = client.get(f"{API}/farmers/{world.farmer_a.public_id}", headers=headers)
    assert own.get_json() == me.get_json()
    for other in (neighbour, world.farmer_b):
        response = client.get(f"{API}/farmers/{other.public_id}", headers=headers)
        assert_problem(response, 404, "not-found")
    assert_problem(client.get(f"{API}/farmers", headers=headers), 403)
    assert_problem(client.post(f"{API}/farmers/lookup", json={"id_number": X_NUMBER},
                               headers=headers), 403)
    coordinator = f.auth_headers(session, world.coordinator_a)
    assert_problem(client.get(f"{API}/farmers/me", headers=coordinator), 403)


def test_lookups_are_rate_limited_per_caller(app: Any, client: Any, session: Any, world: World,
                                             coordinator: dict[str, str]) -> None:
    app.config["NONGDAI_LOOKUP_PER_USER_PER_HOUR"] = 2
    admin = f.auth_headers(session, world.admin)
    url = f"{API}/farmers/lookup"
    nobody = {"id_number": idnumber.make("330521", date(1990, 12, 31), 5)}
    for _ in range(2):
        assert_problem(client.post(url, json=nobody, headers=coordinator), 404)
    limited = client.post(url, json=nobody, headers=coordinator)
    assert_problem(limited, 429, "rate-limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert_problem(client.post(url, json=nobody, headers=admin), 404)  # another caller's bucket
