"""Field work: assignments for a village's coordinators, and field checks recorded exactly
once by the device's client id, scoped to the coordinator's villages, resuming the decision."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.errors import NotFound, ValidationFailed
from core.i18n import in_locale
from core.outbox import OutboxMessage
from core.people.models import Consent
from lending.applications import fieldwork, states
from lending.applications.models import Application, Decision, FieldAssignment, FieldCheck
from tests import factories as f
from tests.core.test_people_helpers import (
    API,
    World,
    assert_problem,
    build_world,
    consent,
    creating,
)
from tests.lending import review_factories as rf

ASSIGNMENTS = f"{API}/assignments"
RECORDED_AT = datetime(2026, 5, 12, 9, 30, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture
def world(session: Any) -> World:
    return build_world(session)


def _parcels(**first: Any) -> list[dict[str, Any]]:
    return [{"parcel_code": "P-1", "visited": True, "crop_seen": "rice",
             "estimated_area_mu": 4.75, "latitude": 30.5512, "longitude": 120.1234,
             "accuracy_m": 6.5, **first},
            {"parcel_code": "P-2", "visited": False, "crop_seen": None,
             "estimated_area_mu": None, "latitude": None, "longitude": None,
             "accuracy_m": None}]


def _record(session: Any, application: Application, coordinator_id: int,
            client_id: uuid.UUID | None = None, **changes: Any) -> FieldCheck:
    values: dict[str, Any] = {"identity_verified": True, "parcels": _parcels(),
                              "notes": "见到本人和身份证", "recorded_at": RECORDED_AT, **changes}
    return fieldwork.record_field_check(session, client_id=client_id or uuid.uuid4(),
                                        application=application,
                                        coordinator_id=coordinator_id, **values)


def _events(session: Any, action: str) -> int:
    return rf.count(session, AuditEvent, AuditEvent.action == action)


# --- assignments --------------------------------------------------------------------------------

def test_opening_an_assignment_twice_gives_the_same_one(session: Any, world: World) -> None:
    application = rf.application(session, world.farmer_a, state=states.AWAITING_FIELD_CHECK)
    first = fieldwork.open_assignment(session, application)
    again = fieldwork.open_assignment(session, application)
    assert again.id == first.id
    assert (first.status, first.kind, first.village_id) == ("open", "field_check",
                                                            world.village_a.id)
    assert rf.count(session, FieldAssignment) == 1
    assert _events(session, "assignment.open") == 1


def test_a_second_open_assignment_is_refused_by_the_database(session: Any,
                                                             world: World) -> None:
    application = rf.application(session, world.farmer_a, state=states.AWAITING_FIELD_CHECK)
    fieldwork.open_assignment(session, application)
    session.commit()
    session.add(FieldAssignment(application_id=application.id,
                                village_id=application.village_id, status="open"))
    with pytest.raises(sa.exc.IntegrityError):
        session.flush()
    session.rollback()


def test_closing_a_case_cancels_its_open_assignment(session: Any, world: World) -> None:
    application = rf.application(session, world.farmer_a, state=states.AWAITING_FIELD_CHECK)
    opened = fieldwork.open_assignment(session, application)
    (cancelled,) = fieldwork.cancel_assignments(session, application)
    assert cancelled.id == opened.id
    assert cancelled.status == "cancelled"
    assert fieldwork.cancel_assignments(session, application) == []
    assert fieldwork.open_assignment(session, application).id != opened.id  # a new visit


def test_coordinators_list_their_villages_visits_oldest_first(
        client: Any, session: Any, world: World) -> None:
    in_a = [rf.application(session, world.farmer_a, state=states.AWAITING_FIELD_CHECK)
            for _ in range(3)]
    in_b = rf.application(session, world.farmer_b, state=states.AWAITING_FIELD_CHECK)
    opened = [fieldwork.open_assignment(session, a) for a in [*in_a, in_b]]
    fieldwork.cancel_assignments(session, in_a[2])
    session.commit()
    headers = f.auth_headers(session, world.coordinator_a)

    first = client.get(ASSIGNMENTS, query_string={"limit": 1}, headers=headers)
    assert first.status_code == 200, first.get_json()
    page = first.get_json()
    (item,) = page["items"]
    assert item["id"] == str(opened[0].public_id)
    assert item["application_id"] == str(in_a[0].public_id)
    assert item["application_state"] == "awaiting_field_check"
    assert item["village"]["id"] == str(world.village_a.public_id)
    assert item["farmer"]["name"] == "张三"
    assert item["farmer"]["phone"] == world.farmer_a.phone
    assert [p["parcel_code"] for p in item["parcels"]] == ["P-1", "P-2"]
    assert item["status"] == "open"
    assert item["completed_by_id"] is None
    second = client.get(ASSIGNMENTS, query_string={"limit": 1, "cursor": page["next_cursor"]},
                        headers=headers).get_json()
    assert [i["id"] for i in second["items"]] == [str(opened[1].public_id)]
    assert second["next_cursor"] is None  # the third was cancelled; B's is not theirs

    other = client.get(ASSIGNMENTS, headers=f.auth_headers(session, world.coordinator_b))
    assert [i["id"] for i in other.get_json()["items"]] == [str(opened[3].public_id)]
    sneaky = client.get(ASSIGNMENTS, query_string={"village_id": str(world.village_a.public_id)},
                        headers=f.auth_headers(session, world.coordinator_b))
    assert sneaky.get_json()["items"] == []


def test_staff_list_every_assignment_by_village_and_status(client: Any, session: Any,
                                                           world: World) -> None:
    a = rf.application(session, world.farmer_a, state=states.AWAITING_FIELD_CHECK)
    b = rf.application(session, world.farmer_b, state=states.AWAITING_FIELD_CHECK)
    open_a, open_b = fieldwork.open_assignment(session, a), fieldwork.open_assignment(session, b)
    fieldwork.cancel_assignments(session, b)
    session.commit()
    headers = f.auth_headers(session, rf.staff(session, "reviewer"))

    def ids(**query: Any) -> list[str]:
        response = client.get(ASSIGNMENTS, query_string=query, headers=headers)
        assert response.status_code == 200, response.get_json()
        return [i["id"] for i in response.get_json()["items"]]

    assert ids() == [str(open_a.public_id)]
    assert ids(status="cancelled") == [str(open_b.public_id)]
    assert ids(status="cancelled", village_id=str(world.village_a.public_id)) == []
    assert ids(village_id=str(world.village_a.public_id)) == [str(open_a.public_id)]
    assert_problem(client.get(ASSIGNMENTS, query_string={"status": "lost"}, headers=headers),
                   422, "validation-failed")
    assert_problem(client.get(ASSIGNMENTS, headers=f.auth_headers(session, world.farmer_a)),
                   403, "forbidden")


# --- recording a check (the service the sync push calls) ----------------------------------------

def test_a_check_completes_the_assignment_and_is_audited(session: Any, world: World) -> None:
    application = rf.application(session, world.farmer_a)  # under review: evidence only
    assignment = fieldwork.open_assignment(session, application)
    check = _record(session, application, world.coordinator_a.id)
    assert check.assignment_id == assignment.id
    assert (assignment.status, assignment.completed_by_id) == ("done",
                                                               world.coordinator_a.id)
    assert assignment.completed_at is not None
    assert check.parcels[0] == {"parcel_code": "P-1", "visited": True, "crop_seen": "rice",
                                "estimated_area_mu": "4.75", "latitude": 30.5512,
                                "longitude": 120.1234, "accuracy_m": 6.5}
    assert check.recorded_at == RECORDED_AT
    event = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "field_check.recorded")).one()
    assert event.actor == f"coordinator:{world.coordinator_a.public_id}"
    assert event.summary["assignment_id"] == str(assignment.public_id)
    assert application.state == "under_review"  # no decision again from under review
    assert rf.count(session, Decision) == 1


def test_the_same_client_id_records_once(session: Any, world: World) -> None:
    application = rf.application(session, world.farmer_a)
    fieldwork.open_assignment(session, application)
    client_id = uuid.uuid4()
    first = _record(session, application, world.coordinator_a.id, client_id)
    session.commit()
    same_instant = RECORDED_AT.astimezone(UTC)
    again = _record(session, application, world.coordinator_a.id, client_id,
                    recorded_at=same_instant, parcels=_parcels(estimated_area_mu=Decimal("4.75")))
    assert again.id == first.id
    assert rf.count(session, FieldCheck) == 1
    assert _events(session, "field_check.recorded") == 1


@pytest.mark.parametrize("changes", [
    {"identity_verified": False},
    {"notes": "另一次"},
    {"recorded_at": RECORDED_AT + timedelta(seconds=1)},
    {"parcels": _parcels(crop_seen="corn")},
])
def test_the_same_client_id_with_other_content_is_a_conflict(
        session: Any, world: World, changes: dict[str, Any]) -> None:
    application = rf.application(session, world.farmer_a)
    client_id = uuid.uuid4()
    _record(session, application, world.coordinator_a.id, client_id)
    session.commit()
    with pytest.raises(fieldwork.FieldCheckConflict) as refused:
        _record(session, application, world.coordinator_a.id, client_id, **changes)
    assert (refused.value.status, refused.value.code) == (409, "field-check-conflict")


def test_a_coordinator_of_another_station_gets_404(session: Any, world: World) -> None:
    application = rf.application(session, world.farmer_a)
    with pytest.raises(NotFound):
        _record(session, application, world.coordinator_b.id)
    world.coordinator_a.is_active = False
    with pytest.raises(NotFound):
        _record(session, application, world.coordinator_a.id)
    assert rf.count(session, FieldCheck) == 0


@pytest.mark.parametrize("state", [states.DRAFT, states.SUBMITTED, states.APPROVED,
                                   states.DECLINED, states.WITHDRAWN, states.EXPIRED])
def test_states_that_take_no_check_are_409(session: Any, world: World, state: str) -> None:
    application = rf.application(session, world.farmer_a, state=state)
    with pytest.raises(fieldwork.FieldCheckNotExpected):
        _record(session, application, world.coordinator_a.id)


@pytest.mark.parametrize(("parcel", "field"), [
    ({"parcel_code": "P-9"}, "parcel_code"),  # not the application's
    ({"visited": "yes"}, "visited"),
    ({"latitude": 91}, "latitude"),
    ({"longitude": -180.5}, "longitude"),
    ({"longitude": None}, "longitude"),  # latitude without longitude
    ({"accuracy_m": -1}, "accuracy_m"),
    ({"estimated_area_mu": -0.01}, "estimated_area_mu"),
    ({"estimated_area_mu": 1.234}, "estimated_area_mu"),
    ({"estimated_area_mu": True}, "estimated_area_mu"),
    ({"estimated_area_mu": float("nan")}, "estimated_area_mu"),
    ({"crop_seen": "x" * 31}, "crop_seen"),
    ({"colour": "green"}, "colour"),
])
def test_invalid_parcels_are_refused(session: Any, world: World, parcel: dict[str, Any],
                                     field: str) -> None:
    application = rf.application(session, world.farmer_a)
    with pytest.raises(ValidationFailed) as refused:
        _record(session, application, world.coordinator_a.id, parcels=_parcels(**parcel))
    assert field in refused.value.errors["parcels"][0]
    assert 1 not in refused.value.errors["parcels"]


def test_a_parcel_listed_twice_and_a_naive_time_are_refused(session: Any,
                                                            world: World) -> None:
    application = rf.application(session, world.farmer_a)
    with in_locale("en"), pytest.raises(ValidationFailed) as refused:
        _record(session, application, world.coordinator_a.id,
                parcels=[*_parcels(), _parcels()[0]],
                recorded_at=datetime(2026, 5, 12, 9, 30))  # noqa: DTZ001 - naive on purpose
    assert refused.value.errors["parcels"] == {2: {"parcel_code": ["A parcel is listed twice."]}}
    assert "recorded_at" in refused.value.errors


def test_a_check_verifies_a_pending_identity(session: Any, world: World) -> None:
    world.farmer_a.identity_status = "pending"
    world.farmer_b.identity_status = "pending"
    application = rf.application(session, world.farmer_a)
    unseen = rf.application(session, world.farmer_b)
    _record(session, unseen, world.coordinator_b.id, identity_verified=False)
    assert world.farmer_b.identity_status == "pending"
    _record(session, application, world.coordinator_a.id, identity_verified=True)
    assert world.farmer_a.identity_status == "verified"
    event = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "farmer.identity_verified")).one()
    assert event.object_id == str(world.farmer_a.public_id)
    assert event.actor == f"coordinator:{world.coordinator_a.public_id}"


# --- resuming the decision ------------------------------------------------------------------------

def _awaiting(session: Any, world: World) -> Application:
    """An application the pipeline sent for a field check, with the consents a decision
    needs and the policy version it was decided with."""
    for purpose in ("credit_decision", "land_registry", "insurance"):
        consent(session, world.farmer_a, purpose=purpose, days=365)
    model = (rf.JDM / "credit-2026.2.json").read_text(encoding="utf-8")
    rules = rf.policy(session, decision_model=json.loads(model))
    application = rf.application(session, world.farmer_a, state=states.AWAITING_FIELD_CHECK,
                                 rules=rules, outcome="field_check",
                                 reasons=("field_check_first_loan",))
    fieldwork.open_assignment(session, application)
    return application


def test_a_check_resumes_an_application_waiting_for_it(session: Any, world: World) -> None:
    application = _awaiting(session, world)
    session.commit()
    check = _record(session, application, world.coordinator_a.id)
    session.commit()

    row = session.get(Application, application.id)
    # No registry answers here (none configured), so the policy refers the case to staff.
    assert row.state == states.UNDER_REVIEW
    assert row.retry_at is not None
    decisions = session.scalars(sa.select(Decision).where(
        Decision.application_id == application.id).order_by(Decision.id)).all()
    assert [d.outcome for d in decisions] == ["field_check", "refer"]
    resumed = decisions[-1]
    assert resumed.snapshot["field_check"] == {"done": True, "identity_verified": True}
    first = resumed.snapshot["parcels"][0]
    assert (first["code"], first["field_mu"], first["field_visited"], first["crop_seen"]) == (
        "P-1", 4.75, True, True)
    assert {"code": "field_parcel_not_visited", "kind": "refer",
            "params": {"parcels": ["P-2"]}} in resumed.reasons
    assert _events(session, "application.submitted") == 1
    assert _events(session, "application.under_review") == 1
    assert session.get(FieldAssignment, check.assignment_id).status == "done"
    sms = session.scalars(sa.select(OutboxMessage).where(
        OutboxMessage.recipient == world.farmer_a.phone)).all()
    assert len(sms) == 1  # "being reviewed by the bank"


def test_a_withdrawn_consent_keeps_the_check_and_stops_the_decision(session: Any,
                                                                    world: World) -> None:
    application = _awaiting(session, world)
    for row in session.scalars(sa.select(Consent).where(Consent.purpose == "land_registry")):
        row.revoked_at = row.granted_at
    session.commit()
    check = _record(session, application, world.coordinator_a.id)
    session.commit()
    assert session.get(FieldCheck, check.id) is not None
    assert session.get(Application, application.id).state == states.AWAITING_FIELD_CHECK
    assert rf.count(session, Decision, Decision.application_id == application.id) == 1
    event = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "application.resume_stopped")).one()
    assert event.summary == {"why": "consent"}


def test_a_repeated_check_does_not_resume_twice(session: Any, world: World) -> None:
    application = _awaiting(session, world)
    client_id = uuid.uuid4()
    _record(session, application, world.coordinator_a.id, client_id)
    session.commit()
    _record(session, application, world.coordinator_a.id, client_id)  # a second sync
    assert rf.count(session, Decision, Decision.application_id == application.id) == 2
    assert session.get(Application, application.id).state == states.UNDER_REVIEW


# --- the online API -----------------------------------------------------------------------------

def _body(client_id: uuid.UUID | None = None, **changes: Any) -> dict[str, Any]:
    return {"client_id": str(client_id or uuid.uuid4()), "identity_verified": True,
            "parcels": _parcels(), "notes": "见到本人", "recorded_at": RECORDED_AT.isoformat(),
            **changes}


def _post(client: Any, headers: dict[str, str], application: Application,
          body: dict[str, Any]) -> Any:
    return client.post(f"{API}/applications/{application.public_id}/field-checks", json=body,
                       headers=creating(headers))


def test_a_coordinator_records_a_check_online(client: Any, session: Any, world: World) -> None:
    application = rf.application(session, world.farmer_a)
    assignment = fieldwork.open_assignment(session, application)
    session.commit()
    headers = f.auth_headers(session, world.coordinator_a)
    body = _body()

    created = _post(client, headers, application, body)
    assert created.status_code == 201, created.get_json()
    check = created.get_json()
    assert check["client_id"] == body["client_id"]
    assert check["application_id"] == str(application.public_id)
    assert check["assignment_id"] == str(assignment.public_id)
    assert check["coordinator"]["id"] == str(world.coordinator_a.public_id)
    assert check["parcels"][0]["estimated_area_mu"] == "4.75"
    assert check["parcels"][1]["latitude"] is None
    assert datetime.fromisoformat(check["recorded_at"]) == RECORDED_AT

    # A retry under a new Idempotency-Key (the device lost the answer): the same check.
    again = _post(client, headers, application, body)
    assert again.status_code == 201
    assert again.get_json()["id"] == check["id"]
    changed = _post(client, headers, application, {**body, "notes": "改过"})
    assert_problem(changed, 409, "field-check-conflict")
    assert rf.count(session, FieldCheck) == 1


def test_only_the_villages_coordinators_record_checks(client: Any, session: Any,
                                                      world: World) -> None:
    application = rf.application(session, world.farmer_a)
    session.commit()
    assert_problem(_post(client, f.auth_headers(session, world.coordinator_b), application,
                         _body()), 404, "not-found")
    for who in (world.farmer_a, world.admin):
        assert_problem(_post(client, f.auth_headers(session, who), application, _body()),
                       403, "forbidden")
    assert rf.count(session, FieldCheck) == 0


@pytest.mark.parametrize(("changes", "field"), [
    ({"recorded_at": "2026-05-12T09:30:00"}, "recorded_at"),  # no time zone
    ({"client_id": "device-1"}, "client_id"),
    ({"parcels": [{"parcel_code": "P-1", "visited": True, "estimated_area_mu": "4.5"}]},
     "parcels"),  # area as text
    ({"parcels": [{"parcel_code": "P-1", "visited": True, "estimated_area_mu": 4.567}]},
     "parcels"),
    ({"identity_verified": 1}, "identity_verified"),
])
def test_invalid_check_bodies_are_422(client: Any, session: Any, world: World,
                                      changes: dict[str, Any], field: str) -> None:
    application = rf.application(session, world.farmer_a)
    session.commit()
    response = _post(client, f.auth_headers(session, world.coordinator_a), application,
                     _body(**changes))
    assert field in assert_problem(response, 422, "validation-failed")["errors"]


def test_a_check_on_a_decided_application_is_409(client: Any, session: Any,
                                                 world: World) -> None:
    application = rf.application(session, world.farmer_a, state=states.APPROVED)
    session.commit()
    response = _post(client, f.auth_headers(session, world.coordinator_a), application,
                     _body())
    assert_problem(response, 409, "field-check-not-expected")
