"""Plausibility flags: a GPS fix far from the registry's parcel, impossible travel between two
visits of one coordinator, a visit recorded before its assignment existed. Each is a flag on the
visit and in the result, never a refusal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from agents import plausibility as p
from agents.models import FieldVisit
from core.db import utcnow
from lending.applications import fieldwork, states
from tests import factories as f
from tests.agents import test_ops_world as ow
from tests.lending import review_factories as rf

T0 = datetime(2026, 5, 2, 8, 0, tzinfo=UTC)
HERE = (306_000_000, 1_201_000_000)  # 30.6 N, 120.1 E
KM_NORTH = 89_932  # 1 km of latitude in 1e-7 degrees (about)


# --- the arithmetic ------------------------------------------------------------------------------

def test_distances_on_integer_degrees():
    assert p.distance_m(*HERE, *HERE) == 0
    assert p.distance_m(0, 0, 10_000_000, 0) == pytest.approx(111_195, rel=1e-3)  # 1 degree
    assert p.distance_m(*HERE, HERE[0] + KM_NORTH, HERE[1]) == pytest.approx(1000, rel=1e-2)
    # Beijing to Shanghai, about 1,068 km
    assert p.distance_m(399_042_000, 1_164_074_000, 312_304_000, 1_214_737_000) \
        == pytest.approx(1_068_000, rel=1e-2)
    assert p.distance_m(0, 1_799_999_999, 0, -1_799_999_999) < 1  # across the antimeridian


def test_far_from_parcel_allows_for_the_fix_s_accuracy():
    near = p.Fix(T0, HERE[0] + 4 * KM_NORTH // 10, HERE[1], accuracy_m=0)  # 400 m
    assert p.far_from_parcel(near, HERE, 500) is None
    far = p.Fix(T0, HERE[0] + 7 * KM_NORTH // 10, HERE[1], accuracy_m=0)  # 700 m
    flag = p.far_from_parcel(far, HERE, 500)
    assert flag is not None
    assert flag["code"] == "gps-far-from-parcel"
    assert flag["distance_m"] == pytest.approx(700, abs=10)
    vague = p.Fix(T0, far.lat_e7, far.lon_e7, accuracy_m=300)
    assert p.far_from_parcel(vague, HERE, 500) is None
    assert p.far_from_parcel(far, None, 500) is None  # no registry location: nothing to say


def test_travel_speed_between_two_fixes():
    a = p.Fix(T0, *HERE)
    by_car = p.Fix(T0 + timedelta(hours=1), HERE[0] + 80 * KM_NORTH, HERE[1])
    assert p.travel(a, by_car, 120) is None
    by_plane = p.Fix(T0 + timedelta(hours=1), HERE[0] + 300 * KM_NORTH, HERE[1])
    flag = p.travel(a, by_plane, 120)
    assert flag is not None
    assert flag["speed_kmh"] == pytest.approx(300, abs=5)
    assert p.travel(by_plane, a, 120) == flag  # the order in time does not matter
    same_second = p.Fix(T0, HERE[0] + KM_NORTH, HERE[1])
    assert p.travel(a, same_second, 120)["speed_kmh"] is None  # infinite
    blurred = p.Fix(T0, HERE[0] + KM_NORTH // 100, HERE[1], accuracy_m=20)  # 10 m apart
    assert p.travel(a, blurred, 120) is None


def test_before_assignment_with_the_clock_tolerance():
    made = T0
    assert p.before_assignment(T0 - timedelta(minutes=5), made, timedelta(minutes=10)) is None
    flag = p.before_assignment(T0 - timedelta(hours=2), made, timedelta(minutes=10))
    assert flag is not None
    assert flag["code"] == "before-assignment"
    assert p.before_assignment(T0 - timedelta(hours=2), None, timedelta(minutes=10)) is None


def test_a_timeline_finds_the_neighbours_by_recorded_time():
    line = p.Timeline([p.Fix(T0 + timedelta(hours=2), *HERE), p.Fix(T0, *HERE)])
    middle = p.Fix(T0 + timedelta(hours=1), HERE[0] + 500 * KM_NORTH, HERE[1])
    assert {fix.at for fix in line.neighbours(middle)} == {T0, T0 + timedelta(hours=2)}
    assert line.impossible(middle, 120)["code"] == "impossible-travel"
    line.add(middle)
    assert [fix.at for fix in line.fixes] == [T0 + timedelta(hours=n) for n in range(3)]


# --- through the push ---------------------------------------------------------------------------

@pytest.fixture
def world(session: Any) -> ow.World:
    return ow.build(session)


@pytest.fixture
def phone(client: Any, session: Any, world: ow.World) -> ow.Device:
    return ow.device(client, session, world.coordinator)


def _flags(session: Any, entity_id: str) -> list[str]:
    session.rollback()
    row = session.scalars(sa.select(FieldVisit).where(
        FieldVisit.public_id == uuid.UUID(entity_id))).one()
    return [flag["code"] for flag in row.flags]


def test_a_fix_far_from_the_registry_parcel_is_flagged_not_refused(session, world, phone):
    ow.parcel(session, world.farmer, "R-1", *HERE)
    start = utcnow() - timedelta(hours=3)
    near = phone.op("parcel_visit", ow.visit(world.farmer, "R-1",
                                             lat_e7=HERE[0] + KM_NORTH // 10), recorded_at=start)
    far = phone.op("parcel_visit", ow.visit(world.farmer, "R-1", lat_e7=HERE[0] + 3 * KM_NORTH),
                   recorded_at=start + timedelta(hours=1))
    unknown = phone.op("parcel_visit", ow.visit(world.farmer, "NOT-IN-REGISTRY"),
                       recorded_at=start + timedelta(hours=2))
    results = phone.push(near, far, unknown)["results"]
    assert [r["status"] for r in results] == ["applied"] * 3
    assert [r["result"]["flags"] for r in results] == [[], ["gps-far-from-parcel"], []]
    assert _flags(session, far["entity_id"]) == ["gps-far-from-parcel"]
    row = session.scalars(sa.select(FieldVisit).where(
        FieldVisit.public_id == uuid.UUID(far["entity_id"]))).one()
    assert row.flags[0]["distance_m"] == pytest.approx(3000, rel=0.02)


def test_the_gps_limit_is_a_setting(app, session, world, phone):
    app.config["NONGDAI_PLAUSIBLE_GPS_METERS"] = 5_000
    ow.parcel(session, world.farmer, "R-1", *HERE)
    item = phone.send("parcel_visit", ow.visit(world.farmer, "R-1",
                                               lat_e7=HERE[0] + 3 * KM_NORTH))
    assert item["result"]["flags"] == []


def test_impossible_travel_between_batches_and_within_one(session, world, phone):
    start = utcnow() - timedelta(hours=3)
    first = phone.send("parcel_visit", ow.visit(world.farmer), recorded_at=start)
    assert first["result"]["flags"] == []
    # 200 km further, 30 minutes later (stored visit vs this batch): 400 km/h
    jump = phone.op("parcel_visit", ow.visit(world.farmer, lat_e7=HERE[0] + 200 * KM_NORTH),
                    recorded_at=start + timedelta(minutes=30))
    # 50 km on from there, two hours later: 25 km/h, fine
    drive = phone.op("parcel_visit", ow.visit(world.farmer, lat_e7=HERE[0] + 250 * KM_NORTH),
                     recorded_at=start + timedelta(hours=2, minutes=30))
    results = phone.push(jump, drive)["results"]
    assert [r["result"]["flags"] for r in results] == [["impossible-travel"], []]
    assert _flags(session, jump["entity_id"]) == ["impossible-travel"]


def test_travel_is_judged_by_recorded_time_not_arrival(session, world, phone):
    start = utcnow() - timedelta(hours=5)
    phone.send("parcel_visit", ow.visit(world.farmer), recorded_at=start)
    phone.send("parcel_visit", ow.visit(world.farmer), recorded_at=start + timedelta(hours=4))
    # arrives last, recorded in between, 300 km away one hour from either: flagged
    late = phone.send("parcel_visit", ow.visit(world.farmer, lat_e7=HERE[0] + 300 * KM_NORTH),
                      recorded_at=start + timedelta(hours=1))
    assert late["result"]["flags"] == ["impossible-travel"]


def test_another_coordinator_s_visits_do_not_count(client, session, world, phone):
    start = utcnow() - timedelta(hours=1)
    phone.send("parcel_visit", ow.visit(world.farmer), recorded_at=start)
    colleague = ow.device(client, session, f.coordinator(session, world.coordinator.station))
    far = colleague.send("parcel_visit", ow.visit(world.farmer, lat_e7=HERE[0] + 300 * KM_NORTH),
                         recorded_at=start + timedelta(minutes=1))
    assert far["result"]["flags"] == []


def test_a_visit_recorded_before_its_assignment_existed(session, world, phone):
    application = rf.application(session, world.farmer, state=states.AWAITING_FIELD_CHECK)
    assignment = fieldwork.open_assignment(session, application)
    session.commit()
    base = {"assignment_id": str(assignment.public_id)}
    before = phone.send("parcel_visit", ow.visit(world.farmer, **base),
                        recorded_at=assignment.created_at - timedelta(days=2))
    after = phone.send("parcel_visit", ow.visit(world.farmer, **base),
                       recorded_at=assignment.created_at + timedelta(minutes=5))
    check = phone.send("identity_check", {"farmer_id": str(world.farmer.public_id),
                                          "verified": True, **base},
                       recorded_at=assignment.created_at - timedelta(days=1))
    assert before["result"]["flags"] == ["before-assignment"]
    assert after["result"]["flags"] == []
    assert check["result"]["flags"] == ["before-assignment"]
    assert _flags(session, before["result"]["entity_id"]) == ["before-assignment"]
