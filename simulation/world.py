"""The simulated county: a fresh SQLite instance in a temporary folder, migrated and seeded
(places, people, the demo credit policy and products), the reference registries with every
farmer's land and insurance planted, and the app served over real HTTP on a loopback port.

Seeding goes through the same services as the admin API (validated and audited, actor
"system"), as the embedded demo does. Everything random is drawn from one seeded
``random.Random``, so a seed replays the same county.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import waitress
from flask_migrate import upgrade

from core.db import db, utcnow
from core.lifecycle import NongdaiFlask
from core.people import idnumber
from core.people import services as people
from core.places import services as places
from lending.policy import services as policy
from lending.products import demo as products
from lending.registries.reference import RunningRegistry, start_in_thread

COUNTY = ("330521", "德清县")
TOWNSHIP = ("330521101", "新市镇")
VILLAGE_NAMES = ("宋市村", "蔡界村", "韶村村", "干山村", "南舍村", "勾里村", "新联村", "东升村")
SURNAMES = "张王李赵刘陈杨黄吴周徐孙马朱胡郭何林罗高"
GIVEN = ("德福", "春花", "大海", "秀英", "建国", "桂兰", "永刚", "志强", "玉梅", "长生",
         "金宝", "美华", "国强", "小芳", "水根", "阿四")
PASSWORD = "nongdai-simulation"  # noqa: S105 - made-up accounts of a throwaway database
STAFF = (("sim-reviewer", "李审查", ("reviewer",)), ("sim-approver", "陈审批", ("approver",)),
         ("sim-approver-2", "赵复核", ("approver",)), ("sim-admin", "王管理", ("admin",)))
SERVER_THREADS = 8
STOP_SECONDS = 10.0
BASE_LAT_E7, BASE_LON_E7 = 306_000_000, 1_201_000_000  # near 德清县


@dataclass
class FarmerSeed:
    """A simulated household: who, where, its land and insurance, and how it behaves."""

    name: str
    phone: str
    village_index: int
    id_number_hash: str
    public_id: str
    crop: str
    parcels: list[dict[str, Any]]
    insured: bool
    behaviour: str  # on_time | late | never | early
    apply_day: int
    product_code: str
    amount_fen: int
    term_months: int


@dataclass
class VillageSeed:
    name: str
    code: str
    public_id: str
    coordinator: str  # username
    lat_e7: int
    lon_e7: int


@dataclass
class World:
    """What the simulation drives: the app, its URL, the registries and the seeded people."""

    app: NongdaiFlask
    base_url: str
    registry: RunningRegistry
    folder: Path
    start: date
    villages: list[VillageSeed]
    farmers: list[FarmerSeed]
    staff: dict[str, str] = field(default_factory=dict)  # role key -> username
    _server: Any = None
    _thread: threading.Thread | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def stop(self) -> None:
        """Stop serving and the registries; dispose of the engine; remove the folder."""
        if self._server is not None:
            _stop_waitress(self._server)
        if self._thread is not None:
            self._thread.join(STOP_SECONDS)
        self.registry.stop()
        with self.app.app_context():
            db.engine.dispose()
        if self._tmp is not None:
            self._tmp.cleanup()


def _stop_waitress(server: Any) -> None:
    """Finish the requests in progress, then close every channel in the server's own loop
    thread, so that its loop (which runs while it has anything to watch) ends."""
    server.task_dispatcher.shutdown(timeout=STOP_SECONDS)
    closed = threading.Event()

    def close_all() -> None:
        for channel in list(server._map.values()):  # waitress keeps no other list
            with contextlib.suppress(OSError):
                channel.close()
        closed.set()

    server.trigger.pull_trigger(close_all)
    closed.wait(STOP_SECONDS)


def overrides(folder: Path, start: date) -> dict[str, Any]:
    """The simulated instance's settings: its own SQLite file, the business date pinned, the
    in-memory SMS inbox, and rate limits sized for one client address playing a county."""
    return {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'nongdai.sqlite3'}",
        "INSTANCE_PATH": str(folder),
        "NONGDAI_SEED_DEMO": False,
        "NONGDAI_SMS_SENDER": "simulation.actors:SmsInbox",
        "NONGDAI_SYNC_UPLOAD_DIR": str(folder / "uploads"),
        "NONGDAI_PAYOUT_EXPORT_DIR": str(folder / "payouts"),
        "NONGDAI_BUSINESS_DATE": start.isoformat(),
        "NONGDAI_OTP_PER_CLIENT_PER_HOUR": 100_000,
        "NONGDAI_OTP_VERIFY_PER_CLIENT_PER_HOUR": 100_000,
        "NONGDAI_LOGIN_PER_CLIENT_PER_HOUR": 100_000,
        "NONGDAI_LOGIN_PER_USER_PER_HOUR": 100_000,
        "NONGDAI_LOOKUP_PER_USER_PER_HOUR": 100_000,
        "NONGDAI_LOG_LEVEL": "ERROR",  # the progress bar and the report speak instead
        # The season passes in a minute of wall-clock time, so two visits seconds apart on the
        # device's clock are no sign of impossible travel here (GPS distance is still checked).
        "NONGDAI_PLAUSIBLE_SPEED_KMH": 1_000_000_000,
        # Registry answers are cached for minutes of wall-clock time, which here are months of
        # the season: the insurer's drought claims must be seen on the day they are assessed.
        "NONGDAI_REGISTRY_CACHE_SECONDS": 0,
        "NONGDAI_REGISTRY_TIMEOUT_MS": 5_000,
        "NONGDAI_REGISTRY_BACKOFF_MS": 10,
    }


def create(*, villages: int, farmers: int, seed: int, start: date,
           folder: Path | None = None) -> World:
    """Build the county and start serving it (call :meth:`World.stop` when done)."""
    from app import create_app  # noqa: PLC0415 - the factory lives in the top-level module

    tmp = None
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="nongdai-sim-")
        folder = Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)  # noqa: S311 - a replayable simulation, not secrets
    registry = start_in_thread(host="127.0.0.1", port=0, latency_ms=0, seed=f"sim-{seed}")
    app = create_app({**overrides(folder, start),
                      "NONGDAI_LAND_REGISTRY_URL": registry.land_url,
                      "NONGDAI_INSURANCE_REGISTRY_URL": registry.insurance_url})
    with app.app_context():
        upgrade(directory=str(Path(app.root_path) / "migrations"))
        village_seeds = _seed_places_and_people(villages, rng)
        farmer_seeds = _seed_farmers(village_seeds, farmers, rng)
        policy.seed_demo(db.session, [COUNTY[0]])
        products.seed_demo(db.session, [COUNTY[0]])
        db.session.commit()
    world = World(app=app, base_url="", registry=registry, folder=folder, start=start,
                  villages=village_seeds, farmers=farmer_seeds,
                  staff={"reviewer": STAFF[0][0], "approver": STAFF[1][0],
                         "approver2": STAFF[2][0], "admin": STAFF[3][0]}, _tmp=tmp)
    for farmer in farmer_seeds:
        plant(world, farmer)
    _serve(world)
    return world


def _serve(world: World) -> None:
    server = waitress.create_server(world.app, host="127.0.0.1", port=0,
                                    threads=SERVER_THREADS, ident="nongdai-simulation")
    thread = threading.Thread(target=server.run, name="simulation-server", daemon=True)
    thread.start()
    world.base_url = f"http://127.0.0.1:{server.effective_port}"
    world._server, world._thread = server, thread


def _seed_places_and_people(count: int, rng: random.Random) -> list[VillageSeed]:
    session = db.session
    places.create_county(session, code=COUNTY[0], name=COUNTY[1])
    township = places.create_township(session, code=TOWNSHIP[0], name=TOWNSHIP[1])
    seeds = []
    for n in range(count):
        name = VILLAGE_NAMES[n % len(VILLAGE_NAMES)] + ("" if n < len(VILLAGE_NAMES) else
                                                        str(n // len(VILLAGE_NAMES)))
        code = f"{TOWNSHIP[0]}{201 + n:03d}"
        village = places.create_village(session, code=code, name=name)
        station = places.create_station(session, name=f"{name}金融服务站", township=township,
                                        villages=[village])
        username = f"sim-coord-{n + 1}"
        people.create_coordinator(session, username=username, name=_person(rng),
                                  phone=f"139{n + 1:08d}", password=PASSWORD, station=station)
        seeds.append(VillageSeed(name=name, code=code, public_id=str(village.public_id),
                                 coordinator=username,
                                 lat_e7=BASE_LAT_E7 + rng.randrange(-200_000, 200_000),
                                 lon_e7=BASE_LON_E7 + rng.randrange(-200_000, 200_000)))
    for username, name, roles in STAFF:
        people.create_staff(session, username=username, name=name, password=PASSWORD,
                            roles=list(roles))
    return seeds


def _person(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN)


# How households repay, and how many of each (weights).
BEHAVIOURS = ("on_time", "late", "never", "early")
BEHAVIOUR_WEIGHTS = (62, 18, 10, 10)


def _seed_farmers(villages: list[VillageSeed], per_village: int,
                  rng: random.Random) -> list[FarmerSeed]:
    from core.places.models import Village  # noqa: PLC0415

    seeds = []
    for v_index, village_seed in enumerate(villages):
        village = db.session.scalars(
            sa.select(Village).where(Village.code == village_seed.code)).one()
        for n in range(per_village):
            sequence = v_index * per_village + n + 1
            born = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 30 * 365))
            row = people.create_farmer(
                db.session, name=_person(rng), phone=f"137{sequence:08d}",
                id_number=idnumber.make(COUNTY[0], born, sequence), village=village)
            crop = "wheat" if rng.random() < 0.3 else "rice"
            product = _product(rng.random())
            parcels = _parcels(rng, village_seed, sequence)
            area = sum(float(p["area_mu"]) for p in parcels)
            amount = max(200_000, min(int(area * rng.uniform(500, 1_200)) * 100, 5_000_000))
            seeds.append(FarmerSeed(
                name=row.name, phone=row.phone, village_index=v_index,
                id_number_hash=row.id_number_hash, public_id=str(row.public_id), crop=crop,
                parcels=parcels, insured=rng.random() < 0.8,
                behaviour=rng.choices(BEHAVIOURS, BEHAVIOUR_WEIGHTS)[0],
                apply_day=rng.randrange(0, 30),
                product_code=product, amount_fen=amount,
                term_months=TERMS[product]))
    return seeds


TERMS = {"spring-planting": 8, "steady-income-instalment": 12, "household-revolving": 36}


def _product(roll: float) -> str:
    """Most households take the spring planting loan; some monthly instalments; a few the
    revolving household line."""
    if roll < 0.15:
        return "steady-income-instalment"
    if roll < 0.27:
        return "household-revolving"
    return "spring-planting"


def _parcels(rng: random.Random, village: VillageSeed, sequence: int) -> list[dict[str, Any]]:
    parcels = []
    for n in range(1, rng.randint(1, 3) + 1):
        lat = village.lat_e7 + rng.randrange(-20_000, 20_000)
        lon = village.lon_e7 + rng.randrange(-20_000, 20_000)
        parcels.append({
            "code": f"SIM{sequence:05d}-P{n}", "area_mu": f"{rng.uniform(2, 15):.2f}",
            "land_class": "paddy", "village_code": village.code,
            "latitude": f"{lat / 1e7:.7f}", "longitude": f"{lon / 1e7:.7f}",
            "contract_start": "1998-01-01", "contract_end": "2057-12-31", "pledges": []})
    return parcels


def certificate(farmer: FarmerSeed) -> str:
    return f"CERT-{farmer.parcels[0]['code'].split('-')[0]}"


def plant(world: World, farmer: FarmerSeed, *, loss_ratio: str | None = None,
          event_date: date | None = None) -> None:
    """Put the farmer's land and insurance in the reference registry (``loss_ratio``: an
    assessed drought claim on the policy)."""
    cert = certificate(farmer)
    earliest = min(world.start, utcnow().date()) - timedelta(days=60)
    latest = max(world.start, utcnow().date()) + timedelta(days=800)
    policies, claims = [], []
    if farmer.insured:
        area = sum(float(p["area_mu"]) for p in farmer.parcels)
        number = f"PICC-{cert}"
        policies.append({
            "number": number, "crop": farmer.crop, "insured_area_mu": f"{area:.2f}",
            "sum_insured_yuan": f"{area * 1000:.2f}", "start": earliest.isoformat(),
            "end": latest.isoformat(), "status": "active",
            "parcel_codes": [p["code"] for p in farmer.parcels]})
        if loss_ratio is not None:
            claims.append({"policy_number": number, "event": "drought",
                           "event_date": (event_date or world.start).isoformat(),
                           "loss_ratio": loss_ratio, "status": "assessed"})
    holder = farmer.id_number_hash
    world.registry.plant(holder, land={"holder_hash": holder, "certificates": [
        {"number": cert, "holder_hash": holder, "holder_name": farmer.name,
         "parcels": farmer.parcels}]},
        insurance={"holder_hash": holder, "policies": policies, "claims": claims})
