"""Realistic fact snapshots: the cases a new policy version must evaluate, and bench data.

:func:`smoke_facts` is a small fixed set that, together, makes every rule row of the demo
policy fire (a clean approval, every hard rule, every referral, a field check with findings);
a new version is evaluated on them before it is stored, which catches expression errors that
compiling cannot. :func:`random_facts` draws varied applications for the benchmark.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from lending.policy.facts import (
    ApplicantInput,
    ApplicationInput,
    CropInput,
    DeclaredParcel,
    FieldCheckInput,
    ParcelCheck,
    ProductInput,
    build_facts,
)
from lending.registries.types import (
    Certificate,
    Claim,
    InsurancePolicy,
    InsuranceRecord,
    LandRecord,
    Parcel,
    Pledge,
)

HOLDER = "holder-hash-demo"
SUBMITTED = date(2026, 3, 10)
MATURITY = date(2026, 11, 30)
PRODUCT = ProductInput(code="crop-season", max_amount_fen=30_000_000, auto_ceiling_fen=5_000_000)
RICE = CropInput(crop="rice", county_code="330521", yield_kg_per_mu=470, price_fen_per_kg=260,
                 insured_sum_fen_per_mu=100_000, planting_from="05-01", planting_to="05-31",
                 harvest_from="09-01", harvest_to="10-31")


def registry_parcel(code: str, area: str, *, contract_end: date = date(2030, 12, 31),
                    pledged: bool = False) -> Parcel:
    pledges = (Pledge("another bank", 1_000_000, date(2025, 1, 1), date(2027, 1, 1), True),) \
        if pledged else ()
    return Parcel(code=code, area_mu=Decimal(area), land_class="paddy",
                  village_code="330521101201", latitude=Decimal("30.6"),
                  longitude=Decimal("120.1"), contract_start=date(2010, 1, 1),
                  contract_end=contract_end, pledges=pledges)


def insurance_policy(codes: tuple[str, ...], area: str, *, crop: str = "rice") -> InsurancePolicy:
    return InsurancePolicy(number=f"PICC-{'-'.join(codes)}", crop=crop,
                           insured_area_mu=Decimal(area), sum_insured_fen=100_000 * int(
                               Decimal(area)), start=date(2026, 4, 1), end=date(2026, 10, 31),
                           status="active", parcel_codes=codes)


def inputs(**changes: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`build_facts` for a clean case: an established,
    verified borrower asking 12,000 yuan on three insured rice parcels of 5 mu (limit
    12,831 yuan); ``changes`` replace any of them."""
    codes = ("P-01", "P-02", "P-03")
    base: dict[str, Any] = {
        "application": ApplicationInput(
            amount_fen=1_200_000, term_months=8, crop="rice", purpose="seed and fertiliser",
            submitted_on=SUBMITTED, maturity_on=MATURITY,
            parcels=tuple(DeclaredParcel("C-1", code, Decimal("5.00")) for code in codes)),
        "applicant": ApplicantInput(holder_hash=HOLDER, identity_verified=True,
                                    prior_approved_loans=2, open_default=False, age=45),
        "product": PRODUCT,
        "crop": RICE,
        "land": LandRecord(HOLDER, (Certificate("C-1", HOLDER, "demo", tuple(
            registry_parcel(code, "5.00") for code in codes)),)),
        "insurance": InsuranceRecord(HOLDER, (insurance_policy(codes, "15.00"),)),
        "unavailable": (),
        "field_check": None,
    }
    base.update(changes)
    return base


def facts(**changes: Any) -> dict[str, Any]:
    return build_facts(**inputs(**changes))


def _hard_rules() -> dict[str, Any]:
    """Every hard rule at once: a foreign, a pledged and an expiring parcel, a default."""
    app = inputs()["application"]
    parcels = (*app.parcels, DeclaredParcel("C-9", "X-01", Decimal("2.00")))
    land = LandRecord(HOLDER, (Certificate("C-1", HOLDER, "demo", (
        registry_parcel("P-01", "5.00", pledged=True),
        registry_parcel("P-02", "5.00", contract_end=date(2026, 6, 30)),
        registry_parcel("P-03", "5.00"))),),
        foreign=(Certificate("C-9", "someone-else", "other", (registry_parcel("X-01", "2"),)),))
    applicant = ApplicantInput(holder_hash=HOLDER, identity_verified=True,
                               prior_approved_loans=1, open_default=True,
                               pledged_parcels=frozenset({"P-03"}), age=17)
    return facts(application=_with(app, parcels=parcels), land=land, applicant=applicant)


def _referrals() -> dict[str, Any]:
    """Everything a loan officer must look at, after a field check with findings."""
    app = inputs()["application"]
    parcels = (DeclaredParcel("C-1", "P-01", Decimal("6.00")),
               DeclaredParcel("C-1", "P-02", Decimal("5.00")),
               DeclaredParcel("C-1", "P-02", Decimal("5.00")),
               DeclaredParcel("C-1", "P-04", Decimal("3.00")),
               DeclaredParcel("C-1", "P-03", Decimal("5.00")))
    claims = (Claim("PICC-P-01-P-02-P-03", "flood", SUBMITTED - timedelta(days=200),
                    Decimal("0.45"), "paid"),)
    insurance = InsuranceRecord(HOLDER, (insurance_policy(("P-01", "P-02", "P-03"), "20.00"),),
                                claims)
    check = FieldCheckInput(identity_verified=False, parcels=(
        ParcelCheck("P-01", visited=True, crop_seen=False, estimated_area_mu=Decimal("4.00")),
        ParcelCheck("P-03", visited=True, crop_seen=True)))
    return facts(application=_with(app, parcels=parcels, amount_fen=40_000_000),
                 insurance=insurance, field_check=check,
                 applicant=ApplicantInput(holder_hash=HOLDER, identity_verified=False,
                                          prior_approved_loans=0, open_default=False, age=None))


def _with(app: ApplicationInput, **changes: Any) -> ApplicationInput:
    return ApplicationInput(**{**app.__dict__, **changes})


def smoke_facts() -> list[dict[str, Any]]:
    """The fixed cases a new policy version is evaluated on before it is stored."""
    return [
        facts(),
        _hard_rules(),
        _referrals(),
        facts(land=None, insurance=None, unavailable=("land", "insurance"), crop=None),
        facts(applicant=ApplicantInput(holder_hash=HOLDER, identity_verified=False,
                                       prior_approved_loans=0, open_default=False, age=30),
              application=_with(inputs()["application"], amount_fen=8_000_000)),
    ]


def random_facts(rng: random.Random) -> dict[str, Any]:
    """A varied, plausible application: 1 to 6 rice parcels, some insured, an amount around
    what they would support, now and then odd data (a wrong area, a pledge, a claim)."""
    count = rng.randint(1, 6)
    codes = tuple(f"P-{n:02d}" for n in range(1, count + 1))
    registry = {code: Decimal(rng.randint(100, 1500)) / 100 for code in codes}
    careful = rng.random() < 0.8  # most declare the registry's areas
    declared = tuple(DeclaredParcel("C-1", code, registry[code] * Decimal(
        "1" if careful else rng.choice(["1", "1.03", "1.2", "0.9"]))) for code in codes)
    insured = codes[: rng.randint(0, count)]
    policies = (insurance_policy(insured, str(sum(registry[c] for c in insured))),) \
        if insured else ()
    claims = (Claim("PICC-1", "hail", SUBMITTED - timedelta(days=rng.randint(30, 1500)),
                    Decimal(rng.randint(5, 60)) / 100, "paid"),) if rng.random() < 0.2 else ()
    supported = sum(registry.values()) * 470 * 260 * Decimal("0.6")  # fen, roughly
    amount = int(supported * Decimal(rng.uniform(0.3, 1.2)) / 10_000) * 10_000
    app = _with(inputs()["application"], parcels=declared, amount_fen=max(amount, 100_000))
    applicant = ApplicantInput(holder_hash=HOLDER, identity_verified=rng.random() < 0.95,
                               prior_approved_loans=rng.choice([0, 1, 1, 2, 2, 3, 5, 8, 1, 2]),
                               open_default=rng.random() < 0.02, age=rng.randint(22, 68))
    land = LandRecord(HOLDER, (Certificate("C-1", HOLDER, "demo", tuple(
        registry_parcel(code, str(registry[code]), pledged=rng.random() < 0.01)
        for code in codes)),))
    unavailable = ("insurance",) if rng.random() < 0.03 else ()
    return facts(application=app, applicant=applicant, land=land,
                 insurance=InsuranceRecord(HOLDER, policies, claims), unavailable=unavailable)
