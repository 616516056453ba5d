"""Places API: counties, townships, villages and stations; admin writes, scoped reads."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.places.models import Station
from tests import factories as f
from tests.core.test_people_helpers import API, assert_problem, build_world, creating


@pytest.fixture
def admin(session: Any) -> dict[str, str]:
    row = f.staff(session, ("admin",))
    session.commit()
    return f.auth_headers(session, row)


def _audit(session: Any, action: str) -> list[AuditEvent]:
    session.rollback()
    stmt = sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(session.scalars(stmt))


def _create(client: Any, headers: dict[str, str], kind: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"{API}/{kind}", json=body, headers=creating(headers))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_admin_builds_the_division_tree(client: Any, session: Any,
                                        admin: dict[str, str]) -> None:
    county = _create(client, admin, "counties", code="330521", name="德清县")
    township = _create(client, admin, "townships", code="330521100", name="新市镇")
    village = _create(client, admin, "villages", code="330521100201", name=" 蔡界村 ")

    assert county["code"] == "330521"
    assert set(county) == {"id", "code", "name", "created_at"}
    assert township["county_id"] == county["id"]
    assert village == {**village, "township_id": township["id"], "name": "蔡界村"}
    uuid.UUID(village["id"])
    events = _audit(session, "village.create")
    assert [(e.object_id, e.summary["code"]) for e in events] == [(village["id"],
                                                                   "330521100201")]
    got = client.get(f"{API}/villages/{village['id']}", headers=admin)
    assert got.get_json() == village


@pytest.mark.parametrize(("kind", "body", "field"), [
    ("counties", {"code": "33052", "name": "x"}, "code"),
    ("counties", {"code": "33052a", "name": "x"}, "code"),
    ("townships", {"code": "3305211000", "name": "x"}, "code"),
    ("villages", {"code": "33052110020", "name": "x"}, "code"),
    ("villages", {"code": "330521100201", "name": "   "}, "name"),
    ("villages", {"code": "330521100201"}, "name"),
    ("counties", {"code": "330521", "name": "x", "population": 3}, "population"),
])
def test_malformed_places_are_422(client: Any, admin: dict[str, str], kind: str,
                                  body: dict[str, Any], field: str) -> None:
    response = client.post(f"{API}/{kind}", json=body, headers=creating(admin))
    problem = assert_problem(response, 422, "validation-failed")
    assert field in problem["errors"]


@pytest.mark.parametrize("field", ["id", "created_at", "township_id"])
def test_server_owned_fields_are_refused(client: Any, admin: dict[str, str],
                                         field: str) -> None:
    body = {"code": "330521100201", "name": "x", field: str(uuid.uuid4())}
    response = client.post(f"{API}/villages", json=body,
                           headers={**creating(admin), "Accept-Language": "en"})
    problem = assert_problem(response, 422)
    assert problem["errors"][field] == ["Set by the server; it cannot be sent."]


def test_parent_must_exist_for_the_code(client: Any, admin: dict[str, str]) -> None:
    response = client.post(f"{API}/townships", json={"code": "110101001", "name": "x"},
                           headers=creating(admin))
    assert "code" in assert_problem(response, 422, "township-code-mismatch")["errors"]
    response = client.post(f"{API}/villages", json={"code": "110101001001", "name": "x"},
                           headers=creating(admin))
    assert "code" in assert_problem(response, 422, "village-code-mismatch")["errors"]


def test_codes_are_unique(client: Any, session: Any, admin: dict[str, str]) -> None:
    village = f.village(session)
    session.commit()
    cases = [("counties", village.township.county.code, "county-exists"),
             ("townships", village.township.code, "township-exists"),
             ("villages", village.code, "village-exists")]
    for kind, code, problem_code in cases:
        response = client.post(f"{API}/{kind}", json={"code": code, "name": "x"},
                               headers=creating(admin))
        assert_problem(response, 409, problem_code)


def test_village_rename(client: Any, session: Any, admin: dict[str, str]) -> None:
    village = f.village(session)
    session.commit()
    url = f"{API}/villages/{village.public_id}"
    response = client.patch(url, json={"name": "新名"}, headers=admin)
    assert response.status_code == 200
    assert response.get_json()["name"] == "新名"
    assert [e.summary for e in _audit(session, "village.update")] == [{"changed": ["name"]}]
    assert_problem(client.patch(url, json={}, headers=admin), 422, "validation-failed")
    assert_problem(client.patch(url, json={"code": "330521100999"}, headers=admin), 422)
    missing = f"{API}/villages/{uuid.uuid4()}"
    assert_problem(client.patch(missing, json={"name": "x"}, headers=admin), 404, "not-found")


def test_lists_filter_and_page(client: Any, session: Any, admin: dict[str, str]) -> None:
    one, other = f.township(session), f.township(session)
    villages = [f.village(session, one) for _ in range(3)]
    f.village(session, other)
    session.commit()
    seen: list[str] = []
    cursor = None
    while True:
        query = {"township_id": str(one.public_id), "limit": 2,
                 **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{API}/villages", query_string=query, headers=admin).get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(str(v.public_id) for v in villages)  # in public_id (UUIDv7) order
    townships = client.get(f"{API}/townships", headers=admin,
                           query_string={"county_id": str(other.county.public_id)})
    assert [t["id"] for t in townships.get_json()["items"]] == [str(other.public_id)]
    counties = client.get(f"{API}/counties", headers=admin).get_json()["items"]
    assert {c["id"] for c in counties} == {str(one.county.public_id),
                                           str(other.county.public_id)}
    bad = client.get(f"{API}/villages", query_string={"cursor": "nonsense"}, headers=admin)
    assert_problem(bad, 422, "validation-failed")


def test_station_serves_villages_of_its_county(client: Any, session: Any,
                                               admin: dict[str, str]) -> None:
    township = f.township(session)
    near = [f.village(session, township), f.village(session, f.township(session,
                                                                         township.county))]
    far = f.village(session)  # another county
    session.commit()
    body = {"name": "钟管服务站", "township_id": str(township.public_id),
            "village_ids": [str(v.public_id) for v in near]}
    station = _create(client, admin, "stations", **body)
    assert station["township_id"] == str(township.public_id)
    assert sorted(station["village_ids"]) == sorted(body["village_ids"])

    body["village_ids"] = [str(near[0].public_id), str(far.public_id)]
    response = client.post(f"{API}/stations", json=body, headers=creating(admin))
    assert_problem(response, 422, "village-outside-county")
    body["village_ids"] = []
    response = client.post(f"{API}/stations", json=body, headers=creating(admin))
    assert "village_ids" in assert_problem(response, 422, "validation-failed")["errors"]
    body["village_ids"] = [str(uuid.uuid4())]
    assert_problem(client.post(f"{API}/stations", json=body, headers=creating(admin)), 404)
    body.update(township_id=str(uuid.uuid4()), village_ids=[str(near[0].public_id)])
    assert_problem(client.post(f"{API}/stations", json=body, headers=creating(admin)), 404)


def test_station_update(client: Any, session: Any, admin: dict[str, str]) -> None:
    township = f.township(session)
    first, second = f.village(session, township), f.village(session, township)
    far = f.village(session)
    row = f.station(session, [first])
    session.commit()
    url = f"{API}/stations/{row.public_id}"
    response = client.patch(url, json={"village_ids": [str(first.public_id),
                                                       str(second.public_id)]}, headers=admin)
    assert response.status_code == 200
    assert set(response.get_json()["village_ids"]) == {str(first.public_id),
                                                       str(second.public_id)}
    assert _audit(session, "station.update")[0].summary == {"changed": ["village_ids"]}
    response = client.patch(url, json={"village_ids": [str(far.public_id)]}, headers=admin)
    assert_problem(response, 422, "village-outside-county")
    response = client.patch(url, json={"name": "改名站"}, headers=admin)
    assert response.get_json()["name"] == "改名站"
    session.rollback()
    assert len(session.get(Station, row.id).villages) == 2


@pytest.mark.parametrize("roles", [("reviewer",), ("approver",), ("reviewer", "approver")])
def test_only_admins_manage_places(client: Any, session: Any, roles: tuple[str, ...]) -> None:
    world = build_world(session)
    village = world.village_a
    callers = [f.staff(session, roles), world.coordinator_a, world.farmer_a]
    session.commit()
    for caller in callers:
        headers = f.auth_headers(session, caller)
        for kind, body in [("counties", {"code": "110101", "name": "x"}),
                           ("townships", {"code": f"{world.county.code}999", "name": "x"}),
                           ("villages", {"code": f"{world.township.code}999", "name": "x"})]:
            response = client.post(f"{API}/{kind}", json=body, headers=creating(headers))
            assert_problem(response, 403, "forbidden")
        response = client.patch(f"{API}/villages/{village.public_id}", json={"name": "x"},
                                headers=headers)
        assert_problem(response, 403, "forbidden")


def test_reads_need_a_sign_in(client: Any, session: Any) -> None:
    village = f.village(session)
    session.commit()
    for path in ("/counties", "/villages", f"/villages/{village.public_id}", "/stations"):
        assert_problem(client.get(f"{API}{path}"), 401, "unauthorized")


def _ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.get_json()
    return {item["id"] for item in response.get_json()["items"]}


def test_reads_are_scoped(client: Any, session: Any) -> None:
    world = build_world(session)
    elsewhere = f.village(session)  # another county and township
    reviewer = f.staff(session, ("reviewer",))
    session.commit()
    coordinator = f.auth_headers(session, world.coordinator_a)
    farmer = f.auth_headers(session, world.farmer_a)
    staff = f.auth_headers(session, reviewer)
    a, b = str(world.village_a.public_id), str(world.village_b.public_id)

    assert _ids(client.get(f"{API}/villages", headers=coordinator)) == {a}
    assert _ids(client.get(f"{API}/villages", headers=farmer)) == {a}
    assert _ids(client.get(f"{API}/villages", headers=staff)) == {a, b,
                                                                   str(elsewhere.public_id)}
    assert _ids(client.get(f"{API}/townships", headers=coordinator)) == {
        str(world.township.public_id)}
    assert _ids(client.get(f"{API}/counties", headers=farmer)) == {str(world.county.public_id)}
    assert _ids(client.get(f"{API}/stations", headers=coordinator)) == {
        str(world.station_a.public_id)}
    assert len(_ids(client.get(f"{API}/stations", headers=staff))) == 2
    assert_problem(client.get(f"{API}/stations", headers=farmer), 403)

    hidden = [f"/villages/{b}", f"/villages/{elsewhere.public_id}",
              f"/townships/{elsewhere.township.public_id}",
              f"/counties/{elsewhere.township.county.public_id}",
              f"/stations/{world.station_b.public_id}"]
    for path in hidden:
        assert_problem(client.get(f"{API}{path}", headers=coordinator), 404, "not-found")
    own = client.get(f"{API}/stations/{world.station_a.public_id}", headers=coordinator)
    assert own.get_json()["village_ids"] == [a]
