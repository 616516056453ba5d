"""Credit policy versions over HTTP and in the database: who may publish and read them, what
a version must pass, which version is in force when, and that versions never change."""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.db import utcnow
from core.demo import SEEDERS
from lending.policy import engine, services
from lending.policy.models import CreditPolicy, CropReference, PolicyImmutable
from lending.registries.types import InsuranceRecord
from tests import factories as f
from tests.core.test_people_helpers import API, World, assert_problem, build_world, creating
from tests.lending.test_policy_helpers import HOLDER, MODEL, STRICTER, app, applicant, facts

POLICIES = f"{API}/credit-policies"
CROPS = f"{API}/crops"


@pytest.fixture
def world(session: Any) -> World:
    return build_world(session)


@pytest.fixture
def admin(session: Any, world: World) -> dict[str, str]:
    return f.auth_headers(session, world.admin)


@pytest.fixture
def seeded(session: Any, world: World) -> CreditPolicy:
    policy = services.seed_demo(session, [world.county.code])
    assert policy is not None
    session.commit()
    return policy


def _body(world: World, **overrides: Any) -> dict[str, Any]:
    return {"version": "2026.2", "description": "Stricter score threshold",
            "effective_from": (utcnow() + timedelta(days=1)).isoformat(),
            "decision_model": STRICTER,
            "crops": services.demo_crops([world.county.code]), **overrides}


def _audits(session: Any, action: str) -> list[AuditEvent]:
    rows = list(session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)))
    session.rollback()
    return rows


# --- the demo version ------------------------------------------------------------------------

def test_the_demo_version_has_domain_figures_for_each_county(session: Any, world: World,
                                                             seeded: CreditPolicy) -> None:
    rice = services.crop_reference(session, seeded, "rice", world.county.code)
    assert rice is not None
    assert (rice.yield_kg_per_mu, rice.price_fen_per_kg, rice.insured_sum_fen_per_mu) == (
        470, 260, 100_000)
    assert (rice.planting_from, rice.harvest_from, rice.harvest_to) == (
        "05-01", "09-01", "10-31")
    wheat = services.crop_reference(session, seeded, "wheat", world.county.code)
    assert wheat is not None
    assert (wheat.planting_from, wheat.harvest_from) == ("10-01", "05-20")
    assert [c.crop for c in seeded.crops] == ["corn", "rice", "soybean", "wheat"]
    assert services.crop_reference(session, seeded, "rice", "999999") is None
    assert services.current_policy(session).version == "2026.1"
    assert services.seed_demo(session, [world.county.code]) is None  # seeding twice: no-op
    assert seeded.decision_model == MODEL
    assert _audits(session, "credit_policy.create")[0].actor == "system"


def test_the_demo_seeder_is_registered_and_leaves_data_alone(app: Any, session: Any,
                                                             world: World) -> None:
    seeder = next(s for s in app.extensions[SEEDERS] if s is services.seeder)
    assert seeder(session) == "demo data: credit policy 2026.1 (1 counties)"
    assert seeder(session) is None


def test_a_crop_reference_becomes_the_facts_crop_input(session: Any, world: World,
                                                       seeded: CreditPolicy) -> None:
    crop = services.crop_input(services.crop_reference(session, seeded, "corn",
                                                       world.county.code))
    assert crop is not None
    assert (crop.yield_kg_per_mu, crop.harvest_to) == (420, "10-31")
    assert services.crop_input(None) is None


# --- publishing ---------------------------------------------------------------------------

def test_an_admin_publishes_a_version_for_new_applications(client: Any, session: Any,
                                                           world: World, seeded: CreditPolicy,
                                                           admin: dict[str, str]) -> None:
    headers, sent = creating(admin), _body(world)
    response = client.post(POLICIES, json=sent, headers=headers)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["version"] == "2026.2"
    assert body["decision_model"] == STRICTER
    assert len(body["crops"]) == 4
    assert body["created_by"] == f"staff:{world.admin.public_id}"
    again = client.post(POLICIES, json=sent, headers=headers)
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(_audits(session, "credit_policy.create")) == 2  # the demo one, this one

    # in force from tomorrow: today's applications still get 2026.1
    now = utcnow()
    assert services.current_policy(session, now).version == "2026.1"
    assert services.current_policy(session, now + timedelta(days=2)).version == "2026.2"
    assert services.current_policy(session, now - timedelta(days=30)).version == "2026.1"


def test_a_decision_keeps_the_version_it_was_made_with(session: Any, world: World,
                                                       seeded: CreditPolicy) -> None:
    later = utcnow() + timedelta(days=1)
    services.create_policy_version(session, version="2026.2", description="stricter",
                                   decision_model=STRICTER, effective_from=later,
                                   crops=services.demo_crops([world.county.code]),
                                   created_by="test")
    session.commit()
    # uninsured, 66 points: between the two versions' thresholds (60 and 70)
    snapshot = facts(insurance=InsuranceRecord(HOLDER, ()), applicant=applicant(age=60),
                     application=app(amount_fen=900_000))
    old = services.current_policy(session, utcnow())
    decided = engine.decide(old.version, old.decision_model, snapshot)
    new = services.current_policy(session, later + timedelta(seconds=1))
    assert (decided.outcome, new.version) == ("approve", "2026.2")
    assert engine.decide(new.version, new.decision_model, snapshot).outcome == "refer"
    stored = {"policy_version": old.version, "decision_model": services.get_policy(
        session, old.version).decision_model, "snapshot": snapshot}
    assert engine.replay(stored) == decided


@pytest.mark.parametrize("role", ["reviewer", "approver"])
def test_only_admins_publish_and_staff_read(client: Any, session: Any, world: World,
                                            seeded: CreditPolicy, role: str) -> None:
    staff = f.auth_headers(session, f.staff(session, (role,)))
    assert_problem(client.post(POLICIES, json=_body(world), headers=creating(staff)), 403)
    listing = client.get(POLICIES, headers=staff)
    assert listing.status_code == 200
    assert [p["version"] for p in listing.get_json()["items"]] == ["2026.1"]
    assert "decision_model" not in listing.get_json()["items"][0]
    one = client.get(f"{POLICIES}/{seeded.public_id}", headers=staff)
    assert one.status_code == 200
    assert one.get_json()["decision_model"] == MODEL
    assert [c["crop"] for c in one.get_json()["crops"]] == ["corn", "rice", "soybean", "wheat"]
    found = client.get(f"{POLICIES}?version=2026.1", headers=staff).get_json()["items"]
    assert [p["id"] for p in found] == [str(seeded.public_id)]
    assert client.get(f"{POLICIES}?version=1999.9", headers=staff).get_json()["items"] == []
    assert_problem(client.get(f"{POLICIES}/{uuid.uuid4()}", headers=staff), 404)


def test_coordinators_and_farmers_cannot_see_policies(client: Any, session: Any, world: World,
                                                      seeded: CreditPolicy) -> None:
    for who in (world.coordinator_a, world.farmer_a):
        headers = f.auth_headers(session, who)
        assert_problem(client.get(POLICIES, headers=headers), 403)
        assert_problem(client.get(f"{POLICIES}/{seeded.public_id}", headers=headers), 403)
        assert_problem(client.post(POLICIES, json=_body(world), headers=creating(headers)), 403)


def _broken_model(change: Any) -> dict[str, Any]:
    model = copy.deepcopy(STRICTER)
    change(model)
    return model


def _set_expression(model: dict[str, Any], key: str, value: str) -> None:
    for node in model["nodes"]:
        for expression in (node.get("content") or {}).get("expressions") or []:
            if expression["key"] == key:
                expression["value"] = value


def _set_code(model: dict[str, Any], code: str) -> None:
    table = next(node for node in model["nodes"] if node["name"] == "reasons")
    table["content"]["rules"][0]["reasons-out0"] = code


BROKEN_MODELS = {
    "not a graph": {"nodes": 3},
    "a cycle": _broken_model(lambda m: m["edges"].append(
        {"id": "x", "type": "edge", "sourceId": "outcome", "targetId": "facts"})),
    "an expression that fails": _broken_model(
        lambda m: _set_expression(m, "totals.limit_fen", "min(product.max_amount_fen)")),
    "an unknown reason code": _broken_model(lambda m: _set_code(m, "'made_up'")),
}


@pytest.mark.parametrize("name", sorted(BROKEN_MODELS))
def test_a_model_that_cannot_be_used_is_refused(client: Any, session: Any, world: World,
                                                seeded: CreditPolicy, admin: dict[str, str],
                                                *, name: str) -> None:
    response = client.post(POLICIES, json=_body(world, decision_model=BROKEN_MODELS[name]),
                           headers=creating(admin))
    body = assert_problem(response, 422, "credit-policy-invalid")
    assert body["errors"]["decision_model"]
    assert session.scalar(sa.select(sa.func.count()).select_from(CreditPolicy)) == 1


def test_what_else_a_version_must_pass(client: Any, session: Any, world: World,
                                       seeded: CreditPolicy, admin: dict[str, str]) -> None:
    past = (utcnow() - timedelta(minutes=5)).isoformat()
    body = assert_problem(client.post(POLICIES, json=_body(world, effective_from=past),
                                      headers=creating(admin)), 422, "credit-policy-invalid")
    assert "effective_from" in body["errors"]
    twice = services.demo_crops([world.county.code]) * 2
    body = assert_problem(client.post(POLICIES, json=_body(world, crops=twice),
                                      headers=creating(admin)), 422, "credit-policy-invalid")
    assert "crops" in body["errors"]
    bad_day = [{**services.demo_crops([world.county.code])[0], "harvest_to": "13-01"}]
    body = assert_problem(client.post(POLICIES, json=_body(world, crops=bad_day),
                                      headers=creating(admin)), 422, "validation-failed")
    assert "crops" in body["errors"]
    assert_problem(client.post(POLICIES, json=_body(world, crops=[]),
                               headers=creating(admin)), 422)
    assert_problem(client.post(POLICIES, json=_body(world, version="2026.1"),
                               headers=creating(admin)), 409, "policy-version-exists")
    assert_problem(client.post(POLICIES, json=_body(world, version="../x"),
                               headers=creating(admin)), 422)


def test_without_an_effective_date_a_version_applies_from_now(session: Any, world: World,
                                                              seeded: CreditPolicy) -> None:
    before = utcnow()
    policy = services.create_policy_version(
        session, version="2026.3", description="now", decision_model=MODEL,
        crops=services.demo_crops([world.county.code]), created_by="test")
    assert policy.effective_from >= before
    assert services.current_policy(session).version == "2026.3"


def test_a_published_version_never_changes(session: Any, seeded: CreditPolicy) -> None:
    seeded.description = "edited"
    with pytest.raises(PolicyImmutable):
        session.flush()
    session.rollback()
    crop = session.scalars(sa.select(CropReference)).first()
    session.delete(crop)
    with pytest.raises(PolicyImmutable):
        session.flush()
    session.rollback()


# --- the crop calendar --------------------------------------------------------------------

def test_anyone_signed_in_reads_the_crop_calendar(client: Any, session: Any, world: World,
                                                  seeded: CreditPolicy) -> None:
    headers = f.auth_headers(session, world.farmer_a)
    response = client.get(CROPS, headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["policy_version"] == "2026.1"
    assert [row["crop"] for row in body["crops"]] == ["corn", "rice", "soybean", "wheat"]
    rice = client.get(f"{CROPS}?crop=rice&county_code={world.county.code}",
                      headers=headers).get_json()["crops"]
    assert rice == [{"crop": "rice", "county_code": world.county.code, "yield_kg_per_mu": 470,
                     "price_fen_per_kg": 260, "insured_sum_fen_per_mu": 100_000,
                     "planting_from": "05-01", "planting_to": "05-31",
                     "harvest_from": "09-01", "harvest_to": "10-31"}]
    other = client.get(f"{CROPS}?county_code=999999", headers=headers).get_json()["crops"]
    assert other == []
    assert_problem(client.get(CROPS), 401)


def test_no_crop_calendar_before_a_policy_is_in_force(client: Any, session: Any,
                                                      world: World) -> None:
    headers = f.auth_headers(session, world.coordinator_a)
    assert_problem(client.get(CROPS, headers=headers), 404, "no-credit-policy")
