"""A small world for the servicing tests: a county with the demo credit policy (its crop
calendar) and products, a village with its station and coordinator, staff with each role, and
approved applications to turn into loans. Rows are built through the models (flushed; the
caller commits), so each test starts where its story starts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.db import utcnow
from core.people.models import Coordinator, Farmer, Staff
from core.places.models import Village
from lending.applications.models import Application, ApplicationParcel
from lending.policy import services as policy
from lending.policy.models import CreditPolicy
from lending.products import demo as products
from lending.products.models import LoanProduct
from tests import factories as f

API = "/api/v1"
COUNTY = "330521"


@dataclass
class World:
    village: Village
    other_village: Village
    coordinator: Coordinator
    reviewer: Staff
    approver: Staff
    second_approver: Staff
    policy: CreditPolicy
    spring: LoanProduct  # seasonal planting loan, bullet at harvest
    line: LoanProduct  # revolving household line
    products: dict[str, LoanProduct]  # every demo product by repayment type


def build(session: Any) -> World:
    county = f.county(session, code=COUNTY)
    village = f.village(session, f.township(session, county))
    other = f.village(session, f.township(session, county))
    station = f.station(session, [village])
    f.station(session, [other])
    version = policy.seed_demo(session, [county.code])
    assert version is not None
    seeded = {p.repayment_type: p for p in products.seed_demo(session, [county.code])}
    world = World(village=village, other_village=other,
                  coordinator=f.coordinator(session, station),
                  reviewer=f.staff(session, ("reviewer",)),
                  approver=f.staff(session, ("approver",)),
                  second_approver=f.staff(session, ("approver",)), policy=version,
                  spring=seeded["bullet_at_harvest"], line=seeded["revolving_line"],
                  products=seeded)
    session.flush()
    return world


def farmer(session: Any, world: World, village: Village | None = None) -> Farmer:
    return f.farmer(session, village or world.village)


def approved(session: Any, world: World, who: Farmer, *, product: LoanProduct | None = None,
             amount_fen: int = 2_000_000, term_months: int = 8, crop: str = "rice") -> Application:
    """An application approved for ``amount_fen`` on ``product`` (default: the spring loan),
    with the product's terms kept as submission keeps them."""
    from lending.products.services import terms_snapshot  # noqa: PLC0415

    offer = product or world.spring
    now = utcnow()
    row = Application(
        farmer=who, village_id=who.village_id, product=offer, policy_id=world.policy.id,
        state="approved", state_changed_at=now, amount_fen=amount_fen, term_months=term_months,
        purpose="化肥和种子", crop=crop, terms=terms_snapshot(offer), submitted_at=now,
        decided_at=now, approved_amount_fen=amount_fen,
        parcels=[ApplicationParcel(certificate_number="CERT-1", parcel_code=f"P-{f._n()}",
                                   declared_area_mu=Decimal("12.00"))])
    session.add(row)
    session.flush()
    return row


def coordinator_of(session: Any, village: Village) -> Coordinator:
    """A coordinator at a new station serving ``village`` only (e.g. the other village)."""
    return f.coordinator(session, f.station(session, [village]))
