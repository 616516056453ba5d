"""Farmers met in the field: registered once per person (a second registration links), edited
field by field against ``base_version`` (a concurrent change is a conflict for staff), their
identity checked, their consent recorded with its photo."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from agents.models import FieldVisit
from core.audit import AuditEvent
from core.people import services
from core.people.models import Consent, Farmer
from sync.push import records
from sync.push.models import SyncConflict, SyncOp
from tests import factories as f
from tests.agents import test_ops_world as ow


@pytest.fixture
def world(session: Any) -> ow.World:
    return ow.build(session)


@pytest.fixture
def phone(client: Any, session: Any, world: ow.World) -> ow.Device:
    return ow.device(client, session, world.coordinator)


def _person(world: ow.World, number: str, phone: str = "13700000001", **extra: Any) -> dict:
    return {"name": "李四", "id_number": number, "phone": phone,
            "village_id": str(world.village.public_id), **extra}


def _farmer(session: Any, public_id: Any) -> Farmer:
    session.rollback()
    return session.scalars(sa.select(Farmer).where(Farmer.public_id == uuid.UUID(
        str(public_id)))).one()


# --- register_farmer ---------------------------------------------------------------------------

def test_a_new_farmer_takes_the_device_s_id_and_waits_for_an_identity_check(
        session, world, phone):
    number, entity = f.id_number(), uuid.uuid4()
    item = phone.send("register_farmer", _person(world, number, birth_date=f"{number[6:10]}-"
                                                 f"{number[10:12]}-{number[12:14]}"),
                      entity_id=entity)
    assert item["status"] == "applied", item
    assert item["result"] == {"entity_id": str(entity), "farmer_id": str(entity),
                              "linked": False, "version": 1, "identity_status": "pending",
                              "flags": []}
    farmer = _farmer(session, entity)
    assert (farmer.name, farmer.phone, farmer.village_id) == ("李四", "13700000001",
                                                              world.village.id)
    assert farmer.identity_status == "pending"
    assert farmer.id_number_hash == services.id_number_hash(number)
    assert number not in farmer.id_number_ciphertext
    assert farmer.id_number_masked == f"{number[:4]}{'*' * 10}{number[-4:]}"
    # the ID number never reaches the audit trail or the operation's record in clear
    trail = json.dumps([e.summary for e in session.scalars(sa.select(AuditEvent))],
                       ensure_ascii=False)
    assert number not in trail
    assert farmer.id_number_masked in trail
    kept = json.dumps([(o.result, o.detail) for o in session.scalars(sa.select(SyncOp))])
    assert number not in kept
    assert records.version_of(session, "farmer", [entity]) == {entity: 1}


def test_a_second_registration_of_the_same_person_links(session, world, phone, client):
    number = f.id_number()
    first = phone.send("register_farmer", _person(world, number))
    colleague = ow.device(client, session, f.coordinator(session, world.coordinator.station))
    again = colleague.send("register_farmer", _person(world, number.lower(), "13700000002",
                                                      name="李四 (again)"))
    assert again["status"] == "applied", again
    assert again["result"]["linked"] is True
    assert again["result"]["farmer_id"] == first["result"]["farmer_id"]
    assert again["result"]["entity_id"] != again["result"]["farmer_id"]
    assert ow.count(session, Farmer, Farmer.id_number_hash == services.id_number_hash(number)) \
        == 1
    assert ow.count(session, AuditEvent, AuditEvent.action == "farmer.linked") == 1


def test_a_person_the_bank_knew_before_is_linked(session, world, phone):
    item = phone.send("register_farmer", _person(world, _number_of(world.farmer)))
    assert item["result"]["linked"] is True
    assert item["result"]["farmer_id"] == str(world.farmer.public_id)
    assert item["result"]["identity_status"] == "verified"


def _number_of(farmer: Farmer) -> str:
    from core.crypto import vault  # noqa: PLC0415

    return vault().decrypt(farmer.id_number_ciphertext, "farmer.id_number")


@pytest.mark.parametrize(("change", "field"), [
    ({"id_number": "33052119800517000"}, "id_number"),
    ({"id_number": "330521198002300011"}, "id_number"),
    ({"phone": "2370000000"}, "phone"),
    ({"name": " "}, "name"),
    ({"village_id": 7}, "village_id"),
    ({"birth_date": "1999-01-01"}, "birth_date"),
])
def test_a_wrong_registration_is_rejected(session, world, phone, change, field):
    item = phone.send("register_farmer", {**_person(world, f.id_number()), **change})
    assert (item["status"], item["reason"]) == ("rejected", "invalid-payload"), item
    assert field in item["errors"]
    assert ow.count(session, Farmer) == 2


def test_a_phone_of_another_farmer_is_rejected(session, world, phone):
    item = phone.send("register_farmer", _person(world, f.id_number(), world.farmer.phone))
    assert (item["reason"], list(item["errors"])) == ("invalid-payload", ["phone"])


def test_a_village_outside_the_station_is_not_found(session, world, phone):
    item = phone.send("register_farmer", {**_person(world, f.id_number()),
                                          "village_id": str(world.elsewhere.public_id)})
    assert (item["status"], item["reason"]) == ("rejected", "not-found")
    assert ow.count(session, Farmer) == 2


# --- update_farmer -----------------------------------------------------------------------------

def _registered(world: ow.World, phone: ow.Device) -> str:
    item = phone.send("register_farmer", _person(world, f.id_number()))
    return item["result"]["farmer_id"]


def test_an_update_from_the_version_seen_is_applied(session, world, phone):
    farmer_id = _registered(world, phone)
    item = phone.send("update_farmer", {"phone": "13700000009"}, entity_id=uuid.UUID(farmer_id),
                      base_version=1)
    assert item["status"] == "applied", item
    assert (item["result"]["version"], item["result"]["conflicts"]) == (2, [])
    assert _farmer(session, farmer_id).phone == "13700000009"


def test_a_field_changed_on_the_server_is_a_conflict_for_staff(client, session, world, phone):
    farmer_id = _registered(world, phone)
    farmer = _farmer(session, farmer_id)
    staff = f.auth_headers(session, f.staff(session))
    edited = client.patch(f"{ow.API}/farmers/{farmer_id}", json={"phone": "13700000005"},
                          headers=staff)  # staff, meanwhile: the edit moves the version
    assert edited.status_code == 200, edited.get_json()
    item = phone.send("update_farmer", {"phone": "13700000009", "name": "李四四"},
                      entity_id=farmer.public_id, base_version=1)
    assert item["status"] == "conflict", item
    assert item["result"]["conflicts"] == ["phone"]
    farmer = _farmer(session, farmer_id)
    assert (farmer.phone, farmer.name) == ("13700000005", "李四四")  # server kept, name taken
    conflict = session.scalars(sa.select(SyncConflict)).one()
    assert (conflict.field, conflict.device_value, conflict.server_value) == (
        "phone", "13700000009", "13700000005")
    # staff take the device's value: the resolver writes it through core's service
    taken = client.post(f"{ow.API}/sync/conflicts/{conflict.public_id}/resolve",
                        json={"resolution": "take_device", "reason": "farmer called"},
                        headers=staff)
    assert taken.status_code == 200, taken.get_json()
    assert _farmer(session, farmer_id).phone == "13700000009"


def test_an_update_needs_a_base_version_and_a_known_farmer(session, world, phone):
    farmer_id = uuid.UUID(_registered(world, phone))
    no_base = phone.send("update_farmer", {"name": "王五"}, entity_id=farmer_id)
    assert (no_base["reason"], list(no_base["errors"])) == ("invalid-payload", ["base_version"])
    empty = phone.send("update_farmer", {}, entity_id=farmer_id, base_version=1)
    assert empty["reason"] == "invalid-payload"
    other = phone.send("update_farmer", {"name": "王五"}, entity_id=world.stranger.public_id,
                       base_version=1)
    assert (other["status"], other["reason"]) == ("rejected", "not-found")


# --- identity_check ----------------------------------------------------------------------------

def test_a_verified_check_verifies_a_pending_identity(session, world, phone):
    farmer_id = _registered(world, phone)
    entity = uuid.uuid4()
    item = phone.send("identity_check", {"farmer_id": farmer_id, "verified": True,
                                         "notes": "看过身份证"}, entity_id=entity)
    assert item["status"] == "applied", item
    assert _farmer(session, farmer_id).identity_status == "verified"
    check = session.scalars(sa.select(FieldVisit).where(FieldVisit.entity_id == entity)).one()
    assert check.kind == "identity_check"
    assert check.payload == {"verified": True, "notes": "看过身份证"}
    assert ow.count(session, AuditEvent, AuditEvent.action == "farmer.identity_verified") == 1
    from sync.feed.changes import SyncChange  # noqa: PLC0415

    assert ow.count(session, SyncChange, SyncChange.kind == "visit",
                    SyncChange.entity_id == entity) == 1


def test_an_unverified_check_leaves_the_identity_pending(session, world, phone):
    farmer_id = _registered(world, phone)
    item = phone.send("identity_check", {"farmer_id": farmer_id, "verified": False})
    assert item["status"] == "applied"
    assert _farmer(session, farmer_id).identity_status == "pending"


def test_a_check_right_after_the_registration_in_one_batch(session, world, phone):
    entity = uuid.uuid4()
    answer = phone.push(
        phone.op("register_farmer", _person(world, f.id_number()), entity_id=entity),
        phone.op("identity_check", {"farmer_id": str(entity), "verified": True}))
    assert [r["status"] for r in answer["results"]] == ["applied", "applied"]
    assert _farmer(session, entity).identity_status == "verified"


def test_a_visit_of_a_farmer_registered_earlier_in_the_batch(session, world, phone):
    entity = uuid.uuid4()
    visit = {**ow.visit(world.farmer), "farmer_id": str(entity)}
    answer = phone.push(
        phone.op("parcel_visit", visit),  # not yet registered: not found
        phone.op("register_farmer", _person(world, f.id_number()), entity_id=entity),
        phone.op("parcel_visit", visit),
        phone.op("post_loan_visit", {"farmer_id": str(entity), "crop_condition": "good",
                                     "funds_used_as_declared": True}))
    assert [(r["status"], r["reason"]) for r in answer["results"]] == [
        ("rejected", "not-found"), ("applied", None), ("applied", None), ("applied", None)]
    assert ow.count(session, FieldVisit, FieldVisit.farmer_id == _farmer(session, entity).id) \
        == 2


def test_an_identity_check_out_of_scope_is_not_found(world, phone):
    item = phone.send("identity_check", {"farmer_id": str(world.stranger.public_id),
                                         "verified": True})
    assert (item["status"], item["reason"]) == ("rejected", "not-found")


# --- record_consent ----------------------------------------------------------------------------

def test_a_field_consent_waits_for_its_photo_then_is_recorded(client, session, world, phone):
    form = b"signed consent form"
    sha = hashlib.sha256(form).hexdigest()
    op = phone.op("record_consent", {"farmer_id": str(world.farmer.public_id),
                                     "purpose": "land_registry", "evidence_photo": sha,
                                     "granted_at": "2026-05-01T10:00:00+08:00"})
    waiting = phone.push(op)["results"][0]
    assert (waiting["status"], waiting["reason"]) == ("deferred", "attachment-missing")
    ow.upload(client, phone.headers, form)
    item = phone.push(op)["results"][0]
    assert item["status"] == "applied", item
    consent = session.scalars(sa.select(Consent)).one()
    assert (consent.farmer_id, consent.purpose, consent.channel, consent.evidence) == (
        world.farmer.id, "land_registry", "coordinator", sha)
    assert consent.recorded_by == f"coordinator:{world.coordinator.public_id}"
    assert item["result"]["consent_id"] == str(consent.public_id)


def test_a_consent_with_a_wrong_purpose_is_rejected(world, phone):
    item = phone.send("record_consent", {"farmer_id": str(world.farmer.public_id),
                                         "purpose": "marketing", "evidence_photo": "0" * 64,
                                         "granted_at": "yesterday"})
    assert item["reason"] == "invalid-payload"
    assert set(item["errors"]) == {"purpose", "granted_at"}
