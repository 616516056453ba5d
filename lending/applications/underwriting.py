"""The bridge from an application to the credit policy: the case, the registries, the engine.

:class:`Case` is what the bank knows before asking the registries (read in phase 1 of
:mod:`lending.applications.pipeline`); :func:`evaluate` adds the registries' answers, builds
the policy's facts and runs the policy version the application is pinned to.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from core.db import DbSession
from core.jobs import business_date
from core.people.models import Farmer
from core.places.models import County, Township, Village
from lending.applications import states
from lending.applications.models import Application, ApplicationParcel, FieldCheck
from lending.policy import engine, facts
from lending.policy import services as policy_services
from lending.policy.models import CreditPolicy, CropReference
from lending.products.models import LoanProduct
from lending.registries import service as registries
from lending.registries.types import InsuranceRecord


@dataclass
class Case:
    """An application as the policy sees it, before the registries answer."""

    policy: CreditPolicy
    crop_ref: CropReference | None
    farmer: Farmer
    product: LoanProduct
    consents: set[str]
    amount_fen: int
    term_months: int
    crop: str
    purpose: str
    parcels: list[tuple[str, str, Decimal]]  # certificate number, parcel code, declared mu
    submitted_on: date
    maturity: date
    prior_approved: int
    bank_pledged: frozenset[str]
    field_check: FieldCheck | None = None
    keep: list[Any] = field(default_factory=list)  # rows to keep loaded across end_read

    @property
    def holder_hash(self) -> str:
        return self.farmer.id_number_hash

    @property
    def certificates(self) -> list[str]:
        return sorted({number for number, _code, _area in self.parcels})


@dataclass
class Result:
    outcome: str
    limit_fen: int
    amount_fen: int
    score: int
    factors: list[dict[str, Any]]
    reasons: list[dict[str, Any]]
    snapshot: dict[str, Any]
    unavailable: list[str]


def data_of(application: Application) -> dict[str, Any]:
    """A stored application in the shape of the request that made it."""
    return {
        "product_id": application.product.public_id, "amount_fen": application.amount_fen,
        "term_months": application.term_months, "purpose": application.purpose,
        "crop": application.crop,
        "parcels": [{"certificate_number": p.certificate_number, "parcel_code": p.parcel_code,
                     "declared_area_mu": p.declared_area_mu} for p in application.parcels],
    }


def _policy(session: DbSession, application: Application | None, at: datetime) -> CreditPolicy:
    if application is not None and application.policy is not None:
        return application.policy  # a decision made again keeps the version it started with
    return policy_services.current_policy(session, at)


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, on the month's last day when it is shorter."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def county_of(session: DbSession, farmer: Farmer) -> str:
    """The 6-digit code of the farmer's county, in one query."""
    return session.scalars(_COUNTY, {"village_id": farmer.village_id}).one()


def read_case(session: DbSession, *, farmer: Farmer, product: LoanProduct,
              data: dict[str, Any], consents: set[str], at: datetime,
              application: Application | None = None, county: str | None = None) -> Case:
    policy = _policy(session, application, at)
    county = county or county_of(session, farmer)
    crop_ref = session.scalars(_CROP_REFERENCE, {
        "policy_id": policy.id, "crop": data["crop"], "county": county}).first()
    parcels = [(p["certificate_number"], p["parcel_code"], Decimal(p["declared_area_mu"]))
               for p in data["parcels"]]
    other = application.id if application else -1
    prior = session.scalar(_PRIOR_APPROVED, {"farmer_id": farmer.id, "other": other}) or 0
    pledged = frozenset(session.scalars(_BANK_PLEDGED, {
        "other": other, "codes": [code for _n, code, _a in parcels]}).all())
    check = None
    if application is not None:
        check = session.scalars(_LAST_CHECK, {"application_id": application.id}).first()
    submitted = business_date(at)
    return Case(policy=policy, crop_ref=crop_ref, farmer=farmer, product=product,
                consents=consents, amount_fen=data["amount_fen"],
                term_months=data["term_months"], crop=data["crop"], purpose=data["purpose"],
                parcels=parcels, submitted_on=submitted,
                maturity=add_months(submitted, data["term_months"]),
                prior_approved=int(prior), bank_pledged=pledged, field_check=check,
                keep=[policy, *([crop_ref] if crop_ref else []), *([check] if check else [])])


# The case's reads, built once (a request binds its values; it does not build statements).
_COUNTY = (sa.select(County.code).join(Township).join(Village)
           .where(Village.id == sa.bindparam("village_id")))
_CROP_REFERENCE = sa.select(CropReference).where(
    CropReference.policy_id == sa.bindparam("policy_id"),
    CropReference.crop == sa.bindparam("crop"),
    CropReference.county_code == sa.bindparam("county"))
_PRIOR_APPROVED = sa.select(sa.func.count()).select_from(Application).where(
    Application.farmer_id == sa.bindparam("farmer_id"), Application.state == states.APPROVED,
    Application.id != sa.bindparam("other"))
_BANK_PLEDGED = (sa.select(ApplicationParcel.parcel_code).join(Application).where(
    Application.state == states.APPROVED, Application.id != sa.bindparam("other"),
    ApplicationParcel.parcel_code.in_(sa.bindparam("codes", expanding=True))))
_LAST_CHECK = (sa.select(FieldCheck).where(FieldCheck.application_id == sa.bindparam(
    "application_id")).order_by(FieldCheck.id.desc()).limit(1))


# --- the registries -----------------------------------------------------------------------------

def _asks(case: Case) -> tuple[bool, bool]:
    """Which registries the farmer's consents let the bank ask (no consent, no query)."""
    return "land_registry" in case.consents, "insurance" in case.consents


def cached(session: DbSession, case: Case) -> registries.Cached:
    land, insurance = _asks(case)
    return registries.cached(session, case.holder_hash, case.certificates, land=land,
                             insurance=insurance, as_of=case.submitted_on)


def fetch(config: registries.RegistryConfig, case: Case,
          have: registries.Cached) -> registries.Lookup:
    land, insurance = _asks(case)
    return registries.fetch(config, case.holder_hash, case.certificates, land=land,
                            insurance=insurance, have=have)


# --- the policy -------------------------------------------------------------------------------

def _age(farmer: Farmer, on: date) -> int | None:
    born = farmer.birth_date
    if born is None:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _field_check(check: FieldCheck | None, crop: str) -> facts.FieldCheckInput | None:
    """The latest check as the policy reads it: a parcel's crop counts as seen when the
    coordinator saw the crop the loan finances."""
    if check is None:
        return None
    parcels = tuple(
        facts.ParcelCheck(
            parcel_code=str(p.get("parcel_code")), visited=bool(p.get("visited")),
            crop_seen=str(p.get("crop_seen") or "").strip().lower() == crop,
            estimated_area_mu=(None if p.get("estimated_area_mu") is None
                               else Decimal(str(p["estimated_area_mu"]))))
        for p in check.parcels)
    return facts.FieldCheckInput(identity_verified=check.identity_verified, parcels=parcels)


def build_facts(case: Case, lookup: registries.Lookup | None) -> tuple[dict[str, Any], list[str]]:
    """The engine's input for ``case`` and the registries' answers; and the registries that
    failed. A registry the farmer did not let us ask counts as an empty answer (no insured
    parcels), not as a failure."""
    land_asked, insurance_asked = _asks(case)
    land = lookup.land if lookup else None
    insurance = lookup.insurance if lookup else None
    if not insurance_asked:
        insurance = InsuranceRecord(holder_hash=case.holder_hash)
    failed = sorted(lookup.failures) if lookup else []
    if lookup is None and land_asked:
        failed = ["land"]
    farmer = case.farmer
    snapshot = facts.build_facts(
        application=facts.ApplicationInput(
            amount_fen=case.amount_fen, term_months=case.term_months, crop=case.crop,
            purpose=case.purpose, submitted_on=case.submitted_on, maturity_on=case.maturity,
            parcels=tuple(facts.DeclaredParcel(number, code, area)
                          for number, code, area in case.parcels)),
        applicant=facts.ApplicantInput(
            holder_hash=case.holder_hash,
            identity_verified=farmer.identity_status == "verified",
            prior_approved_loans=case.prior_approved,
            open_default=False,  # servicing (loans, days past due) will supply this
            pledged_parcels=case.bank_pledged, age=_age(farmer, case.submitted_on)),
        product=facts.ProductInput(code=case.product.code,
                                   max_amount_fen=case.product.max_amount_fen,
                                   auto_ceiling_fen=case.product.auto_ceiling_fen),
        crop=policy_services.crop_input(case.crop_ref), land=land, insurance=insurance,
        unavailable=failed, field_check=_field_check(case.field_check, case.crop))
    return snapshot, failed


def evaluate(case: Case, lookup: registries.Lookup | None) -> Result:
    """Run the case's policy version on its facts. A failed registry never approves: should a
    policy version approve regardless, the outcome becomes a referral here."""
    snapshot, failed = build_facts(case, lookup)
    outcome = engine.decide_or_refer(case.policy.version, case.policy.decision_model, snapshot)
    unavailable = list(snapshot.get("unavailable", failed))
    result = Result(outcome=outcome.outcome, limit_fen=outcome.limit_fen,
                    amount_fen=outcome.amount_fen, score=outcome.score,
                    factors=outcome.factors, reasons=outcome.reasons, snapshot=snapshot,
                    unavailable=unavailable)
    if unavailable and result.outcome == "approve":
        result.outcome = "refer"
        result.reasons = [*result.reasons, {"code": "data_source_unavailable",
                                            "params": {"source": ", ".join(unavailable)}}]
    return result
