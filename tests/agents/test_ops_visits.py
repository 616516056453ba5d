"""Parcel and post-loan visits pushed from a device: recorded once with their change-log entry
and audit event, refused when wrong or out of scope, deferred until their photos arrive."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from agents import feed
from agents.models import FieldVisit
from core.audit import AuditEvent
from core.db import db
from sync.feed.changes import SyncChange
from tests import factories as f
from tests.agents import test_ops_world as ow


@pytest.fixture
def world(session: Any) -> ow.World:
    return ow.build(session)


@pytest.fixture
def phone(client: Any, session: Any, world: ow.World) -> ow.Device:
    return ow.device(client, session, world.coordinator)


def test_a_parcel_visit_is_recorded_with_its_change_and_audit(session, world, phone):
    entity = uuid.uuid4()
    item = phone.send("parcel_visit", ow.visit(world.farmer, notes="长势好"), entity_id=entity)
    assert item["status"] == "applied", item
    assert item["result"]["entity_id"] == str(entity)
    assert item["result"]["flags"] == []
    session.rollback()
    row = session.scalars(sa.select(FieldVisit).where(FieldVisit.entity_id == entity)).one()
    assert (row.kind, row.farmer_id, row.village_id) == ("parcel_visit", world.farmer.id,
                                                         world.village.id)
    assert (row.parcel_code, row.lat_e7, row.lon_e7, row.accuracy_m) == (
        "P-1", 306_000_000, 1_201_000_000, 10)
    assert (row.crop_seen, str(row.estimated_area_mu)) == ("rice", "4.75")
    assert row.coordinator_id == world.coordinator.id
    assert row.payload == {"notes": "长势好"}
    assert row.photos == []
    assert row.flags == []
    assert row.assignment_id is None
    assert ow.count(session, SyncChange, SyncChange.kind == "visit",
                    SyncChange.entity_id == entity, SyncChange.village_id == world.village.id) == 1
    assert ow.count(session, AuditEvent, AuditEvent.action == "visit.recorded",
                    AuditEvent.object_id == str(entity)) == 1


def test_a_post_loan_visit_keeps_condition_funds_and_risks(session, world, phone):
    payload = {"farmer_id": str(world.farmer.public_id), "crop_condition": "poor",
               "funds_used_as_declared": False, "risk_flags": ["drought", "sold-inputs"],
               "location": {"lat_e7": 306_000_000, "lon_e7": 1_201_000_000, "accuracy_m": 5},
               "notes": "旱情"}
    item = phone.send("post_loan_visit", payload)
    assert item["status"] == "applied", item
    session.rollback()
    row = session.scalars(sa.select(FieldVisit)).one()
    assert row.kind == "post_loan_visit"
    assert row.payload == {"crop_condition": "poor", "funds_used_as_declared": False,
                           "risk_flags": ["drought", "sold-inputs"], "notes": "旱情"}
    assert row.parcel_code is None
    assert row.lat_e7 == 306_000_000


def test_a_post_loan_visit_without_a_fix_is_kept(session, world, phone):
    item = phone.send("post_loan_visit", {"farmer_id": str(world.farmer.public_id),
                                          "crop_condition": "good",
                                          "funds_used_as_declared": True})
    assert item["status"] == "applied", item
    assert ow.count(session, FieldVisit, FieldVisit.lat_e7.is_(None)) == 1


@pytest.mark.parametrize(("change", "field"), [
    ({"farmer_id": "not-a-uuid"}, "farmer_id"),
    ({"location": {"lat_e7": 30.6, "lon_e7": 1_201_000_000}}, "location"),
    ({"location": None}, "location"),
    ({"estimated_area_mu": 4.75}, "estimated_area_mu"),
    ({"parcel_code": ""}, "parcel_code"),
    ({"photos": ["ABC"]}, "photos"),
    ({"colour": "green"}, "colour"),
])
def test_a_wrong_payload_is_rejected_field_by_field(session, world, phone, change, field):
    item = phone.send("parcel_visit", {**ow.visit(world.farmer), **change})
    assert (item["status"], item["reason"]) == ("rejected", "invalid-payload"), item
    assert field in item["errors"]
    assert ow.count(session, FieldVisit) == 0


def test_a_wrong_post_loan_condition_is_rejected(world, phone):
    item = phone.send("post_loan_visit", {"farmer_id": str(world.farmer.public_id),
                                          "crop_condition": "splendid",
                                          "funds_used_as_declared": "yes"})
    assert item["reason"] == "invalid-payload"
    assert set(item["errors"]) == {"crop_condition", "funds_used_as_declared"}


def test_a_farmer_of_another_station_is_not_found(session, world, phone):
    item = phone.send("parcel_visit", ow.visit(world.stranger))
    assert (item["status"], item["reason"]) == ("rejected", "not-found")
    unknown = phone.send("parcel_visit", {**ow.visit(world.farmer),
                                          "farmer_id": str(uuid.uuid4())})
    assert unknown["reason"] == "not-found"
    assert ow.count(session, FieldVisit) == 0


def test_a_visit_id_is_used_once(session, world, phone):
    entity = uuid.uuid4()
    assert phone.send("parcel_visit", ow.visit(world.farmer), entity_id=entity)["status"] \
        == "applied"
    again = phone.send("parcel_visit", ow.visit(world.farmer, "P-2"), entity_id=entity)
    assert (again["status"], again["reason"]) == ("rejected", "not-allowed")
    same = uuid.uuid4()
    twice = phone.push(phone.op("parcel_visit", ow.visit(world.farmer), entity_id=same),
                       phone.op("parcel_visit", ow.visit(world.farmer), entity_id=same))
    assert [r["status"] for r in twice["results"]] == ["applied", "rejected"]
    assert ow.count(session, FieldVisit) == 2


def test_a_rejected_visit_does_not_block_the_batch(session, world, phone):
    answer = phone.push(phone.op("parcel_visit", ow.visit(world.farmer)),
                        phone.op("parcel_visit", ow.visit(world.stranger)),
                        phone.op("parcel_visit", ow.visit(world.farmer, "P-2")))
    assert [r["status"] for r in answer["results"]] == ["applied", "rejected", "applied"]
    assert answer["acked_seq"] == 3
    assert ow.count(session, FieldVisit) == 2


def test_a_visit_waits_for_its_photos(client, session, world, phone):
    photo = b"\xff\xd8 a parcel of rice \xff\xd9"
    sha = hashlib.sha256(photo).hexdigest()
    first = phone.op("parcel_visit", ow.visit(world.farmer, photos=[sha]))
    second = phone.op("parcel_visit", ow.visit(world.farmer, "P-2"))
    answer = phone.push(first, second)
    assert [(r["status"], r["reason"]) for r in answer["results"]] == [
        ("deferred", "attachment-missing"), ("deferred", "waiting-earlier-seq")]
    assert answer["acked_seq"] == 0
    assert ow.count(session, FieldVisit) == 0
    assert ow.upload(client, phone.headers, photo) == sha
    again = phone.push(first, second)
    assert [r["status"] for r in again["results"]] == ["applied", "applied"]
    session.rollback()
    row = session.scalars(sa.select(FieldVisit).where(
        FieldVisit.entity_id == uuid.UUID(first["entity_id"]))).one()
    assert row.photos == [sha]


def test_a_replayed_batch_is_answered_from_the_record(session, world, phone):
    op = phone.op("parcel_visit", ow.visit(world.farmer))
    first = phone.push(op)
    again = phone.push(op)
    assert again["results"][0]["status"] == "duplicate"
    assert again["results"][0]["result"] == first["results"][0]["result"]
    assert ow.count(session, FieldVisit) == 1


def test_colleagues_pull_the_station_s_visits(client, session, world, phone):
    phone.send("parcel_visit", ow.visit(world.farmer))
    session.rollback()
    (entity, data), = feed.snapshot(session, frozenset({world.village.id}), None, 10)
    assert data["kind"] == "parcel_visit"
    assert data["farmer_id"] == str(world.farmer.public_id)
    assert data["coordinator_id"] == str(world.coordinator.public_id)
    assert data["parcel_code"] == "P-1"
    assert data["estimated_area_mu"] == "4.75"
    assert "notes" not in data
    assert "lat_e7" not in data
    assert feed.load(session, [entity]) == {entity: data}
    assert feed.snapshot(session, frozenset({world.elsewhere.id}), None, 10) == []
    assert feed.snapshot(session, frozenset({world.village.id}), entity, 10) == []


def _pull(client: Any, headers: dict[str, str],
          cursor: str = "") -> tuple[dict[tuple[str, str], Any], str]:
    """Pull every page from ``cursor`` (a first pull when empty): the changes, the new cursor."""
    seen: dict[tuple[str, str], Any] = {}
    while True:
        page = client.get(f"{ow.API}/sync/pull", query_string={"cursor": cursor} if cursor
                          else {}, headers=headers)
        assert page.status_code == 200, page.get_json()
        body = page.get_json()
        for change in body["changes"]:
            seen[(change["kind"], change["id"])] = change.get("data")
        cursor = body["cursor"]
        if not body["has_more"]:
            return seen, cursor


def test_a_colleague_s_phone_pulls_the_visit_and_another_station_does_not(
        client, session, world, phone):
    colleague = ow.device(client, session, f.coordinator(session, world.coordinator.station))
    before, cursor = _pull(client, colleague.headers)  # the first pull
    assert not any(kind == "visit" for kind, _id in before)
    entity = uuid.uuid4()
    phone.send("parcel_visit", ow.visit(world.farmer), entity_id=entity)
    seen, _cursor = _pull(client, colleague.headers, cursor)  # from the change feed
    assert seen[("visit", str(entity))]["farmer_id"] == str(world.farmer.public_id)
    first, _cursor = _pull(client, colleague.headers)  # and in a first pull's snapshot
    assert ("visit", str(entity)) in first
    outsider = ow.device(client, session, world.outsider)
    assert ("visit", str(entity)) not in _pull(client, outsider.headers)[0]


def test_the_statements_of_a_batch_do_not_grow_with_its_visits(session, world, phone):
    """The fast path: everything read once per batch, written by one executemany per table."""
    ow.parcel(session, world.farmer, "P-1", 306_000_000, 1_201_000_000)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if "auth_sessions" not in statement:  # sign-in bookkeeping, throttled by time
            statements.append(statement)

    phone.push(phone.op("parcel_visit", ow.visit(world.farmer)))  # the device's first push
    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        sizes = []
        for n in (2, 40):
            statements.clear()
            answer = phone.push(*[phone.op("parcel_visit", ow.visit(world.farmer))
                                  for _ in range(n)])
            assert answer["acked_seq"] == phone.seq
            sizes.append(len(statements))
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert sizes[0] == sizes[1], sizes
    assert ow.count(session, FieldVisit) == 43
