"""What lending publishes to coordinators' devices: farmers (ID numbers masked, with their
registry parcels) and field assignments, pulled through ``GET /api/v1/sync/pull`` with a
device-bound session; and the size of a village's first pull."""

from __future__ import annotations

import gzip
import json
import random
import time
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from core.db import utcnow
from core.people import idnumber
from core.people.models import Farmer
from lending import devicefeed
from lending.applications.models import Application, FieldAssignment
from lending.registries import parcels, wire
from lending.registries.models import LandParcel
from tests import factories as f
from tests.lending import origination_world as w
from tests.lending.origination_world import API

PULL = f"{API}/sync/pull"


@pytest.fixture
def world(session: Any, registry: Any) -> w.World:
    return w.build(session)


def pull(client: Any, headers: dict[str, str], cursor: str | None = None,
         limit: int = 500) -> tuple[dict[tuple[str, str], dict[str, Any]], str]:
    """Pull until ``has_more`` is false: the last change per (kind, id), and the cursor."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    while True:
        query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = client.get(PULL, query_string=query, headers=headers)
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        for change in body["changes"]:
            seen[(change["kind"], change["id"])] = change
        cursor = body["cursor"]
        if not body["has_more"]:
            return seen, cursor


def register(client: Any, session: Any, world: w.World, id_number: str) -> dict[str, Any]:
    """A farmer registered by the coordinator through the ordinary API."""
    answer = client.post(f"{API}/farmers", headers=w.key(f.auth_headers(session,
                                                                         world.coordinator)),
                         json={"name": "王秀英", "phone": "13712345678", "id_number": id_number,
                               "village_id": str(world.village.public_id)})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def apply(client: Any, session: Any, registry: Any, world: w.World,
          farmer: Farmer) -> dict[str, Any]:
    """A first-time borrower's application: it waits for a field check (an assignment)."""
    w.consent(session, farmer)
    session.commit()
    land = w.plant(registry, farmer, sizes=("6.50", "3.00"))
    answer = client.post(f"{API}/applications", json=w.body(world, land, amount_fen=300_000),
                         headers=w.key(f.auth_headers(session, farmer)))
    assert answer.status_code == 201, answer.get_json()
    data = answer.get_json()
    assert data["state"] == "awaiting_field_check", data
    return data


def _land_of(farmer: Farmer) -> Any:
    """A land answer: one certificate of two parcels (numbered after the farmer)."""
    cert = f"C-{farmer.id}"
    return wire.land_from_json({"holder_hash": farmer.id_number_hash, "certificates": [
        {"number": cert, "holder_hash": farmer.id_number_hash, "holder_name": farmer.name,
         "parcels": w.parcels(cert)}]})


@pytest.fixture
def scene(client, session, registry, world) -> dict[str, Any]:
    """A farmer registered by the coordinator who applied and waits for a field check, a
    farmer of another station, and the coordinator's device."""
    number = f.id_number()
    registered = register(client, session, world, number)
    farmer = session.scalars(sa.select(Farmer).where(
        Farmer.public_id == uuid.UUID(registered["id"]))).one()
    application = apply(client, session, registry, world, farmer)
    other_village = world.other_coordinator.station.villages[0]
    stranger = f.farmer(session, other_village, name="外村人")
    parcels.remember(session, stranger, _land_of(stranger))
    session.commit()
    headers, _device = f.device_headers(session, world.coordinator)
    return {"farmer": farmer, "number": number, "application": application,
            "stranger": stranger, "headers": headers}


def test_a_coordinator_pulls_the_farmer_and_the_assignment(client, session, world, scene):
    seen, _cursor = pull(client, scene["headers"])
    farmer, application = scene["farmer"], scene["application"]
    change = seen[("farmer", str(farmer.public_id))]
    assert change["op"] == "upsert"
    data = change["data"]
    assert data["id_number_masked"] == idnumber.mask(scene["number"]) != scene["number"]
    assert scene["number"] not in json.dumps(list(seen.values()), ensure_ascii=False)
    assert (data["name"], data["phone"], data["village_id"], data["identity_status"]) == (
        "王秀英", "13712345678", str(world.village.public_id), "verified")
    assert data["parcels"] == [
        {"certificate": "CERT-A", "code": "CERT-A-P1", "area_mu": "6.50", "land_class": "paddy",
         "lat_e7": 306_000_000, "lon_e7": 1_201_000_000, "contract_end": "2057-12-31"},
        {"certificate": "CERT-A", "code": "CERT-A-P2", "area_mu": "3.00", "land_class": "paddy",
         "lat_e7": 306_000_000, "lon_e7": 1_201_000_000, "contract_end": "2057-12-31"}]
    assert None not in data.values()

    assignment = session.scalars(sa.select(FieldAssignment).join(Application).where(
        Application.public_id == uuid.UUID(application["id"]))).one()
    change = seen[("assignment", str(assignment.public_id))]
    assert change["op"] == "upsert"
    data = change["data"]
    assert (data["kind"], data["status"], data["village_id"], data["farmer_id"]) == (
        "field_check", "open", str(world.village.public_id), str(farmer.public_id))
    assert data["created_at"].endswith("Z")
    assert data["application"] == {
        "id": application["id"], "state": "awaiting_field_check", "amount_fen": 300_000,
        "crop": "rice", "term_months": 8, "purpose": "买化肥和种子",
        "parcels": [{"code": "CERT-A-P1", "declared_area_mu": "6.50"},
                    {"code": "CERT-A-P2", "declared_area_mu": "3.00"}]}

    assert ("farmer", str(scene["stranger"].public_id)) not in seen  # another station's
    assert {kind for kind, _id in seen} <= {"farmer", "assignment", "visit"}


def test_another_stations_coordinator_sees_none_of_it(client, session, world, scene):
    headers, _device = f.device_headers(session, world.other_coordinator)
    seen, _cursor = pull(client, headers)
    assert ("farmer", str(scene["stranger"].public_id)) in seen
    assert ("farmer", str(scene["farmer"].public_id)) not in seen
    assert not [key for key in seen if key[0] == "assignment"]


def test_status_changes_come_as_upserts_and_a_deactivated_farmer_as_a_tombstone(
        client, session, world, scene):
    _seen, cursor = pull(client, scene["headers"])
    farmer = scene["farmer"]
    withdrawn = client.post(f"{API}/applications/{scene['application']['id']}/withdraw",
                            headers=w.key(f.auth_headers(session, farmer)))
    assert withdrawn.status_code == 200, withdrawn.get_json()
    seen, cursor = pull(client, scene["headers"], cursor)
    [change] = [c for (kind, _id), c in seen.items() if kind == "assignment"]
    assert change["op"] == "upsert"
    assert (change["data"]["status"], change["data"]["application"]["state"]) == (
        "cancelled", "withdrawn")

    session.get(Farmer, farmer.id).is_active = False
    session.commit()
    seen, cursor = pull(client, scene["headers"], cursor)
    assert seen[("farmer", str(farmer.public_id))]["op"] == "delete"
    again, _cursor = pull(client, scene["headers"])  # a fresh device: not in its snapshot
    assert ("farmer", str(farmer.public_id)) not in again


def test_a_new_parcel_answer_reaches_the_device_as_a_farmer_change(client, session, registry,
                                                                   world, scene):
    _seen, cursor = pull(client, scene["headers"])
    farmer = scene["farmer"]
    w.plant(registry, farmer, sizes=("6.50", "3.00", "1.25"))
    assert client.get(f"{API}/land-records",
                      headers=f.auth_headers(session, farmer)).status_code == 200
    seen, _cursor = pull(client, scene["headers"], cursor)
    change = seen[("farmer", str(farmer.public_id))]
    assert [p["area_mu"] for p in change["data"]["parcels"]] == ["6.50", "3.00", "1.25"]


def test_an_application_state_move_updates_its_open_assignment(client, session, world, scene):
    """A Core UPDATE of the state (states.move) still reaches the devices."""
    from lending.applications import states  # noqa: PLC0415

    _seen, cursor = pull(client, scene["headers"])
    application = session.scalars(sa.select(Application).where(
        Application.public_id == uuid.UUID(scene["application"]["id"]))).one()
    states.move(session, application, states.SUBMITTED, actor="system")
    session.commit()
    seen, _cursor = pull(client, scene["headers"], cursor)
    [change] = [c for (kind, _id), c in seen.items() if kind == "assignment"]
    assert (change["data"]["status"], change["data"]["application"]["state"]) == (
        "open", "submitted")


def test_loading_and_snapshots_take_two_queries_whatever_the_page(session, world) -> None:
    farmers = [f.farmer(session, world.village) for _ in range(5)]
    for farmer in farmers:
        parcels.remember(session, farmer, _land_of(farmer))
        w.repeat_borrower(session, world, farmer)  # an application with a declared parcel
    session.add_all([FieldAssignment(application=application, village_id=world.village.id)
                     for application in session.scalars(sa.select(Application))])
    session.commit()
    ids, scope = sorted(farmer.public_id for farmer in farmers), frozenset({world.village.id})
    tasks = sorted(session.scalars(sa.select(FieldAssignment.public_id)))
    session.commit()
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        page = devicefeed.snapshot_farmers(session, scope, None, 3)
        rest = devicefeed.snapshot_farmers(session, scope, page[-1][0], 10)
        loaded = devicefeed.load_farmers(session, ids)
        work = devicefeed.snapshot_assignments(session, scope, None, 2)
        more = devicefeed.snapshot_assignments(session, scope, work[-1][0], 10)
        visits = devicefeed.load_assignments(session, tasks)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 12
    assert [i for i, _ in work + more] == tasks
    assert len(visits) == 5
    assert all(len(data["application"]["parcels"]) == 1 for data in visits.values())
    assert [i for i, _ in page + rest] == ids
    assert len(loaded) == 5
    assert all(len(data["parcels"]) == 2 for data in loaded.values())


# --- the size of a village's first pull --------------------------------------------------------

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗"
GIVEN = ("建国", "秀英", "德福", "春花", "大海", "桂兰", "永刚", "志强", "玉兰", "国华", "金凤",
         "海涛", "美华", "长生", "丽娟", "水根", "明", "芳")


def _village_of(session: Any, village: Any, farmers: int, parcels_per_two: int,
                rng: random.Random) -> None:
    """``farmers`` farmers with realistic registry data, ``parcels_per_two / 2`` parcels each
    on average (2 and 3 alternately for 5): one certificate each, codes of the village."""
    rows = []
    now = utcnow()
    for n in range(farmers):
        number = idnumber.make("330521", date(1950 + rng.randrange(50), 1 + rng.randrange(12),
                                              1 + rng.randrange(28)), 1 + n)
        farmer = Farmer(name=rng.choice(SURNAMES) + rng.choice(GIVEN),
                        phone=f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
                        id_number_ciphertext="x", id_number_hash=f"{n:064x}",
                        id_number_masked=idnumber.mask(number), village_id=village.id)
        session.add(farmer)
        rows.append(farmer)
    session.flush()
    parcel_rows = []
    for n, farmer in enumerate(rows):
        certificate = f"330521101201J{rng.randrange(10**10):010d}"
        count = parcels_per_two // 2 + (n % 2)
        for _ in range(count):
            degrees = (Decimal("30.45") + Decimal(rng.randrange(2_000_000)) / 10**7,
                       Decimal("119.95") + Decimal(rng.randrange(3_000_000)) / 10**7)
            parcel_rows.append({
                "farmer_id": farmer.id, "village_id": village.id,
                "certificate_number": certificate,
                "parcel_code": f"330521101201{rng.randrange(10**7):07d}",
                "area_mu": Decimal(rng.randint(150, 1200)).scaleb(-2),
                "land_class": rng.choice(("paddy", "paddy", "irrigated", "dry")),
                "lat_e7": parcels.e7(degrees[0]), "lon_e7": parcels.e7(degrees[1]),
                "contract_end": date(2026, 12, 31) if rng.random() < 0.1 else date(2057, 12, 31),
                "pledged": False, "source": "registry", "updated_at": now})
    unique = {row["parcel_code"]: row for row in parcel_rows}
    parcels.upsert(session, list(unique.values()))


def test_a_village_of_2000_farmers_and_5000_parcels_pulls_in_under_400_kb(
        client, session, world) -> None:
    rng = random.Random(12)  # noqa: S311 - test data
    _village_of(session, world.village, 2_000, 5, rng)
    session.commit()
    assert session.scalar(sa.select(sa.func.count()).select_from(LandParcel)) >= 4_990

    started = time.perf_counter()
    entries, after = [], None
    while True:
        page = devicefeed.snapshot_farmers(session, frozenset({world.village.id}), after, 500)
        if not page:
            break
        entries += [{"kind": "farmer", "id": str(i), "op": "upsert", "data": data}
                    for i, data in page]
        after = page[-1][0]
    body = json.dumps({"changes": entries}, ensure_ascii=False, separators=(",", ":")).encode()
    in_process = len(gzip.compress(body))
    took = time.perf_counter() - started

    headers, _device = f.device_headers(session, world.coordinator)
    wire_bytes, cursor, pages = 0, None, 0
    while True:
        answer = client.get(PULL, query_string={"limit": 1000, **(
            {"cursor": cursor} if cursor else {})}, headers={**headers,
                                                             "Accept-Encoding": "gzip"})
        assert answer.status_code == 200
        raw = answer.get_data()
        wire_bytes += len(raw)
        body = json.loads(gzip.decompress(raw) if answer.headers.get(
            "Content-Encoding") == "gzip" else raw)
        pages += 1
        cursor = body["cursor"]
        if not body["has_more"]:
            break
    print(f"\ninitial pull of 2,000 farmers x 2.5 parcels: snapshot data gzip "  # noqa: T201
          f"{in_process / 1024:.1f} KB in-process ({len(entries)} farmers, {took * 1000:.0f} ms);"
          f" over /sync/pull as sent: {wire_bytes / 1024:.1f} KB in {pages} pages")
    assert len(entries) == 2_000
    assert in_process <= 400 * 1024
