"""The sync benchmark's world (see ``bench/sync.py``): database, coordinators' phones, operations.

- :func:`seed` migrates a fresh database and seeds one county with two stations:
  * the *field* station serves one village of :data:`FIELD_FARMERS` farmers with their
    registered land parcels, and :data:`DEVICES` coordinators, each signed in on a phone of
    their own (a device-bound session, as ``POST /auth/login`` with a ``device`` makes);
  * the *pull* station serves one village of 2,000 farmers and 5,000 parcels with locations,
    and one coordinator on a phone: their first pull is the one measured.
- :func:`operations` builds, for each phone, its ``parcel_visit`` operations as the phone
  records them (a client-generated ``op_id`` and ``entity_id``, a gapless ``device_seq``, the
  payload's canonical SHA-256, the phone's recording time), and :func:`batches` cuts them into
  push bodies, serialised before any clock starts.

The same world, operations and bodies for the same seed, every run.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app import create_app
from bench import ceiling_app
from bench import farmers_seed as base
from core.auth import devices
from core.auth.sessions import issue_tokens
from core.crypto import vault
from core.db import db, utcnow
from core.people import idnumber
from core.people import services as people
from core.people.models import Farmer
from core.places import services as places

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261212
COUNTY = "330521"
DEVICES = 20
FIELD_FARMERS = 400  # the field village: whom the 20 coordinators visit
PULL_FARMERS = 2_000  # the pull village (issue #12: 2,000 farmers, 5,000 parcels)
PULL_PARCELS = 5_000
BATCH = 250  # operations per push (the reference client's batch)
TOKEN_SECONDS = 6 * 3600  # the run outlasts the default 15 minutes of an access token
CROPS = ("rice", "wheat", "maize", "rapeseed", "tea")
LAND_CLASSES = ("paddy", "dry", "irrigated")
# Deqing county, Zhejiang: the villages' centres, in 1e-7 degrees.
CENTRES = {"field": (306_100_000, 1_201_200_000), "pull": (305_800_000, 1_199_500_000)}
CHINA = timezone(timedelta(hours=8))
RECORDED_EVERY = timedelta(minutes=4)  # one visit every 4 minutes: a plausible walking pace


def settings(url: str, instance: Path) -> dict[str, Any]:
    """The in-process app's configuration for this database and instance folder."""
    return {**base.settings(url, instance), "NONGDAI_ACCESS_TOKEN_SECONDS": TOKEN_SECONDS,
            "NONGDAI_SYNC_UPLOAD_DIR": str(instance / "uploads")}


def server_env(url: str, instance: Path) -> dict[str, str]:
    """The same configuration as the environment of a gunicorn server."""
    return {**base.server_env(url, instance), "NONGDAI_ENV": "development",
            "NONGDAI_ACCESS_TOKEN_SECONDS": str(TOKEN_SECONDS),
            "NONGDAI_SYNC_UPLOAD_DIR": str(instance / "uploads")}


# --- the database ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Parcel:
    """A registered parcel as a coordinator's phone knows it (from its pull)."""

    farmer_id: str  # farmer's public id
    code: str
    area_mu: str
    lat_e7: int
    lon_e7: int


@dataclass(frozen=True)
class Phone:
    """A coordinator's signed-in phone."""

    device_id: str
    token: str


@dataclass(frozen=True)
class World:
    phones: list[Phone]  # the field station's 20 coordinators
    puller: Phone  # the pull station's coordinator
    parcels: list[Parcel]  # the field village's parcels (what the visits are of)
    pulled_farmers: int
    pulled_parcels: int


def seed(url: str, instance: Path) -> World:
    """Migrate, seed both stations, their villages, farmers, parcels and signed-in phones;
    the ceiling's table; ANALYZE on PostgreSQL (it runs without autovacuum here)."""
    from flask_migrate import upgrade  # noqa: PLC0415

    ceiling_app.prepare(url)
    app = create_app(settings(url, instance))
    rng = random.Random(SEED)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        county = places.create_county(db.session, code=COUNTY, name="德清县")
        del county
        township = places.create_township(db.session, code=f"{COUNTY}101", name="新市镇")
        field_village = places.create_village(db.session, code=f"{COUNTY}101201", name="东村")
        pull_village = places.create_village(db.session, code=f"{COUNTY}101202", name="西村")
        field_station = places.create_station(db.session, name="东村服务站", township=township,
                                              villages=[field_village])
        pull_station = places.create_station(db.session, name="西村服务站", township=township,
                                             villages=[pull_village])
        phones = [_phone(rng, field_station, n) for n in range(DEVICES)]
        puller = _phone(rng, pull_station, DEVICES)
        db.session.commit()
        field = _farmers(rng, field_village.id, FIELD_FARMERS, offset=0)
        pulled = _farmers(rng, pull_village.id, PULL_FARMERS, offset=FIELD_FARMERS)
        db.session.commit()
        parcels = _parcels(rng, field, field_village.id, 2 * FIELD_FARMERS, centre="field",
                           prefix="0001")
        _parcels(rng, pulled, pull_village.id, PULL_PARCELS, centre="pull", prefix="0002")
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
        db.engine.dispose()
    return World(phones=phones, puller=puller, parcels=parcels,
                 pulled_farmers=PULL_FARMERS, pulled_parcels=PULL_PARCELS)


def _phone(rng: random.Random, station: Any, n: int) -> Phone:
    """A coordinator signed in on a phone of their own: the device registered as a password
    sign-in with ``device`` registers it, and a session bound to it (no password round)."""
    coordinator = people.create_coordinator(
        db.session, username=f"bench-{n:02d}", name=f"协贷员{n}", phone=f"139{n:08d}",
        password=base.PASSWORD, station=station)
    device_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    device = devices.register(db.session, coordinator, device_id, f"bench phone {n}")
    tokens = issue_tokens(db.session, "coordinator", coordinator.id, device.id)
    return Phone(device_id=str(device_id), token=tokens["access_token"])


def _farmers(rng: random.Random, village_id: int, count: int, offset: int) -> list[Farmer]:
    keys = vault()
    rows = []
    for n in range(count):
        seq = offset + n
        born = date(1956, 1, 1) + timedelta(days=rng.randrange(0, 40 * 365))
        number = idnumber.make(f"3305{21 + seq // 1000 % 70:02d}", born, seq)
        rows.append(Farmer(name=f"农户{seq}", phone=f"15{seq:09d}",
                           id_number_ciphertext=keys.encrypt(number, "farmer.id_number"),
                           id_number_hash=keys.lookup_hash(number, "farmer.id_number"),
                           id_number_masked=idnumber.mask(number), birth_date=born,
                           village_id=village_id))
    db.session.add_all(rows)
    db.session.flush()
    return rows


def _parcels(rng: random.Random, farmers: list[Farmer], village_id: int, count: int, *,
             centre: str, prefix: str) -> list[Parcel]:
    """``count`` registered parcels over ``farmers`` (every farmer has one, the rest spread),
    within about a kilometre of the village centre, each with its location."""
    from lending.registries.models import LandParcel  # noqa: PLC0415 - lending publish

    lat0, lon0 = CENTRES[centre]
    columns = set(LandParcel.__table__.columns.keys())
    today = utcnow().date()
    out, rows = [], []
    for n in range(count):
        farmer = farmers[n % len(farmers)]
        area = Decimal(rng.randrange(50, 800)) / 100
        lat = lat0 + rng.randrange(-90_000, 90_000)  # ±1 km north-south
        lon = lon0 + rng.randrange(-100_000, 100_000)  # ±1 km east-west
        code = f"{COUNTY}101{prefix}-{n // 3:04d}-{n % 3 + 1:02d}"
        values = {
            "farmer_id": farmer.id, "village_id": village_id,
            "certificate_number": f"{COUNTY}{prefix}{farmer.id:08d}",
            "parcel_code": code, "code": code, "area_mu": area,
            "land_class": LAND_CLASSES[n % len(LAND_CLASSES)],
            "lat_e7": lat, "lon_e7": lon, "latitude_e7": lat, "longitude_e7": lon,
            "contract_end": date(today.year + 2 + n % 10, 12, 31),
            "contract_ends_on": date(today.year + 2 + n % 10, 12, 31), "source": "registry",
        }
        rows.append(LandParcel(**{k: v for k, v in values.items() if k in columns}))
        out.append(Parcel(farmer_id=str(farmer.public_id), code=code, area_mu=f"{area:.2f}",
                          lat_e7=lat, lon_e7=lon))
    db.session.add_all(rows)
    db.session.flush()
    return out


# --- the operations ------------------------------------------------------------------------------

def canonical_sha256(payload: dict[str, Any]) -> str:
    """The payload hash of docs/sync-protocol.md §3.1."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Batch:
    """One push as the phone sends it: its last ``device_seq`` and the body, serialised."""

    phone: Phone
    first_seq: int
    last_seq: int
    body: bytes


def operations(world: World, per_phone: int, start: datetime) -> list[list[dict[str, Any]]]:
    """Each phone's next ``per_phone`` parcel visits, recorded from ``start`` on, every
    :data:`RECORDED_EVERY`, the coordinators spread over the village's parcels."""
    rng = random.Random(SEED + 12)
    out = []
    for n, _phone in enumerate(world.phones):
        ops = []
        for k in range(per_phone):
            parcel = world.parcels[(n * 53 + k * 7) % len(world.parcels)]
            payload = {
                "farmer_id": parcel.farmer_id, "parcel_code": parcel.code,
                "location": {"lat_e7": parcel.lat_e7 + rng.randrange(-2_000, 2_000),
                             "lon_e7": parcel.lon_e7 + rng.randrange(-2_000, 2_000),
                             "accuracy_m": rng.randrange(4, 25)},
                "crop_seen": CROPS[(n + k) % len(CROPS)],
                "estimated_area_mu": parcel.area_mu,
                "notes": "作物长势正常 田间管理良好" if k % 3 == 0 else "",
                "photos": [],
            }
            recorded = (start + k * RECORDED_EVERY).astimezone(CHINA)
            ops.append({"op_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        "type": "parcel_visit",
                        "entity_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        "base_version": None, "payload": payload,
                        "payload_sha256": canonical_sha256(payload),
                        "recorded_at": recorded.isoformat(timespec="seconds")})
        out.append(ops)
    return out


def batches(world: World, ops: list[list[dict[str, Any]]], first_seq: int,
            size: int = BATCH) -> list[list[Batch]]:
    """Each phone's operations numbered from ``first_seq`` and cut into push bodies of
    ``size``; ``pending`` is what the phone still holds, this batch included."""
    out = []
    for phone, mine in zip(world.phones, ops, strict=True):
        pushes = []
        for at in range(0, len(mine), size):
            chunk = [{**op, "device_seq": first_seq + at + i}
                     for i, op in enumerate(mine[at:at + size])]
            body = {"sent_at": utcnow().isoformat(timespec="seconds"),
                    "pending": len(mine) - at, "ops": chunk}
            pushes.append(Batch(phone, first_seq + at, first_seq + at + len(chunk) - 1,
                                json.dumps(body, ensure_ascii=False).encode()))
        out.append(pushes)
    return out
