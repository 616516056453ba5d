"""The farmer's application from the phone to the decision, over real HTTP to the reference
registries on loopback: approve, decline, refer, the field-check wait, consents, faults."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from core.db import utcnow
from core.jobs import run
from core.outbox import OutboxMessage
from lending.applications import fieldwork
from lending.applications.models import Application, Decision, FieldAssignment
from tests import factories as f
from tests.core.test_people_helpers import assert_problem
from tests.lending import origination_world as w
from tests.lending.origination_world import API


@pytest.fixture
def world(session: Any, registry: Any) -> w.World:
    return w.build(session)


def _apply(client: Any, session: Any, farmer: Any, payload: dict[str, Any],
           **headers: str) -> Any:
    auth = f.auth_headers(session, farmer)
    return client.post(f"{API}/applications", json=payload, headers=w.key({**auth, **headers}))


def _reasons(answer: dict[str, Any]) -> set[str]:
    return {r["code"] for r in answer["decision"]["reasons"]}


def test_a_clear_case_is_approved_at_once_and_explained(client, session, registry, world):
    farmer = w.farmer(session, world)
    land = w.plant(registry, farmer)
    answer = _apply(client, session, farmer, w.body(world, land))
    assert answer.status_code == 201, answer.get_json()
    data = answer.get_json()
    assert data["state"] == "approved"
    assert data["approved_amount_fen"] == 800_000
    assert data["decision"]["outcome"] == "approve"
    assert data["decision"]["policy_version"] == world.policy.version
    assert data["decision"]["limit_fen"] >= 800_000
    assert data["explanation"]
    assert answer.headers["Content-Language"] == "zh-CN"
    assert {r["registry"] for r in registry.requests()} == {"land", "insurance"}
    # Decided in the farmer's own request: the answer is on the screen, no SMS on top.
    assert session.scalars(sa.select(OutboxMessage)).all() == []
    listed = client.get(f"{API}/applications", headers=f.auth_headers(session, farmer))
    assert [a["id"] for a in listed.get_json()["items"]][-1] == data["id"]


def test_the_explanation_follows_accept_language(client, session, registry, world):
    farmer = w.farmer(session, world)
    land = w.plant(registry, farmer)
    data = _apply(client, session, farmer, w.body(world, land),
                  **{"Accept-Language": "en"}).get_json()
    assert data["explanation"].startswith("Approved")
    auth = f.auth_headers(session, farmer)
    again = client.get(f"{API}/applications/{data['id']}", headers=auth).get_json()
    assert again["explanation"] != data["explanation"]  # zh-CN by default


def test_a_contract_ending_before_the_loan_declines(client, session, registry, world):
    farmer = w.farmer(session, world)
    land = w.plant(registry, farmer, contract_end="2026-12-31")
    data = _apply(client, session, farmer, w.body(world, land, term_months=12)).get_json()
    assert data["state"] == "declined"
    assert "contract_ends_before_loan" in _reasons(data)
    assert all(r["explanation"] for r in data["decision"]["reasons"])


def test_a_parcel_held_by_someone_else_declines(client, session, registry, world):
    farmer, neighbour = w.farmer(session, world), w.farmer(session, world)
    w.plant(registry, farmer)
    theirs = w.plant(registry, neighbour, cert="CERT-N")
    client.get(f"{API}/applications", headers=f.auth_headers(session, farmer))
    registry.requests()  # the neighbour's certificate is known to the registry once planted
    data = _apply(client, session, farmer, w.body(world, theirs, cert="CERT-N")).get_json()
    assert data["state"] == "declined", data
    assert "not_certificate_holder" in _reasons(data)


def test_a_registry_pledge_declines(client, session, registry, world):
    farmer = w.farmer(session, world)
    land = w.plant(registry, farmer, pledged=True)
    data = _apply(client, session, farmer, w.body(world, land)).get_json()
    assert data["state"] == "declined"
    assert "parcel_pledged" in _reasons(data)


def test_above_the_auto_ceiling_goes_to_a_person(client, session, registry, world):
    world.spring.auto_ceiling_fen = 500_000  # the bank lowered the product's ceiling
    farmer = w.farmer(session, world)
    land = w.plant(registry, farmer)
    data = _apply(client, session, farmer, w.body(world, land, amount_fen=800_000)).get_json()
    assert data["state"] == "under_review"
    assert "above_auto_ceiling" in _reasons(data)


def test_a_first_time_borrower_waits_for_the_field_check_then_is_decided(
        app, client, session, registry, world):
    farmer = w.farmer(session, world, repeat=False)
    land = w.plant(registry, farmer)
    data = _apply(client, session, farmer, w.body(world, land)).get_json()
    assert data["state"] == "awaiting_field_check"
    assert "field_check_first_loan" in _reasons(data)
    mine = client.get(f"{API}/assignments",
                      headers=f.auth_headers(session, world.coordinator)).get_json()
    assert [a["application_id"] for a in mine["items"]] == [data["id"]]
    theirs = client.get(f"{API}/assignments",
                        headers=f.auth_headers(session, world.other_coordinator)).get_json()
    assert theirs["items"] == []
    application = session.scalars(sa.select(Application).where(
        Application.public_id == uuid.UUID(data["id"]))).one()
    fieldwork.record_field_check(
        session, client_id=uuid.uuid4(), application=application,
        coordinator_id=world.coordinator.id, identity_verified=True,
        parcels=[{"parcel_code": p["code"], "visited": True, "crop_seen": "rice",
                  "estimated_area_mu": Decimal(p["area_mu"]), "latitude": 30.6, "longitude": 120.1,
                  "accuracy_m": 8} for p in land],
        notes="看过了", recorded_at=utcnow())
    session.commit()
    assert application.state == "approved"
    assignment = session.scalars(sa.select(FieldAssignment)).one()
    assert assignment.status == "done"
    assert len(session.scalars(sa.select(Decision)).all()) == 2


def test_no_consent_no_query(client, session, registry, world):
    farmer = w.farmer(session, world, consents=False)
    land = w.plant(registry, farmer)
    answer = _apply(client, session, farmer, w.body(world, land))
    assert_problem(answer, 422, "consent-required")
    assert registry.count() == 0
    assert session.scalar(sa.select(sa.func.count()).select_from(Application).where(
        Application.farmer_id == farmer.id, Application.state != "approved")) == 0
    given = _apply(client, session, farmer, w.body(world, land, consents=[
        "credit_decision", "land_registry"]))
    assert given.status_code == 201
    assert {r["registry"] for r in registry.requests()} == {"land"}  # no insurance consent


@pytest.mark.parametrize("mode", ["timeout", "error", "malformed", "trickle"])
def test_a_registry_fault_refers_and_is_retried_never_approved(
        app, client, session, registry, world, *, mode):
    app.config["NONGDAI_REGISTRY_TIMEOUT_MS"] = 300
    farmer = w.farmer(session, world)
    land = w.plant(registry, farmer)
    registry.faults("land", mode)
    answer = _apply(client, session, farmer, w.body(world, land))
    assert answer.status_code == 201, answer.get_json()
    data = answer.get_json()
    assert data["state"] == "under_review"
    assert "data_source_unavailable" in _reasons(data)
    application = session.scalars(sa.select(Application).where(
        Application.public_id == uuid.UUID(data["id"]))).one()
    assert application.retry_at is not None
    registry.faults("both", "none")
    application.retry_at = application.retry_at.replace(year=2000)
    session.commit()
    with app.app_context():
        assert run("applications.retry_decisions") == "ok"
    session.refresh(application)
    assert application.state == "approved"
    assert application.retry_at is None
    [sms] = session.scalars(sa.select(OutboxMessage)).all()  # decided later: told by SMS
    assert sms.status == "pending"  # queued by the job; outbox.dispatch sends it


def test_the_same_submission_twice_makes_one_application(client, session, registry, world):
    farmer = w.farmer(session, world)
    land = w.plant(registry, farmer)
    headers = w.key(f.auth_headers(session, farmer))
    first = client.post(f"{API}/applications", json=w.body(world, land), headers=headers)
    second = client.post(f"{API}/applications", json=w.body(world, land), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json()["id"] == second.get_json()["id"]
    changed = client.post(f"{API}/applications", json=w.body(world, land, amount_fen=900_000),
                          headers=headers)
    assert changed.status_code == 422


def test_withdraw_then_withdraw_again_is_409(client, session, registry, world):
    farmer = w.farmer(session, world, repeat=False)
    land = w.plant(registry, farmer)
    data = _apply(client, session, farmer, w.body(world, land)).get_json()
    auth = f.auth_headers(session, farmer)
    gone = client.post(f"{API}/applications/{data['id']}/withdraw", headers=auth)
    assert gone.status_code == 200
    assert gone.get_json()["state"] == "withdrawn"
    assert session.scalars(sa.select(FieldAssignment)).one().status == "cancelled"
    assert_problem(client.post(f"{API}/applications/{data['id']}/withdraw", headers=auth),
                   409, "illegal-transition")


def test_a_draft_is_submitted_later(client, session, registry, world):
    farmer = w.farmer(session, world)
    land = w.plant(registry, farmer)
    draft = _apply(client, session, farmer, w.body(world, land, draft=True)).get_json()
    assert draft["state"] == "draft"
    assert draft["decision"] is None
    assert registry.count() == 0
    auth = f.auth_headers(session, farmer)
    sent = client.post(f"{API}/applications/{draft['id']}/submit", headers=auth)
    assert sent.status_code == 200
    assert sent.get_json()["state"] == "approved"
    assert session.scalars(sa.select(OutboxMessage)).all() == []  # read on the screen


def test_others_cannot_see_an_application(client, session, registry, world):
    farmer, stranger = w.farmer(session, world), w.farmer(session, world)
    land = w.plant(registry, farmer)
    data = _apply(client, session, farmer, w.body(world, land)).get_json()
    for who in (stranger, world.other_coordinator):
        seen = client.get(f"{API}/applications/{data['id']}",
                          headers=f.auth_headers(session, who))
        assert_problem(seen, 404)
    mine = client.get(f"{API}/applications/{data['id']}",
                      headers=f.auth_headers(session, world.coordinator))
    assert mine.status_code == 200


def test_a_farmer_reads_their_land_records_with_consent_only(client, session, registry, world):
    farmer = w.farmer(session, world)
    land = w.plant(registry, farmer, pledged=True)
    auth = f.auth_headers(session, farmer)
    records = client.get(f"{API}/land-records", headers=auth)
    assert records.status_code == 200
    [certificate] = records.get_json()["certificates"]
    assert [p["code"] for p in certificate["parcels"]] == [p["code"] for p in land]
    assert [p["pledged"] for p in certificate["parcels"]] == [True, False]
    stranger = w.farmer(session, world, consents=False)
    assert_problem(client.get(f"{API}/land-records", headers=f.auth_headers(session, stranger)),
                   422, "consent-required")
    registry.faults("land", "error")
    other = w.farmer(session, world)
    assert_problem(client.get(f"{API}/land-records", headers=f.auth_headers(session, other)),
                   503, "registry-unavailable")


def test_stale_cases_expire_and_recent_questions_keep_a_case(app, client, session, registry,
                                                             world):
    from datetime import timedelta  # noqa: PLC0415

    from lending.applications.models import ReviewAction  # noqa: PLC0415

    farmer = w.farmer(session, world)
    land = w.plant(registry, farmer)
    made = [_apply(client, session, farmer, w.body(world, land, draft=True)).get_json()["id"]
            for _ in range(4)]
    rows = [session.scalars(sa.select(Application).where(
        Application.public_id == uuid.UUID(i))).one() for i in made]
    old = utcnow() - timedelta(days=40)
    draft, fresh_draft, asked_lately, asked_long_ago = rows
    draft.state_changed_at = old
    for row, asked in ((asked_lately, utcnow()), (asked_long_ago, old)):
        row.state, row.state_changed_at, row.info_requested = "under_review", old, True
        session.add(ReviewAction(application=row, staff_id=world.reviewer.id,
                                 action="request_information", reason="地块面积?"))
        session.flush()
        session.execute(sa.update(ReviewAction).where(ReviewAction.application_id == row.id)
                        .values(created_at=asked))
    session.commit()
    with app.app_context():
        assert run("applications.expire") == "ok"
    for row in rows:
        session.refresh(row)
    assert [r.state for r in rows] == ["expired", "draft", "under_review", "expired"]
    assert fresh_draft.state == "draft"


def test_no_policy_in_force_is_a_clear_answer_not_a_500(client, session, registry, world):
    from lending.policy.models import CreditPolicy  # noqa: PLC0415

    farmer = w.farmer(session, world)
    land = w.plant(registry, farmer)
    session.execute(sa.update(CreditPolicy).values(effective_from=utcnow().replace(year=2099)))
    session.commit()
    assert_problem(_apply(client, session, farmer, w.body(world, land)), 404, "no-credit-policy")
    assert registry.count() == 0
