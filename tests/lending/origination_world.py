"""A small world for the origination tests: one county with the demo credit policy and
products, a station with its coordinator, and farmers whose land and insurance the reference
registry answers as each test plants them (no shared test helpers live here beyond that)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.db import utcnow
from core.people.models import Consent, Coordinator, Farmer, Staff
from core.places.models import Village
from lending.applications.models import Application, ApplicationParcel
from lending.policy import services as policy
from lending.policy.models import CreditPolicy
from lending.products import demo as products
from lending.products.models import LoanProduct
from lending.registries.reference import RunningRegistry
from tests import factories as f

API = "/api/v1"
CONTRACT_END = "2057-12-31"


@dataclass
class World:
    village: Village
    coordinator: Coordinator
    other_coordinator: Coordinator
    reviewer: Staff
    policy: CreditPolicy
    spring: LoanProduct  # the seasonal planting loan (bullet at harvest)


def build(session: Any) -> World:
    county = f.county(session, code="330521")
    village = f.village(session, f.township(session, county))
    other = f.village(session, f.township(session, county))
    station, other_station = f.station(session, [village]), f.station(session, [other])
    version = policy.seed_demo(session, [county.code])
    assert version is not None
    spring = next(p for p in products.seed_demo(session, [county.code])
                  if p.repayment_type == "bullet_at_harvest")
    world = World(village=village, coordinator=f.coordinator(session, station),
                  other_coordinator=f.coordinator(session, other_station),
                  reviewer=f.staff(session, ("reviewer",)), policy=version, spring=spring)
    session.commit()
    return world


def consent(session: Any, farmer: Farmer, *purposes: str) -> None:
    now = utcnow()
    for purpose in purposes or ("credit_decision", "land_registry", "insurance"):
        session.add(Consent(farmer=farmer, purpose=purpose, granted_at=now - timedelta(days=1),
                            expires_at=now + timedelta(days=300), channel="app",
                            recorded_by="test"))
    session.flush()


def repeat_borrower(session: Any, world: World, farmer: Farmer) -> None:
    """Give ``farmer`` an earlier approved loan on another parcel (not a first-time borrower)."""
    session.add(Application(
        farmer=farmer, village_id=farmer.village_id, product=world.spring, state="approved",
        amount_fen=500_000, term_months=6, purpose="去年的化肥", crop="rice", terms={},
        info_requested=False, approved_amount_fen=500_000,
        parcels=[ApplicationParcel(certificate_number="OLD", parcel_code=f"OLD-{farmer.id}",
                                   declared_area_mu="1.00")]))
    session.flush()


def farmer(session: Any, world: World, *, repeat: bool = True, consents: bool = True,
           **kwargs: Any) -> Farmer:
    row = f.farmer(session, world.village, **kwargs)
    if consents:
        consent(session, row)
    if repeat:
        repeat_borrower(session, world, row)
    session.commit()
    return row


def parcels(cert: str = "CERT-A", sizes: tuple[str, ...] = ("10.00", "8.00"),
            contract_end: str = CONTRACT_END, pledged: bool = False) -> list[dict[str, Any]]:
    return [{
        "code": f"{cert}-P{n}", "area_mu": size, "land_class": "paddy",
        "village_code": "330521101201", "latitude": "30.6", "longitude": "120.1",
        "contract_start": "1998-01-01", "contract_end": contract_end,
        "pledges": ([{"creditor": "某信用社", "amount_yuan": "50000.00", "start": "2025-01-01",
                      "end": "2028-01-01", "active": True}] if pledged and n == 1 else []),
    } for n, size in enumerate(sizes, start=1)]


def plant(registry: RunningRegistry, farmer: Farmer, *, cert: str = "CERT-A",
          sizes: tuple[str, ...] = ("10.00", "8.00"), contract_end: str = CONTRACT_END,
          pledged: bool = False, insured: bool = True, claim: str | None = None,
          ) -> list[dict[str, Any]]:
    """Plant the farmer's land (one certificate) and insurance; returns the parcels."""
    land = parcels(cert, sizes, contract_end, pledged)
    holder_hash = farmer.id_number_hash
    today = utcnow().date()
    policies, claims = [], []
    if insured:
        area = sum(float(s) for s in sizes)
        policies.append({
            "number": f"PICC-{cert}", "crop": "rice", "insured_area_mu": f"{area:.2f}",
            "sum_insured_yuan": f"{area * 1000:.2f}",
            "start": (today - timedelta(days=30)).isoformat(),
            "end": (today + timedelta(days=400)).isoformat(), "status": "active",
            "parcel_codes": [p["code"] for p in land]})
        if claim:
            claims.append({"policy_number": f"PICC-{cert}", "event": "drought",
                           "event_date": (today - timedelta(days=10)).isoformat(),
                           "loss_ratio": claim, "status": "assessed"})
    registry.plant(farmer.id_number_hash, land={"holder_hash": holder_hash, "certificates": [
        {"number": cert, "holder_hash": holder_hash, "holder_name": farmer.name,
         "parcels": land}]},
        insurance={"holder_hash": farmer.id_number_hash, "policies": policies, "claims": claims})
    return land


def body(world: World, land: list[dict[str, Any]], *, amount_fen: int = 800_000,
         term_months: int = 8, cert: str = "CERT-A", **overrides: Any) -> dict[str, Any]:
    return {"product_id": str(world.spring.public_id), "amount_fen": amount_fen,
            "term_months": term_months, "purpose": "买化肥和种子", "crop": "rice",
            "parcels": [{"certificate_number": cert, "parcel_code": p["code"],
                         "declared_area_mu": p["area_mu"]} for p in land], **overrides}


def key(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": str(uuid.uuid4())}
