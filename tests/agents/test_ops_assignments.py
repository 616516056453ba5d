"""An assignment's end pushed from a device: ``done`` gathers the assignment's identity check
and parcel visits into a field check and the decision resumes as for a check made online;
``farmer_absent`` keeps it open; ``refused`` sends the case to staff. Over real HTTP to the
reference registries on loopback (tests/lending's ``registry`` fixture)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.db import utcnow
from lending.applications.models import Application, Decision, FieldAssignment, FieldCheck
from tests import factories as f
from tests.agents import test_ops_world as ow
from tests.lending import conftest as lending_fixtures
from tests.lending import origination_world as w

# the reference registries on loopback, as tests/lending sets them up
reference_registry = lending_fixtures.reference_registry
registry = lending_fixtures.registry

RICE_E7 = (306_000_000, 1_201_000_000)  # where the reference registry puts the parcels


@pytest.fixture
def world(session: Any, registry: Any) -> w.World:
    return w.build(session)


@pytest.fixture
def phone(client: Any, session: Any, world: w.World) -> ow.Device:
    return ow.device(client, session, world.coordinator)


def _waiting(client: Any, session: Any, registry: Any,
             world: w.World) -> tuple[Application, FieldAssignment, list[dict[str, Any]]]:
    """A first-time borrower's application, waiting for its field check."""
    farmer = w.farmer(session, world, repeat=False)
    land = w.plant(registry, farmer)
    answer = client.post(f"{w.API}/applications", json=w.body(world, land),
                         headers=w.key(f.auth_headers(session, farmer)))
    assert answer.get_json()["state"] == "awaiting_field_check", answer.get_json()
    session.rollback()
    application = session.scalars(sa.select(Application).where(
        Application.public_id == uuid.UUID(answer.get_json()["id"]))).one()
    assignment = session.scalars(sa.select(FieldAssignment).where(
        FieldAssignment.application_id == application.id)).one()
    return application, assignment, land


def _visits(phone: ow.Device, application: Application, assignment: FieldAssignment,
            land: list[dict[str, Any]], *, far: bool = False) -> list[dict[str, Any]]:
    lat, lon = RICE_E7
    farmer = {"farmer_id": str(application.farmer.public_id),
              "assignment_id": str(assignment.public_id)}
    start = utcnow()
    ops = [phone.op("identity_check", {**farmer, "verified": True}, recorded_at=start)]
    for n, parcel in enumerate(land):
        shift = 50_000_000 if far and n == 0 else 0  # 5 degrees north: hundreds of km
        ops.append(phone.op("parcel_visit", {
            **farmer, "parcel_code": parcel["code"], "crop_seen": "rice",
            "estimated_area_mu": parcel["area_mu"],
            "location": {"lat_e7": lat + shift, "lon_e7": lon, "accuracy_m": 8}},
            recorded_at=start + timedelta(hours=1 + n)))
    return ops


def test_done_resumes_the_decision_with_the_visits(client, session, registry, world, phone):
    application, assignment, land = _waiting(client, session, registry, world)
    ops = _visits(phone, application, assignment, land)
    done = phone.op("assignment_status", {"status": "done", "notes": "都看过了"},
                    entity_id=assignment.public_id)
    answer = phone.push(*ops, done)
    assert [r["status"] for r in answer["results"]] == ["applied"] * len(answer["results"]), \
        answer["results"]
    result = answer["results"][-1]["result"]
    assert result["status"] == "done"
    assert result["application_state"] == "approved"
    session.rollback()
    check = session.scalars(sa.select(FieldCheck)).one()
    assert str(check.public_id) == result["field_check_id"]
    assert check.client_id == uuid.UUID(done["op_id"])
    assert check.identity_verified is True
    assert [(p["parcel_code"], p["visited"], p["estimated_area_mu"]) for p in check.parcels] == [
        (p["code"], True, p["area_mu"]) for p in land]
    assert check.parcels[0]["latitude"] == pytest.approx(30.6)
    assert check.flags == []
    assert session.get(FieldAssignment, assignment.id).status == "done"
    assert len(session.scalars(sa.select(Decision)).all()) == 2
    again = phone.send("assignment_status", {"status": "done"}, entity_id=assignment.public_id)
    assert (again["status"], again["reason"]) == ("rejected", "not-allowed")


def test_the_flags_reach_the_staff_case(client, session, registry, world, phone):
    application, assignment, land = _waiting(client, session, registry, world)
    ops = _visits(phone, application, assignment, land, far=True)
    answer = phone.push(*ops, phone.op("assignment_status", {"status": "done"},
                                       entity_id=assignment.public_id))
    assert "gps-far-from-parcel" in answer["results"][1]["result"]["flags"], answer["results"]
    assert "impossible-travel" in answer["results"][2]["result"]["flags"]
    session.rollback()
    check = session.scalars(sa.select(FieldCheck)).one()
    assert {flag["code"] for flag in check.flags} == {"gps-far-from-parcel",
                                                      "impossible-travel"}
    staff = f.staff(session, ("reviewer",))
    headers = f.auth_headers(session, staff)
    case = client.get(f"{w.API}/review/applications/{application.public_id}", headers=headers)
    assert case.status_code == 200, case.get_json()
    (shown,) = case.get_json()["field_checks"]
    far = next(flag for flag in shown["flags"] if flag["code"] == "gps-far-from-parcel")
    assert far["visit_id"] == ops[1]["entity_id"]
    assert far["kind"] == "parcel_visit"
    assert far["detail"]["distance_m"] > 500_000


def test_farmer_absent_keeps_the_assignment_open(client, session, registry, world, phone):
    _application, assignment, _land = _waiting(client, session, registry, world)
    item = phone.send("assignment_status", {"status": "farmer_absent", "notes": "进城了"},
                      entity_id=assignment.public_id)
    assert item["status"] == "applied", item
    assert (item["result"]["status"], item["result"]["application_state"]) == (
        "open", "awaiting_field_check")
    assert ow.count(session, AuditEvent, AuditEvent.action == "assignment.attempt",
                    AuditEvent.object_id == str(assignment.public_id)) == 1
    assert ow.count(session, FieldCheck) == 0


def test_refused_sends_the_case_to_staff_with_the_reason(client, session, registry, world,
                                                         phone):
    _application, assignment, _land = _waiting(client, session, registry, world)
    item = phone.send("assignment_status", {"status": "refused", "notes": "不让看地"},
                      entity_id=assignment.public_id)
    assert item["status"] == "applied", item
    assert (item["result"]["status"], item["result"]["application_state"]) == (
        "cancelled", "under_review")
    session.rollback()
    check = session.scalars(sa.select(FieldCheck)).one()
    assert (check.identity_verified, check.parcels, check.notes) == (False, [], "不让看地")
    assert check.flags == [{"code": "field-check-refused"}]
    moved = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "application.under_review")).one()
    assert moved.summary["reason"] == "field-check-refused"


def test_an_assignment_of_another_station_is_not_found(client, session, registry, world):
    _application, assignment, _land = _waiting(client, session, registry, world)
    outsider = ow.device(client, session, world.other_coordinator)
    item = outsider.send("assignment_status", {"status": "done"}, entity_id=assignment.public_id)
    assert (item["status"], item["reason"]) == ("rejected", "not-found")
    unknown = outsider.send("assignment_status", {"status": "done"}, entity_id=uuid.uuid4())
    assert unknown["reason"] == "not-found"
    wrong = outsider.send("assignment_status", {"status": "finished"},
                          entity_id=assignment.public_id)
    assert (wrong["reason"], list(wrong["errors"])) == ("invalid-payload", ["status"])


def test_a_visit_for_another_farmer_s_assignment_is_refused(client, session, registry, world,
                                                            phone):
    application, assignment, _land = _waiting(client, session, registry, world)
    other = w.farmer(session, world)
    item = phone.send("parcel_visit", {**ow.visit(other),
                                       "assignment_id": str(assignment.public_id)})
    assert (item["reason"], list(item["errors"])) == ("invalid-payload", ["assignment_id"])
    assert application.state == "awaiting_field_check"
