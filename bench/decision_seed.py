"""The decision benchmark's world (see ``bench/decision.py``): registry, database, applicants.

- :func:`registry` runs the reference registry (``python -m lending.registries.reference``)
  as a server process of its own, in its own process group, answering after ``latency_ms``;
- :func:`seed` migrates a fresh database and seeds one county with the demo credit policy and
  products, a station with its coordinator, and the bench's farmers: each with active consents
  (credit decision, land registry, insurance), one earlier approved application (so the policy
  does not send a first-time borrower to a field check) and a signed-in session (a token);
- :func:`applications` asks the registry for each farmer's certificates (not timed) and builds
  the application a farmer's phone would send for that land.

The same farmers, land and applications for the same seeds, every run.
"""

from __future__ import annotations

import random
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from app import create_app
from bench import ceiling_app
from bench import farmers_seed as base
from core.auth.sessions import issue_tokens
from core.crypto import vault
from core.db import db, utcnow
from core.people import idnumber
from core.people import services as people
from core.people.models import Consent, Farmer
from core.places import services as places
from lending.applications.models import Application, ApplicationParcel
from lending.policy import services as policy
from lending.products import demo as products
from lending.products.models import LoanProduct
from tests import servers

ROOT = Path(__file__).resolve().parent.parent
SEED = base.SEED
REGISTRY_SEED = "nongdai-bench"
COUNTY = "330521"
PURPOSES = ("credit_decision", "land_registry", "insurance")
YUAN = 100  # fen
# Asked for per mu the registry holds: below the policy's limit of 0.5 to 0.7 of a mu's crop
# (rice: 470 kg x 2.60 yuan), so the amount alone never refers; within the product's range and
# far below its auto ceiling (50,000 yuan) and the policy's field-check threshold (50,000).
YUAN_PER_MU = 400
MIN_YUAN, MAX_YUAN = 1_000, 20_000
TERMS = (6, 8, 10, 12)
TOKEN_SECONDS = 6 * 3600  # the run outlasts the default 15 minutes of an access token
FETCH_THREADS = 20


def settings(url: str, instance: Path, registry_url: str) -> dict[str, Any]:
    """The in-process app's configuration: the registries at ``registry_url``, no cache."""
    return {**base.settings(url, instance), **_registry_settings(registry_url)}


def server_env(url: str, instance: Path, registry_url: str) -> dict[str, str]:
    """The same configuration as the environment of a gunicorn server."""
    return {**base.server_env(url, instance), "NONGDAI_ENV": "development",
            **{name: str(value) for name, value in _registry_settings(registry_url).items()}}


def _registry_settings(registry_url: str) -> dict[str, Any]:
    # No registry cache: every application asks both registries, as a first query of the
    # day does (each farmer applies once anyway, so a cache would never be hit).
    return {"NONGDAI_LAND_REGISTRY_URL": f"{registry_url}/land",
            "NONGDAI_INSURANCE_REGISTRY_URL": f"{registry_url}/insurance",
            "NONGDAI_REGISTRY_CACHE_SECONDS": 0,
            "NONGDAI_ACCESS_TOKEN_SECONDS": TOKEN_SECONDS}


@contextmanager
def registry(latency_ms: int) -> Iterator[servers.Server]:
    """The reference registry in a process (group) of its own, stopped however this ends."""
    port = servers.free_port()
    command = [sys.executable, "-m", "lending.registries.reference", "--host", servers.LOOPBACK,
               "--port", str(port), "--latency-ms", str(latency_ms), "--seed", REGISTRY_SEED]
    with servers.serve(command, port, ready="/_control/health") as server:
        yield server


# --- the database ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Applicant:
    """A seeded farmer as the bench's phone knows them."""

    token: str
    holder_hash: str  # Farmer.id_number_hash: the registries' key for this farmer


@dataclass(frozen=True)
class World:
    product_id: str  # the seasonal planting loan (bullet at harvest), public id
    applicants: list[Applicant]


def seed(url: str, instance: Path, registry_url: str, count: int) -> World:
    """Migrate, seed the county, policy, products and ``count`` farmers with their tokens;
    the ceiling's table; ANALYZE on PostgreSQL (it runs without autovacuum here)."""
    from flask_migrate import upgrade  # noqa: PLC0415

    ceiling_app.prepare(url)
    app = create_app(settings(url, instance, registry_url))
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        village_ids = _places()
        policy.seed_demo(db.session, [COUNTY])
        spring = next(p for p in products.seed_demo(db.session, [COUNTY])
                      if p.repayment_type == "bullet_at_harvest")
        db.session.commit()
        applicants = [_farmer(spring, village_ids[n % len(village_ids)], n)
                      for n in range(count)]
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
        product_id = str(spring.public_id)
        db.engine.dispose()
    return World(product_id=product_id, applicants=applicants)


def _places() -> list[int]:
    places.create_county(db.session, code=COUNTY, name="德清县")
    township = places.create_township(db.session, code=f"{COUNTY}101", name="新市镇")
    villages = [places.create_village(db.session, code=f"{COUNTY}101{200 + n}", name=f"村{n}")
                for n in range(4)]
    station = places.create_station(db.session, name="服务站", township=township,
                                    villages=villages)
    people.create_coordinator(db.session, username="bench", name="协贷员",
                              phone="13900000000", password=base.PASSWORD, station=station)
    db.session.flush()
    return [v.id for v in villages]


def _farmer(spring: LoanProduct, village_id: int, seq: int) -> Applicant:
    """A farmer aged 26 to 60 with consents, an earlier approved loan and a session."""
    born = date(1966, 1, 1) + timedelta(days=seq * 7919 % (34 * 365))
    number = idnumber.make(f"3305{21 + seq // 1000 % 70:02d}", born, seq)
    keys = vault()
    farmer = Farmer(name=f"农户{seq}", phone=f"15{seq:09d}",
                    id_number_ciphertext=keys.encrypt(number, "farmer.id_number"),
                    id_number_hash=keys.lookup_hash(number, "farmer.id_number"),
                    id_number_masked=idnumber.mask(number), birth_date=born,
                    village_id=village_id)
    db.session.add(farmer)
    db.session.flush()
    now = utcnow()
    for purpose in PURPOSES:
        db.session.add(Consent(farmer=farmer, purpose=purpose, granted_at=now - timedelta(days=1),
                               expires_at=now + timedelta(days=300), channel="app",
                               recorded_by="bench"))
    db.session.add(Application(  # last season's loan, repaid: not a first-time borrower
        farmer=farmer, village_id=village_id, product=spring, state="approved",
        amount_fen=500_000, term_months=6, purpose="去年的化肥", crop="rice", terms={},
        info_requested=False, approved_amount_fen=500_000,
        parcels=[ApplicationParcel(certificate_number="OLD", parcel_code=f"OLD-{farmer.id}",
                                   declared_area_mu=Decimal("1.00"))]))
    tokens = issue_tokens(db.session, "farmer", farmer.id)
    return Applicant(token=tokens["access_token"], holder_hash=farmer.id_number_hash)


# --- the applications ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Submission:
    """One farmer's application as the phone sends it: token, Idempotency-Key, body."""

    token: str
    key: str
    body: dict[str, Any]


def applications(registry_url: str, world: World) -> list[Submission]:
    """Each applicant's application for all the land the registry holds for them (their
    certificates fetched from the registry first, concurrently; not part of any figure)."""
    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        lands = list(pool.map(lambda a: _certificates(registry_url, a.holder_hash),
                              world.applicants))
    rng = random.Random(SEED + 310)
    return [Submission(token=applicant.token, key=str(uuid.UUID(int=rng.getrandbits(128))),
                       body=_body(world.product_id, land, rng.choice(TERMS)))
            for applicant, land in zip(world.applicants, lands, strict=True)]


_local = threading.local()


def _certificates(registry_url: str, holder_hash: str) -> list[dict[str, Any]]:
    if not hasattr(_local, "http"):
        _local.http = requests.Session()
    answer = _local.http.get(f"{registry_url}/land/v1/holders/{holder_hash}/certificates",
                             timeout=30)
    answer.raise_for_status()
    return answer.json()["certificates"]


def _body(product_id: str, certificates: list[dict[str, Any]], term: int) -> dict[str, Any]:
    parcels = [{"certificate_number": c["number"], "parcel_code": p["code"],
                "declared_area_mu": f"{Decimal(p['area_mu']):.2f}"}
               for c in certificates for p in c["parcels"]]
    area = sum(Decimal(p["declared_area_mu"]) for p in parcels)
    yuan = int(area * YUAN_PER_MU) // 100 * 100
    return {"product_id": product_id, "amount_fen": min(max(yuan, MIN_YUAN), MAX_YUAN) * YUAN,
            "term_months": term, "purpose": "买化肥和种子", "crop": "rice",
            "parcels": parcels, "consents": list(PURPOSES)}
