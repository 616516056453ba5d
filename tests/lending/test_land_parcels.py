"""The bank's copy of its farmers' registry parcels (``land_parcels``): filled from land answers
(the application path, over real HTTP to the reference registry), from imported extracts and
from the demo seeding; idempotent; read back for devices and plausibility checks."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core import demo
from core.db import utcnow
from core.people.models import Farmer
from core.people.services import id_number_hash
from lending.registries import parcels, wire
from lending.registries.models import LandParcel
from lending.registries.reference import synthetic
from sync.feed import changes
from tests import factories as f
from tests.lending import origination_world as w
from tests.lending.origination_world import API
from tests.lending.test_registry_import import LAND_HEADER, import_land, write


@pytest.fixture
def world(session: Any, registry: Any) -> w.World:
    return w.build(session)


def stored(session: Any, farmer: Farmer | None = None) -> list[LandParcel]:
    stmt = sa.select(LandParcel).order_by(LandParcel.parcel_code)
    if farmer is not None:
        stmt = stmt.where(LandParcel.farmer_id == farmer.id)
    session.expire_all()
    return list(session.scalars(stmt))


def farmer_changes(session: Any, farmer: Farmer) -> int:
    """How many ``farmer`` change entries the feed holds for ``farmer``."""
    table = changes.CHANGES
    return session.scalar(sa.select(sa.func.count()).select_from(table).where(
        table.c.kind == "farmer", table.c.entity_id == farmer.public_id))


def land(farmer: Farmer, *certificates: tuple[str, list[dict[str, Any]]]) -> Any:
    """A land answer for ``farmer`` holding ``certificates`` (number, parcels)."""
    return wire.land_from_json({"holder_hash": farmer.id_number_hash, "certificates": [
        {"number": number, "holder_hash": farmer.id_number_hash, "holder_name": farmer.name,
         "parcels": held} for number, held in certificates]})


def test_an_application_keeps_the_registry_parcels_with_their_locations(
        client, session, registry, world) -> None:
    farmer = w.farmer(session, world)
    w.plant(registry, farmer, sizes=("10.00", "8.25"), pledged=True)
    before = farmer_changes(session, farmer)
    answer = client.post(f"{API}/applications", json=w.body(world, w.parcels(
        sizes=("10.00", "8.25"))), headers=w.key(f.auth_headers(session, farmer)))
    assert answer.status_code == 201, answer.get_json()
    rows = stored(session, farmer)
    assert [(r.certificate_number, r.parcel_code, r.area_mu, r.land_class) for r in rows] == [
        ("CERT-A", "CERT-A-P1", Decimal("10.00"), "paddy"),
        ("CERT-A", "CERT-A-P2", Decimal("8.25"), "paddy")]
    assert {(r.lat_e7, r.lon_e7) for r in rows} == {(306_000_000, 1_201_000_000)}
    assert [r.pledged for r in rows] == [True, False]
    assert {(r.village_id, r.source, r.contract_end) for r in rows} == {
        (farmer.village_id, "registry", date(2057, 12, 31))}
    assert farmer_changes(session, farmer) == before + 1  # the devices hear of the parcels


def test_reading_ones_land_records_keeps_them_too(client, session, registry, world) -> None:
    farmer = w.farmer(session, world)
    w.plant(registry, farmer, cert="CERT-R")
    assert client.get(f"{API}/land-records",
                      headers=f.auth_headers(session, farmer)).status_code == 200
    assert [r.parcel_code for r in stored(session, farmer)] == ["CERT-R-P1", "CERT-R-P2"]


def test_the_same_answer_twice_writes_nothing_and_a_change_is_kept(session) -> None:
    home = f.village(session)
    farmer, neighbour = f.farmer(session, home), f.farmer(session, home)
    answer = land(farmer, ("C-1", w.parcels("C-1", ("3.25", "1.50"))))
    assert parcels.remember(session, farmer, answer) is True
    assert parcels.remember(session, neighbour, land(neighbour, ("C-9", w.parcels("C-9"))))
    session.commit()
    first = [(r.parcel_code, r.updated_at) for r in stored(session, farmer)]
    count = farmer_changes(session, farmer)

    assert parcels.remember(session, farmer, answer) is False  # idempotent
    session.commit()
    assert [(r.parcel_code, r.updated_at) for r in stored(session, farmer)] == first
    assert farmer_changes(session, farmer) == count

    moved = w.parcels("C-1", ("3.25",))
    moved[0]["latitude"] = "30.1234567"
    assert parcels.remember(session, farmer, land(farmer, ("C-1", moved))) is True
    session.commit()
    [row] = stored(session, farmer)  # C-1-P2 left the registry's answer: gone here too
    assert (row.parcel_code, row.lat_e7) == ("C-1-P1", 301_234_567)
    assert farmer_changes(session, farmer) == count + 1
    assert [r.parcel_code for r in stored(session, neighbour)] == ["C-9-P1", "C-9-P2"]

    assert parcels.remember(session, farmer, land(farmer)) is True  # holds nothing now
    assert stored(session, farmer) == []


def test_others_certificates_are_not_the_farmers_parcels(session) -> None:
    home = f.village(session)
    farmer, other = f.farmer(session, home), f.farmer(session, home)
    mine = land(farmer, ("C-1", w.parcels("C-1", ("2.00",))))
    theirs = land(other, ("C-2", w.parcels("C-2", ("4.00",))))
    answer = type(mine)(holder_hash=mine.holder_hash, certificates=mine.certificates,
                        foreign=theirs.certificates)
    parcels.remember(session, farmer, answer)
    assert [r.parcel_code for r in stored(session)] == ["C-1-P1"]


def test_locations_and_parcels_by_farmer_in_one_query_each(session) -> None:
    home = f.village(session)
    farmer, bare = f.farmer(session, home), f.farmer(session, home)
    held = w.parcels("C-1", ("3.25", "12.00"))
    held[1]["latitude"], held[1]["longitude"] = "-30.5", "-120.0000001"
    parcels.remember(session, farmer, land(farmer, ("C-1", held)))
    assert parcels.locations(session, ["C-1-P1", "C-1-P2", "NOPE"]) == {
        "C-1-P1": (306_000_000, 1_201_000_000), "C-1-P2": (-305_000_000, -1_200_000_001)}
    assert parcels.locations(session, []) == {}
    found = parcels.of_farmers(session, [farmer.id, bare.id])
    assert list(found) == [farmer.id]
    assert found[farmer.id][0] == {
        "certificate": "C-1", "code": "C-1-P1", "area_mu": "3.25", "land_class": "paddy",
        "lat_e7": 306_000_000, "lon_e7": 1_201_000_000, "contract_end": "2057-12-31"}
    assert found[farmer.id][1]["area_mu"] == "12.00"


def test_a_land_extract_fills_the_parcels_of_the_banks_farmers(runner, session,
                                                               tmp_path: Path) -> None:
    home = f.village(session)
    farmer = f.farmer(session, home)
    session.commit()
    lines = [
        f"C-1,{farmer.id_number_hash},张三,P-1,3.25,paddy,330521101201,30.512345,120.123456,"
        "1998-01-01,2057-12-31,德清农商行,50000,2020-01-01,2099-12-31",
        f"C-1,{farmer.id_number_hash},张三,P-2,12,dry,330521101201,30.5,120.1,1998-01-01,"
        "2026-12-31,,,,",
        f"C-2,{'c3' * 32},李四,P-3,1.5,paddy,330521101202,30.6,120.2,1998-01-01,2057-12-31,,,,",
    ]
    path = write(tmp_path, "land.csv", LAND_HEADER, lines)
    assert import_land(runner, path).exit_code == 0
    rows = stored(session)
    assert [(r.parcel_code, r.area_mu, r.lat_e7, r.lon_e7, r.pledged, r.source,
             r.farmer_id, r.village_id) for r in rows] == [
        ("P-1", Decimal("3.25"), 305_123_450, 1_201_234_560, True, "extract", farmer.id,
         home.id),
        ("P-2", Decimal("12.00"), 305_000_000, 1_201_000_000, False, "extract", farmer.id,
         home.id)]  # P-3's holder is no farmer of the bank
    assert rows[1].contract_end == date(2026, 12, 31)
    count = farmer_changes(session, farmer)
    assert count >= 1
    session.commit()
    assert import_land(runner, path).exit_code == 0  # the same file again: no change
    assert farmer_changes(session, farmer) == count
    assert [(r.parcel_code, r.updated_at) for r in stored(session)] == [
        (r.parcel_code, r.updated_at) for r in rows]


def test_the_demo_farmers_get_the_reference_registrys_parcels(app, session) -> None:
    assert "registry parcels of 3 farmers" in demo.seed(app)
    today = utcnow().date()
    for number in demo.farmer_id_numbers():
        digest = id_number_hash(number)
        expected = sorted(p["code"] for c in synthetic.land("nongdai", digest, today)
                          ["certificates"] for p in c["parcels"])
        farmer = session.scalars(sa.select(Farmer).where(Farmer.id_number_hash == digest)).one()
        assert [r.parcel_code for r in stored(session, farmer)] == expected
    session.commit()  # the seeding is another process's transaction
    assert "registry parcels" not in demo.seed(app)  # seeded once, left alone after
